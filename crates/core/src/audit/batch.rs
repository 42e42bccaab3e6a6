//! Group commit. An event that accompanies no other write (a cache-hit issuance, a failed
//! login, a denial) joins a queue; whoever next holds the chain lock writes every queued
//! event and the new head in ONE store transaction, and tells each waiter the outcome. With
//! SQLite's `synchronous=FULL` that is one fsync for a whole burst instead of one each; the
//! chain, the head CAS and fail-closed behave exactly as for single appends.

use tokio::sync::oneshot;

use super::{Audit, AuditHead, AuditRecord, HEAD_KEY, MAX_ATTEMPTS};
use crate::ports::{StoreError, Txn};
use crate::{Error, RequestContext};

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
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Pending {
                ctx: ctx.clone(),
                record,
                done,
            });
        let mut outcome = outcome;
        loop {
            tokio::select! {
                // Checked first: once another holder of the chain lock has written our event,
                // we leave the lock's queue instead of waiting our turn behind every batch.
                biased;
                answer = &mut outcome => return match answer {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(reason)) => Err(Error::AuditUnavailable(Box::new(Error::Store(
                        StoreError::Unavailable(reason),
                    )))),
                    // The writer dropped our sender without an answer: not written.
                    Err(_) => Err(Error::AuditUnavailable(Box::new(Error::Contention))),
                },
                mut cached = self.cached.lock() => {
                    // Whoever holds the lock writes what is queued, ours included (or, past
                    // MAX_BATCH, the oldest events first; then we come round again).
                    let batch: Vec<Pending> = {
                        let mut q = self
                            .queue
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        let n = q.len().min(MAX_BATCH);
                        q.drain(..n).collect()
                    };
                    if !batch.is_empty() {
                        let result = self.write_batch(&mut cached, &batch).await;
                        for p in batch {
                            let _ = p.done.send(result.clone());
                        }
                    }
                }
            }
        }
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
