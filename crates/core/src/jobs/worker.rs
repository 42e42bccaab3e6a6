//! The worker pool inside `serve`: it scans the queue in creation order, claims what it can
//! run (a free slot, a lapsed or absent lease, the target's lock free or already its own),
//! renews the lease while the job runs, and stops a job whose lease it lost.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Semaphore, watch};

use super::Jobs;
use crate::error::Error;
use crate::keyspace;
use crate::model::{JobLease, JobRecord};
use crate::ports::Txn;
use crate::vault::Versioned;

/// How often the pool looks for unread secrets whose time is up.
const PURGE_EVERY_MS: i64 = 5_000;

/// Told about finished jobs and the queue's length (the server's metrics).
pub trait JobObserver: Send + Sync + std::fmt::Debug + 'static {
    /// A job ended: `outcome` is `succeeded`, `failed` or `cancelled`.
    fn finished(&self, kind: &str, outcome: &str, seconds: f64);
    /// How many jobs are waiting in `queued`, as of the last scan.
    fn queued(&self, n: usize);
}

/// An observer that ignores everything.
#[derive(Debug, Default)]
pub struct NoObserver;

impl JobObserver for NoObserver {
    fn finished(&self, _: &str, _: &str, _: f64) {}
    fn queued(&self, _: usize) {}
}

/// A claim: the lease as written (its revision is what a renewal must find).
pub(super) struct Claim {
    pub(super) job: JobRecord,
    pub(super) lease_rev: Vec<u8>,
}

impl Jobs {
    /// Runs the pool until the task is dropped. Without workers, returns at once.
    pub async fn run_workers(self, observer: Arc<dyn JobObserver>) {
        if self.settings.workers == 0 {
            return;
        }
        let worker = format!("w-{}", rolegate_crypto::short_id());
        let slots = Arc::new(Semaphore::new(self.settings.workers));
        let busy: Arc<Mutex<HashSet<String>>> = Arc::default();
        let mut last_purge = i64::MIN;
        loop {
            // Unread secrets are looked at every few seconds, not on every poll.
            let now = self.records.clock().now_ms();
            if now.saturating_sub(last_purge) >= PURGE_EVERY_MS {
                last_purge = now;
                if let Err(e) = self.purge_expired_secrets().await {
                    tracing::warn!(error = %e, "purging unread job secrets failed");
                }
            }
            if let Err(e) = self.scan(&worker, &slots, &busy, &observer).await {
                tracing::warn!(error = %e, "scanning the job queue failed");
            }
            self.records.clock().sleep(self.settings.poll).await;
        }
    }

