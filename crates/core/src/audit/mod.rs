//! The audit log: an append-only, hash-chained sequence of events kept in the store.
//!
//! Each event carries the SHA-256 of the previous event; the head (`audit/head`) records the
//! last sequence number and hash. An audited action commits its own writes, the event and
//! the new head in ONE store transaction, so an action whose event cannot be written has no
//! effect (fail-closed), and concurrent writers (even on other replicas) can neither fork
//! nor leave gaps: the head is compare-and-swapped.

use tokio::sync::Mutex;

use crate::clock::Clock;
use crate::error::Error;
use crate::keyspace;
use crate::ports::Txn;
use crate::principal::RequestContext;
use crate::vault::Vault;

pub use crate::model::{AuditEvent, AuditHead, Outcome};
pub use verify::{ChainBreak, MAX_BREAKS, VerifyReport, verify, verify_with};

/// Group commit for events that accompany no other write.
mod batch;
/// Signed checkpoints of the head, written to the log, against storage rollback.
pub mod checkpoint;
/// Failed logins and rejected callbacks, aggregated per source and minute.
pub mod failures;
#[cfg(test)]
mod tests;
/// Appends, batches and `verify` against an in-memory store.
/// Walking the chain: `verify` and what it reports.
mod verify;

/// The chain head's key.
pub const HEAD_KEY: &str = keyspace::AUDIT_HEAD.prefix;
/// Where events live: `audit/ev/<seq:020>`.
pub const EVENT_PREFIX: &str = keyspace::AUDIT_EVENT.prefix;
/// Per-org index: `audit/org/<org>/<seq>` for every event that names an org.
pub const ORG_INDEX_PREFIX: &str = keyspace::AUDIT_ORG.prefix;
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const MAX_ATTEMPTS: usize = 64;

/// The storage key of event `seq`.
#[must_use]
pub fn event_key(seq: u64) -> String {
    keyspace::audit_event(seq).to_string()
}

/// What happened, as the caller describes it. Never put a secret in here.
#[derive(Debug, Clone, Default)]
pub struct AuditRecord {
    pub action: &'static str,
    pub org: Option<String>,
    pub target: Option<String>,
    pub outcome: Outcome,
    pub code: Option<String>,
    pub details: serde_json::Value,
}

impl AuditRecord {
    #[must_use]
    pub fn new(action: &'static str) -> Self {
        Self {
            action,
            details: serde_json::Value::Null,
            ..Self::default()
        }
    }
    #[must_use]
    pub fn org(mut self, org: impl Into<String>) -> Self {
        self.org = Some(org.into());
        self
    }
    #[must_use]
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }
    #[must_use]
    pub fn failure(mut self, code: impl Into<String>) -> Self {
        self.outcome = Outcome::Failure;
        self.code = Some(code.into());
        self
    }
    #[must_use]
    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

/// Appends events. One per process; the mutex keeps this replica's appends from racing
/// each other, and the head CAS handles other replicas.
#[derive(Debug)]
pub struct Audit {
    vault: Vault,
    clock: std::sync::Arc<dyn Clock>,
    cached: Mutex<Option<(AuditHead, Vec<u8>)>>,
    /// Appends waiting for the next group commit (see `batch`).
    queue: std::sync::Mutex<Vec<batch::Pending>>,
    /// A flusher task is writing the queue.
    flushing: std::sync::atomic::AtomicBool,
    /// Itself, for the flusher task, which must outlive any one request.
    me: std::sync::Weak<Audit>,
    /// Events appended since the last checkpoint (see `checkpoint`).
    since_checkpoint: std::sync::atomic::AtomicU64,
    /// Wakes the checkpoint task early, after `CHECKPOINT_EVENTS` events.
    checkpoint_due: tokio::sync::Notify,
    /// Failures being counted, per (action, source) (see `failures`).
    failures: std::sync::Mutex<std::collections::HashMap<(&'static str, String), failures::Window>>,
}

impl Audit {
    #[must_use]
    pub fn new(vault: Vault, clock: std::sync::Arc<dyn Clock>) -> std::sync::Arc<Self> {
        std::sync::Arc::new_cyclic(|me| Self {
            vault,
            clock,
            cached: Mutex::new(None),
            queue: std::sync::Mutex::default(),
            flushing: std::sync::atomic::AtomicBool::new(false),
            me: me.clone(),
            since_checkpoint: std::sync::atomic::AtomicU64::new(0),
            checkpoint_due: tokio::sync::Notify::new(),
            failures: std::sync::Mutex::default(),
        })
    }

