//! rolegate's HTTP edge: configuration, start-up, routes per resource, and the one
//! `ApiError`. Handlers are short: extract the caller, parse the request into a command,
//! call a service in `rolegate-core`, map the result. No SQL, Redis or SDK calls here.

/// Start-up and the router.
pub mod app;
/// Authentication middleware and the `Caller` extractor.
pub mod auth;
/// Routes declare the policy action they perform; enforced and documented in one step.
pub mod authorize;
/// Layered settings.
pub mod config;
/// The one error type and error rendering.
pub mod error;
/// Extractors with rolegate's error codes.
pub mod extract;
/// Permissions of the data directory and its files.
pub mod files;
/// The Idempotency-Key middleware.
pub mod idempotency;
/// The `KvStore` decorator that records store metrics.
pub mod instrumented_store;
/// Master keyring loading.
pub mod keys;
/// Outgoing mail (email customer approvers) over SMTP with `lettre`.
pub mod mail;
/// The `Sts` decorator that counts AssumeRole calls.
pub mod metered_sts;
/// Prometheus metrics and `GET /metrics`.
pub mod metrics;
/// Notification sinks: the Slack incoming webhook and the signed generic webhook.
pub mod notify;
/// The OpenAPI document: shared parts and what every operation gets.
pub mod openapi;
/// Mounting the operator portal (`rolegate-portal`) and what it is told per request.
pub mod portal;
/// 429 responses.
pub mod ratelimit;
/// `GET /api/ready`'s cached writability check and degraded mode.
pub mod readiness;
/// The start-up check of a Redis store's persistence settings.
pub mod redis_durability;
/// Route modules.
pub mod routes;
/// The accept loop (plain HTTP or TLS) and graceful shutdown.
pub mod serve;
/// Shared handler state.
pub mod state;
/// Log set-up.
pub mod telemetry;
/// Header-read, body-read and handler timeouts.
pub mod timeouts;
/// The native TLS listener's certificate, reloaded on SIGHUP, and HSTS.
pub mod tls;
/// Signed outgoing webhooks (customer approvers) over HTTP.
pub mod webhook;

pub use app::Application;
pub use config::{RawSettings, Settings};
