//! The job engine: work rolegate does inside a customer's account, as a record with a
//! state, steps and progress, run by workers that claim it with a lease in the store.
//!
//! - Every transition goes through `Records::update` with its audit event.
//! - A worker claims a job by writing `joblease/<id>` (expiry by the injected clock) and
//!   renews it while it works; a lapsed lease lets any replica resume the job, whose steps
//!   recognise their own earlier effect (the `rolegate:job` tag) instead of repeating it.
//! - `joblock/<org>/<target>` lets one job at a time change a target; later ones wait in
//!   `queued`. The lock, the lease and the queue marker go away in the job's final commit.
//! - Each job's AssumeRole carries a session policy built for its kind (`spec`).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::audit::AuditRecord;
use crate::error::{Code, Error};
use crate::ids::OrgName;
use crate::keyspace;
use crate::levels::CredentialPolicy;
use crate::model::{JobRecord, JobState, OrgStatus, SecretState, Step, StepState};
use crate::orgs::Orgs;
use crate::policy::Action;
use crate::ports::Txn;
use crate::ports::aws::{JobClients, Sts};
use crate::principal::Caller;
use crate::records::Records;

/// Cancelling a job that has not called AWS.
mod cancel;
/// A job's final commit.
mod finish;
/// Stopping a job whose grant was revoked or expired.
mod grant;
/// `inventory`.
mod inventory;
/// A step's result or failure.
mod outcome;
/// Running a job's steps.
mod run;
/// One-time secrets: the read, and the purge of unread ones.
mod secret;
/// What each kind does: specs, targets, steps, session policies.
pub mod spec;
/// The stack kinds: `stack.apply`, waiting, cancelling.
mod stack;
/// `stack.delete` and `stack.inspect`.
mod stack_delete;
/// The worker pool, claims and leases.
mod worker;

pub use spec::JobSpec;
pub use worker::{JobObserver, NoObserver};

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// Jobs this replica runs at once (0: this replica runs none).
    pub workers: usize,
    /// How long a claim lasts without renewal.
    pub lease: Duration,
    /// How often idle workers look for work.
    pub poll: Duration,
    /// How long a private key waits to be read before it is purged.
    pub secret_ttl: Duration,
    /// Test only: a pause after each step's AWS call, before its result is recorded.
    pub test_step_delay: Option<Duration>,
}

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            workers: 4,
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(250),
            secret_ttl: Duration::from_secs(15 * 60),
            test_step_delay: None,
        }
    }
}

/// A validated `POST /api/orgs/{org}/jobs`.
#[derive(Debug, Clone)]
pub struct CreateJobCommand {
    pub org: OrgName,
    pub spec: JobSpec,
    pub access_level: Option<String>,
    pub reason: Option<String>,
}

impl CreateJobCommand {
    pub fn parse(
        org: &str,
        kind: Option<&str>,
        spec: &Value,
        access_level: Option<&str>,
        reason: Option<&str>,
    ) -> Result<Self, Error> {
        let kind = kind.ok_or_else(|| Error::invalid("kind", "kind is required"))?;
        Ok(Self {
            org: OrgName::parse(org)?,
            spec: JobSpec::parse(kind, spec)?,
            access_level: access_level.map(str::to_owned),
            reason: crate::credentials::session::parse_reason(reason)?,
        })
    }
}

/// A page of jobs.
#[derive(Debug, Clone)]
pub struct JobPage {
    pub jobs: Vec<JobRecord>,
    pub next_cursor: Option<String>,
}

/// The jobs area.
#[derive(Debug, Clone)]
pub struct Jobs {
    records: Records,
    orgs: Orgs,
    sts: Arc<dyn Sts>,
    clients: JobClients,
    levels: Arc<CredentialPolicy>,
    settings: JobSettings,
    /// Every change this process makes to a job, for event streams (other replicas' changes
    /// are seen by reading the record).
    changes: tokio::sync::broadcast::Sender<JobRecord>,
}

fn job_id(now_ms: i64) -> String {
    format!("j{:012x}{}", now_ms.max(0), rolegate_crypto::short_id())
}

