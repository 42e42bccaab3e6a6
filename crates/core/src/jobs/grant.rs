//! Jobs stop with their grant: a job created under an access grant (a level that needs
//! approval) is checked by its worker between steps and before each batch of AWS calls; once
//! the grant is revoked or has expired the job ends `cancelled` with `error.code`
//! `grant_ended` (audited as `job.grant_ended`), and nothing more is sent to AWS.

use super::Jobs;
use crate::error::{Code, Error};
use crate::keyspace;
use crate::model::{AccessRequestRecord, AccessState, JobError, JobRecord, JobState, StepState};
use crate::ports::Txn;

/// Whether the grant `id` no longer admits anything at `now` (unix seconds): gone from the
/// store, revoked, or past its end.
fn ended(grant: Option<&AccessRequestRecord>, now: i64) -> Option<AccessState> {
    match grant {
        None => Some(AccessState::Revoked),
        Some(g) => match g.state_at(now) {
            AccessState::Active => None,
            s => Some(s),
        },
    }
}

impl Jobs {
    /// Ends job `id` if it was created under a grant that no longer runs. `Ok(true)` when
    /// the job is not (or no longer) running because of that: the caller stops.
    pub(super) async fn stop_if_grant_ended(&self, id: &str) -> Result<bool, Error> {
        let Some(job) = self.records.get(&keyspace::job(id)).await? else {
            return Ok(false);
        };
        self.stop_if_grant_ended_for(&job.value).await
    }

    /// [`Self::stop_if_grant_ended`] for a job already read.
    pub(super) async fn stop_if_grant_ended_for(&self, job: &JobRecord) -> Result<bool, Error> {
        let Some(grant_id) = &job.grant_id else {
            return Ok(false);
        };
        if !matches!(job.state, JobState::Running | JobState::Cancelling) {
            return Ok(false);
        }
        let grant = self
            .records
            .get::<AccessRequestRecord>(&keyspace::access_request(grant_id))
            .await?;
        let now = self.records.clock().now().unix_timestamp();
        let Some(state) = ended(grant.as_ref().map(|g| &g.value), now) else {
            return Ok(false);
        };
        let message = format!(
            "the access grant {grant_id} this job ran under is {}: the job was stopped",
            state.as_str()
        );
        let stamp = self.records.now();
        self.finish(
            &job.id,
            "job.grant_ended",
            Some(Code::GrantEnded.as_str()),
            |next| {
                next.state = JobState::Cancelled;
                let mut step = None;
                for s in &mut next.steps {
                    match s.state {
                        StepState::Running => {
                            s.state = StepState::Failed;
                            s.finished_at = Some(stamp.clone());
                            step.get_or_insert_with(|| s.name.clone());
                        }
                        StepState::Pending => s.state = StepState::Skipped,
                        _ => {}
                    }
                }
                next.error = Some(JobError {
                    code: Code::GrantEnded.as_str().to_owned(),
                    message: message.clone(),
                    step,
                    aws_code: None,
                });
                Ok(Txn::new())
            },
        )
        .await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn grant(state: AccessState, start: i64, end: i64) -> AccessRequestRecord {
        AccessRequestRecord {
            id: "a1".into(),
            org: crate::ids::OrgName::parse("acme").unwrap(),
            access_level: "operator".into(),
            requested_by: "bob".into(),
            duration_secs: 3600,
            reason: None,
            ticket: None,
            starts_at: None,
            state,
            approvals: Vec::new(),
            min_approvals: 1,
            decided_by: None,
            decision_comment: None,
            break_glass: false,
            auto_approved: false,
            review_required: false,
            review: None,
            created_at: String::new(),
            updated_at: String::new(),
            request_expires_at: String::new(),
            grant_starts_at: None,
            grant_ends_at: None,
            grant_start_unix: Some(start),
            grant_end_unix: Some(end),
            request_expires_unix: 0,
            customer: None,
        }
    }

    #[test]
    fn a_running_grant_admits_and_revoked_expired_or_missing_ones_stop() {
        assert_eq!(ended(Some(&grant(AccessState::Active, 0, 100)), 50), None);
        assert_eq!(ended(Some(&grant(AccessState::Approved, 0, 100)), 50), None);
        assert_eq!(
            ended(Some(&grant(AccessState::Active, 0, 100)), 100),
            Some(AccessState::Expired)
        );
        assert_eq!(
            ended(Some(&grant(AccessState::Revoked, 0, 100)), 50),
            Some(AccessState::Revoked)
        );
        assert_eq!(ended(None, 50), Some(AccessState::Revoked));
    }
}
