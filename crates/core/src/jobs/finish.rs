//! The end of a job: one commit that records the outcome (and a sealed private key), and
//! frees the queue marker, the lease and the target's lock with the job's last write.

use super::Jobs;
use super::outcome::{Done, Failure};
use crate::audit::AuditRecord;
use crate::error::Error;
use crate::keyspace;
use crate::model::{JobError, JobRecord, JobSecret, JobState, SecretState, StepState};
use crate::ports::Txn;
use crate::records::Change;

impl Jobs {
    /// The final commit of a job that ended, with its extra writes.
    pub(super) async fn finish(
        &self,
        id: &str,
        action: &'static str,
        failure: Option<&str>,
        mut change: impl FnMut(&mut JobRecord) -> Result<Txn, Error>,
    ) -> Result<Option<JobState>, Error> {
        let now = self.records.now();
        let up = self
            .records
            .update(&Self::worker_caller(), &keyspace::job(id), |cur| {
                if !matches!(cur.state, JobState::Running | JobState::Cancelling) {
                    return Ok(Change::Keep);
                }
                let mut next = cur.clone();
                let txn = change(&mut next)?
                    .delete(keyspace::job_queue(id))
                    .delete(keyspace::job_lease(id).as_str())
                    .delete(keyspace::job_lock(&cur.org, &cur.target).as_str());
                next.finished_at = Some(now.clone());
                next.updated_at = now.clone();
                let mut audit = AuditRecord::new(action)
                    .org(cur.org.to_string())
                    .target(cur.id.clone())
                    .details(serde_json::json!({
                        "kind": cur.kind, "target": cur.target, "error": next.error,
                        "session": next.session, "result": next.result,
                    }));
                if let Some(code) = failure {
                    audit = audit.failure(code);
                }
                Ok(Change::write_with(next, txn, audit))
            })
            .await?;
        if up.changed {
            self.publish(&up.value);
        }
        Ok(up.changed.then_some(up.value.state))
    }

    pub(super) async fn succeed(&self, id: &str, done: Done) -> Result<Option<JobState>, Error> {
        let now = self.records.now();
        let expires_ms = self.records.clock().now_ms()
            + i64::try_from(self.settings.secret_ttl.as_millis()).unwrap_or(i64::MAX / 2);
        let expires_at = crate::clock::rfc3339(
            time::OffsetDateTime::from_unix_timestamp(expires_ms / 1000)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
        );
        self.finish(id, "job.succeeded", None, |next| {
            next.state = JobState::Succeeded;
            for s in &mut next.steps {
                if s.state == StepState::Running {
                    s.state = StepState::Succeeded;
                    s.finished_at = Some(now.clone());
                    s.aws_request_id.clone_from(&done.request_id);
                }
            }
            next.progress = 100;
            next.result = Some(done.result.clone());
            let mut txn = Txn::new();
            if let Some(secret) = &done.secret {
                next.secret = SecretState::Available;
                next.secret_expires_at = Some(expires_at.clone());
                let rec = JobSecret {
                    org: next.org.clone(),
                    private_key: secret.clone(),
                    expires_at_ms: expires_ms,
                };
                txn = self.records.put(txn, &keyspace::job_secret(id), &rec)?;
            }
            Ok(txn)
        })
        .await
    }

    /// A stack update cancelled at the job's request, rolled back by CloudFormation.
    pub(super) async fn cancelled(&self, id: &str, done: Done) -> Result<Option<JobState>, Error> {
        let now = self.records.now();
        self.finish(id, "job.cancelled", None, |next| {
            next.state = JobState::Cancelled;
            for s in &mut next.steps {
                if s.state == StepState::Running {
                    s.state = StepState::Succeeded;
                    s.finished_at = Some(now.clone());
                } else if s.state == StepState::Pending {
                    s.state = StepState::Skipped;
                }
            }
            next.progress = 100;
            next.result = Some(done.result.clone());
            Ok(Txn::new())
        })
        .await
    }

    pub(super) async fn fail(
        &self,
        id: &str,
        step: &str,
        f: Failure,
    ) -> Result<Option<JobState>, Error> {
        let now = self.records.now();
        self.finish(id, "job.failed", Some(f.code.as_str()), |next| {
            next.state = JobState::Failed;
            for s in &mut next.steps {
                if s.name == step {
                    s.state = StepState::Failed;
                    s.finished_at = Some(now.clone());
                    s.aws_request_id.clone_from(&f.request_id);
                } else if s.state == StepState::Pending {
                    s.state = StepState::Skipped;
                }
            }
            next.error = Some(JobError {
                code: f.code.as_str().to_owned(),
                message: f.message.clone(),
                step: Some(step.to_owned()),
                aws_code: f.aws_code.clone(),
            });
            Ok(Txn::new())
        })
        .await
    }
}
