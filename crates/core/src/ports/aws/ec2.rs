//! The EC2 calls jobs make, always with the credentials a job's own AssumeRole vended, so
//! that the session policy built for the job bounds what they can do.

use std::fmt;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Serialize;

use super::TemporaryCredentials;
use crate::model::Secret;

/// How an AWS service call failed, with the service's own error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AwsError {
    /// The role or the session policy does not allow the call (`UnauthorizedOperation`,
    /// `AccessDenied`, …).
    AccessDenied {
        code: String,
        message: String,
        request_id: Option<String>,
    },
    /// The service throttled us.
    Throttled { code: String },
    /// Network failure or timeout after bounded retries (detail for the log).
    Unavailable(String),
    /// Any other error the service returned.
    Service {
        code: String,
        message: String,
        request_id: Option<String>,
    },
}

impl AwsError {
    /// The service's error code, when it answered.
    #[must_use]
    pub fn aws_code(&self) -> Option<&str> {
        match self {
            Self::AccessDenied { code, .. }
            | Self::Throttled { code }
            | Self::Service { code, .. } => Some(code),
            Self::Unavailable(_) => None,
        }
    }

    /// The request id AWS gave the failed call, when it answered.
    #[must_use]
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Self::AccessDenied { request_id, .. } | Self::Service { request_id, .. } => {
                request_id.as_deref()
            }
            Self::Throttled { .. } | Self::Unavailable(_) => None,
        }
    }
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AccessDenied { code, message, .. } => write!(f, "{code}: {message}"),
            Self::Throttled { code } => write!(f, "{code}: throttled"),
            Self::Unavailable(m) => write!(f, "AWS unavailable: {m}"),
            Self::Service { code, message, .. } => write!(f, "{code}: {message}"),
        }
    }
}

impl std::error::Error for AwsError {}

/// The key type of a key pair rolegate creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Ed25519,
    Rsa,
}

/// A key pair as EC2 describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPairInfo {
    pub name: String,
    pub key_pair_id: String,
    pub fingerprint: String,
    /// Its tags, as `(key, value)`.
    pub tags: Vec<(String, String)>,
}

/// A key pair EC2 just made, with its private key (returned once, by AWS, ever).
#[derive(Debug)]
pub struct CreatedKeyPair {
    pub info: KeyPairInfo,
    pub private_key: Secret,
    pub request_id: Option<String>,
}

/// One resource of an inventory: its id, state and tags, and what else matters about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InventoryItem {
    pub id: String,
    pub state: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// Kind-specific fields (an instance's type, subnet, IPs and `http_tokens`, …).
    pub details: serde_json::Value,
}

/// EC2.
#[async_trait]
pub trait Ec2: Send + Sync + fmt::Debug + 'static {
    /// CreateKeyPair, tagging the key pair with `tags` in the same call.
    async fn create_key_pair(
        &self,
        creds: &TemporaryCredentials,
        name: &str,
        key_type: KeyType,
        tags: &[(String, String)],
    ) -> Result<CreatedKeyPair, AwsError>;

    /// ImportKeyPair, tagging it in the same call. Returns the key pair and the request id.
    async fn import_key_pair(
        &self,
        creds: &TemporaryCredentials,
        name: &str,
        public_key: &str,
        tags: &[(String, String)],
    ) -> Result<(KeyPairInfo, Option<String>), AwsError>;

    /// The key pair called `name`, if it exists.
    async fn find_key_pair(
        &self,
        creds: &TemporaryCredentials,
        name: &str,
    ) -> Result<Option<KeyPairInfo>, AwsError>;

    /// DeleteKeyPair by name (EC2 answers success for a name that does not exist). Returns
    /// the request id.
    async fn delete_key_pair(
        &self,
        creds: &TemporaryCredentials,
        name: &str,
    ) -> Result<Option<String>, AwsError>;

    /// Every VPC.
    async fn describe_vpcs(
        &self,
        creds: &TemporaryCredentials,
    ) -> Result<Vec<InventoryItem>, AwsError>;

    /// The instances `ids` (every instance when empty), terminated ones left out. Their
    /// `details` carry `http_tokens` (`required` when IMDSv2 is enforced).
    async fn describe_instances(
        &self,
        creds: &TemporaryCredentials,
        ids: &[String],
    ) -> Result<Vec<InventoryItem>, AwsError>;

    /// Every key pair, with its tags.
    async fn list_key_pairs(
        &self,
        creds: &TemporaryCredentials,
    ) -> Result<Vec<InventoryItem>, AwsError>;

    /// ModifyInstanceMetadataOptions: `HttpTokens=required` (IMDSv2 only). Returns the
    /// request id.
    async fn require_imdsv2(
        &self,
        creds: &TemporaryCredentials,
        instance_id: &str,
    ) -> Result<Option<String>, AwsError>;
}

/// The EC2 of a process that runs no jobs (offline commands): every call is `Unavailable`.
#[derive(Debug, Default)]
pub struct NoEc2;

#[async_trait]
impl Ec2 for NoEc2 {
    async fn create_key_pair(
        &self,
        _: &TemporaryCredentials,
        _: &str,
        _: KeyType,
        _: &[(String, String)],
    ) -> Result<CreatedKeyPair, AwsError> {
        Err(AwsError::Unavailable(
            "no EC2 client in this process".into(),
        ))
    }
    async fn import_key_pair(
        &self,
        _: &TemporaryCredentials,
        _: &str,
        _: &str,
        _: &[(String, String)],
    ) -> Result<(KeyPairInfo, Option<String>), AwsError> {
        Err(AwsError::Unavailable(
            "no EC2 client in this process".into(),
        ))
    }
    async fn find_key_pair(
        &self,
        _: &TemporaryCredentials,
        _: &str,
    ) -> Result<Option<KeyPairInfo>, AwsError> {
        Err(AwsError::Unavailable(
            "no EC2 client in this process".into(),
        ))
    }
    async fn delete_key_pair(
        &self,
        _: &TemporaryCredentials,
        _: &str,
    ) -> Result<Option<String>, AwsError> {
        Err(AwsError::Unavailable(
            "no EC2 client in this process".into(),
        ))
    }
    async fn describe_vpcs(
        &self,
        _: &TemporaryCredentials,
    ) -> Result<Vec<InventoryItem>, AwsError> {
        Err(AwsError::Unavailable(
            "no EC2 client in this process".into(),
        ))
    }
    async fn describe_instances(
        &self,
        _: &TemporaryCredentials,
        _: &[String],
    ) -> Result<Vec<InventoryItem>, AwsError> {
        Err(AwsError::Unavailable(
            "no EC2 client in this process".into(),
        ))
    }
    async fn list_key_pairs(
        &self,
        _: &TemporaryCredentials,
    ) -> Result<Vec<InventoryItem>, AwsError> {
        Err(AwsError::Unavailable(
            "no EC2 client in this process".into(),
        ))
    }
    async fn require_imdsv2(
        &self,
        _: &TemporaryCredentials,
        _: &str,
    ) -> Result<Option<String>, AwsError> {
        Err(AwsError::Unavailable(
            "no EC2 client in this process".into(),
        ))
    }
}
