//! `InstrumentedStore`: a `KvStore` decorator that times every call and counts failures
//! (`rolegate_store_operation_duration_seconds`, `rolegate_store_errors_total`), so neither
//! engine carries metrics code. A `commit` whose conditions fail is `Ok(false)`, not an error.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use rolegate_core::ports::{CommitFuture, KvStore, Page, RateDecision, RateLimit, StoreError, Txn};

use crate::metrics::StoreMetrics;

/// Wraps an engine and records the metrics of each call under its `engine()` label.
pub struct InstrumentedStore {
    inner: Arc<dyn KvStore>,
    metrics: StoreMetrics,
}

impl std::fmt::Debug for InstrumentedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstrumentedStore")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl InstrumentedStore {
    #[must_use]
    pub fn new(inner: Arc<dyn KvStore>, metrics: StoreMetrics) -> Self {
        Self { inner, metrics }
    }

    async fn timed<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let start = Instant::now();
        let out = call.await;
        let labels = [self.inner.engine(), op];
        if let Ok(h) = self.metrics.duration.get_metric_with_label_values(&labels) {
            h.observe(start.elapsed().as_secs_f64());
        }
        if out.is_err()
            && let Ok(c) = self.metrics.errors.get_metric_with_label_values(&labels)
        {
            c.inc();
        }
        out
    }
}

#[async_trait]
impl KvStore for InstrumentedStore {
    fn engine(&self) -> &'static str {
        self.inner.engine()
    }

    fn single_process(&self) -> bool {
        self.inner.single_process()
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.timed("get", self.inner.get(key)).await
    }

    async fn commit(&self, txn: Txn) -> Result<bool, StoreError> {
        self.timed("commit", self.inner.commit(txn)).await
    }

    fn commit_queued(&self, txn: Txn) -> CommitFuture<'_> {
        let queued = self.inner.commit_queued(txn);
        Box::pin(self.timed("commit", queued))
    }

    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        self.timed("list", self.inner.list(prefix, after, limit))
            .await
    }

    async fn rate_step(
        &self,
        key: &str,
        now_ms: i64,
        limit: RateLimit,
    ) -> Result<RateDecision, StoreError> {
        self.timed("rate_step", self.inner.rate_step(key, now_ms, limit))
            .await
    }

    async fn rate_steps(
        &self,
        steps: &[(&str, RateLimit)],
        now_ms: i64,
    ) -> Result<Vec<RateDecision>, StoreError> {
        self.timed("rate_steps", self.inner.rate_steps(steps, now_ms))
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.timed("ping", self.inner.ping()).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::metrics::Metrics;

    /// An engine whose reads work and whose writes fail, to see both paths counted.
    #[derive(Debug)]
    struct HalfBroken;

    #[async_trait]
    impl KvStore for HalfBroken {
        fn engine(&self) -> &'static str {
            "fake"
        }
        async fn get(&self, _: &str) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(None)
        }
        async fn commit(&self, _: Txn) -> Result<bool, StoreError> {
            Err(StoreError::Unavailable("down".into()))
        }
        async fn list(&self, _: &str, _: Option<&str>, _: usize) -> Result<Page, StoreError> {
            Ok(Page::default())
        }
        async fn rate_step(
            &self,
            _: &str,
            _: i64,
            _: RateLimit,
        ) -> Result<RateDecision, StoreError> {
            Err(StoreError::Unavailable("down".into()))
        }
        async fn rate_steps(
            &self,
            _: &[(&str, RateLimit)],
            _: i64,
        ) -> Result<Vec<RateDecision>, StoreError> {
            Err(StoreError::Unavailable("down".into()))
        }
        async fn ping(&self) -> Result<(), StoreError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn calls_are_timed_and_failures_counted_per_op() {
        let metrics = Metrics::new().unwrap();
        let store = InstrumentedStore::new(Arc::new(HalfBroken), metrics.store().clone());
        assert_eq!(store.engine(), "fake");
        assert!(store.get("k").await.unwrap().is_none());
        assert!(store.get("k").await.is_ok());
        assert!(store.commit(Txn::new().put("k", vec![1])).await.is_err());
        let text = String::from_utf8(metrics.render().unwrap()).unwrap();
        assert!(
            text.contains(
                "rolegate_store_operation_duration_seconds_count{engine=\"fake\",op=\"get\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains(
            "rolegate_store_operation_duration_seconds_count{engine=\"fake\",op=\"commit\"} 1"
        ));
        assert!(text.contains("rolegate_store_errors_total{engine=\"fake\",op=\"commit\"} 1"));
        assert!(!text.contains("rolegate_store_errors_total{engine=\"fake\",op=\"get\"}"));
    }
}
