//! Test doubles: an in-memory `KvStore` that passes the store conformance suite, and an STS
//! that is never reached. Built for core's own tests and, with the `testing` feature, for
//! the store crate's conformance suite.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use secrecy::SecretString;

use crate::clock::SystemClock;
use crate::ports::aws::{AssumeRoleRequest, CallerIdentity, Sts, StsError, TemporaryCredentials};
use crate::ports::store::rules;
use crate::ports::{
    CommitFuture, Condition, KvStore, Page, RateDecision, RateLimit, StoreError, Txn, Write, gcra,
    gcra_all,
};
use crate::services::{Config, Ports, Services};
use crate::vault::Vault;

/// A `BTreeMap` behind a mutex: every `commit` is atomic, TTLs expire in real time, and
/// rate steps keep their buckets in a namespace of their own. It passes the store crate's
/// conformance suite (run there as the `memory` engine).
#[derive(Debug, Default)]
pub struct MemoryStore {
    data: Mutex<Data>,
    commits: Mutex<usize>,
    /// Plays the embedded engine: `single_process`, and `commit_queued` applies at once.
    single: bool,
}

#[derive(Debug, Default)]
struct Data {
    kv: BTreeMap<String, (Vec<u8>, Option<Instant>)>,
    /// Rate-limit buckets: (TAT in Unix ms, expiry).
    rate: BTreeMap<String, (i64, Instant)>,
}

impl Data {
    fn live(&self, key: &str, now: Instant) -> Option<&Vec<u8>> {
        self.kv
            .get(key)
            .filter(|(_, exp)| exp.is_none_or(|e| e > now))
            .map(|(v, _)| v)
    }
}

impl MemoryStore {
    /// A store that says it is served by one process and applies `commit_queued`
    /// transactions in the order they were queued (like SQLite's writer thread).
    #[must_use]
    pub fn single_process() -> Self {
        Self {
            single: true,
            ..Self::default()
        }
    }

    fn apply(&self, txn: Txn) -> Result<bool, StoreError> {
        rules::txn(&txn)?;
        *self.commits.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        let now = Instant::now();
        let mut data = self.data();
        let holds = txn.conditions.iter().all(|c| match c {
            Condition::Absent(k) => data.live(k, now).is_none(),
            Condition::Present(k) => data.live(k, now).is_some(),
            Condition::Equals(k, v) => data.live(k, now) == Some(v),
        });
        if !holds {
            return Ok(false);
        }
        for w in txn.writes {
            match w {
                Write::Put { key, value, ttl } => {
                    data.kv.insert(key, (value, ttl.map(|t| now + t)));
                }
                Write::Delete { key } => {
                    data.kv.remove(&key);
                }
            }
        }
        Ok(true)
    }

