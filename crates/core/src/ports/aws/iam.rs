//! The IAM calls `revoke_sessions` makes on the customer's role: read, write and delete
//! one inline policy of that role, with credentials of the role itself (assumed with the
//! org's ExternalId and a session policy that allows only these three calls on it).

use async_trait::async_trait;

use super::TemporaryCredentials;
use super::ec2::AwsError;

/// IAM, narrowed to one role's inline policies.
#[async_trait]
pub trait Iam: Send + Sync + std::fmt::Debug + 'static {
    /// The policy's document (decoded JSON text), or `None` when the role has no inline
    /// policy of that name.
    async fn get_role_policy(
        &self,
        creds: &TemporaryCredentials,
        role_name: &str,
        policy_name: &str,
    ) -> Result<Option<String>, AwsError>;

    /// Creates or replaces the inline policy.
    async fn put_role_policy(
        &self,
        creds: &TemporaryCredentials,
        role_name: &str,
        policy_name: &str,
        document: &str,
    ) -> Result<(), AwsError>;

    /// Deletes the inline policy (absent already is fine).
    async fn delete_role_policy(
        &self,
        creds: &TemporaryCredentials,
        role_name: &str,
        policy_name: &str,
    ) -> Result<(), AwsError>;
}

/// The IAM of a process that writes no revocations: every call is `Unavailable`.
#[derive(Debug, Default)]
pub struct NoIam;

fn none() -> AwsError {
    AwsError::Unavailable("no IAM client in this process".into())
}

#[async_trait]
impl Iam for NoIam {
    async fn get_role_policy(
        &self,
        _: &TemporaryCredentials,
        _: &str,
        _: &str,
    ) -> Result<Option<String>, AwsError> {
        Err(none())
    }

    async fn put_role_policy(
        &self,
        _: &TemporaryCredentials,
        _: &str,
        _: &str,
        _: &str,
    ) -> Result<(), AwsError> {
        Err(none())
    }

    async fn delete_role_policy(
        &self,
        _: &TemporaryCredentials,
        _: &str,
        _: &str,
    ) -> Result<(), AwsError> {
        Err(none())
    }
}
