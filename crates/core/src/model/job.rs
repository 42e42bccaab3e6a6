//! The job record (sealed under `job/<id>`) and its parts. It is also the public view: it
//! holds no secret (a created key pair's private key lives in its own sealed record).

use serde::{Deserialize, Serialize};

use crate::ids::OrgName;
use crate::model::Secret;

/// Where a job is in its life.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Cancelling,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    /// Whether the job has ended.
    #[must_use]
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Cancelling => "cancelling",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses a `state` filter.
    pub fn parse(s: &str) -> Result<Self, crate::Error> {
        serde_json::from_value(serde_json::Value::from(s)).map_err(|_| {
            crate::Error::invalid(
                "state",
                "state must be one of queued, running, cancelling, succeeded, failed, cancelled",
            )
        })
    }
}

/// Where a step is.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Pending,
    Running,
    Succeeded,
    Failed,
    Skipped,
}

/// One step of a job.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub name: String,
    pub state: StepState,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// The request id AWS gave the step's call.
    pub aws_request_id: Option<String>,
}

/// Why a job failed.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    /// One of rolegate's error codes (`aws_access_denied`, `assume_role_denied`, …).
    pub code: String,
    pub message: String,
    /// The step that failed.
    pub step: Option<String>,
    /// The AWS error code, when AWS answered.
    pub aws_code: Option<String>,
}

/// The AWS session a job acted with.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSession {
    pub assumed_role_arn: String,
    pub source_identity: String,
    /// SHA-256 (hex) of the session policy the job's AssumeRole carried, byte for byte.
    pub session_policy_sha256: String,
}

/// Whether a job has a secret to hand out, and what became of it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SecretState {
    #[default]
    None,
    /// Readable once at `GET /api/jobs/{id}/secret`.
    Available,
    Retrieved,
    /// Not read in time, and deleted.
    Purged,
}

/// A job (sealed under `job/<id>`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub org: OrgName,
    /// `keypair.create`, `keypair.import`, `keypair.delete`.
    pub kind: String,
    /// The validated spec.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub spec: serde_json::Value,
    /// What the job changes: jobs on one target of one org run one at a time.
    pub target: String,
    pub access_level: String,
    pub state: JobState,
    pub steps: Vec<Step>,
    /// 0 to 100.
    pub progress: u8,
    pub error: Option<JobError>,
    pub session: Option<JobSession>,
    /// The actor that asked for it.
    pub requested_by: String,
    /// The SourceIdentity its sessions carry (the requester's).
    pub source_identity: String,
    pub reason: Option<String>,
    /// What it made (`key_pair_id`, `fingerprint`, …).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub result: Option<serde_json::Value>,
    #[serde(default)]
    pub secret: SecretState,
    /// When an unread secret is purged.
    pub secret_expires_at: Option<String>,
    /// Whether a step may have called AWS to change something (then it cannot be
    /// cancelled).
    #[serde(default)]
    pub called_aws: bool,
    /// How many times a worker took it up (more than one after a lapsed lease).
    #[serde(default)]
    pub attempts: u32,
    /// The access grant the job was created under (a level that needs approval): the
    /// worker stops the job (`grant_ended`) once that grant is revoked or expires.
    #[serde(default)]
    pub grant_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

impl JobRecord {
    /// The index of the first step that has not succeeded.
    #[must_use]
    pub fn next_step(&self) -> Option<usize> {
        self.steps
            .iter()
            .position(|s| !matches!(s.state, StepState::Succeeded | StepState::Skipped))
    }

    /// Progress from the steps done.
    #[must_use]
    pub fn computed_progress(&self) -> u8 {
        let done = self
            .steps
            .iter()
            .filter(|s| matches!(s.state, StepState::Succeeded | StepState::Skipped))
            .count();
        let total = self.steps.len().max(1);
        u8::try_from(done * 100 / total).unwrap_or(100)
    }
}

/// A private key waiting to be read once (sealed under `jobsec/<id>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobSecret {
    pub org: OrgName,
    pub private_key: Secret,
    /// Unix milliseconds after which it is purged.
    pub expires_at_ms: i64,
}

/// A worker's claim on a job (sealed under `joblease/<id>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobLease {
    pub worker: String,
    /// Unix milliseconds, by the injected clock.
    pub expires_at_ms: i64,
}
