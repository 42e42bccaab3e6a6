//! Running one claimed job: start (or resume), the `assume_role` step with the kind's
//! session policy, and the kind's AWS step; `finish` makes the final commit.

use sha2::{Digest as _, Sha256};

use super::Jobs;
use super::outcome::{Done, Failure};
use super::spec::{JobSpec, TAG_JOB, check_policy_size};
use super::stack::{Apply, Ending};
use super::worker::JobObserver;
use crate::audit::AuditRecord;
use crate::credentials::session::{self, TAG_ORG, TAG_PRINCIPAL, TAG_REASON};
use crate::error::{Code, Error};
use crate::keyspace;
use crate::levels::MIN_DURATION_SECS;
use crate::model::{JobRecord, JobSession, JobState, StepState};
use crate::ports::aws::ec2::KeyPairInfo;
use crate::ports::aws::{AssumeRoleRequest, TemporaryCredentials};
use crate::principal::Caller;
use crate::records::Change;

fn tagged_by(kp: &KeyPairInfo, job_id: &str) -> bool {
    kp.tags.iter().any(|(k, v)| k == TAG_JOB && v == job_id)
}

impl Jobs {
    pub(super) fn worker_caller() -> Caller {
        Caller::system("jobs")
    }

    /// Runs the job to its end (or until a store failure leaves it for a later resume).
    pub(super) async fn execute(&self, job: JobRecord, observer: &dyn JobObserver) {
        let began = self.records.clock().now_ms();
        let kind = job.kind.clone();
        let id = job.id.clone();
        match self.drive(job).await {
            Ok(Some(state)) => {
                #[allow(clippy::cast_precision_loss)]
                let secs = (self.records.clock().now_ms() - began).max(0) as f64 / 1000.0;
                observer.finished(&kind, state.as_str(), secs);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(job = %id, error = %e, "job interrupted; it resumes when its lease lapses")
            }
        }
    }

    /// Start → steps → end. `Ok(Some(state))` when this run ended the job.
    async fn drive(&self, job: JobRecord) -> Result<Option<JobState>, Error> {
        let spec = JobSpec::parse(&job.kind, &job.spec)?;
        let Some(mut job) = self.start(&job.id).await? else {
            return Ok(None);
        };
        // The kind's AWS step ran before, in a run that did not finish: it may have acted.
        let resumed = job.called_aws;
        let policy = spec.session_policy(&job.org, &job.id);
        let creds = match self.assume(&job, &policy).await {
            Ok(c) => c,
            Err(f) => return self.fail(&job.id, "assume_role", f).await,
        };
        job = match self.step_done(&job.id, 0, &policy, &creds).await? {
            Some(j) => j,
            None => return Ok(None),
        };
        let step = job.steps[1].name.clone();
        if self.step_running(&job.id, 1).await?.is_none() {
            return Ok(None);
        }
        let ending = match &spec {
            JobSpec::StackApply {
                blueprint,
                name,
                parameters,
                replace_failed,
            } => match Self::blueprint(blueprint) {
                Ok(bp) => {
                    self.stack_apply(
                        &job,
                        &creds,
                        Apply {
                            bp,
                            name,
                            parameters,
                            replace_failed: *replace_failed,
                        },
                        resumed,
                    )
                    .await
                }
                Err(e) => Err(e),
            },
            JobSpec::StackDelete { name } => self.stack_delete(&job, &creds, name).await,
            JobSpec::StackInspect { name } => self.stack_inspect(&job, &creds, name).await,
            JobSpec::Inventory => self.inventory(&job, &creds).await,
            JobSpec::KeypairCreate { .. }
            | JobSpec::KeypairImport { .. }
            | JobSpec::KeypairDelete { .. } => {
                return match self.act(&spec, &job, &creds, resumed).await {
                    Ok(done) => self.succeed(&job.id, done).await,
                    Err(f) => self.fail(&job.id, &step, f).await,
                };
            }
        };
        match ending {
            Ok(Ending::Succeeded(done)) => self.succeed(&job.id, done).await,
            Ok(Ending::Cancelled(done)) => self.cancelled(&job.id, done).await,
            Ok(Ending::Gone) => Ok(None),
            Err((step, f)) => self.fail(&job.id, step, f).await,
        }
    }

