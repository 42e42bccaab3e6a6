//! Group commit. An event that accompanies no other write (a cache-hit issuance, a failed
//! login, a denial) joins a queue; one flusher task at a time takes the chain lock, writes
//! every queued event and the new head in ONE store transaction, and tells each waiter the
//! outcome. With SQLite's `synchronous=FULL` that is one fsync for a whole burst instead of
//! one each; the chain, the head CAS and fail-closed behave exactly as for single appends.
//!
//! An event may carry conditions of its own and no writes (a cache hit is served only if the
//! org record is still the one the caller was authorized against, and its API key still
//! exists). The batch's transaction then holds every queued event's conditions too. When it
//! fails and the head did not move, some event's conditions no longer hold: the batch is
//! split and each event committed alone, so exactly the events whose conditions fail are
//! refused (`Ok(false)`, nothing written) and the others land. That is rare (a revocation
//! racing a burst of hits), so the common case stays one transaction per burst.

use std::sync::atomic::Ordering;

use tokio::sync::oneshot;

use super::{Audit, AuditHead, AuditRecord, HEAD_KEY, MAX_ATTEMPTS};
use crate::error::Error;
use crate::ports::{Condition, StoreError, Txn};
use crate::principal::RequestContext;

/// At most this many events go into one transaction.
const MAX_BATCH: usize = 256;

/// One queued append and where its outcome goes: `Ok(true)` written, `Ok(false)` its
/// conditions did not hold (nothing written), `Err` the log could not be written.
#[derive(Debug)]
pub(super) struct Pending {
    ctx: RequestContext,
    record: AuditRecord,
    /// Conditions the event is written under (none for a plain append).
    conditions: Vec<Condition>,
    done: oneshot::Sender<Result<bool, String>>,
}

impl Audit {
    /// Appends an event that accompanies no other write. Returns once the event is stored;
    /// `AuditUnavailable` when it could not be, in which case the caller's action must not
    /// happen.
    pub async fn append(&self, ctx: &RequestContext, record: AuditRecord) -> Result<(), Error> {
        self.append_if(ctx, Vec::new(), record).await.map(drop)
    }

    /// Appends an event under `conditions` (and no writes), group-committed with whatever
    /// else is queued. `Ok(false)` when a condition does not hold: then nothing was written.
    /// Returns once the event is stored.
    pub(super) async fn append_if(
        &self,
        ctx: &RequestContext,
        conditions: Vec<Condition>,
        record: AuditRecord,
    ) -> Result<bool, Error> {
        let (done, outcome) = oneshot::channel();
        self.pending().push(Pending {
            ctx: ctx.clone(),
            record,
            conditions,
            done,
        });
        self.kick();
        match outcome.await {
            Ok(Ok(written)) => Ok(written),
            Ok(Err(reason)) => Err(Error::AuditUnavailable(Box::new(Error::Store(
                StoreError::Unavailable(reason),
            )))),
            // The writer dropped our sender without an answer: not written.
            Err(_) => Err(Error::AuditUnavailable(Box::new(Error::Contention))),
        }
    }

    /// Starts a flusher task unless one is running. The writing happens in that task, not
    /// in any request's future, so a client that disconnects can never cut a batch short
    /// (other requests' events are in it).
    fn kick(&self) {
        if self.flushing.swap(true, Ordering::AcqRel) {
            return;
        }
        match self.me.upgrade() {
            Some(me) => {
                tokio::spawn(async move { me.flush().await });
            }
            // Shutting down: the queue drops with us and every waiter hears "not written".
            None => self.flushing.store(false, Ordering::Release),
        }
    }

    /// Writes the queue, batch by batch, until it is empty.
    async fn flush(&self) {
        loop {
            {
                let mut cached = self.cached.lock().await;
                loop {
                    let batch: Vec<Pending> = {
                        let mut q = self.pending();
                        let n = q.len().min(MAX_BATCH);
                        q.drain(..n).collect()
                    };
                    if batch.is_empty() {
                        break;
                    }
                    self.write_batch(&mut cached, batch).await;
                }
            }
            self.flushing.store(false, Ordering::Release);
            // An append may have queued after the last drain and seen `flushing` still set:
            // then this task carries on (unless another flusher has started meanwhile).
            if self.pending().is_empty() || self.flushing.swap(true, Ordering::AcqRel) {
                return;
            }
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Vec<Pending>> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes `batch` and tells every waiter its outcome. When the batch's conditions fail
    /// (and the head did not move), each conditioned event is written alone, so that only
    /// the events whose own conditions fail are refused.
    async fn write_batch(&self, cached: &mut Option<(AuditHead, Vec<u8>)>, batch: Vec<Pending>) {
        let result = self.write_events(cached, &batch).await;
        if !matches!(result, Ok(false)) {
            for p in batch {
                let _ = p.done.send(result.clone());
            }
            return;
        }
        for p in batch {
            let one = std::slice::from_ref(&p);
            let result = self.write_events(cached, one).await;
            let _ = p.done.send(result);
        }
    }

    /// Writes `batch` after the head in one transaction, retrying when another replica
    /// moved the head. `Ok(false)` when the events' own conditions do not hold (the head
    /// did not move, nothing was written).
    async fn write_events(
        &self,
        cached: &mut Option<(AuditHead, Vec<u8>)>,
        batch: &[Pending],
    ) -> Result<bool, String> {
        let conditioned = batch.iter().any(|p| !p.conditions.is_empty());
        for _ in 0..MAX_ATTEMPTS {
            if cached.is_none() {
                *cached = self.read_head().await.map_err(|e| e.to_string())?;
            }
            let (mut seq, mut hash, head_cond) = match cached.as_ref() {
                Some((head, raw)) => (head.seq, head.hash.clone(), Some(raw.clone())),
                None => (0, super::GENESIS.to_owned(), None),
            };
            let mut txn = match head_cond {
                Some(raw) => Txn::new().equals(HEAD_KEY, raw),
                None => Txn::new().absent(HEAD_KEY),
            };
            for p in batch {
                txn.conditions.extend(p.conditions.iter().cloned());
            }
            for p in batch {
                let event = self.event(&p.ctx, &p.record, seq, hash);
                txn = self.put_event(txn, &event).map_err(|e| e.to_string())?;
                seq = event.seq;
                hash = event.hash;
            }
            let head = AuditHead { seq, hash };
            let head_raw = self
                .vault
                .seal(HEAD_KEY, &head)
                .map_err(|e| e.to_string())?;
            txn = txn.put(HEAD_KEY, head_raw.clone());
            if self.vault.commit(txn).await.map_err(|e| e.to_string())? {
                *cached = Some((head, head_raw));
                self.appended(batch.len());
                return Ok(true);
            }
            // The head moved (another replica), the events' own conditions failed, or the
            // log holds events past its head. Re-read and rebuild.
            let fresh = self.read_head().await.map_err(|e| e.to_string())?;
            let moved = fresh.as_ref().map(|(_, r)| r) != cached.as_ref().map(|(_, r)| r);
            *cached = fresh;
            if !moved && conditioned {
                return Ok(false);
            }
            if !moved {
                return Err(
                    "the audit log has events past its head; run `rolegate audit verify`"
                        .to_owned(),
                );
            }
        }
        Err("too much contention on the audit head".to_owned())
    }
}
