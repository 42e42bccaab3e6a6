//! Security headers on every portal answer, and the rendering of error pages (which needs
//! the request id, known here).

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::error::{PageError, render};

/// No script but the portal's own file, no inline anything, no frames, forms only to the
/// portal, and fetches only to the portal.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub async fn secure(req: Request, next: Next) -> Response {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let is_asset = req.uri().path().starts_with("/assets/");
    let mut res = next.run(req).await;
    if let Some(err) = res.extensions_mut().remove::<PageError>() {
        res = render(&err, &request_id, res);
    }
    apply(res.headers_mut(), is_asset);
    res
}

/// The portal's security headers, also on pages served outside its router (the customer
/// approval link's page).
pub fn apply(h: &mut HeaderMap, is_asset: bool) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Pages show ExternalIds, tokens, keys and credentials: none may be kept by a browser
    // or proxy. Only the embedded assets may be cached.
    if !is_asset {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}
