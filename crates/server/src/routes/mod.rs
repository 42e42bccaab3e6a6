//! One module per resource; each exposes `router()`, an `OpenApiRouter` whose routes come
//! from their `#[utoipa::path]` annotations (see [`crate::openapi`] to add one).

/// The audit log query.
pub mod audit;
/// Credential vending, validation and console sign-in.
pub mod credentials;
/// The OpenAPI document and the `/docs` page (public).
pub mod docs;
/// Liveness and readiness.
pub mod health;
/// Onboarding: the signed callback, links, binding reset.
pub mod onboarding;
/// Organisations.
pub mod orgs;
/// Operators.
pub mod users;
