//! Prometheus metrics: one registry per application (ADR 0005). `routes::metrics` serves it
//! at `GET /metrics` and counts every request into it; this module knows no HTTP state.
//!
//! Nothing here is process-global: every `Application` owns its `Metrics`, so two apps in one
//! process (the integration tests spawn dozens) never see each other's counts.

use axum::http::StatusCode;
use prometheus::{
    Encoder as _, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

/// The `route` label of a request that matched no route (never the raw path: unbounded).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Store calls are local (SQLite) or one round trip (Redis): sub-millisecond to seconds.
const STORE_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The store metrics, handed to `InstrumentedStore`.
#[derive(Clone)]
pub struct StoreMetrics {
    pub(crate) duration: HistogramVec,
    pub(crate) errors: IntCounterVec,
}

impl std::fmt::Debug for StoreMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreMetrics")
    }
}

/// Every metric rolegate exposes, registered in its own registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    rate_limit_rejections: IntCounterVec,
    store: StoreMetrics,
    /// Every AssumeRole call, by `outcome` (`ok` or the error code); see `MeteredSts`.
    pub sts_calls: IntCounterVec,
    /// Credential requests, by `result`: `hit` (served from the cache) or `miss`.
    pub credential_cache: IntCounterVec,
    /// Jobs that ended, by `kind` and `outcome`; see [`JobMetrics`].
    jobs_total: IntCounterVec,
    job_duration: HistogramVec,
    jobs_queued: prometheus::IntGauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn histogram(
    registry: &Registry,
    opts: HistogramOpts,
    labels: &[&str],
) -> prometheus::Result<HistogramVec> {
    let h = HistogramVec::new(opts, labels)?;
    registry.register(Box::new(h.clone()))?;
    Ok(h)
}

impl Metrics {
    /// A fresh registry with every metric declared (a family shows up in `/metrics` once it
    /// has its first sample).
    ///
    /// # Errors
    /// Only on an invalid metric or label name, which is a bug.
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let http_requests = counter(
            &registry,
            "rolegate_http_requests_total",
            "HTTP requests answered, by method, route template and status.",
            &["method", "route", "status"],
        )?;
        let http_duration = histogram(
            &registry,
            HistogramOpts::new(
                "rolegate_http_request_duration_seconds",
                "Time from receiving a request to having its response, by method and route template.",
            ),
            &["method", "route"],
        )?;
        let rate_limit_rejections = counter(
            &registry,
            "rolegate_rate_limit_rejections_total",
            "Requests refused with 429 because a rate limit was spent, by limit.",
            &["limit"],
        )?;
        let duration = histogram(
            &registry,
            HistogramOpts::new(
                "rolegate_store_operation_duration_seconds",
                "Duration of storage engine calls, by engine and operation.",
            )
            .buckets(STORE_BUCKETS.to_vec()),
            &["engine", "op"],
        )?;
        let errors = counter(
            &registry,
            "rolegate_store_errors_total",
            "Storage engine calls that failed, by engine and operation.",
            &["engine", "op"],
        )?;
        let sts_calls = counter(
            &registry,
            "rolegate_sts_calls_total",
            "Calls to AWS STS AssumeRole, by outcome.",
            &["outcome"],
        )?;
        let credential_cache = counter(
            &registry,
            "rolegate_credential_cache_total",
            "Credential cache lookups, by result (hit or miss).",
            &["result"],
        )?;
        let jobs_total = counter(
            &registry,
            "rolegate_jobs_total",
            "Jobs that ended on this replica, by kind and outcome (succeeded, failed, cancelled).",
            &["kind", "outcome"],
        )?;
        let job_duration = histogram(
            &registry,
            HistogramOpts::new(
                "rolegate_job_duration_seconds",
                "Time a worker of this replica took to run a job to its end, by kind.",
            ),
            &["kind"],
        )?;
        let jobs_queued = prometheus::IntGauge::new(
            "rolegate_jobs_queued",
            "Jobs waiting to run (queued, or held back by another job on their target), as of this replica's last scan.",
        )?;
        registry.register(Box::new(jobs_queued.clone()))?;
        Ok(Self {
            registry,
            jobs_total,
            job_duration,
            jobs_queued,
            http_requests,
            http_duration,
            rate_limit_rejections,
            store: StoreMetrics { duration, errors },
            sts_calls,
            credential_cache,
        })
    }

    /// The store metrics, for wrapping the engine in an `InstrumentedStore`.
    #[must_use]
    pub fn store(&self) -> &StoreMetrics {
        &self.store
    }

    /// Counts one credential request served from the cache (`hit`) or from STS (`miss`).
    pub fn credential_cache_result(&self, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        if let Ok(c) = self
            .credential_cache
            .get_metric_with_label_values(&[result])
        {
            c.inc();
        }
    }

    /// Counts one 429 for the named limit (the config key, e.g. `auth_failures_per_ip`).
    pub fn rate_limit_rejected(&self, limit: &str) {
        if let Ok(c) = self
            .rate_limit_rejections
            .get_metric_with_label_values(&[limit])
        {
            c.inc();
        }
    }

    pub fn observe_http(&self, method: &str, route: &str, status: StatusCode, seconds: f64) {
        if let Ok(c) =
            self.http_requests
                .get_metric_with_label_values(&[method, route, status.as_str()])
        {
            c.inc();
        }
        if let Ok(h) = self
            .http_duration
            .get_metric_with_label_values(&[method, route])
        {
            h.observe(seconds);
        }
    }

    /// This registry as the job engine's observer.
    #[must_use]
    pub fn jobs(&self) -> JobMetrics {
        JobMetrics(self.clone())
    }

    /// The registry in the Prometheus text exposition format.
    ///
    /// # Errors
    /// When encoding fails (not expected: the text encoder writes to memory).
    pub fn render(&self) -> prometheus::Result<Vec<u8>> {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(out)
    }
}

