//! `GET /metrics` and the middleware that counts and times every request into the app's
//! registry (`crate::metrics`).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret as _;

use crate::error::ApiError;
use crate::metrics::UNMATCHED_ROUTE;
use crate::state::AppState;

/// Middleware on every route: counts the request and times it under its route template.
pub async fn track_http(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED_ROUTE.to_owned(), |p| p.as_str().to_owned());
    let res = next.run(req).await;
    state
        .metrics
        .observe_http(&method, &route, res.status(), start.elapsed().as_secs_f64());
    res
}

/// Who asks to scrape.
enum Scraper {
    Allowed,
    /// No bearer token at all.
    Anonymous,
    /// A token that is neither the metrics token nor an admin's: a failed authentication.
    Refused(&'static str),
}

/// Whether the caller may scrape: the configured `metrics_token`, or an admin's token.
async fn may_scrape(state: &AppState, headers: &axum::http::HeaderMap) -> Scraper {
    let Some(presented) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
    else {
        return Scraper::Anonymous;
    };
    if let Some(token) = &state.settings.metrics_token
        && rolegate_crypto::ct_eq(token.expose_secret().as_bytes(), presented.as_bytes())
    {
        return Scraper::Allowed;
    }
    // Whose tokens may scrape is the policy's decision (`metrics.read`).
    let allowed = match state.services.users.authenticate_token(presented).await {
        Ok(Some(p)) => rolegate_core::policy::authorize(
            &rolegate_core::Caller::new(p, rolegate_core::RequestContext::default()),
            rolegate_core::policy::Action::ReadMetrics,
            &rolegate_core::policy::Facts::default(),
        )
        .is_ok(),
        _ => false,
    };
    match allowed {
        true => Scraper::Allowed,
        false => Scraper::Refused(if presented.starts_with("rgt_") {
            "token"
        } else {
            "metrics_token"
        }),
    }
}

/// Prometheus metrics
///
/// The text exposition format, for a scraper holding the `metrics_token` (Prometheus:
/// `authorization: {credentials_file: …}`) or an admin's token. Absent when
/// `metrics_enabled = false`.
#[utoipa::path(
    get, path = "/metrics", operation_id = "metrics", tag = "metrics",
    responses(
        (status = 200, description = "Prometheus text format.", content_type = "text/plain; version=0.0.4", body = String),
        (status = 401, description = "`unauthorized`: no metrics token or admin token.", body = crate::error::ErrorBody),
    )
)]
pub async fn render(State(state): State<AppState>, req: Request) -> Response {
    let refused = || {
        ApiError::unauthorized(
            "GET /metrics needs Authorization: Bearer with the metrics_token or an admin token",
        )
    };
    match may_scrape(&state, req.headers()).await {
        Scraper::Allowed => {}
        Scraper::Anonymous => return refused().into_response(),
        Scraper::Refused(kind) => {
            // A wrong token here is a guess like any other: it spends the source's failed-
            // authentication budget (429 past it) and is audited, as on every other route.
            let peer = req
                .extensions()
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0);
            let ip = crate::auth::source_ip(&state, req.headers(), peer);
            let ctx = rolegate_core::RequestContext {
                request_id: crate::auth::request_id(req.headers()),
                source_ip: Some(ip.clone()),
                actor: "anonymous".to_owned(),
            };
            return crate::auth::failed(&state, &ctx, &ip, refused(), kind).await;
        }
    }
    match state.metrics.render() {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(prometheus::TEXT_FORMAT),
            )],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "could not render metrics");
            ApiError::internal().into_response()
        }
    }
}
