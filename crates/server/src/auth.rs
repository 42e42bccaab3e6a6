//! Authentication: every protected route passes through `authenticate`, which resolves a
//! bearer token (`rgt_…`, operators) or an org API key (`X-Api-Key` or `Bearer rgk_…`) to a
//! `Principal`. Failed attempts are audited and rate-limited per source IP, so they count
//! against the attacker and never lock out the key they guessed at.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::{HeaderMap, header, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rolegate_core::RequestContext;
use rolegate_core::audit::AuditRecord;
use rolegate_core::keyspace;

use crate::error::ApiError;
use crate::extract::SourceIp;
use crate::state::AppState;

/// The authenticated caller, for handlers: core's [`rolegate_core::Caller`], which every
/// service method takes (a `&Caller` here coerces to it).
#[derive(Debug, Clone)]
pub struct Caller(pub rolegate_core::Caller);

impl std::ops::Deref for Caller {
    type Target = rolegate_core::Caller;
    fn deref(&self) -> &rolegate_core::Caller {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<rolegate_core::Caller>()
            .cloned()
            .map(Caller)
            .ok_or_else(|| ApiError::unauthorized("authentication required"))
    }
}

/// The presented secret, if any. `X-Api-Key` wins over `Authorization`.
fn presented(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    if let Some(v) = headers.get("x-api-key") {
        let v = v
            .to_str()
            .map_err(|_| ApiError::unauthorized("X-Api-Key is not valid text"))?;
        return Ok(Some(v.trim().to_owned()));
    }
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let v = v
        .to_str()
        .map_err(|_| ApiError::unauthorized("Authorization is not valid text"))?;
    let mut parts = v.splitn(2, ' ');
    let scheme = parts.next().unwrap_or_default();
    let token = parts.next().unwrap_or_default().trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(ApiError::unauthorized("use Authorization: Bearer <token>"));
    }
    Ok(Some(token.to_owned()))
}

/// The caller's address.
pub fn source_ip(state: &AppState, headers: &HeaderMap, peer: Option<SocketAddr>) -> String {
    if state.settings.trust_forwarded_for
        && let Some(last) = last_forwarded_hop(headers)
    {
        return last;
    }
    peer.map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string())
}

/// The last hop of `X-Forwarded-For`, reading every header line as one list (RFC 9110
/// §5.3): a proxy may append its own line rather than extend the client's. The last hop is
/// the one the trusted proxy appended; earlier ones are whatever the client sent, and would
/// let it dodge per-IP limits. `None` (use the peer) when the header is absent, a line is
/// not text, or the last hop is not an IP address.
fn last_forwarded_hop(headers: &HeaderMap) -> Option<String> {
    let mut last = None;
    for line in headers.get_all("x-forwarded-for") {
        let line = line.to_str().ok()?;
        if let Some(hop) = line.rsplit(',').next() {
            last = Some(hop.trim());
        }
    }
    last.filter(|v| v.parse::<std::net::IpAddr>().is_ok())
        .map(str::to_owned)
}

pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Middleware for protected routes.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let ip = source_ip(&state, req.headers(), peer);
    req.extensions_mut().insert(SourceIp(ip.clone()));
    let ctx = RequestContext {
        request_id: request_id(req.headers()),
        source_ip: Some(ip.clone()),
        actor: "anonymous".to_owned(),
    };
    let secret = match presented(req.headers()) {
        Ok(Some(s)) => s,
        Ok(None) => {
            return ApiError::unauthorized(
                "authentication required: send Authorization: Bearer <token> or X-Api-Key",
            )
            .into_response();
        }
        Err(e) => return failed(&state, &ctx, &ip, e, "malformed").await,
    };
    let resolved = if secret.starts_with(rolegate_core::orgs::API_KEY_PREFIX) {
        state.services.orgs.authenticate_api_key(&secret).await
    } else {
        state.services.users.authenticate_token(&secret).await
    };
    match resolved {
        Ok(Some(principal)) => {
            req.extensions_mut()
                .insert(rolegate_core::Caller::new(principal, ctx));
            next.run(req).await
        }
        Ok(None) => {
            let kind = if secret.starts_with("rgk_") {
                "api_key"
            } else if secret.starts_with("rgt_") {
                "token"
            } else {
                "unknown"
            };
            failed(
                &state,
                &ctx,
                &ip,
                ApiError::unauthorized("invalid credentials"),
                kind,
            )
            .await
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Records a failed attempt against the source (an IPv4 address or an IPv6 /64) and answers
/// 401, or 429 once that source has used up its failure budget. Either way the failure is
/// audited through the aggregation of `audit::failures`: the first from a source in a
/// minute is an event of its own, the rest of that minute one event with their count.
pub(crate) async fn failed(
    state: &AppState,
    ctx: &RequestContext,
    ip: &str,
    err: ApiError,
    kind: &str,
) -> Response {
    let limit = state.settings.rate_limits.auth_failures_per_ip;
    let limited = match state
        .services
        .records
        .rate_step(&keyspace::rate::auth_failures(ip), limit)
        .await
    {
        Ok(d) if !d.allowed => Some(d),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %e, "rate limiter unavailable");
            None
        }
    };
    let code = if limited.is_some() {
        "rate_limited"
    } else {
        "unauthorized"
    };
    let record = AuditRecord::new("auth.failed")
        .failure(code)
        .details(serde_json::json!({"credential": kind}));
    if let Err(e) = state
        .services
        .records
        .record_unauthenticated(ctx, record)
        .await
    {
        // The request is refused anyway; a failed audit of a refusal must not turn into a 5xx.
        tracing::error!(error = %e, "could not audit a failed authentication");
    }
    match limited {
        Some(d) => {
            crate::ratelimit::rejected(&state.metrics, "auth_failures_per_ip", &d).into_response()
        }
        None => err.into_response(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::http::HeaderValue;
    use proptest::prelude::*;

    /// Header-value bytes as a client can send them (visible ASCII, spaces, tabs and
    /// obs-text), with address-like text mixed in so that valid hops are common.
    fn header_line() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(
                prop_oneof![0x20u8..0x7f, Just(b'\t'), 0x80u8..=0xff],
                0..64
            ),
            "([ ]*(10\\.0\\.0\\.[0-9]{1,3}|::1|2001:db8::[0-9a-f]{1,4}|[0-9a-f:.]{0,12}|unknown)[ ]*,){0,4}[ ]*(192\\.0\\.2\\.[0-9]{1,3}|2001:db8::[0-9a-f]{1,4}|[0-9.:]{0,20})[ ]*"
                .prop_map(String::into_bytes),
        ]
    }

    fn headers(name: &'static str, lines: &[Vec<u8>]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for line in lines {
            if let Ok(v) = HeaderValue::from_bytes(line) {
                h.append(name, v);
            }
        }
        h
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any `X-Forwarded-For` lines: the last hop of the last line when it is an IP
        /// address, else none (the peer is used); never a panic. The rate-limit bucket
        /// (`keyspace::rate::source`) of any accepted hop is an address or a /64.
        #[test]
        fn forwarded_for_yields_the_last_hop_or_none(lines in proptest::collection::vec(header_line(), 0..4)) {
            let h = headers("x-forwarded-for", &lines);
            let hop = last_forwarded_hop(&h);
            let expected = h
                .get_all("x-forwarded-for")
                .iter()
                .next_back()
                .and_then(|v| v.to_str().ok())
                .and_then(|l| l.rsplit(',').next())
                .map(str::trim)
                .filter(|v| v.parse::<std::net::IpAddr>().is_ok());
            if h.get_all("x-forwarded-for").iter().all(|v| v.to_str().is_ok()) {
                prop_assert_eq!(hop.as_deref(), expected);
            } else {
                prop_assert_eq!(hop.as_deref(), None);
            }
            if let Some(ip) = hop {
                let source = keyspace::rate::source(&ip);
                prop_assert!(!source.is_empty());
            }
        }

        /// Any `Authorization` or `X-Api-Key` bytes: a secret, nothing, or 401; never a panic
        /// and never an empty secret from `Authorization`.
        #[test]
        fn presented_credentials_are_a_secret_or_unauthorized(
            auth in proptest::option::of(header_line()),
            key in proptest::option::of(header_line()),
            bearer in proptest::option::of("[Bb][Ee][Aa][Rr][Ee][Rr] [ -~]{0,40}"),
        ) {
            let mut h = HeaderMap::new();
            for (name, value) in [("authorization", auth), ("authorization", bearer.map(String::into_bytes)), ("x-api-key", key)] {
                if let Some(v) = value.and_then(|v| HeaderValue::from_bytes(&v).ok()) {
                    h.insert(name, v);
                }
            }
            match presented(&h) {
                Ok(Some(secret)) => prop_assert!(h.contains_key("x-api-key") || !secret.is_empty()),
                Ok(None) => prop_assert!(!h.contains_key("x-api-key") && !h.contains_key("authorization")),
                Err(e) => prop_assert_eq!(e.code, rolegate_core::Code::Unauthorized),
            }
        }
    }

    #[test]
    fn the_last_line_wins_and_non_addresses_are_ignored() {
        let h = headers(
            "x-forwarded-for",
            &[b"203.0.113.9, 10.0.0.1".to_vec(), b" 192.0.2.7 ".to_vec()],
        );
        assert_eq!(last_forwarded_hop(&h).as_deref(), Some("192.0.2.7"));
        let h = headers("x-forwarded-for", &[b"192.0.2.7, unknown".to_vec()]);
        assert_eq!(last_forwarded_hop(&h), None);
    }
}
