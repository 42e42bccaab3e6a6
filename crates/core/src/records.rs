//! The record layer every area service stands on: typed reads through the vault, the one
//! update loop, audited creation, and the policy's decisions with their refusals audited.
//!
//! # The update loop
//!
//! [`Records::update`] loads a record, hands it to a closure that decides a [`Change`], and
//! commits the change's writes together with its audit event in one transaction,
//! conditioned on the record being exactly what was read. On a conflict it reads again and
//! asks the closure again, a bounded number of times. Every write to an existing record goes
//! through it, so none can forget the condition, the event or the retry.

use std::sync::Arc;

use rolegate_crypto::Pepper;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::audit::{Audit, AuditRecord};
use crate::clock::Clock;
use crate::error::Error;
use crate::keyspace::Key;
use crate::policy::{self, Action, Facts};
use crate::ports::{RateDecision, RateLimit, Txn};
use crate::principal::{Caller, RequestContext};
use crate::vault::{Vault, Versioned};

/// How many times the update loop reads again after a conflicting writer.
const UPDATE_ATTEMPTS: usize = 8;

/// What an update does to the record it was shown.
#[derive(Debug)]
pub enum Change<T> {
    /// Write `value` in its place, with `txn`'s extra conditions and writes, and record
    /// `audit`, all in one transaction.
    Write {
        value: T,
        txn: Txn,
        audit: AuditRecord,
    },
    /// Leave it as it is; the update answers with the current record.
    Keep,
    /// Leave it as it is, but record `audit` (an action that reads the record and changes
    /// nothing, such as showing links again).
    Note { audit: AuditRecord },
    /// Leave it, record `audit` (a refusal worth keeping) and fail with `error`.
    Refuse { audit: AuditRecord, error: Error },
    /// Write `value` in its place without an event: bookkeeping that is no action of
    /// anyone's (a portal session's last-seen time). Nothing else may use it.
    /// `ttl` keeps the record expiring (a put replaces the old one's TTL).
    Touch {
        value: T,
        ttl: Option<std::time::Duration>,
    },
}

impl<T> Change<T> {
    /// Write `value` with `audit` and nothing else.
    pub fn write(value: T, audit: AuditRecord) -> Self {
        Self::Write {
            value,
            txn: Txn::new(),
            audit,
        }
    }

    /// Write `value` with `audit` and the extra conditions and writes of `txn`.
    pub fn write_with(value: T, txn: Txn, audit: AuditRecord) -> Self {
        Self::Write { value, txn, audit }
    }
}

/// What an update left behind.
#[derive(Debug)]
pub struct Updated<T> {
    pub value: T,
    /// False when the closure chose [`Change::Keep`].
    pub changed: bool,
}

/// The shared record layer: the vault, the audit chain, the clock and the digest pepper.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct Records {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    vault: Vault,
    audit: Arc<Audit>,
    clock: Arc<dyn Clock>,
    pepper: Pepper,
}

impl Records {
    /// Wires the layer and loads (or creates) the store's pepper.
    pub async fn open(vault: Vault, clock: Arc<dyn Clock>) -> Result<Self, Error> {
        let pepper = vault.pepper().await?;
        let audit = Audit::new(vault.clone(), clock.clone());
        Ok(Self {
            inner: Arc::new(Inner {
                vault,
                audit,
                clock,
                pepper,
            }),
        })
    }

    #[must_use]
    pub fn vault(&self) -> &Vault {
        &self.inner.vault
    }

    #[must_use]
    pub fn audit(&self) -> &Arc<Audit> {
        &self.inner.audit
    }

    #[must_use]
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    #[must_use]
    pub fn pepper(&self) -> &Pepper {
        &self.inner.pepper
    }

    /// The current time as RFC 3339 (`Z`, whole seconds).
    #[must_use]
    pub fn now(&self) -> String {
        crate::clock::rfc3339(self.inner.clock.now())
    }

    /// A salted digest for correlating a non-secret-but-sensitive value in audit events.
    #[must_use]
    pub fn correlation_digest(&self, value: &str) -> String {
        self.inner
            .pepper
            .digest("audit-correlation", value)
            .to_hex()[..16]
            .to_owned()
    }

    /// The record at `key`, with its revision.
    pub async fn get<T: DeserializeOwned>(
        &self,
        key: &Key<T>,
    ) -> Result<Option<Versioned<T>>, Error> {
        self.inner.vault.load(key).await
    }

