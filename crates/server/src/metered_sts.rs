//! The `Sts` decorator that counts every `AssumeRole` call in
//! `rolegate_sts_calls_total{outcome}` (`ok` or the error code clients see), so the cache's
//! single-flight can be observed from `/metrics`.

use async_trait::async_trait;
use prometheus::IntCounterVec;
use rolegate_core::error::sts_code;
use rolegate_core::ports::aws::{
    AssumeRoleRequest, CallerIdentity, Sts, StsError, TemporaryCredentials,
};
use secrecy::SecretString;
use std::sync::Arc;

#[derive(Debug)]
pub struct MeteredSts {
    inner: Arc<dyn Sts>,
    calls: Counter,
}

/// `IntCounterVec` has no `Debug`.
struct Counter(IntCounterVec);

impl std::fmt::Debug for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("rolegate_sts_calls_total")
    }
}

impl MeteredSts {
    #[must_use]
    pub fn new(inner: Arc<dyn Sts>, calls: IntCounterVec) -> Self {
        Self {
            inner,
            calls: Counter(calls),
        }
    }
}

#[async_trait]
impl Sts for MeteredSts {
    async fn assume_role(&self, req: &AssumeRoleRequest) -> Result<TemporaryCredentials, StsError> {
        let result = self.inner.assume_role(req).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => sts_code(e).as_str(),
        };
        if let Ok(c) = self.calls.0.get_metric_with_label_values(&[outcome]) {
            c.inc();
        }
        result
    }

    async fn own_identity(&self) -> Result<CallerIdentity, StsError> {
        self.inner.own_identity().await
    }

    async fn caller_identity(
        &self,
        access_key_id: &str,
        secret_access_key: &SecretString,
        session_token: Option<&SecretString>,
    ) -> Result<CallerIdentity, StsError> {
        self.inner
            .caller_identity(access_key_id, secret_access_key, session_token)
            .await
    }
}
