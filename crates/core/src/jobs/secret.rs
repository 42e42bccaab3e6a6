//! A created key pair's private key: sealed under `jobsec/<id>`, handed out once to the
//! principal that asked for the job, and purged (audited) when nobody read it in time.

use super::Jobs;
use crate::audit::AuditRecord;
use crate::error::{Code, Error};
use crate::keyspace;
use crate::model::{JobSecret, JobState, SecretState};
use crate::policy::Action;
use crate::ports::Txn;
use crate::principal::Caller;
use crate::records::Change;

impl Jobs {
    /// The job's secret, once: the read deletes it in the same transaction as the audited
    /// change of the job's `secret` to `retrieved`. Only the requester may read it.
    pub async fn take_secret(&self, caller: &Caller, id: &str) -> Result<JobSecret, Error> {
        let job = self.load_for(caller, Action::ReadJobSecret, id).await?;
        if job.requested_by != caller.principal.actor() {
            let audit = AuditRecord::new(Action::ReadJobSecret.name())
                .org(job.org.to_string())
                .target(job.id.clone())
                .failure(Code::Forbidden.as_str());
            self.records.record(caller, audit).await?;
            return Err(Error::forbidden(
                "only the principal that requested the job may read its secret",
            ));
        }
        let secret_key = keyspace::job_secret(id);
        let secret = self.records.get(&secret_key).await?;
        let now = self.records.now();
        let refusal = |code: Code, message: String| {
            Ok(Change::Refuse {
                audit: AuditRecord::new(Action::ReadJobSecret.name())
                    .org(job.org.to_string())
                    .target(job.id.clone())
                    .failure(code.as_str()),
                error: Error::conflict(code, message),
            })
        };
        self.records
            .update(caller, &keyspace::job(id), |cur| match cur.secret {
                SecretState::Retrieved => refusal(
                    Code::SecretAlreadyRetrieved,
                    format!("the secret of job {id} was read already; it is handed out once"),
                ),
                SecretState::Purged => refusal(
                    Code::SecretPurged,
                    format!("the secret of job {id} was not read in time and was purged"),
                ),
                SecretState::None if cur.state == JobState::Succeeded => {
                    Err(Error::NotFound { what: "job secret" })
                }
                SecretState::None => refusal(
                    Code::JobNotFinished,
                    format!(
                        "job {id} is {}; only a succeeded keypair.create job has a secret",
                        cur.state.as_str()
                    ),
                ),
                SecretState::Available => {
                    if secret.is_none() {
                        return Err(Error::Contention);
                    }
                    let mut next = cur.clone();
                    next.secret = SecretState::Retrieved;
                    next.updated_at = now.clone();
                    let txn = Txn::new()
                        .present(secret_key.as_str())
                        .delete(secret_key.as_str());
                    let audit = AuditRecord::new(Action::ReadJobSecret.name())
                        .org(cur.org.to_string())
                        .target(cur.id.clone())
                        .details(serde_json::json!({"kind": cur.kind}));
                    Ok(Change::write_with(next, txn, audit))
                }
            })
            .await?;
        secret.map(|s| s.value).ok_or(Error::Contention)
    }

    /// Deletes every unread secret whose time is up, each with an audited change of its
    /// job's `secret` to `purged`.
    pub async fn purge_expired_secrets(&self) -> Result<usize, Error> {
        let prefix = keyspace::JOB_SECRET.prefix;
        let now_ms = self.records.clock().now_ms();
        let mut purged = 0;
        let all = self.records.vault().list_all::<JobSecret>(prefix).await?;
        for (key, secret) in all {
            if secret.expires_at_ms > now_ms {
                continue;
            }
            let id = &key[prefix.len()..];
            let now = self.records.now();
            let res = self
                .records
                .update(&Self::worker_caller(), &keyspace::job(id), |cur| {
                    if cur.secret != SecretState::Available {
                        return Ok(Change::Keep);
                    }
                    let mut next = cur.clone();
                    next.secret = SecretState::Purged;
                    next.updated_at = now.clone();
                    let txn = Txn::new().present(key.as_str()).delete(key.as_str());
                    let audit = AuditRecord::new("job.secret_purged")
                        .org(cur.org.to_string())
                        .target(cur.id.clone())
                        .details(serde_json::json!({"kind": cur.kind, "expired_at": cur.secret_expires_at}));
                    Ok(Change::write_with(next, txn, audit))
                })
                .await;
            match res {
                Ok(_) => purged += 1,
                // The job is gone: drop its orphaned secret.
                Err(Error::NotFound { .. }) => {
                    self.records
                        .vault()
                        .commit(Txn::new().delete(key.as_str()))
                        .await?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(purged)
    }
}