    async fn read_head(&self) -> Result<Option<(AuditHead, Vec<u8>)>, Error> {
        Ok(self
            .vault
            .get::<AuditHead>(HEAD_KEY)
            .await?
            .map(|v| (v.value, v.rev)))
    }

    /// Commits `txn` and the event for `record` atomically. Returns `Ok(false)` when the
    /// action's own conditions failed (nothing written, no event). An error means the
    /// action did not happen; `AuditUnavailable` means the log itself was the problem.
    pub async fn commit_with(
        &self,
        ctx: &RequestContext,
        txn: Txn,
        record: AuditRecord,
    ) -> Result<bool, Error> {
        if txn.writes.is_empty() {
            // No writes of its own (at most conditions, e.g. a cache hit's "the org is still
            // as authorized"): group-commit it with whatever else is queued.
            return self.append_if(ctx, txn.conditions, record).await;
        }
        self.commit_entries(txn, &[(ctx, &record)]).await
    }

    /// Commits `txn` and one event per entry, chained in the given order, together with
    /// the new head, in ONE store transaction: either the writes and every event land, or
    /// nothing does. For bulk work (imports, the benchmark seeder) where one transaction
    /// per event would be far too slow. Same results as [`Audit::commit_with`]; the caller
    /// keeps batches to a size its store handles in one transaction (a few thousand).
    pub async fn commit_batch(
        &self,
        txn: Txn,
        entries: &[(RequestContext, AuditRecord)],
    ) -> Result<bool, Error> {
        let refs: Vec<(&RequestContext, &AuditRecord)> =
            entries.iter().map(|(ctx, rec)| (ctx, rec)).collect();
        self.commit_entries(txn, &refs).await
    }

    /// The events for `entries`, chained after `prev`, and the head they lead to.
    fn chain(
        &self,
        prev: (u64, String),
        entries: &[(&RequestContext, &AuditRecord)],
    ) -> (Vec<AuditEvent>, AuditHead) {
        let (mut seq, mut prev_hash) = prev;
        let mut events = Vec::with_capacity(entries.len());
        for (ctx, record) in entries {
            let event = self.event(ctx, record, seq, prev_hash);
            seq = event.seq;
            prev_hash = event.hash.clone();
            events.push(event);
        }
        (
            events,
            AuditHead {
                seq,
                hash: prev_hash,
            },
        )
    }

    async fn commit_entries(
        &self,
        txn: Txn,
        entries: &[(&RequestContext, &AuditRecord)],
    ) -> Result<bool, Error> {
        if entries.is_empty() {
            return Err(Error::invalid(
                "audit",
                "an audited commit needs at least one event",
            ));
        }
        if self.vault.store().single_process() {
            return self.commit_queued(txn, entries).await;
        }
        let mut cached = self.cached.lock().await;
        for _ in 0..MAX_ATTEMPTS {
            if cached.is_none() {
                *cached = self
                    .read_head()
                    .await
                    .map_err(|e| Error::AuditUnavailable(Box::new(e)))?;
            }
            let (prev, head_cond) = match cached.as_ref() {
                Some((head, raw)) => ((head.seq, head.hash.clone()), Some(raw.clone())),
                None => ((0, GENESIS.to_owned()), None),
            };
            let (events, head) = self.chain(prev, entries);
            let head_raw = self.vault.seal(HEAD_KEY, &head)?;
            let mut full = txn.clone();
            full = match head_cond {
                Some(raw) => full.equals(HEAD_KEY, raw),
                None => full.absent(HEAD_KEY),
            };
            for event in &events {
                full = self.put_event(full, event)?;
            }
            full = full.put(HEAD_KEY, head_raw.clone());
            if self.vault.commit(full).await? {
                *cached = Some((head, head_raw));
                self.appended(events.len());
                return Ok(true);
            }
            // Either another replica moved the head, or the action's conditions failed.
            let fresh = self
                .read_head()
                .await
                .map_err(|e| Error::AuditUnavailable(Box::new(e)))?;
            let moved = fresh.as_ref().map(|(_, r)| r) != cached.as_ref().map(|(_, r)| r);
            *cached = fresh;
            if !moved {
                return Ok(false);
            }
        }
        Err(Error::Contention)
    }

