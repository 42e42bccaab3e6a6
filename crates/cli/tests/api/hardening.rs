//! The security review's defects (issue 10) at the edge: timeouts, readiness, `/metrics`
//! authentication, `X-Forwarded-For`, idempotency under disconnects, file permissions,
//! Redis persistence, TLS and the client's redirects.

/// Every `X-Forwarded-For` line is read.
mod forwarded;
/// `/metrics` shares the failed-authentication limit and audit.
mod metrics_auth;

