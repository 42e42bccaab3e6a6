//! rolegate's operator portal: server-rendered pages (askama templates compiled into the
//! binary) for everything the API does for people: orgs and onboarding, credentials, key-pair
//! jobs, the audit log and operators. It is mounted by the server under `/` beside `/api`.
//!
//! It calls the area services of `rolegate_core` directly, so every page decides through
//! the same policy and writes the same audit events as the API; it never reaches the store
//! itself. Sign-in opens a server-side session (`core::sessions`); its cookie is
//! `__Host-`-prefixed, `HttpOnly`, `SameSite=Strict` and `Secure`; every unsafe request must
//! come from the portal's own origin and carry the session's form token (`csrf`). Every asset
//! is embedded; pages carry a strict Content-Security-Policy and `Cache-Control: no-store`.
//!
//! This crate must not depend on the server, the store or AWS crates.

/// Embedded CSS and script.
mod assets;
/// The origin check and the form token on unsafe methods.
mod csrf;
/// The error page and the mapping of domain errors to it.
mod error;
/// Security headers on every answer.
mod headers;
/// Sign-in through the company's identity provider (OpenID Connect).
pub mod oidc;
/// One module per page family.
mod pages;
/// The session cookie and the middleware that resolves it.
mod session;

use std::sync::Arc;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};
use rolegate_core::Services;
use rolegate_core::ports::RateLimit;

pub use pages::customer_link::{customer_link_error, customer_link_page};
pub use session::{COOKIE, COOKIE_INSECURE};

/// What the server tells the portal about each request: the client's address (as the
/// server's trusted-proxy rules see it) and whether the browser reached rolegate over
/// HTTPS (TLS on, or a trusted proxy said so).
#[derive(Debug, Clone)]
pub struct Client {
    pub ip: String,
    pub https: bool,
}

/// The portal's wiring: the area services and the failed-login budget it shares with the
/// API.
#[derive(Debug, Clone)]
pub struct Portal(Arc<Inner>);

#[derive(Debug)]
pub struct Inner {
    pub services: Services,
    /// `rate_limits.auth_failures_per_ip`: failed sign-ins count against it like bad tokens.
    pub auth_failures: RateLimit,
    /// Sign-in through the identity provider, when `[oidc]` is configured.
    pub oidc: Option<oidc::Oidc>,
}

impl Portal {
    /// The portal, with sign-in through the identity provider when `oidc` is given.
    pub fn new(
        services: Services,
        auth_failures: RateLimit,
        oidc: Option<oidc::OidcConfig>,
    ) -> Result<Self, String> {
        Ok(Self(Arc::new(Inner {
            services,
            auth_failures,
            oidc: oidc.map(oidc::Oidc::new).transpose()?,
        })))
    }
}

impl std::ops::Deref for Portal {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// Every page, for a router of any state. The server adds [`Client`] to each request
/// before it reaches these routes.
pub fn router<S: Clone + Send + Sync + 'static>(portal: Portal) -> Router<S> {
    use pages::{
        access, audit, credentials, home, jobs, login, operators, org_actions, orgs, sso, stacks,
    };
    let signed_in = Router::new()
        .route("/", get(home::show))
        .route("/orgs", post(orgs::register))
        .route("/orgs/{org}", get(orgs::show))
        .route("/orgs/{org}/status", get(orgs::status))
        .route("/orgs/{org}/confirm/{action}", get(org_actions::confirm))
        .route("/orgs/{org}/actions/{action}", post(org_actions::perform))
        .route("/orgs/{org}/jobs", get(jobs::list).post(jobs::create))
        .route("/jobs/{id}", get(jobs::show))
        .route("/jobs/{id}/status", get(jobs::status))
        .route("/jobs/{id}/key", post(jobs::download))
        .route(
            "/credentials",
            get(credentials::form).post(credentials::issue),
        )
        .route("/credentials/console", post(credentials::console))
        .route("/access", get(access::list))
        .route("/access/new", get(access::form))
        .route("/access/requests", post(access::create))
        .route("/access/requests/{id}/{decision}", post(access::decide))
        .route("/orgs/{org}/stacks", get(stacks::list).post(stacks::apply))
        .route(
            "/orgs/{org}/stacks/{name}/confirm-delete",
            get(stacks::confirm_delete),
        )
        .route("/orgs/{org}/stacks/{name}/{action}", post(stacks::act))
        .route("/orgs/{org}/inventory", post(stacks::inventory))
        .route("/audit", get(audit::list))
        .route("/audit/events/{seq}", get(audit::event))
        .route("/audit/verify", post(audit::verify))
        .route("/operators", get(operators::list).post(operators::create))
        .route(
            "/operators/{id}/confirm-disable",
            get(operators::confirm_disable),
        )
        .route("/operators/{id}/disable", post(operators::disable))
        .route("/operators/{id}/token", post(operators::rotate))
        .route("/operators/{id}/role", post(operators::set_role))
        .route("/logout", post(login::logout))
        .route_layer(middleware::from_fn_with_state(
            portal.clone(),
            session::require,
        ));
    Router::new()
        .merge(signed_in)
        .route("/login", get(login::form).post(login::submit))
        .route("/auth/oidc/start", get(sso::start))
        .route("/auth/oidc/callback", get(sso::callback))
        .route("/assets/{file}", get(assets::serve))
        .layer(middleware::from_fn(csrf::same_origin))
        .layer(middleware::from_fn(headers::secure))
        .with_state(portal)
}