    async fn scan(
        &self,
        worker: &str,
        slots: &Arc<Semaphore>,
        busy: &Arc<Mutex<HashSet<String>>>,
        observer: &Arc<dyn JobObserver>,
    ) -> Result<(), Error> {
        let prefix = keyspace::JOB_QUEUE.prefix;
        let page = self.records.vault().store().list(prefix, None, 500).await?;
        let mut queued = 0;
        for (key, _) in &page.items {
            let id = &key[prefix.len()..];
            if busy
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(id)
            {
                continue;
            }
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                queued += 1;
                continue;
            };
            match self.claim(worker, id).await {
                Ok(Some(claim)) => {
                    busy.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(id.to_owned());
                    let (me, busy, observer) = (self.clone(), busy.clone(), observer.clone());
                    let id = id.to_owned();
                    tokio::spawn(async move {
                        me.run_claimed(claim, &*observer).await;
                        busy.lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .remove(&id);
                        drop(permit);
                    });
                }
                Ok(None) => queued += 1,
                Err(e) => tracing::warn!(job = id, error = %e, "claiming a job failed"),
            }
        }
        observer.queued(queued);
        Ok(())
    }

    /// Takes the job if nobody holds a live lease on it and its target is free (or already
    /// its own). `None` when it cannot run now; a job that has ended leaves the queue.
    pub(super) async fn claim(&self, worker: &str, id: &str) -> Result<Option<Claim>, Error> {
        let Some(job) = self.records.get(&keyspace::job(id)).await? else {
            self.records
                .vault()
                .commit(Txn::new().delete(keyspace::job_queue(id)))
                .await?;
            return Ok(None);
        };
        let job = job.value;
        if job.state.is_final() {
            self.records
                .vault()
                .commit(Txn::new().delete(keyspace::job_queue(id)))
                .await?;
            return Ok(None);
        }
        let now = self.records.clock().now_ms();
        let lease_key = keyspace::job_lease(id);
        let lease = self.records.get(&lease_key).await?;
        let mut txn = match &lease {
            Some(l) if l.value.expires_at_ms > now => return Ok(None),
            Some(l) => Txn::new().equals(lease_key.as_str(), l.rev.clone()),
            None => Txn::new().absent(lease_key.as_str()),
        };
        let lock_key = keyspace::job_lock(&job.org, &job.target);
        match self.records.get(&lock_key).await? {
            Some(Versioned { value, .. }) if value == job.id => {}
            Some(Versioned { value, rev }) => {
                if !self.holder_ended(&value).await? {
                    return Ok(None);
                }
                txn = txn.equals(lock_key.as_str(), rev);
                txn = self.records.put(txn, &lock_key, &job.id)?;
            }
            None => {
                txn = txn.absent(lock_key.as_str());
                txn = self.records.put(txn, &lock_key, &job.id)?;
            }
        }
        let new_lease = JobLease {
            worker: worker.to_owned(),
            expires_at_ms: now + self.lease_ms(),
        };
        let lease_rev = self.records.vault().seal(lease_key.as_str(), &new_lease)?;
        let txn = txn.put(lease_key.as_str(), lease_rev.clone());
        if !self.records.vault().commit(txn).await? {
            return Ok(None);
        }
        Ok(Some(Claim { job, lease_rev }))
    }

    /// Whether the job holding a target's lock has ended (or vanished): its lock is stale.
    async fn holder_ended(&self, holder: &str) -> Result<bool, Error> {
        Ok(self
            .records
            .get(&keyspace::job(holder))
            .await?
            .is_none_or(|j| j.value.state.is_final()))
    }

    fn lease_ms(&self) -> i64 {
        i64::try_from(self.settings.lease.as_millis()).unwrap_or(i64::MAX)
    }

    /// Runs a claimed job while renewing its lease; a lost lease stops it (another replica
    /// may resume it).
    async fn run_claimed(&self, claim: Claim, observer: &dyn JobObserver) {
        let id = claim.job.id.clone();
        let (lost_tx, mut lost_rx) = watch::channel(false);
        let renewer = {
            let me = self.clone();
            let id = id.clone();
            let mut rev = claim.lease_rev.clone();
            tokio::spawn(async move {
                loop {
                    me.records.clock().sleep(me.settings.lease / 3).await;
                    match me.renew(&id, &rev).await {
                        Ok(Some(new_rev)) => rev = new_rev,
                        Ok(None) | Err(_) => {
                            let _ = lost_tx.send(true);
                            return;
                        }
                    }
                }
            })
        };
        tokio::select! {
            () = self.execute(claim.job, observer) => {}
            _ = lost_rx.wait_for(|lost| *lost) => {
                tracing::warn!(job = %id, "lost the job's lease; another worker may resume it");
            }
        }
        renewer.abort();
    }

    /// Extends the lease if it is still the one this worker wrote.
    async fn renew(&self, id: &str, rev: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        let key = keyspace::job_lease(id);
        let Some(cur) = self.records.get(&key).await? else {
            return Ok(None);
        };
        if cur.rev != rev {
            return Ok(None);
        }
        let lease = JobLease {
            worker: cur.value.worker,
            expires_at_ms: self.records.clock().now_ms() + self.lease_ms(),
        };
        let raw = self.records.vault().seal(key.as_str(), &lease)?;
        let txn = Txn::new()
            .equals(key.as_str(), rev.to_vec())
            .put(key.as_str(), raw.clone());
        Ok(self.records.vault().commit(txn).await?.then_some(raw))
    }
}
