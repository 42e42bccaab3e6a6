//! Shared application state handed to every handler.

use std::sync::Arc;

use rolegate_core::Services;
use rolegate_core::clock::Clock;
use rolegate_core::idempotency::Idempotency;

use crate::config::Settings;
use crate::metrics::Metrics;

#[derive(Debug, Clone)]
pub struct AppState {
    pub services: Services,
    pub idempotency: Idempotency,
    pub settings: Arc<Settings>,
    pub clock: Arc<dyn Clock>,
    /// This application's own metrics registry (never process-global; ADR 0005).
    pub metrics: Arc<Metrics>,
}