    /// How many transactions were applied (or refused) so far.
    pub fn commits(&self) -> usize {
        *self.commits.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Overwrites `key` behind the vault's back (to simulate tampering).
    pub fn poke(&self, key: &str, value: Vec<u8>) {
        self.data().kv.insert(key.to_owned(), (value, None));
    }

    fn data(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl KvStore for MemoryStore {
    fn engine(&self) -> &'static str {
        "memory"
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        rules::key(key)?;
        Ok(self.data().live(key, Instant::now()).cloned())
    }

    fn single_process(&self) -> bool {
        self.single
    }

    async fn commit(&self, txn: Txn) -> Result<bool, StoreError> {
        self.apply(txn)
    }

    fn commit_queued(&self, txn: Txn) -> CommitFuture<'_> {
        if !self.single {
            return self.commit(txn);
        }
        let applied = self.apply(txn);
        Box::pin(async move { applied })
    }

    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        rules::prefix(prefix)?;
        if let Some(a) = after {
            rules::key(a)?;
        }
        let limit = rules::page_limit(limit);
        let now = Instant::now();
        let data = self.data();
        let mut items: Vec<(String, Vec<u8>)> = data
            .kv
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(k, (_, exp))| {
                after.is_none_or(|a| k.as_str() > a) && exp.is_none_or(|e| e > now)
            })
            .take(limit + 1)
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect();
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|(k, _)| k.clone())
        } else {
            None
        };
        if limit == 0 {
            return Ok(Page::default());
        }
        Ok(Page { items, next })
    }

    async fn rate_step(
        &self,
        key: &str,
        now_ms: i64,
        limit: RateLimit,
    ) -> Result<RateDecision, StoreError> {
        rules::rate(key, now_ms, limit)?;
        let now = Instant::now();
        let mut data = self.data();
        let stored = data
            .rate
            .get(key)
            .filter(|(_, exp)| *exp > now)
            .map(|(tat, _)| *tat);
        let (decision, new_tat) = gcra(now_ms, stored, limit);
        if let Some(tat) = new_tat {
            let ttl = u64::try_from((tat - now_ms).max(1)).unwrap_or(1);
            data.rate
                .insert(key.to_owned(), (tat, now + Duration::from_millis(ttl)));
        }
        Ok(decision)
    }

    async fn rate_steps(
        &self,
        steps: &[(&str, RateLimit)],
        now_ms: i64,
    ) -> Result<Vec<RateDecision>, StoreError> {
        rules::rate_steps(steps, now_ms)?;
        let now = Instant::now();
        let mut data = self.data();
        let buckets: Vec<(Option<i64>, RateLimit)> = steps
            .iter()
            .map(|(key, limit)| {
                let stored = data
                    .rate
                    .get(*key)
                    .filter(|(_, exp)| *exp > now)
                    .map(|(tat, _)| *tat);
                (stored, *limit)
            })
            .collect();
        let (decisions, tats) = gcra_all(now_ms, &buckets);
        for ((key, _), tat) in steps.iter().zip(tats.unwrap_or_default()) {
            let ttl = u64::try_from((tat - now_ms).max(1)).unwrap_or(1);
            data.rate
                .insert((*key).to_owned(), (tat, now + Duration::from_millis(ttl)));
        }
        Ok(decisions)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// An STS that every test here must not reach.
#[derive(Debug)]
pub struct NoSts;

#[async_trait]
impl Sts for NoSts {
    async fn assume_role(&self, _: &AssumeRoleRequest) -> Result<TemporaryCredentials, StsError> {
        Err(StsError::Unavailable("no STS in unit tests".into()))
    }
    async fn own_identity(&self) -> Result<CallerIdentity, StsError> {
        Err(StsError::Unavailable("no STS in unit tests".into()))
    }
    async fn caller_identity(
        &self,
        _: &str,
        _: &SecretString,
        _: Option<&SecretString>,
    ) -> Result<CallerIdentity, StsError> {
        Err(StsError::Unavailable("no STS in unit tests".into()))
    }
}

#[async_trait]
impl crate::ports::aws::Federation for NoSts {
    async fn signin_url(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: &TemporaryCredentials,
    ) -> Result<String, StsError> {
        Err(StsError::Federation(
            "no federation endpoint in unit tests".into(),
        ))
    }
}

/// Services over a fresh in-memory store with a random master key.
pub async fn services() -> (Services, Arc<MemoryStore>) {
    services_on(Arc::new(MemoryStore::default())).await
}

/// Services over `store` with a random master key.
pub async fn services_on(store: Arc<MemoryStore>) -> (Services, Arc<MemoryStore>) {
    let ring = rolegate_crypto::Keyring::new(&[rolegate_crypto::MasterKey::generate()])
        .unwrap_or_else(|e| panic!("keyring: {e}"));
    let vault = Vault::new(store.clone(), Arc::new(ring));
    let ports = Ports {
        vault,
        clock: Arc::new(SystemClock),
        sts: Arc::new(NoSts),
        federation: Arc::new(NoSts),
        templates: None,
    };
    let services = Services::new(ports, Config::offline())
        .await
        .unwrap_or_else(|e| panic!("services: {e}"));
    (services, store)
}
