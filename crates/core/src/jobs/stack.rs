//! Running `stack.apply`, `stack.delete` and `stack.inspect`: submit with a
//! `ClientRequestToken` derived from the job and step, recognise the job's own earlier submit
//! by the stack's `rolegate:job` tag, wait for a final state while the stack's events become
//! steps, cancel a running update when asked (`cancelling`), and end with the outputs.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Jobs;
use super::outcome::{Done, Failure};
use super::spec::blueprint::{self, Blueprint};
use super::spec::{TAG_JOB, stack_name};
use crate::credentials::session::{self, TAG_ORG};
use crate::error::{Code, Error};
use crate::model::{JobRecord, JobState, Step, StepState};
use crate::ports::aws::TemporaryCredentials;
use crate::ports::aws::cloudformation::{StackEvent, StackInfo, StackRequest, Submitted};

/// The tag naming the blueprint a stack was made from.
pub const TAG_BLUEPRINT: &str = "rolegate:blueprint";
/// How often, at most, a stack is looked at while it changes (eight queue polls, capped).
const STACK_POLL: Duration = Duration::from_secs(2);

/// A `stack.apply` spec with its blueprint.
pub(super) struct Apply<'a> {
    pub(super) bp: &'a Blueprint,
    pub(super) name: &'a str,
    pub(super) parameters: &'a BTreeMap<String, String>,
    pub(super) replace_failed: bool,
}

/// Where a wait ended.
pub(super) enum Waited {
    /// No longer in progress; whether a cancel was asked for.
    Final(StackInfo, bool),
    /// The stack no longer exists.
    Deleted,
    /// The job is no longer running (cancelled, or ended by another run).
    Gone,
}

/// How a stack job ended, or which step failed how.
pub(super) enum Ending {
    Succeeded(Done),
    /// A cancelled update rolled back.
    Cancelled(Done),
    /// The job stopped being this run's (cancelled, or another run ended it).
    Gone,
}

