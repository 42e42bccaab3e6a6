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

/// Group commit for events that accompany no other write.
mod batch;
/// Signed checkpoints of the head, written to the log, against storage rollback.
pub mod checkpoint;
/// Failed logins and rejected callbacks, aggregated per source and minute.
pub mod failures;
/// Appends, batches and `verify` against an in-memory store.
#[cfg(test)]
mod tests;

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
        if txn.conditions.is_empty() && txn.writes.is_empty() {
            // No writes of its own: group-commit it with whatever else is queued.
            return self.append(ctx, record).await.map(|()| true);
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

/// At most this many breaks are listed; the rest are counted in [`ChainBreak::More`], so a
/// store full of forged records cannot make the report (or its printing) unbounded.
pub const MAX_BREAKS: usize = 1_000;

/// One problem `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainBreak {
    Missing {
        seq: u64,
    },
    /// Events `first..=last` are missing (reported as one break, however long the gap).
    MissingRange {
        first: u64,
        last: u64,
    },
    Unreadable {
        seq: u64,
        reason: String,
    },
    HashMismatch {
        seq: u64,
    },
    PrevMismatch {
        seq: u64,
    },
    SeqMismatch {
        key: String,
        seq: u64,
    },
    HeadMismatch {
        head_seq: u64,
        last_seq: u64,
    },
    /// A record under `audit/ev/` whose key is not an event key (exactly 20 digits, from
    /// 1 up): forged, never written by rolegate.
    BadKey {
        key: String,
    },
    /// A well-formed event key beyond the chain head: forged, or the head was rolled back.
    BeyondHead {
        key: String,
        head_seq: u64,
    },
    /// The head's hash is not the hash of the last event (it was rewritten, or the head
    /// belongs to another history).
    HeadHashMismatch {
        seq: u64,
    },
    /// The store's head is older than an authentic checkpoint: rolled back, or events
    /// deleted together with the head.
    BehindCheckpoint {
        checkpoint_seq: u64,
        head_seq: u64,
    },
    /// The store's event at an authentic checkpoint's sequence number is not the one the
    /// checkpoint names (missing, or a rewritten history).
    DivergesFromCheckpoint {
        seq: u64,
    },
    /// More breaks than [`MAX_BREAKS`]; this many were not listed.
    More {
        count: u64,
    },
}

impl std::fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing { seq } => write!(f, "event {seq} is missing (deleted)"),
            Self::MissingRange { first, last } => {
                write!(f, "events {first} to {last} are missing (deleted)")
            }
            Self::Unreadable { seq, reason } => {
                write!(f, "event {seq} cannot be opened (edited?): {reason}")
            }
            Self::HashMismatch { seq } => write!(f, "event {seq} does not match its hash (edited)"),
            Self::PrevMismatch { seq } => write!(
                f,
                "event {seq} does not link to event {}",
                seq.saturating_sub(1)
            ),
            Self::SeqMismatch { key, seq } => {
                write!(f, "record {key} claims sequence number {seq}")
            }
            Self::HeadMismatch { head_seq, last_seq } => {
                write!(
                    f,
                    "chain head says {head_seq} events but the log ends at {last_seq}"
                )
            }
            Self::BadKey { key } => write!(
                f,
                "record {key} is not an event key (20 digits from 1 up): forged"
            ),
            Self::BeyondHead { key, head_seq } => write!(
                f,
                "record {key} lies beyond the chain head (event {head_seq}): forged, or the head was rolled back"
            ),
            Self::HeadHashMismatch { seq } => write!(
                f,
                "chain head's hash is not the hash of event {seq}, the last one (rewritten?)"
            ),
            Self::BehindCheckpoint {
                checkpoint_seq,
                head_seq,
            } => write!(
                f,
                "store is behind the checkpoint: checkpoint seq {checkpoint_seq}, store head seq {head_seq} (rolled back, or events {} to {checkpoint_seq} deleted)",
                head_seq + 1
            ),
            Self::DivergesFromCheckpoint { seq } => write!(
                f,
                "store diverges from the checkpoint at seq {seq}: its event {seq} is not the one the checkpoint names (rewritten history)"
            ),
            Self::More { count } => write!(f, "{count} more problem(s) not listed"),
        }
    }
}

/// The result of walking the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Events of the chain walked (records under `audit/ev/` that are not event keys of
    /// this chain are reported as breaks, not counted).
    pub events: u64,
    pub breaks: Vec<ChainBreak>,
}

/// The sequence number of an event key's suffix: exactly 20 ASCII digits, at least 1.
fn event_seq(suffix: &str) -> Option<u64> {
    if suffix.len() != 20 || !suffix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    suffix.parse::<u64>().ok().filter(|&s| s > 0)
}

