//! The RDS calls jobs make (inventory), with the job's own credentials.

use async_trait::async_trait;

use super::TemporaryCredentials;
use super::ec2::{AwsError, InventoryItem};

/// RDS.
#[async_trait]
pub trait Rds: Send + Sync + std::fmt::Debug + 'static {
    /// Every DB instance, with its tags.
    async fn describe_db_instances(
        &self,
        creds: &TemporaryCredentials,
    ) -> Result<Vec<InventoryItem>, AwsError>;
}

/// The RDS of a process that runs no jobs: every call is `Unavailable`.
#[derive(Debug, Default)]
pub struct NoRds;

#[async_trait]
impl Rds for NoRds {
    async fn describe_db_instances(
        &self,
        _: &TemporaryCredentials,
    ) -> Result<Vec<InventoryItem>, AwsError> {
        Err(AwsError::Unavailable(
            "no RDS client in this process".into(),
        ))
    }
}
