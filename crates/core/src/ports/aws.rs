//! The AWS port: the calls rolegate makes to STS and S3, in domain terms. The SDK adapter
//! lives in `rolegate-aws`; tests may also provide their own.

use std::fmt;

use async_trait::async_trait;
use secrecy::SecretString;
use time::OffsetDateTime;

/// A validated `AssumeRole` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumeRoleRequest {
    pub role_arn: String,
    pub external_id: Option<String>,
    pub session_name: String,
    pub source_identity: Option<String>,
    pub tags: Vec<(String, String)>,
    /// Inline session policy JSON.
    pub policy: Option<String>,
    pub policy_arns: Vec<String>,
    pub duration_seconds: i32,
}

/// Temporary credentials. The secret parts are `SecretString`s: no `Display`, redacted `Debug`.
#[derive(Debug, Clone)]
pub struct TemporaryCredentials {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub session_token: SecretString,
    pub expiration: OffsetDateTime,
    pub assumed_role_arn: String,
}

/// Who a set of credentials belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    pub arn: String,
    pub account: String,
}

/// How an STS call failed, in the terms rolegate maps to HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StsError {
    /// The role refused us (deleted, trust policy changed, ExternalId mismatch).
    AccessDenied(String),
    /// STS throttled us.
    Throttled,
    /// The session policy is too large after packing.
    PolicyTooLarge(String),
    /// The provider's own credentials are missing, invalid or expired.
    ProviderCredentials(String),
    /// The credentials being checked are not valid (GetCallerIdentity).
    InvalidCredentials(String),
    /// Network failure or timeout after bounded retries.
    Unavailable(String),
    /// STS refused a parameter (e.g. a duration above the role's MaxSessionDuration).
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The console federation endpoint failed (detail for the log only).
    Federation(String),
    /// Any other error STS returned, with its code.
    Other { code: String, message: String },
}

impl fmt::Display for StsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AccessDenied(m) => write!(f, "access denied: {m}"),
            Self::Throttled => f.write_str("throttled"),
            Self::PolicyTooLarge(m) => write!(f, "session policy too large: {m}"),
            Self::ProviderCredentials(m) => write!(f, "provider credentials unavailable: {m}"),
            Self::InvalidCredentials(m) => write!(f, "invalid credentials: {m}"),
            Self::Unavailable(m) => write!(f, "STS unavailable: {m}"),
            Self::Invalid { field, message } => write!(f, "invalid {field}: {message}"),
            Self::Federation(m) => write!(f, "federation endpoint: {m}"),
            Self::Other { code, message } => write!(f, "{code}: {message}"),
        }
    }
}

impl std::error::Error for StsError {}

/// STS.
#[async_trait]
pub trait Sts: Send + Sync + fmt::Debug + 'static {
    async fn assume_role(&self, req: &AssumeRoleRequest) -> Result<TemporaryCredentials, StsError>;

    /// GetCallerIdentity with rolegate's own credentials: who rolegate is in the provider's
    /// account (the principal customer roles trust).
    async fn own_identity(&self) -> Result<CallerIdentity, StsError>;

    /// GetCallerIdentity with the given credentials (not the provider's).
    async fn caller_identity(
        &self,
        access_key_id: &str,
        secret_access_key: &SecretString,
        session_token: Option<&SecretString>,
    ) -> Result<CallerIdentity, StsError>;
}

/// The console federation endpoint (`getSigninToken`, then `login`).
#[async_trait]
pub trait Federation: Send + Sync + fmt::Debug + 'static {
    /// Exchanges `creds` at `federation_url` for a sign-in token and returns the login URL
    /// with `Issuer` and `Destination`.
    async fn signin_url(
        &self,
        federation_url: &str,
        issuer: &str,
        destination: &str,
        creds: &TemporaryCredentials,
    ) -> Result<String, StsError>;
}

/// Where onboarding templates are published.
#[async_trait]
pub trait TemplateStore: Send + Sync + fmt::Debug + 'static {
    /// Uploads `body` under `key` and returns a URL CloudFormation can fetch: presigned for
    /// `expires_in` seconds, or plain when the bucket is public.
    async fn publish(
        &self,
        key: &str,
        body: &[u8],
        expires_in: std::time::Duration,
    ) -> Result<String, StsError>;
}

/// EC2, called with a job's own narrowed session (never the provider's credentials).
pub mod ec2;

/// CloudFormation, called with a job's own narrowed session.
pub mod cloudformation;

/// RDS (inventory), called with a job's own narrowed session.
pub mod rds;

/// IAM on the customer's role: the `rolegate-revocations` inline policy.
pub mod iam;

/// The AWS clients a process that runs jobs holds.
#[derive(Debug, Clone)]
pub struct JobClients {
    pub ec2: std::sync::Arc<dyn ec2::Ec2>,
    pub cloudformation: std::sync::Arc<dyn cloudformation::CloudFormation>,
    pub rds: std::sync::Arc<dyn rds::Rds>,
}

impl JobClients {
    /// The clients of a process that runs no jobs: every call is `Unavailable`.
    #[must_use]
    pub fn none() -> Self {
        Self {
            ec2: std::sync::Arc::new(ec2::NoEc2),
            cloudformation: std::sync::Arc::new(cloudformation::NoCloudFormation),
            rds: std::sync::Arc::new(rds::NoRds),
        }
    }
}
