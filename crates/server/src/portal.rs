//! The operator portal (`rolegate-portal`) is mounted under `/` beside the API. It is
//! given the area services and the failed-login budget, and, for each request, the
//! client's address under the same trusted-proxy rules as the API and whether the browser
//! came over HTTPS (TLS on, or a trusted proxy's `X-Forwarded-Proto: https`).

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;

use crate::state::AppState;

/// The portal's pages, for the app's router.
pub fn router(state: &AppState) -> anyhow::Result<Router<AppState>> {
    let portal = rolegate_portal::Portal::new(
        state.services.clone(),
        state.settings.rate_limits.auth_failures_per_ip,
        state.settings.oidc.clone(),
    )
    .map_err(|e| anyhow::anyhow!("invalid setting `oidc`: {e}"))?;
    Ok(
        rolegate_portal::router(portal)
            .layer(middleware::from_fn_with_state(state.clone(), client)),
    )
}

async fn client(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let ip = crate::auth::source_ip(&state, req.headers(), peer);
    let forwarded_https = state.settings.trust_forwarded_for
        && req
            .headers()
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let https = state.settings.tls.is_some() || forwarded_https;
    req.extensions_mut()
        .insert(rolegate_portal::Client { ip, https });
    next.run(req).await
}
