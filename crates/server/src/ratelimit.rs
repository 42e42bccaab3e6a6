//! Rate-limit responses: 429 `rate_limited` with `Retry-After` and the IETF `RateLimit-*`
//! headers. Every 429 is built here, so every one is counted in
//! `rolegate_rate_limit_rejections_total{limit}`.

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

/// The 429 for a denied step of the limit named `limit` (its config key), counted once.
#[must_use]
pub fn rejected(metrics: &Metrics, limit: &str, d: &RateDecision) -> ApiError {
    metrics.rate_limit_rejected(limit);
    ApiError::rate_limited_by(limit, d)
}
