//! The session cookie and [`require`], the middleware in front of every signed-in page:
//! it resolves the cookie to a live session (else the login page), and on unsafe methods
//! checks the session's form token, the second layer against cross-site request forgery.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest as _, FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use rolegate_core::sessions::{Active, Ended};
use rolegate_core::{Caller, Code, RequestContext};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

use crate::error::PageError;
use crate::{Client, Portal};

/// The cookie's name where the browser treats the origin as secure (HTTPS, or loopback):
/// `__Host-` makes the browser refuse it unless `Secure`, host-only and `Path=/`.
pub const COOKIE: &str = "__Host-rolegate";
/// The name on plain HTTP to a non-loopback host (behind a proxy that does not say it
/// terminated TLS), where a `Secure` cookie would never come back.
pub const COOKIE_INSECURE: &str = "rolegate";

/// The signed-in operator of this request, for handlers.
#[derive(Debug, Clone)]
pub struct Session {
    pub caller: Caller,
    pub form_token: String,
    id: std::sync::Arc<SecretString>,
}

impl Session {
    pub fn id(&self) -> &str {
        self.id.expose_secret()
    }

    pub fn is_admin(&self) -> bool {
        self.caller.principal.is_admin()
    }

    pub fn user(&self) -> String {
        match &self.caller.principal {
            rolegate_core::Principal::Operator { user_id, .. } => user_id.to_string(),
            other => other.actor(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = PageError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, PageError> {
        parts
            .extensions
            .get::<Session>()
            .cloned()
            .ok_or_else(|| PageError::new(Code::Unauthorized, "sign in first"))
    }
}

/// The request's context for audit events: its id and the client's address.
pub fn context(headers: &HeaderMap, client: Option<&Client>) -> RequestContext {
    RequestContext {
        request_id: headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        source_ip: Some(client.map_or_else(|| "unknown".to_owned(), |c| c.ip.clone())),
        actor: "anonymous".to_owned(),
    }
}

/// The session id the browser sent, if any.
pub fn presented(headers: &HeaderMap) -> Option<String> {
    for line in headers.get_all(header::COOKIE) {
        let Ok(line) = line.to_str() else { continue };
        for pair in line.split(';') {
            let Some((name, value)) = pair.trim().split_once('=') else {
                continue;
            };
            if (name == COOKIE || name == COOKIE_INSECURE) && !value.is_empty() {
                return Some(value.to_owned());
            }
        }
    }
    None
}

/// Whether the browser sees this origin as secure, so that it keeps a `Secure` cookie:
/// HTTPS, or a loopback host (which browsers treat as potentially trustworthy).
pub fn secure_origin(headers: &HeaderMap, client: Option<&Client>) -> bool {
    if client.is_some_and(|c| c.https) {
        return true;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let name = match host.rsplit_once(':') {
        Some((n, port)) if port.bytes().all(|b| b.is_ascii_digit()) => n,
        _ => host,
    };
    matches!(name, "localhost" | "127.0.0.1" | "[::1]")
}

/// `Set-Cookie` for a new session (no `Max-Age`: the server decides when it ends).
pub fn set_cookie(id: &str, secure: bool) -> Option<HeaderValue> {
    let v = if secure {
        format!("{COOKIE}={id}; Path=/; Secure; HttpOnly; SameSite=Strict")
    } else {
        format!("{COOKIE_INSECURE}={id}; Path=/; HttpOnly; SameSite=Strict")
    };
    HeaderValue::from_str(&v).ok()
}

/// `Set-Cookie` lines that make the browser forget the session.
pub fn clear_cookies() -> [HeaderValue; 2] {
    [
        HeaderValue::from_static(
            "__Host-rolegate=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
        HeaderValue::from_static("rolegate=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    ]
}

/// To the login page, saying why, forgetting the cookie.
pub fn to_login(why: Option<&str>) -> Response {
    let target = match why {
        Some(w) => format!("/login?ended={w}"),
        None => "/login".to_owned(),
    };
    let mut res = Redirect::to(&target).into_response();
    for v in clear_cookies() {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

#[derive(Deserialize)]
struct FormToken {
    csrf: Option<String>,
}

/// Resolves the session (else to the login page) and checks the form token on unsafe
/// methods (else 403).
pub async fn require(State(portal): State<Portal>, req: Request, next: Next) -> Response {
    let client = req.extensions().get::<Client>().cloned();
    let ctx = context(req.headers(), client.as_ref());
    let Some(id) = presented(req.headers()) else {
        return to_login(None);
    };
    let active: Active = match portal.services.sessions.resolve(&id, &ctx).await {
        Ok(a) => a,
        Err(Ended::Unknown) => return to_login(None),
        Err(Ended::Expired) => return to_login(Some("expired")),
        Err(Ended::Revoked) => return to_login(Some("revoked")),
    };
    let (parts, body) = req.into_parts();
    let mut req = if matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        Request::from_parts(parts, body)
    } else {
        let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
            return PageError::new(Code::InvalidBody, "the form could not be read").into_response();
        };
        if !form_token_matches(&bytes, active.form_token.expose()).await {
            tracing::warn!("refused a portal form without the session's form token");
            return PageError::new(
                Code::Forbidden,
                "the form token is missing or wrong: reload the page and try again",
            )
            .into_response();
        }
        Request::from_parts(parts, Body::from(bytes))
    };
    req.extensions_mut().insert(Session {
        caller: active.caller,
        form_token: active.form_token.expose().to_owned(),
        id: std::sync::Arc::new(SecretString::from(id)),
    });
    next.run(req).await
}

/// Whether the urlencoded form in `bytes` carries `csrf` equal to `expected`.
async fn form_token_matches(bytes: &Bytes, expected: &str) -> bool {
    let probe = Request::builder()
        .method(Method::POST)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(bytes.clone()));
    let Ok(probe) = probe else { return false };
    match axum::Form::<FormToken>::from_request(probe, &()).await {
        Ok(axum::Form(FormToken { csrf: Some(t) })) => {
            rolegate_crypto::ct_eq(t.as_bytes(), expected.as_bytes())
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_cookie_is_read_from_any_line_and_either_name() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=b; __Host-rolegate=rgs_x"),
        );
        assert_eq!(presented(&h).as_deref(), Some("rgs_x"));
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("x=1"));
        h.append(header::COOKIE, HeaderValue::from_static("rolegate=rgs_y"));
        assert_eq!(presented(&h).as_deref(), Some("rgs_y"));
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("rolegate=; other=2"),
        );
        assert_eq!(presented(&h), None);
    }

    #[test]
    fn secure_cookies_on_https_and_loopback_only() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(secure_origin(&h, None));
        h.insert(
            header::HOST,
            HeaderValue::from_static("rolegate.internal:8080"),
        );
        assert!(!secure_origin(&h, None));
        let https = Client {
            ip: "192.0.2.1".into(),
            https: true,
        };
        assert!(secure_origin(&h, Some(&https)));
        let c = set_cookie("rgs_a", true).unwrap();
        let c = c.to_str().unwrap();
        for part in [
            "__Host-rolegate=rgs_a",
            "Secure",
            "HttpOnly",
            "SameSite=Strict",
            "Path=/",
        ] {
            assert!(c.contains(part), "{c}");
        }
        assert!(!c.contains("Domain"), "{c}");
    }
}
