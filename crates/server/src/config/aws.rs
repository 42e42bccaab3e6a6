//! The `[aws]` and `[onboarding]` tables.

use std::time::Duration;

use rolegate_core::onboarding::OnboardingPolicy;
use secrecy::SecretString;
use serde::Deserialize;

use super::{ConfigError, bad, read_secret_file};

/// `[aws]`: how rolegate reaches AWS as the provider.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAws {
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub secret_access_key_file: Option<std::path::PathBuf>,
    pub connect_timeout_ms: Option<u64>,
    pub operation_timeout_ms: Option<u64>,
    pub max_attempts: Option<u32>,
}

/// `[onboarding]`: what customers' stacks are told, and how callbacks are judged.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOnboarding {
    pub provider_account_id: Option<String>,
    pub provider_principal_arn: Option<String>,
    pub callback_url: Option<String>,
    pub partition: Option<String>,
    pub region: Option<String>,
    pub template_bucket: Option<String>,
    pub template_public_base_url: Option<String>,
    pub s3_path_style: Option<bool>,
    pub template_url_ttl_secs: Option<u64>,
    pub access_level: Option<String>,
    pub max_session_duration: Option<u32>,
    pub require_external_id_enforcement: Option<bool>,
    pub verify_attempts: Option<u32>,
    pub verify_delay_ms: Option<u64>,
}

/// Validated `[aws]`.
#[derive(Debug, Clone)]
pub struct AwsConfig {
    pub settings: rolegate_aws::AwsSettings,
}

/// Validated `[onboarding]`.
#[derive(Debug, Clone)]
pub struct OnboardingConfig {
    pub provider_account_id: Option<String>,
    pub provider_principal_arn: Option<String>,
    pub callback_url: Option<String>,
    pub partition: String,
    pub region: String,
    pub template_bucket: Option<String>,
    pub template_public_base_url: Option<String>,
    pub s3_path_style: bool,
    pub template_url_ttl: Duration,
    pub access_level: String,
    pub max_session_duration: u32,
    pub policy: OnboardingPolicy,
}

fn is_http_url(u: &str) -> bool {
    (u.starts_with("https://") || u.starts_with("http://"))
        && u.len() > 8
        && !u.contains(char::is_whitespace)
}

impl RawAws {
    pub fn validate(self) -> Result<AwsConfig, ConfigError> {
        let region = self.region.unwrap_or_else(|| "us-east-1".to_owned());
        if region.is_empty()
            || !region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(bad("aws.region", "must be an AWS region such as us-east-1"));
        }
        if let Some(u) = &self.endpoint_url
            && !is_http_url(u)
        {
            return Err(bad("aws.endpoint_url", "must be an http(s) URL"));
        }
        let secret = match (self.secret_access_key, self.secret_access_key_file) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "aws.secret_access_key",
                    "set either secret_access_key or secret_access_key_file",
                ));
            }
            (Some(s), None) => Some(SecretString::from(s)),
            (None, Some(f)) => Some(SecretString::from(read_secret_file(
                "aws.secret_access_key_file",
                &f,
            )?)),
            (None, None) => None,
        };
        if self.access_key_id.is_some() != secret.is_some() {
            return Err(bad(
                "aws.access_key_id",
                "access_key_id and secret_access_key go together",
            ));
        }
        let max_attempts = self.max_attempts.unwrap_or(3);
        if !(1..=10).contains(&max_attempts) {
            return Err(bad("aws.max_attempts", "must be between 1 and 10"));
        }
        Ok(AwsConfig {
            settings: rolegate_aws::AwsSettings {
                region,
                endpoint_url: self.endpoint_url,
                access_key_id: self.access_key_id,
                secret_access_key: secret,
                connect_timeout: Duration::from_millis(self.connect_timeout_ms.unwrap_or(3_000)),
                operation_timeout: Duration::from_millis(
                    self.operation_timeout_ms.unwrap_or(10_000),
                ),
                max_attempts,
            },
        })
    }
}

impl RawOnboarding {
    pub fn validate(self, aws_region: &str) -> Result<OnboardingConfig, ConfigError> {
        if let Some(a) = &self.provider_account_id
            && (a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(bad(
                "onboarding.provider_account_id",
                "must be a 12-digit AWS account id",
            ));
        }
        if let Some(arn) = &self.provider_principal_arn {
            if !rolegate_core::onboarding::links::is_principal_arn(arn) {
                return Err(bad(
                    "onboarding.provider_principal_arn",
                    "must be an IAM role or user ARN (arn:aws:iam::ACCOUNT:role/NAME)",
                ));
            }
            if let Some(a) = &self.provider_account_id
                && !arn.contains(&format!(":iam::{a}:"))
            {
                return Err(bad(
                    "onboarding.provider_principal_arn",
                    "must be a principal of onboarding.provider_account_id",
                ));
            }
        }
        if let Some(u) = &self.callback_url
            && !is_http_url(u)
        {
            return Err(bad(
                "onboarding.callback_url",
                "must be an http(s) URL reachable from customer accounts",
            ));
        }
        let partition = self.partition.unwrap_or_else(|| "aws".to_owned());
        if !rolegate_core::onboarding::callback::PARTITIONS.contains(&partition.as_str()) {
            return Err(bad(
                "onboarding.partition",
                "must be aws, aws-cn or aws-us-gov",
            ));
        }
        let region = self.region.unwrap_or_else(|| aws_region.to_owned());
        let region_partition = if region.starts_with("cn-") {
            "aws-cn"
        } else if region.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        };
        if region_partition != partition {
            return Err(bad(
                "onboarding.region",
                format!(
                    "{region} is in partition {region_partition}, but onboarding.partition is {partition}"
                ),
            ));
        }
        let ttl = self.template_url_ttl_secs.unwrap_or(3_600);
        if !(60..=604_800).contains(&ttl) {
            return Err(bad(
                "onboarding.template_url_ttl_secs",
                "must be between 60 and 604800 (the SigV4 presign limit)",
            ));
        }
        let access_level = self.access_level.unwrap_or_else(|| "ReadOnly".to_owned());
        if !["ReadOnly", "PowerUser", "Administrator"].contains(&access_level.as_str()) {
            return Err(bad(
                "onboarding.access_level",
                "must be ReadOnly, PowerUser or Administrator",
            ));
        }
        let max_session_duration = self.max_session_duration.unwrap_or(3_600);
        if !(3_600..=43_200).contains(&max_session_duration) {
            return Err(bad(
                "onboarding.max_session_duration",
                "must be between 3600 and 43200",
            ));
        }
        let verify_attempts = self.verify_attempts.unwrap_or(3);
        if !(1..=10).contains(&verify_attempts) {
            return Err(bad(
                "onboarding.verify_attempts",
                "must be between 1 and 10",
            ));
        }
        Ok(OnboardingConfig {
            provider_account_id: self.provider_account_id,
            provider_principal_arn: self.provider_principal_arn,
            callback_url: self.callback_url,
            partition,
            region,
            template_bucket: self.template_bucket,
            template_public_base_url: self.template_public_base_url,
            s3_path_style: self.s3_path_style.unwrap_or(false),
            template_url_ttl: Duration::from_secs(ttl),
            access_level,
            max_session_duration,
            policy: OnboardingPolicy {
                require_external_id_enforcement: self
                    .require_external_id_enforcement
                    .unwrap_or(true),
                verify_attempts,
                verify_delay: Duration::from_millis(self.verify_delay_ms.unwrap_or(2_000)),
            },
        })
    }
}
