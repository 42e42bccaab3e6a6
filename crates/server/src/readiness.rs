//! What `GET /api/ready` reports: whether the store is writable, checked at most once a
//! second (a ping is a durable write, and under SQLite's single writer a flood of readiness
//! probes would starve real commits), and whether the store runs degraded (a Redis allowed
//! to start with volatile persistence).

use std::time::{Duration, Instant};

use rolegate_core::ports::KvStore;

/// How long one writability check answers for.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The cached result of the last writability check, and the start-up warnings.
#[derive(Debug, Default)]
pub struct Readiness {
    last: tokio::sync::Mutex<Option<(Instant, Result<(), String>)>>,
    degraded: Vec<String>,
}

impl Readiness {
    /// `degraded`: why the store may lose acknowledged writes (empty when it may not).
    #[must_use]
    pub fn new(degraded: Vec<String>) -> Self {
        Self {
            last: tokio::sync::Mutex::new(None),
            degraded,
        }
    }

    /// Whether the store is writable: a fresh ping at most once per [`CHECK_EVERY`], the
    /// cached answer in between. Concurrent callers wait for the one ping in progress rather
    /// than start their own.
    pub async fn check(&self, store: &dyn KvStore) -> Result<(), String> {
        let mut last = self.last.lock().await;
        if let Some((at, result)) = last.as_ref()
            && at.elapsed() < CHECK_EVERY
        {
            return result.clone();
        }
        let result = store.ping().await.map_err(|e| e.to_string());
        *last = Some((Instant::now(), result.clone()));
        result
    }

    /// Why the store runs degraded, if it does.
    #[must_use]
    pub fn degraded(&self) -> &[String] {
        &self.degraded
    }
}