    /// [`Records::get`] through the lookup cache (`decoded`): the same answer, opened only
    /// when the record's sealed bytes changed.
    pub async fn get_cached<T>(&self, key: &Key<T>) -> Result<Option<Versioned<T>>, Error>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        self.inner.vault.load_cached(key).await
    }

    /// Adds a sealed put of `value` at `key` to `txn`.
    pub fn put<T: Serialize>(&self, txn: Txn, key: &Key<T>, value: &T) -> Result<Txn, Error> {
        self.inner.vault.put(txn, key.as_str(), value)
    }

    /// Commits `txn` and its audit event. `Ok(false)` when the transaction's own conditions
    /// failed (nothing written, no event).
    pub async fn commit(
        &self,
        caller: &Caller,
        txn: Txn,
        audit: AuditRecord,
    ) -> Result<bool, Error> {
        self.inner.audit.commit_with(&caller.ctx, txn, audit).await
    }

    /// Records an event that accompanies no write (group-committed).
    pub async fn record(&self, caller: &Caller, audit: AuditRecord) -> Result<(), Error> {
        self.inner.audit.append(&caller.ctx, audit).await
    }

    /// Records an event about a request that has no authenticated caller (a failed login, a
    /// rejected callback): the first from its source (an IPv4 address or an IPv6 /64) in a
    /// minute is group-committed like [`Records::record`], later ones in that minute are
    /// counted and written as one aggregated event when it ends (`audit::failures`).
    pub async fn record_unauthenticated(
        &self,
        ctx: &RequestContext,
        audit: AuditRecord,
    ) -> Result<(), Error> {
        self.inner.audit.append_failure(ctx, audit).await
    }

    /// The update loop (see the module docs). `NotFound` when the record does not exist.
    pub async fn update<T, F>(
        &self,
        caller: &Caller,
        key: &Key<T>,
        mut decide: F,
    ) -> Result<Updated<T>, Error>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(&T) -> Result<Change<T>, Error>,
    {
        for _ in 0..UPDATE_ATTEMPTS {
            let cur = self.get(key).await?.ok_or(Error::NotFound {
                what: key.family().name,
            })?;
            match decide(&cur.value)? {
                Change::Keep => {
                    return Ok(Updated {
                        value: cur.value,
                        changed: false,
                    });
                }
                Change::Note { audit } => {
                    self.record(caller, audit).await?;
                    return Ok(Updated {
                        value: cur.value,
                        changed: false,
                    });
                }
                Change::Refuse { audit, error } => {
                    self.record(caller, audit).await?;
                    return Err(error);
                }
                Change::Touch { value, ttl } => {
                    let txn = Txn::new().equals(key.as_str(), cur.rev);
                    let txn = match ttl {
                        Some(ttl) => self.inner.vault.put_ttl(txn, key.as_str(), &value, ttl)?,
                        None => self.put(txn, key, &value)?,
                    };
                    if self.inner.vault.commit(txn).await? {
                        return Ok(Updated {
                            value,
                            changed: true,
                        });
                    }
                }
                Change::Write { value, txn, audit } => {
                    let txn = self.put(txn.equals(key.as_str(), cur.rev), key, &value)?;
                    if self.commit(caller, txn, audit).await? {
                        return Ok(Updated {
                            value,
                            changed: true,
                        });
                    }
                }
            }
        }
        Err(Error::Contention)
    }

    /// The policy's decision, with a refusal audited under the action's name (group-
    /// committed). A refusal that cannot be logged is still a refusal.
    pub async fn authorize(
        &self,
        caller: &Caller,
        action: Action,
        facts: &Facts<'_>,
    ) -> Result<(), Error> {
        let Err(denial) = policy::authorize(caller, action, facts) else {
            return Ok(());
        };
        let mut audit = AuditRecord::new(action.name())
            .failure(denial.code.as_str())
            .details(serde_json::json!({"reason": denial.message}));
        if let Some((org, _)) = facts.org {
            audit = audit.org(org.to_string());
        }
        if let Some(level) = facts.level {
            audit.details["access_level"] = serde_json::Value::from(level.name());
        }
        if let Some(user) = facts.user {
            audit = audit.target(user.to_string());
        }
        if let Err(e) = self.record(caller, audit).await {
            tracing::error!(error = %e, action = action.name(), "could not audit a refusal");
        }
        Err(denial.into())
    }

    /// Deletes every record under `prefix`. Returns how many.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<usize, Error> {
        let store = self.inner.vault.store();
        let mut dropped = 0;
        loop {
            let page = store.list(prefix, None, 500).await?;
            if page.items.is_empty() {
                return Ok(dropped);
            }
            let mut txn = Txn::new();
            for (key, _) in &page.items {
                txn = txn.delete(key.clone());
            }
            dropped += page.items.len();
            self.inner.vault.commit(txn).await?;
        }
    }

    /// One step of the rate limit at `key`, at the clock's time.
    pub async fn rate_step(&self, key: &str, limit: RateLimit) -> Result<RateDecision, Error> {
        Ok(self
            .inner
            .vault
            .store()
            .rate_step(key, self.inner.clock.now_ms(), limit)
            .await?)
    }

    /// Steps of several rate limits at once, at the clock's time, all or nothing (one round
    /// trip; ADR 0022): one decision per step, and none charged when any refuses.
    pub async fn rate_steps(
        &self,
        steps: &[(&str, RateLimit)],
    ) -> Result<Vec<RateDecision>, Error> {
        Ok(self
            .inner
            .vault
            .store()
            .rate_steps(steps, self.inner.clock.now_ms())
            .await?)
    }

    /// Whether the store is reachable and writable, and its engine's name.
    pub async fn ping(&self) -> Result<(), Error> {
        Ok(self.inner.vault.store().ping().await?)
    }

    #[must_use]
    pub fn engine(&self) -> &'static str {
        self.inner.vault.store().engine()
    }
}
