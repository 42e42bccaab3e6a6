//! Shared application state handed to every handler.

use std::sync::Arc;

use rolegate_core::Services;
use rolegate_core::clock::Clock;
use rolegate_core::idempotency::Idempotency;

use crate::config::Settings;
use crate::metrics::Metrics;

/// The state, behind one `Arc`: axum clones it for every layer and extractor of every
/// request, and one reference count is much cheaper than a dozen (plus the URL string).
/// Fields are read through `Deref` (`state.services`).
#[derive(Debug, Clone)]
pub struct AppState(Arc<AppStateInner>);

impl AppState {
    #[must_use]
    pub fn new(inner: AppStateInner) -> Self {
        Self(Arc::new(inner))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppStateInner;
    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

/// What every handler can reach.
#[derive(Debug)]
pub struct AppStateInner {
    pub services: Services,
    pub idempotency: Idempotency,
    pub settings: Arc<Settings>,
    pub clock: Arc<dyn Clock>,
    /// This application's own metrics registry (never process-global; ADR 0005).
    pub metrics: Arc<Metrics>,
    /// `GET /api/ready`'s cached store check and degraded-mode warnings.
    pub readiness: crate::readiness::Readiness,
}

/// The onboarding template customers deploy, built into the binary.
pub const ONBOARDING_TEMPLATE: &[u8] = include_bytes!("../../../cloudformation/onboarding.yaml");
