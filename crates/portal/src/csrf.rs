//! Cross-site request forgery, first layer: every unsafe request (anything but GET, HEAD
//! and OPTIONS) must come from a page of the portal's own origin, as the browser says in
//! `Sec-Fetch-Site` (or, for a browser that does not send it, `Origin`). A request with
//! neither is refused too: every browser that can run the portal sends one of them on a
//! form POST. The second layer, the per-session form token, is checked with the session
//! (`session::require`). Refusals are 403 `forbidden`.

use axum::extract::Request;
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rolegate_core::Code;

use crate::Client;
use crate::error::PageError;

pub async fn same_origin(req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let https = req.extensions().get::<Client>().is_some_and(|c| c.https);
    if let Err(reason) = check(req.headers(), https) {
        tracing::warn!(reason, "refused a cross-origin portal request");
        return PageError::new(
            Code::Forbidden,
            format!("cross-origin request refused: {reason}"),
        )
        .into_response();
    }
    next.run(req).await
}

/// `Ok` when the headers show a same-origin request.
pub fn check(headers: &HeaderMap, https: bool) -> Result<(), &'static str> {
    if let Some(site) = headers.get("sec-fetch-site") {
        return if site.as_bytes() == b"same-origin" {
            Ok(())
        } else {
            Err("Sec-Fetch-Site is not same-origin")
        };
    }
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .ok_or("the request has neither Sec-Fetch-Site nor Origin")?;
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .ok_or("the request has no Host")?;
    let scheme = if https { "https://" } else { "http://" };
    match origin.strip_prefix(scheme) {
        Some(rest) if rest.eq_ignore_ascii_case(host) => Ok(()),
        _ => Err("Origin is not this portal"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn only_the_portals_own_origin_passes() {
        let host = ("host", "127.0.0.1:8080");
        assert!(check(&headers(&[("sec-fetch-site", "same-origin")]), false).is_ok());
        assert!(check(&headers(&[("sec-fetch-site", "cross-site")]), false).is_err());
        assert!(check(&headers(&[("sec-fetch-site", "same-site")]), false).is_err());
        assert!(check(&headers(&[("sec-fetch-site", "none")]), false).is_err());
        // Sec-Fetch-Site wins over a matching Origin.
        let h = headers(&[
            ("sec-fetch-site", "cross-site"),
            ("origin", "http://127.0.0.1:8080"),
            host,
        ]);
        assert!(check(&h, false).is_err());
        assert!(
            check(
                &headers(&[("origin", "http://127.0.0.1:8080"), host]),
                false
            )
            .is_ok()
        );
        assert!(check(&headers(&[("origin", "http://127.0.0.1:8080"), host]), true).is_err());
        assert!(check(&headers(&[("origin", "http://evil.example"), host]), false).is_err());
        assert!(check(&headers(&[("origin", "null"), host]), false).is_err());
        assert!(check(&headers(&[host]), false).is_err());
        assert!(check(&HeaderMap::new(), false).is_err());
    }
}
