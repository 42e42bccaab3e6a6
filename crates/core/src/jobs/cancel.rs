//! Cancelling: a job that has not called AWS, or only reads, becomes `cancelled` (its
//! queue marker, lease and lock go with it); a `stack.apply` waiting on a stack update
//! becomes `cancelling` (its worker calls CancelUpdateStack and the job ends `cancelled`
//! once the update has rolled back, or `succeeded` if it finished first); any other job
//! that has called AWS, or that ended, is 409 `not_cancellable`.

use super::{JobSpec, Jobs};
use crate::audit::AuditRecord;
use crate::error::{Code, Error};
use crate::keyspace;
use crate::model::{JobRecord, JobState, StepState};
use crate::policy::Action;
use crate::ports::Txn;
use crate::principal::Caller;
use crate::records::Change;

impl Jobs {
    /// Cancels a job that has not called AWS yet (409 `not_cancellable` otherwise).
    pub async fn cancel(&self, caller: &Caller, id: &str) -> Result<JobRecord, Error> {
        let job = self.load_for(caller, Action::CancelJob, id).await?;
        let now = self.records.now();
        let lock = keyspace::job_lock(&job.org, &job.target);
        let holds_lock = self
            .records
            .get(&lock)
            .await?
            .is_some_and(|l| l.value == job.id);
        let updated = self
            .records
            .update(caller, &keyspace::job(id), |cur| {
                let refuse = |message: String| {
                    Ok(Change::Refuse {
                        audit: AuditRecord::new(Action::CancelJob.name())
                            .org(cur.org.to_string())
                            .target(cur.id.clone())
                            .failure(Code::NotCancellable.as_str()),
                        error: Error::conflict(Code::NotCancellable, message),
                    })
                };
                if cur.state.is_final() {
                    return refuse(format!("job {} has ended ({})", cur.id, cur.state.as_str()));
                }
                if cur.state == JobState::Cancelling {
                    return Ok(Change::Keep);
                }
                let read_only = JobSpec::parse(&cur.kind, &cur.spec).is_ok_and(|s| s.read_only());
                if cur.called_aws && updating_stack(cur) {
                    let mut next = cur.clone();
                    next.state = JobState::Cancelling;
                    next.updated_at = now.clone();
                    let audit = AuditRecord::new(Action::CancelJob.name())
                        .org(cur.org.to_string())
                        .target(cur.id.clone())
                        .details(serde_json::json!({"kind": cur.kind, "from": "running", "to": "cancelling"}));
                    return Ok(Change::write(next, audit));
                }
                if cur.called_aws && !read_only {
                    return refuse(format!(
                        "job {} has called AWS in a step that cannot be cancelled",
                        cur.id
                    ));
                }
                let mut next = cur.clone();
                next.state = JobState::Cancelled;
                next.finished_at = Some(now.clone());
                next.updated_at = now.clone();
                for s in &mut next.steps {
                    if s.state != StepState::Succeeded {
                        s.state = StepState::Skipped;
                    }
                }
                let mut txn = Txn::new()
                    .delete(keyspace::job_queue(&cur.id))
                    .delete(keyspace::job_lease(&cur.id).as_str());
                if holds_lock {
                    txn = txn.delete(lock.as_str());
                }
                let audit = AuditRecord::new(Action::CancelJob.name())
                    .org(cur.org.to_string())
                    .target(cur.id.clone())
                    .details(serde_json::json!({"kind": cur.kind, "from": cur.state.as_str()}));
                Ok(Change::write_with(next, txn, audit))
            })
            .await?;
        self.publish(&updated.value);
        Ok(updated.value)
    }
}

/// Whether the job is a `stack.apply` waiting on a stack update (which CloudFormation can
/// cancel and roll back); a create, a delete or a submit under way cannot be.
fn updating_stack(job: &JobRecord) -> bool {
    job.kind == "stack.apply"
        && job.result.as_ref().and_then(|r| r["operation"].as_str()) == Some("update")
        && job
            .steps
            .iter()
            .any(|s| s.name == "wait" && s.state == StepState::Running)
}
