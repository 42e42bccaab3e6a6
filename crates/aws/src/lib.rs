//! The AWS calls rolegate makes (STS `AssumeRole` and `GetCallerIdentity`, S3 template
//! publishing, the console federation endpoint, for jobs EC2, CloudFormation and RDS, and
//! IAM for `revoke_sessions`),
//! implementing `rolegate-core`'s ports.
//! This crate must not depend on HTTP server or storage crates. Errors are mapped to
//! `StsError` (and, for jobs' service calls, `AwsError`) here and nowhere else.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use secrecy::{ExposeSecret as _, SecretString};

/// CloudFormation calls for stack jobs, with the job's own credentials.
mod cloudformation;
/// EC2 calls for jobs, with the job's own credentials.
mod ec2;
/// The console sign-in federation endpoint.
mod federation;
/// IAM calls on the customer's role (`revoke_sessions`).
mod iam;
/// RDS calls for inventory jobs, with the job's own credentials.
mod rds;
/// S3 template publishing.
mod s3;
/// STS calls and their error mapping.
mod sts;

pub use cloudformation::SdkCloudFormation;
pub use ec2::SdkEc2;
pub use federation::FederationClient;
pub use iam::SdkIam;
pub use rds::SdkRds;
pub use s3::S3TemplateStore;
pub use sts::SdkSts;

/// How to reach AWS.
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    pub region: String,
    /// Override for every service endpoint (tests and local emulators only).
    pub endpoint_url: Option<String>,
    /// Static provider credentials. Without them, the SDK's default chain is used (env,
    /// profile, SSO, container or instance role), which is what production should use.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<SecretString>,
    pub connect_timeout: Duration,
    pub operation_timeout: Duration,
    pub max_attempts: u32,
}

/// Loads the shared SDK configuration once at start-up.
pub async fn load(settings: &AwsSettings) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(settings.region.clone()))
        .retry_config(RetryConfig::standard().with_max_attempts(settings.max_attempts.max(1)))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(settings.connect_timeout)
                .operation_timeout(settings.operation_timeout)
                .build(),
        );
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let (Some(id), Some(secret)) = (&settings.access_key_id, &settings.secret_access_key) {
        loader = loader.credentials_provider(Credentials::new(
            id,
            secret.expose_secret(),
            None,
            None,
            "rolegate-config",
        ));
    }
    loader.load().await
}

/// The job engine's AWS clients, each calling with the job's own credentials.
#[must_use]
pub fn job_clients(config: &SdkConfig) -> rolegate_core::ports::aws::JobClients {
    rolegate_core::ports::aws::JobClients {
        ec2: std::sync::Arc::new(SdkEc2::new(config)),
        cloudformation: std::sync::Arc::new(SdkCloudFormation::new(config)),
        rds: std::sync::Arc::new(SdkRds::new(config)),
    }
}

/// SDK credentials from a job's vended ones (never the provider's).
pub(crate) fn job_credentials(
    creds: &rolegate_core::ports::aws::TemporaryCredentials,
) -> Credentials {
    Credentials::new(
        &creds.access_key_id,
        creds.secret_access_key.expose_secret(),
        Some(creds.session_token.expose_secret().to_owned()),
        None,
        "rolegate-job",
    )
}