/// Breaks, at most [`MAX_BREAKS`] of them listed.
#[derive(Default)]
struct Breaks {
    list: Vec<ChainBreak>,
    more: u64,
}

impl Breaks {
    fn push(&mut self, b: ChainBreak) {
        if self.list.len() < MAX_BREAKS {
            self.list.push(b);
        } else {
            self.more += 1;
        }
    }

    /// Events `first..=last` are missing (nothing when the range is empty).
    fn gap(&mut self, first: u64, last: u64) {
        match first.cmp(&last) {
            std::cmp::Ordering::Less => self.push(ChainBreak::MissingRange { first, last }),
            std::cmp::Ordering::Equal => self.push(ChainBreak::Missing { seq: first }),
            std::cmp::Ordering::Greater => {}
        }
    }

    fn finish(mut self) -> Vec<ChainBreak> {
        if self.more > 0 {
            self.list.push(ChainBreak::More { count: self.more });
        }
        self.list
    }
}

/// Walks the whole chain and reports every broken link, first one first.
///
/// Bounded by what is stored: it walks the records under `audit/ev/` by listing them, page
/// by page, and never counts its way towards a sequence number it was told (a gap, however
/// long, is one break). A record whose key is not an event key, or lies beyond the head, is
/// reported by its key and not walked.
pub async fn verify(vault: &Vault) -> Result<VerifyReport, Error> {
    verify_with(vault, None).await
}

/// [`verify`], then the store compared with `checkpoint` (see [`checkpoint`]), whose MAC is
/// checked first: a forged checkpoint is an error, and nothing is walked.
pub async fn verify_with(
    vault: &Vault,
    checkpoint: Option<&checkpoint::Checkpoint>,
) -> Result<VerifyReport, Error> {
    if let Some(cp) = checkpoint {
        cp.authenticate(vault)?;
    }
    let mut breaks = Breaks::default();
    let mut head = vault.get::<AuditHead>(HEAD_KEY).await?.map(|v| v.value);
    let mut expected_seq = 1u64;
    let mut prev_hash = GENESIS.to_owned();
    let mut after: Option<String> = None;
    let mut count = 0u64;
    // The hash of the last event walked, when it could be opened.
    let mut last_hash: Option<String> = None;
    loop {
        let page = vault
            .store()
            .list(EVENT_PREFIX, after.as_deref(), 500)
            .await?;
        for (key, raw) in &page.items {
            let Some(key_seq) = key.strip_prefix(EVENT_PREFIX).and_then(event_seq) else {
                breaks.push(ChainBreak::BadKey { key: key.clone() });
                continue;
            };
            if let Some(h) = &head
                && key_seq > h.seq
            {
                // The head may have moved since it was read (a live server appending):
                // read it again before calling the record foreign.
                head = vault.get::<AuditHead>(HEAD_KEY).await?.map(|v| v.value);
                if let Some(h) = head.as_ref().filter(|h| key_seq > h.seq) {
                    breaks.push(ChainBreak::BeyondHead {
                        key: key.clone(),
                        head_seq: h.seq,
                    });
                    continue;
                }
            }
            count += 1;
            if key_seq > expected_seq {
                breaks.gap(expected_seq, key_seq - 1);
                prev_hash = String::new();
            }
            last_hash = None;
            let event: AuditEvent = match vault.open(key, raw) {
                Ok(e) => e,
                Err(e) => {
                    breaks.push(ChainBreak::Unreadable {
                        seq: key_seq,
                        reason: e.to_string(),
                    });
                    expected_seq = key_seq + 1;
                    prev_hash = String::new();
                    continue;
                }
            };
            if event.seq != key_seq {
                breaks.push(ChainBreak::SeqMismatch {
                    key: key.clone(),
                    seq: event.seq,
                });
            }
            if event.compute_hash() != event.hash {
                breaks.push(ChainBreak::HashMismatch { seq: key_seq });
            } else if !prev_hash.is_empty() && event.prev != prev_hash {
                breaks.push(ChainBreak::PrevMismatch { seq: key_seq });
            }
            prev_hash = event.hash.clone();
            last_hash = Some(event.hash);
            expected_seq = key_seq + 1;
        }
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let last_seq = expected_seq - 1;
    match &head {
        Some(h) if h.seq == last_seq && last_hash.as_ref().is_some_and(|l| *l != h.hash) => {
            breaks.push(ChainBreak::HeadHashMismatch { seq: h.seq });
        }
        Some(h) => breaks.gap(expected_seq, h.seq),
        None if count > 0 => breaks.push(ChainBreak::HeadMismatch {
            head_seq: 0,
            last_seq,
        }),
        None => {}
    }
    if let Some(cp) = checkpoint {
        for b in checkpoint::compare(vault, cp).await? {
            breaks.push(b);
        }
    }
    Ok(VerifyReport {
        events: count,
        breaks: breaks.finish(),
    })
}
