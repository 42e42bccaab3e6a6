//! Rate-limit responses: 429 `rate_limited` with `Retry-After` and the IETF `RateLimit-*`
//! headers. Every 429 is built here, so every one is counted in
//! `rolegate_rate_limit_rejections_total{limit}`.

use axum::http::{HeaderValue, header};
use rolegate_core::Code;
use rolegate_core::ports::RateDecision;

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::state::AppState;

/// Takes one step of the limit `name` (its config key) for `key`: `Ok` when allowed, the
/// counted 429 otherwise.
pub async fn step(
    state: &AppState,
    name: &str,
    key: String,
    limit: rolegate_core::ports::RateLimit,
) -> Result<(), ApiError> {
    let d = state.services.records.rate_step(&key, limit).await?;
    if d.allowed {
        Ok(())
    } else {
        Err(rejected(&state.metrics, name, &d))
    }
}

/// A header value of digits (never fails; an empty value if it somehow did).
fn hv(v: &str) -> HeaderValue {
    HeaderValue::from_str(v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn secs(ms: u64) -> String {
    ms.div_ceil(1000).max(1).to_string()
}

/// The 429 for a denied step of the limit named `limit` (its config key), counted once.
#[must_use]
pub fn rejected(metrics: &Metrics, limit: &str, d: &RateDecision) -> ApiError {
    metrics.rate_limit_rejected(limit);
    too_many(d)
}

/// The 429 for a denied step (not counted: see [`rejected`]).
#[must_use]
pub fn too_many(d: &RateDecision) -> ApiError {
    ApiError::new(
        Code::RateLimited,
        "too many requests; retry after the time in Retry-After",
    )
    .with_header(header::RETRY_AFTER, hv(&secs(d.retry_after_ms)))
    .with_header(
        header::HeaderName::from_static("ratelimit-limit"),
        hv(&d.limit.to_string()),
    )
    .with_header(
        header::HeaderName::from_static("ratelimit-remaining"),
        hv(&d.remaining.to_string()),
    )
    .with_header(
        header::HeaderName::from_static("ratelimit-reset"),
        hv(&secs(d.reset_after_ms)),
    )
}