    /// Queued → running (or a resumed running job): `None` if it was cancelled meanwhile.
    async fn start(&self, id: &str) -> Result<Option<JobRecord>, Error> {
        let now = self.records.now();
        let up = self
            .records
            .update(&Self::worker_caller(), &keyspace::job(id), |cur| {
                if !matches!(cur.state, JobState::Queued | JobState::Running | JobState::Cancelling) {
                    return Ok(Change::Keep);
                }
                let mut next = cur.clone();
                let action = if cur.state == JobState::Queued { "job.start" } else { "job.resume" };
                // A resumed `cancelling` job stays so: its update is still to be cancelled.
                if cur.state == JobState::Queued {
                    next.state = JobState::Running;
                }
                next.started_at.get_or_insert_with(|| now.clone());
                next.updated_at = now.clone();
                next.attempts += 1;
                // Credentials are never stored: a resumed job assumes the role again.
                next.steps[0].state = StepState::Pending;
                next.progress = next.computed_progress();
                let audit = AuditRecord::new(action)
                    .org(cur.org.to_string())
                    .target(cur.id.clone())
                    .details(serde_json::json!({"kind": cur.kind, "attempt": next.attempts, "requested_by": cur.requested_by}));
                Ok(Change::write(next, audit))
            })
            .await?;
        if up.changed {
            self.publish(&up.value);
        }
        Ok(up.changed.then_some(up.value))
    }

    async fn assume(&self, job: &JobRecord, policy: &str) -> Result<TemporaryCredentials, Failure> {
        self.step_running(&job.id, 0)
            .await?
            .ok_or_else(|| Failure {
                code: Code::NotCancellable,
                message: "job ended".into(),
                aws_code: None,
                request_id: None,
            })?;
        check_policy_size(policy)?;
        let org = self
            .records
            .get(&keyspace::org(&job.org))
            .await?
            .ok_or(Error::NotFound {
                what: keyspace::ORG.name,
            })?
            .value;
        let role_arn = match (&org.status, &org.role_arn) {
            (crate::model::OrgStatus::Validated, Some(arn)) => arn.clone(),
            _ => {
                return Err(Failure {
                    code: Code::OrgNotValidated,
                    message: format!("organisation {} is no longer validated", job.org),
                    aws_code: None,
                    request_id: None,
                });
            }
        };
        let level = self.levels.level(Some(&job.access_level))?;
        let mut tags = vec![
            (
                TAG_ORG.to_owned(),
                session::sanitize_tag_value(job.org.as_str()),
            ),
            (
                TAG_PRINCIPAL.to_owned(),
                session::sanitize_tag_value(&job.requested_by),
            ),
            (TAG_JOB.to_owned(), job.id.clone()),
        ];
        if let Some(r) = &job.reason {
            tags.push((TAG_REASON.to_owned(), session::sanitize_tag_value(r)));
        }
        if let Some(g) = &job.grant_id {
            // What a revocation's deny statement matches (`revoke_sessions`).
            tags.push((
                crate::access::revocation_policy::TAG_GRANT.to_owned(),
                g.clone(),
            ));
        }
        let mut name: String = job
            .org
            .as_str()
            .chars()
            .take(64 - job.id.len() - 5)
            .collect();
        name = session::sanitize_session_part(&format!("{name}.job.{}", job.id));
        let req = AssumeRoleRequest {
            role_arn,
            external_id: Some(org.external_id.clone()),
            session_name: name,
            source_identity: Some(job.source_identity.clone()),
            tags,
            policy: Some(policy.to_owned()),
            // The level's managed session policies narrow the job's session further.
            policy_arns: level.policy_arns().to_vec(),
            duration_seconds: i32::try_from(MIN_DURATION_SECS).unwrap_or(900),
        };
        self.sts.assume_role(&req).await.map_err(|e| {
            let code = crate::error::sts_code(&e);
            let aws_code = match &e {
                crate::ports::aws::StsError::Other { code, .. } => Some(code.clone()),
                crate::ports::aws::StsError::AccessDenied(_) => Some("AccessDenied".to_owned()),
                _ => None,
            };
            Failure {
                code,
                message: Error::from_sts(e).to_string(),
                aws_code,
                request_id: None,
            }
        })
    }

