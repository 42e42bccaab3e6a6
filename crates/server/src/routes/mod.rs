//! One module per resource; each exposes `router()`, an `OpenApiRouter` whose routes come
//! from their `#[utoipa::path]` annotations (see [`crate::openapi`] to add one).

/// Just-in-time access: requests, approvals, grants, revocation.
pub mod access;
/// The audit log query.
pub mod audit;
/// Approve from Slack, and links from Slack users to operators.
pub mod chat;
/// Credential vending, validation and console sign-in.
pub mod credentials;
/// Customer approvers (set by the org's key) and their single-use decision links (public).
pub mod customer;
/// The OpenAPI document and the `/docs` page (public).
pub mod docs;
/// Liveness and readiness.
pub mod health;
/// The customer's access history of its org, and its NDJSON export.
pub mod history;
/// Jobs in customer accounts: create, read, list, cancel, events, the one-time secret.
pub mod jobs;
/// `GET /metrics` and the per-request counting middleware.
pub mod metrics;
/// Source allowlists of orgs, their API keys and operators.
pub mod network;
/// Notification dead letters.
pub mod notify;
/// Onboarding: the signed callback, links, binding reset.
pub mod onboarding;
/// Organisations.
pub mod orgs;
/// Operators.
pub mod users;
/// Workload identity: trust anchors, profiles, `POST /sessions`.
pub mod workload;

use axum::http::{HeaderValue, header};
use axum::response::Response;

/// Marks a response that carries a secret (a token, an API key, credentials, a callback
/// secret in links) as never to be cached by a client or proxy.
pub(crate) fn no_store(mut res: Response) -> Response {
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}
