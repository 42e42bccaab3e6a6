//! One module per resource; each exposes `router()`.

/// The audit log query.
pub mod audit;
/// Credential vending, validation and console sign-in.
pub mod credentials;
/// Liveness and readiness.
pub mod health;
/// Onboarding: the signed callback, links, binding reset.
pub mod onboarding;
/// Organisations.
pub mod orgs;
/// Operators.
pub mod users;
