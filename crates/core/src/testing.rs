//! Test doubles for core's own unit tests: an in-memory `KvStore` (conditions, writes and
//! listing only; the real engines are covered by the store crate's conformance suite) and an
//! STS that is never reached.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use secrecy::SecretString;

use crate::Services;
use crate::clock::SystemClock;
use crate::ports::aws::{AssumeRoleRequest, CallerIdentity, Sts, StsError, TemporaryCredentials};
use crate::ports::{
    Condition, KvStore, Page, RateDecision, RateLimit, StoreError, Txn, Write, gcra,
};
use crate::vault::Vault;

/// A `BTreeMap` behind a mutex: every `commit` is atomic. TTLs are ignored.
#[derive(Debug, Default)]
pub struct MemoryStore {
    data: Mutex<BTreeMap<String, Vec<u8>>>,
    commits: Mutex<usize>,
}

impl MemoryStore {
    /// How many transactions were applied (or refused) so far.
    pub fn commits(&self) -> usize {
        *self.commits.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Overwrites `key` behind the vault's back (to simulate tampering).
    pub fn poke(&self, key: &str, value: Vec<u8>) {
        self.map().insert(key.to_owned(), value);
    }

    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        self.data.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl KvStore for MemoryStore {
    fn engine(&self) -> &'static str {
        "memory"
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.map().get(key).cloned())
    }

    async fn commit(&self, txn: Txn) -> Result<bool, StoreError> {
        *self.commits.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        let mut map = self.map();
        let holds = txn.conditions.iter().all(|c| match c {
            Condition::Absent(k) => !map.contains_key(k),
            Condition::Present(k) => map.contains_key(k),
            Condition::Equals(k, v) => map.get(k) == Some(v),
        });
        if !holds {
            return Ok(false);
        }
        for w in txn.writes {
            match w {
                Write::Put { key, value, .. } => {
                    map.insert(key, value);
                }
                Write::Delete { key } => {
                    map.remove(&key);
                }
            }
        }
        Ok(true)
    }

    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let map = self.map();
        let mut items: Vec<(String, Vec<u8>)> = map
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(k, _)| after.is_none_or(|a| k.as_str() > a))
            .take(limit + 1)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|(k, _)| k.clone())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn rate_step(
        &self,
        _key: &str,
        now_ms: i64,
        limit: RateLimit,
    ) -> Result<RateDecision, StoreError> {
        Ok(gcra(now_ms, None, limit).0)
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
    let store = Arc::new(MemoryStore::default());
    let ring = rolegate_crypto::Keyring::new(&[rolegate_crypto::MasterKey::generate()])
        .unwrap_or_else(|e| panic!("keyring: {e}"));
    let vault = Vault::new(store.clone(), Arc::new(ring));
    let services = Services::new(
        vault,
        Arc::new(SystemClock),
        Arc::new(NoSts),
        Arc::new(NoSts),
    )
    .await
    .unwrap_or_else(|e| panic!("services: {e}"));
    (services, store)
}