pub(super) type StepResult<T> = Result<T, (&'static str, Failure)>;

pub(super) fn at<E: Into<Failure>>(
    step: &'static str,
) -> impl FnOnce(E) -> (&'static str, Failure) {
    move |e| (step, e.into())
}

pub(super) fn stack_failure(step: &'static str, message: String) -> (&'static str, Failure) {
    (
        step,
        Failure {
            code: Code::StackFailed,
            message,
            aws_code: None,
            request_id: None,
        },
    )
}

/// `ClientRequestToken` of a job's step: the same on a resume, distinct per step.
pub(super) fn token(job_id: &str, step: &str) -> String {
    format!("rolegate-{job_id}-{step}").replace('_', "-")
}

fn tagged_by(tags: &[(String, String)], job_id: &str) -> bool {
    tags.iter().any(|(k, v)| k == TAG_JOB && v == job_id)
}

fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// Whether `event` came from this job: its token when AWS gives one, else its time.
fn from_job(event: &StackEvent, job: &JobRecord) -> bool {
    match &event.token {
        Some(t) => t.starts_with(&format!("rolegate-{}-", job.id)),
        None => match (parse_time(&event.timestamp), parse_time(&job.created_at)) {
            (Some(e), Some(c)) => e >= c,
            _ => false,
        },
    }
}

pub(super) fn outputs(info: &StackInfo) -> BTreeMap<String, String> {
    info.outputs.iter().cloned().collect()
}

impl Jobs {
    fn poll_interval(&self) -> Duration {
        (self.settings.poll * 8).min(STACK_POLL)
    }

    /// Sets the named step's state (and the job's progress).
    pub(super) async fn set_step(
        &self,
        id: &str,
        name: &str,
        state: StepState,
        request_id: Option<String>,
    ) -> Result<Option<JobRecord>, Error> {
        let now = self.records.now();
        self.transition(id, "job.step", |next| {
            if let Some(s) = next.steps.iter_mut().find(|s| s.name == name) {
                s.state = state;
                if state == StepState::Running {
                    s.started_at = Some(now.clone());
                    s.finished_at = None;
                } else {
                    s.finished_at = Some(now.clone());
                }
                if request_id.is_some() {
                    s.aws_request_id.clone_from(&request_id);
                }
            }
            next.progress = next.computed_progress().min(99);
        })
        .await
    }

    /// Adds the stack's new events as steps, before the `wait` step.
    async fn add_events(&self, job: &JobRecord, events: &[StackEvent]) -> Result<(), Error> {
        let mut fresh: Vec<Step> = events
            .iter()
            .rev()
            .filter(|e| from_job(e, job))
            .map(|e| Step {
                name: format!("{} {}", e.logical_id, e.status),
                state: if e.status.ends_with("_FAILED") {
                    StepState::Failed
                } else {
                    StepState::Succeeded
                },
                started_at: Some(e.timestamp.clone()),
                finished_at: Some(e.timestamp.clone()),
                aws_request_id: None,
            })
            .collect();
        fresh.retain(|s| !job.steps.iter().any(|t| t.name == s.name));
        if fresh.is_empty() {
            return Ok(());
        }
        self.transition(&job.id, "job.step", |next| {
            let at = next
                .steps
                .iter()
                .position(|s| s.name == "wait")
                .unwrap_or(next.steps.len());
            for (i, s) in fresh.iter().enumerate() {
                if !next.steps.iter().any(|t| t.name == s.name) {
                    next.steps.insert(at + i, s.clone());
                }
            }
            next.progress = next.computed_progress().min(99);
        })
        .await?;
        Ok(())
    }

    /// Polls the stack until it is no longer in progress, recording its events as steps and
    /// asking CloudFormation to cancel an update once the job is `cancelling`.
    pub(super) async fn wait_stack(
        &self,
        id: &str,
        creds: &TemporaryCredentials,
        stack: &str,
    ) -> StepResult<Waited> {
        let cfn = &self.clients.cloudformation;
        let mut cancel_sent = false;
        loop {
            let Some(job) = self
                .records
                .get(&crate::keyspace::job(id))
                .await
                .map_err(at("wait"))?
                .map(|j| j.value)
                .filter(|j| matches!(j.state, JobState::Running | JobState::Cancelling))
            else {
                return Ok(Waited::Gone);
            };
            if self
                .stop_if_grant_ended_for(&job)
                .await
                .map_err(at("wait"))?
            {
                return Ok(Waited::Gone);
            }
            let info = cfn.describe_stack(creds, stack).await.map_err(at("wait"))?;
            let events = cfn
                .stack_events(creds, stack, 100)
                .await
                .or_else(|e| match &e {
                    crate::ports::aws::ec2::AwsError::Service { .. } if info.is_none() => {
                        Ok(Vec::new())
                    }
                    _ => Err(e),
                })
                .map_err(at("wait"))?;
            self.add_events(&job, &events).await.map_err(at("wait"))?;
            let Some(info) = info else {
                return Ok(Waited::Deleted);
            };
            if !info.status.ends_with("_IN_PROGRESS") {
                return Ok(Waited::Final(info, cancel_sent));
            }
            if job.state == JobState::Cancelling && !cancel_sent {
                cancel_sent = true;
                match cfn
                    .cancel_update_stack(creds, stack, &token(id, "cancel"))
                    .await
                {
                    Ok(_) => tracing::info!(job = id, "asked CloudFormation to cancel the update"),
                    Err(e) => {
                        tracing::warn!(job = id, error = %e, "CancelUpdateStack failed; waiting for the update to end")
                    }
                }
            }
            self.records.clock().sleep(self.poll_interval()).await;
        }
    }

    /// `stack.apply`.
    pub(super) async fn stack_apply(
        &self,
        job: &JobRecord,
        creds: &TemporaryCredentials,
        apply: Apply<'_>,
        resumed: bool,
    ) -> StepResult<Ending> {
        let Apply {
            bp,
            name,
            parameters,
            replace_failed,
        } = apply;
        let cfn = &self.clients.cloudformation;
        let stack = stack_name(&job.org, name);
        let existing = cfn
            .describe_stack(creds, &stack)
            .await
            .map_err(at("submit"))?;
        let mut request_id = None;
        let mut no_changes = false;
        let operation;
        if resumed
            && existing
                .as_ref()
                .is_some_and(|s| tagged_by(&s.tags, &job.id))
        {
            // This job's earlier run submitted before it stopped: wait for that operation.
            operation = job
                .result
                .as_ref()
                .and_then(|r| r["operation"].as_str())
                .unwrap_or("create")
                .to_owned();
        } else {
            let mut existing = existing;
            if let Some(s) = &existing
                && s.status.ends_with("_IN_PROGRESS")
            {
                return Err(stack_failure(
                    "submit",
                    format!("stack {stack} is {}: another change is under way", s.status),
                ));
            }
            if let Some(s) = &existing
                && s.status == "ROLLBACK_COMPLETE"
            {
                if !replace_failed {
                    return Err(stack_failure(
                        "submit",
                        format!(
                            "stack {stack} is ROLLBACK_COMPLETE (its creation failed) and can only be deleted; apply with replace_failed: true to delete and recreate it"
                        ),
                    ));
                }
                cfn.delete_stack(creds, &stack, &token(&job.id, "replace"))
                    .await
                    .map_err(at("submit"))?;
                match self.wait_stack(&job.id, creds, &stack).await? {
                    Waited::Gone => return Ok(Ending::Gone),
                    Waited::Final(info, _) if info.status != "DELETE_COMPLETE" => {
                        return Err(stack_failure(
                            "submit",
                            format!(
                                "replacing failed stack {stack}: its deletion ended {}",
                                info.status
                            ),
                        ));
                    }
                    Waited::Final(..) | Waited::Deleted => {}
                }
                existing = None;
            }
            operation = if existing.is_some() {
                "update"
            } else {
                "create"
            }
            .to_owned();
            // Recorded before the call: a cancel needs to know an update is under way.
            let marked = self
                .transition(&job.id, "job.step", |next| {
                    next.result = Some(json!({"operation": operation, "stack_name": stack}));
                })
                .await
                .map_err(at("submit"))?;
            if marked.is_none() {
                return Ok(Ending::Gone);
            }
            let tags = vec![
                (TAG_JOB.to_owned(), job.id.clone()),
                (
                    TAG_ORG.to_owned(),
                    session::sanitize_tag_value(job.org.as_str()),
                ),
                (TAG_BLUEPRINT.to_owned(), bp.name.to_owned()),
            ];
            let params: Vec<(String, String)> = parameters.clone().into_iter().collect();
            let submit_token = token(&job.id, "submit");
            let req = StackRequest {
                name: &stack,
                template_body: bp.template,
                parameters: &params,
                tags: &tags,
                token: &submit_token,
            };
            let submitted = if existing.is_some() {
                cfn.update_stack(creds, &req).await
            } else {
                cfn.create_stack(creds, &req).await
            }
            .map_err(at("submit"))?;
            match submitted {
                Submitted::Started { request_id: r } => request_id = r,
                Submitted::NoChanges => no_changes = true,
            }
        }
        if let Some(d) = self.settings.test_step_delay {
            self.records.clock().sleep(d).await;
        }
        let step = |s, st, r| self.set_step(&job.id, s, st, r);
        if step("submit", StepState::Succeeded, request_id)
            .await
            .map_err(at("submit"))?
            .is_none()
            || step("wait", StepState::Running, None)
                .await
                .map_err(at("wait"))?
                .is_none()
        {
            return Ok(Ending::Gone);
        }
        let (info, cancel_sent) = match self.wait_stack(&job.id, creds, &stack).await? {
            Waited::Final(info, cancel_sent) => (info, cancel_sent),
            Waited::Gone => return Ok(Ending::Gone),
            Waited::Deleted => {
                return Err(stack_failure("wait", format!("stack {stack} disappeared")));
            }
        };
        let done = |instances: serde_json::Value| Done {
            result: json!({
                "stack_name": stack, "stack_id": info.stack_id, "operation": operation,
                "status": info.status, "no_changes": no_changes, "outputs": outputs(&info),
                "instances": instances,
            }),
            secret: None,
            request_id: None,
        };
        match info.status.as_str() {
            "CREATE_COMPLETE" | "UPDATE_COMPLETE" => {}
            "UPDATE_ROLLBACK_COMPLETE" if cancel_sent => {
                return Ok(Ending::Cancelled(done(json!([]))));
            }
            other => {
                return Err(stack_failure(
                    "wait",
                    format!(
                        "stack {stack} ended {other}: {}",
                        info.status_reason.as_deref().unwrap_or("no reason given")
                    ),
                ));
            }
        }
        if step("wait", StepState::Succeeded, None)
            .await
            .map_err(at("wait"))?
            .is_none()
            || step("require_imdsv2", StepState::Running, None)
                .await
                .map_err(at("require_imdsv2"))?
                .is_none()
        {
            return Ok(Ending::Gone);
        }
        let instances = if bp.has_instances {
            self.require_imdsv2(creds, &stack)
                .await
                .map_err(at("require_imdsv2"))?
        } else {
            json!([])
        };
        Ok(Ending::Succeeded(done(instances)))
    }

    /// Every instance of the stack must require IMDSv2. The blueprints' launch templates
    /// ask for it; an instance without it (a template that lost it; moto, which ignores
    /// launch templates in stacks) is switched to `HttpTokens=required`, and reported.
    async fn require_imdsv2(
        &self,
        creds: &TemporaryCredentials,
        stack: &str,
    ) -> Result<serde_json::Value, Failure> {
        let ids: Vec<String> = self
            .clients
            .cloudformation
            .stack_resources(creds, stack)
            .await?
            .into_iter()
            .filter(|r| r.resource_type == "AWS::EC2::Instance")
            .filter_map(|r| r.physical_id)
            .collect();
        if ids.is_empty() {
            return Ok(json!([]));
        }
        let mut out = Vec::new();
        for i in self.clients.ec2.describe_instances(creds, &ids).await? {
            let tokens = i.details["http_tokens"].as_str().unwrap_or("optional");
            let enforced = tokens != "required";
            if enforced {
                self.clients.ec2.require_imdsv2(creds, &i.id).await?;
            }
            out.push(
                json!({"id": i.id, "http_tokens": "required", "switched_by_rolegate": enforced}),
            );
        }
        Ok(json!(out))
    }

    /// `stack.apply` for a parsed spec's blueprint name.
    pub(super) fn blueprint(name: &str) -> StepResult<&'static Blueprint> {
        blueprint::find(name).map_err(at("submit"))
    }
}