/// Whether `id` could be a job id (so a bad one is 404 without touching the store).
fn plausible_id(id: &str) -> bool {
    id.len() == 29 && id.starts_with('j') && id[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

impl Jobs {
    #[must_use]
    pub fn new(
        orgs: Orgs,
        sts: Arc<dyn Sts>,
        clients: JobClients,
        levels: Arc<CredentialPolicy>,
        settings: JobSettings,
    ) -> Self {
        Self {
            records: orgs.records().clone(),
            orgs,
            sts,
            clients,
            levels,
            settings,
            changes: tokio::sync::broadcast::channel(256).0,
        }
    }

    /// Every change this process makes to any job from now on.
    #[must_use]
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<JobRecord> {
        self.changes.subscribe()
    }

    /// Tells subscribers about a change that was committed.
    fn publish(&self, job: &JobRecord) {
        // Nobody listening is fine.
        let _ = self.changes.send(job.clone());
    }

    /// The same area with the AWS clients and settings of a process that runs jobs.
    #[must_use]
    pub fn with_clients(mut self, clients: JobClients, settings: JobSettings) -> Self {
        self.clients = clients;
        self.settings = settings;
        self
    }

    #[must_use]
    pub fn settings(&self) -> &JobSettings {
        &self.settings
    }

    /// Queues a job. The level is decided with the org first (another org's key: 403; a
    /// level not granted: 403 `access_level_not_allowed`; both audited), then the org must
    /// be validated (412, audited).
    #[tracing::instrument(skip_all, fields(org = %cmd.org, kind = cmd.spec.kind()))]
    pub async fn create(
        &self,
        caller: &Caller,
        cmd: &CreateJobCommand,
    ) -> Result<JobRecord, Error> {
        let level = self.levels.level(cmd.access_level.as_deref())?;
        let (org, grant) = self
            .orgs
            .load_granted(caller, Action::CreateJob, &cmd.org, Some(level))
            .await?;
        let kind = cmd.spec.kind();
        if org.value.status != OrgStatus::Validated {
            let status = serde_json::to_value(org.value.status).unwrap_or_default();
            let audit = AuditRecord::new(Action::CreateJob.name())
                .org(cmd.org.to_string())
                .failure(Code::OrgNotValidated.as_str())
                .details(serde_json::json!({"kind": kind, "status": status}));
            self.records.record(caller, audit).await?;
            let onboarding = format!("/api/orgs/{}/onboarding", cmd.org);
            return Err(Error::Precondition {
                code: Code::OrgNotValidated,
                message: format!(
                    "organisation {} is {}, not validated: onboard its AWS account before running jobs (GET {onboarding})",
                    cmd.org,
                    status.as_str().unwrap_or("not validated")
                ),
                details: serde_json::json!({"status": status, "onboarding": onboarding}),
            });
        }
        let now = self.records.now();
        let id = job_id(self.records.clock().now_ms());
        let job = JobRecord {
            id: id.clone(),
            org: cmd.org.clone(),
            kind: kind.to_owned(),
            spec: cmd.spec.to_value(),
            target: cmd.spec.target(),
            access_level: level.name().to_owned(),
            state: JobState::Queued,
            steps: cmd
                .spec
                .steps()
                .iter()
                .map(|name| Step {
                    name: (*name).to_owned(),
                    state: StepState::Pending,
                    started_at: None,
                    finished_at: None,
                    aws_request_id: None,
                })
                .collect(),
            progress: 0,
            error: None,
            session: None,
            requested_by: caller.principal.actor(),
            source_identity: crate::credentials::session::source_identity(&caller.principal),
            reason: cmd.reason.clone(),
            result: None,
            secret: SecretState::None,
            secret_expires_at: None,
            called_aws: false,
            attempts: 0,
            grant_id: grant.map(|g| g.value.id),
            created_at: now.clone(),
            updated_at: now,
            started_at: None,
            finished_at: None,
        };
        let key = keyspace::job(&id);
        let txn = Txn::new().absent(key.as_str());
        let txn = self.records.put(txn, &key, &job)?;
        let txn = self
            .records
            .put(txn, &keyspace::job_org(&cmd.org, &id), &())?
            .put(keyspace::job_queue(&id), Vec::new());
        let audit = AuditRecord::new(Action::CreateJob.name())
            .org(cmd.org.to_string())
            .target(id.clone())
            .details(serde_json::json!({
                "kind": kind,
                "target": job.target,
                "access_level": job.access_level,
                "reason": job.reason,
                "grant_id": job.grant_id,
                "source_identity": job.source_identity,
            }));
        if !self.records.commit(caller, txn, audit).await? {
            return Err(Error::Contention);
        }
        self.publish(&job);
        Ok(job)
    }

    /// The job, if `caller` may see it.
    pub async fn get(&self, caller: &Caller, id: &str) -> Result<JobRecord, Error> {
        self.load_for(caller, Action::ReadJob, id).await
    }

    async fn load_for(
        &self,
        caller: &Caller,
        action: Action,
        id: &str,
    ) -> Result<JobRecord, Error> {
        let not_found = Error::NotFound {
            what: keyspace::JOB.name,
        };
        if !plausible_id(id) {
            return Err(not_found);
        }
        let job = self
            .records
            .get(&keyspace::job(id))
            .await?
            .ok_or(not_found)?;
        self.orgs
            .load_with(caller, action, &job.value.org, None)
            .await?;
        Ok(job.value)
    }

    /// The org's jobs, oldest first, filtered by state and kind.
    pub async fn list(
        &self,
        caller: &Caller,
        org: &OrgName,
        state: Option<JobState>,
        kind: Option<&str>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<JobPage, Error> {
        self.orgs
            .load_with(caller, Action::ListJobs, org, None)
            .await?;
        if let Some(k) = kind
            && !spec::KINDS.contains(&k)
        {
            return Err(Error::invalid(
                "kind",
                format!("kind must be one of {}", spec::KINDS.join(", ")),
            ));
        }
        let prefix = keyspace::job_org_prefix(org);
        let after = cursor.map(|c| format!("{prefix}{c}"));
        let store = self.records.vault().store();
        let mut jobs = Vec::new();
        let mut after = after;
        let mut next_cursor = None;
        'pages: loop {
            let page = store.list(&prefix, after.as_deref(), 100).await?;
            for (k, _) in &page.items {
                let id = &k[prefix.len()..];
                let Some(job) = self.records.get(&keyspace::job(id)).await? else {
                    continue;
                };
                let job = job.value;
                if state.is_some_and(|s| s != job.state) || kind.is_some_and(|k| k != job.kind) {
                    continue;
                }
                jobs.push(job);
                if jobs.len() == limit {
                    next_cursor = Some(id.to_owned());
                    break 'pages;
                }
            }
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        Ok(JobPage { jobs, next_cursor })
    }
}

#[cfg(test)]
mod tests;