    /// The kind's AWS step. `resumed`: an earlier run may already have acted.
    async fn act(
        &self,
        spec: &JobSpec,
        job: &JobRecord,
        creds: &TemporaryCredentials,
        resumed: bool,
    ) -> Result<Done, Failure> {
        let tags = vec![
            (TAG_JOB.to_owned(), job.id.clone()),
            (
                TAG_ORG.to_owned(),
                session::sanitize_tag_value(job.org.as_str()),
            ),
        ];
        let done = match spec {
            JobSpec::KeypairCreate { name, key_type } => {
                if resumed
                    && let Some(kp) = self.clients.ec2.find_key_pair(creds, name).await?
                    && tagged_by(&kp, &job.id)
                {
                    // Made by this job before a crash, its private key lost: make it again.
                    self.clients.ec2.delete_key_pair(creds, name).await?;
                }
                let made = self
                    .clients
                    .ec2
                    .create_key_pair(creds, name, *key_type, &tags)
                    .await?;
                Done {
                    result: serde_json::json!({"name": made.info.name, "key_pair_id": made.info.key_pair_id, "fingerprint": made.info.fingerprint}),
                    secret: Some(made.private_key),
                    request_id: made.request_id,
                }
            }
            JobSpec::KeypairImport { name, public_key } => {
                let existing = if resumed {
                    self.clients.ec2.find_key_pair(creds, name).await?
                } else {
                    None
                };
                let (info, request_id) = match existing {
                    Some(kp) if tagged_by(&kp, &job.id) => (kp, None),
                    _ => {
                        self.clients
                            .ec2
                            .import_key_pair(creds, name, public_key, &tags)
                            .await?
                    }
                };
                Done {
                    result: serde_json::json!({"name": info.name, "key_pair_id": info.key_pair_id, "fingerprint": info.fingerprint}),
                    secret: None,
                    request_id,
                }
            }
            JobSpec::KeypairDelete { name } => {
                let existed = self.clients.ec2.find_key_pair(creds, name).await?.is_some();
                let request_id = self.clients.ec2.delete_key_pair(creds, name).await?;
                Done {
                    result: serde_json::json!({"name": name, "existed": existed}),
                    secret: None,
                    request_id,
                }
            }
            // `drive` runs the other kinds through their own modules.
            JobSpec::StackApply { .. }
            | JobSpec::StackDelete { .. }
            | JobSpec::StackInspect { .. }
            | JobSpec::Inventory => {
                return Err(Failure::from(Error::invalid("kind", "not a key pair job")));
            }
        };
        if let Some(d) = self.settings.test_step_delay {
            self.records.clock().sleep(d).await;
        }
        Ok(done)
    }

    /// Marks step `i` running (the kind's AWS step also marks the job as having called AWS).
    pub(super) async fn step_running(
        &self,
        id: &str,
        i: usize,
    ) -> Result<Option<JobRecord>, Error> {
        let now = self.records.now();
        self.transition(id, "job.step", |next| {
            let s = &mut next.steps[i];
            s.state = StepState::Running;
            s.started_at = Some(now.clone());
            s.finished_at = None;
            if i > 0 {
                next.called_aws = true;
            }
        })
        .await
    }

    async fn step_done(
        &self,
        id: &str,
        i: usize,
        policy: &str,
        creds: &TemporaryCredentials,
    ) -> Result<Option<JobRecord>, Error> {
        let now = self.records.now();
        let sha = hex::encode(Sha256::digest(policy.as_bytes()));
        self.transition(id, "job.step", |next| {
            let s = &mut next.steps[i];
            s.state = StepState::Succeeded;
            s.finished_at = Some(now.clone());
            next.session = Some(JobSession {
                assumed_role_arn: creds.assumed_role_arn.clone(),
                source_identity: next.source_identity.clone(),
                session_policy_sha256: sha.clone(),
            });
            next.progress = next.computed_progress();
        })
        .await
    }

    /// One audited change to a running job; `None` if it is no longer running (or was just
    /// stopped because its grant ended).
    pub(super) async fn transition(
        &self,
        id: &str,
        action: &'static str,
        mut change: impl FnMut(&mut JobRecord),
    ) -> Result<Option<JobRecord>, Error> {
        // Between steps and before each batch of AWS calls: a job stops with its grant.
        if self.stop_if_grant_ended(id).await? {
            return Ok(None);
        }
        let now = self.records.now();
        let up = self
            .records
            .update(&Self::worker_caller(), &keyspace::job(id), |cur| {
                if !matches!(cur.state, JobState::Running | JobState::Cancelling) {
                    return Ok(Change::Keep);
                }
                let mut next = cur.clone();
                change(&mut next);
                next.updated_at = now.clone();
                let steps: Vec<_> = next.steps.iter().map(|s| (s.name.as_str(), s.state)).collect();
                let audit = AuditRecord::new(action)
                    .org(cur.org.to_string())
                    .target(cur.id.clone())
                    .details(serde_json::json!({"kind": cur.kind, "steps": steps, "progress": next.progress}));
                Ok(Change::write(next, audit))
            })
            .await?;
        if up.changed {
            self.publish(&up.value);
        }
        Ok(up.changed.then_some(up.value))
    }
}