    /// [`Audit::commit_entries`] on an engine that applies transactions in queue order
    /// (SQLite's writer thread, ADR 0016): the chain lock is held only while the events are
    /// chained and the transaction queued, not while it is made durable, and the head it
    /// will write becomes the base of the next append at once. So concurrent audited writes
    /// queue one after another and share one fsync, instead of waiting for each other's.
    /// Safety still rests on the head CAS: when a transaction fails, every one queued after
    /// it (chained on a head that never landed) fails too, and each re-reads the head and
    /// tries again; a transaction whose head held but whose own conditions failed is
    /// `Ok(false)`.
    async fn commit_queued(
        &self,
        txn: Txn,
        entries: &[(&RequestContext, &AuditRecord)],
    ) -> Result<bool, Error> {
        for _ in 0..MAX_ATTEMPTS {
            let (outcome, head_cond) = {
                let mut cached = self.cached.lock().await;
                if cached.is_none() {
                    *cached = self
                        .read_head()
                        .await
                        .map_err(|e| Error::AuditUnavailable(Box::new(e)))?;
                }
                let (prev, head_cond) = match cached.as_ref() {
                    Some((head, raw)) => ((head.seq, head.hash.clone()), Some(raw.clone())),
                    None => ((0, GENESIS.to_owned()), None),
                };
                let (events, head) = self.chain(prev, entries);
                let head_raw = self.vault.seal(HEAD_KEY, &head)?;
                let mut full = match &head_cond {
                    Some(raw) => txn.clone().equals(HEAD_KEY, raw.clone()),
                    None => txn.clone().absent(HEAD_KEY),
                };
                for event in &events {
                    full = self.put_event(full, event)?;
                }
                full = full.put(HEAD_KEY, head_raw.clone());
                let outcome = self.vault.store().commit_queued(full);
                *cached = Some((head, head_raw));
                (outcome, head_cond)
            };
            match outcome.await {
                Ok(true) => {
                    self.appended(entries.len());
                    return Ok(true);
                }
                Ok(false) => {
                    // The head was not the one chained on (an append queued before this
                    // one failed, or another writer), or the action's conditions failed.
                    let mut cached = self.cached.lock().await;
                    let fresh = self
                        .read_head()
                        .await
                        .map_err(|e| Error::AuditUnavailable(Box::new(e)))?;
                    let moved = fresh.as_ref().map(|(_, r)| r) != head_cond.as_ref();
                    *cached = fresh;
                    if !moved {
                        return Ok(false);
                    }
                }
                Err(e) => {
                    // Whatever was queued after this one chained on a head that may not
                    // exist: read it again before the next append.
                    *self.cached.lock().await = None;
                    return Err(e.into());
                }
            }
        }
        Err(Error::Contention)
    }

    /// The event for `record`, chained after `prev_seq`/`prev_hash`.
    fn event(
        &self,
        ctx: &RequestContext,
        record: &AuditRecord,
        prev_seq: u64,
        prev_hash: String,
    ) -> AuditEvent {
        let mut event = AuditEvent {
            seq: prev_seq + 1,
            time: crate::clock::rfc3339_millis(self.clock.now()),
            actor: ctx.actor.clone(),
            action: record.action.to_owned(),
            org: record.org.clone(),
            target: record.target.clone(),
            outcome: record.outcome,
            code: record.code.clone(),
            request_id: ctx.request_id.clone(),
            source_ip: ctx.source_ip.clone(),
            details: record.details.clone(),
            prev: prev_hash,
            hash: String::new(),
        };
        event.hash = event.compute_hash();
        event
    }

    /// Adds `event` (which must not exist yet) and its org index entry to `txn`.
    fn put_event(&self, txn: Txn, event: &AuditEvent) -> Result<Txn, Error> {
        let ev_key = event_key(event.seq);
        let mut txn = self.vault.put(txn.absent(ev_key.clone()), &ev_key, event)?;
        if let Some(org) = &event.org {
            txn = self
                .vault
                .put(txn, keyspace::audit_org(org, event.seq).as_str(), &())?;
        }
        Ok(txn)
    }
}
