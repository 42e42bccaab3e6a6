//! Group commit. An event that accompanies no other write (a cache-hit issuance, a failed
//! login, a denial) joins a queue; one flusher task at a time takes the chain lock, writes
//! every queued event and the new head in ONE store transaction, and tells each waiter the
//! outcome. With SQLite's `synchronous=FULL` that is one fsync for a whole burst instead of
//! one each; the chain, the head CAS and fail-closed behave exactly as for single appends.

use std::sync::atomic::Ordering;

use tokio::sync::oneshot;

use super::{Audit, AuditHead, AuditRecord, HEAD_KEY, MAX_ATTEMPTS};
use crate::error::Error;
use crate::ports::{StoreError, Txn};
use crate::principal::RequestContext;

/// At most this many events go into one transaction.
const MAX_BATCH: usize = 256;

/// One queued append and where its outcome goes.
#[derive(Debug)]
pub(super) struct Pending {
    ctx: RequestContext,
    record: AuditRecord,
    done: oneshot::Sender<Result<(), String>>,
}

impl Audit {
    /// Appends an event that accompanies no other write. Returns once the event is stored;
    /// `AuditUnavailable` when it could not be, in which case the caller's action must not
    /// happen.
    pub async fn append(&self, ctx: &RequestContext, record: AuditRecord) -> Result<(), Error> {
        let (done, outcome) = oneshot::channel();
        self.pending().push(Pending {
            ctx: ctx.clone(),
            record,
            done,
        });
        self.kick();
        match outcome.await {
            Ok(Ok(())) => Ok(()),
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
                    let result = self.write_batch(&mut cached, &batch).await;
                    for p in batch {
                        let _ = p.done.send(result.clone());
                    }
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

    /// Writes `batch` after the head in one transaction, retrying when another replica
    /// moved the head.
    async fn write_batch(
        &self,
        cached: &mut Option<(AuditHead, Vec<u8>)>,
        batch: &[Pending],
    ) -> Result<(), String> {
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
                return Ok(());
            }
            // Appends have no conditions of their own: the head moved (another replica) or
            // the log holds events past its head. Re-read and rebuild.
            let fresh = self.read_head().await.map_err(|e| e.to_string())?;
            let moved = fresh.as_ref().map(|(_, r)| r) != cached.as_ref().map(|(_, r)| r);
            *cached = fresh;
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