/// The job engine's counts, into an app's registry.
#[derive(Debug, Clone)]
pub struct JobMetrics(Metrics);

impl rolegate_core::jobs::JobObserver for JobMetrics {
    fn finished(&self, kind: &str, outcome: &str, seconds: f64) {
        if let Ok(c) = self
            .0
            .jobs_total
            .get_metric_with_label_values(&[kind, outcome])
        {
            c.inc();
        }
        if let Ok(h) = self.0.job_duration.get_metric_with_label_values(&[kind]) {
            h.observe(seconds);
        }
    }

    fn queued(&self, n: usize) {
        self.0.jobs_queued.set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use prometheus::core::Collector as _;

    use super::*;

    #[test]
    fn declared_metrics_have_their_names_and_labels() {
        let m = Metrics::new().unwrap();
        let desc = m.sts_calls.desc();
        assert_eq!(desc[0].fq_name, "rolegate_sts_calls_total");
        assert_eq!(desc[0].variable_labels, ["outcome"]);
        let desc = m.credential_cache.desc();
        assert_eq!(desc[0].fq_name, "rolegate_credential_cache_total");
        assert_eq!(desc[0].variable_labels, ["result"]);
        // Declared but never recorded: no made-up sample is exposed.
        let text = String::from_utf8(m.render().unwrap()).unwrap();
        assert!(!text.contains("rolegate_sts_calls_total"), "{text}");
    }

    #[test]
    fn two_instances_do_not_share_counts() {
        let a = Metrics::new().unwrap();
        let b = Metrics::new().unwrap();
        a.rate_limit_rejected("auth_failures_per_ip");
        let a = String::from_utf8(a.render().unwrap()).unwrap();
        let b = String::from_utf8(b.render().unwrap()).unwrap();
        assert!(
            a.contains("rolegate_rate_limit_rejections_total{limit=\"auth_failures_per_ip\"} 1")
        );
        assert!(!b.contains("rolegate_rate_limit_rejections_total"));
    }
}
