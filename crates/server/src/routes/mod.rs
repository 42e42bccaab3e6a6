//! One module per resource; each exposes `router()`.

/// The audit log query.
pub mod audit;
/// Liveness and readiness.
pub mod health;
/// Organisations.
pub mod orgs;
/// Operators.
pub mod users;
