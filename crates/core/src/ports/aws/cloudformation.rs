//! The CloudFormation calls stack jobs make, with the job's own credentials.

use async_trait::async_trait;
use serde::Serialize;

use super::TemporaryCredentials;
use super::ec2::AwsError;

/// A stack as `DescribeStacks` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StackInfo {
    pub stack_id: String,
    pub name: String,
    pub status: String,
    pub status_reason: Option<String>,
    /// `(key, value)`, in the template's order.
    pub outputs: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
}

/// One stack event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StackEvent {
    pub event_id: String,
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: Option<String>,
    /// RFC 3339.
    pub timestamp: String,
    /// The `ClientRequestToken` of the operation that caused it (AWS sets it; moto does not).
    pub token: Option<String>,
}

/// One resource of a stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StackResource {
    pub logical_id: String,
    pub physical_id: Option<String>,
    pub resource_type: String,
    pub status: String,
}

/// A `CreateStack` or `UpdateStack`.
#[derive(Debug, Clone, Copy)]
pub struct StackRequest<'a> {
    pub name: &'a str,
    pub template_body: &'a str,
    pub parameters: &'a [(String, String)],
    pub tags: &'a [(String, String)],
    /// Derived from the job and its step.
    pub token: &'a str,
}

/// What a create or update started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    Started {
        request_id: Option<String>,
    },
    /// An update that changes nothing ("No updates are to be performed").
    NoChanges,
}

/// CloudFormation.
#[async_trait]
pub trait CloudFormation: Send + Sync + std::fmt::Debug + 'static {
    /// The stack called `name`, unless it does not exist (or was deleted).
    async fn describe_stack(
        &self,
        creds: &TemporaryCredentials,
        name: &str,
    ) -> Result<Option<StackInfo>, AwsError>;
    /// Every live stack whose name starts with `prefix`.
    async fn list_stacks(
        &self,
        creds: &TemporaryCredentials,
        prefix: &str,
    ) -> Result<Vec<StackInfo>, AwsError>;
    async fn create_stack(
        &self,
        creds: &TemporaryCredentials,
        req: &StackRequest<'_>,
    ) -> Result<Submitted, AwsError>;
    async fn update_stack(
        &self,
        creds: &TemporaryCredentials,
        req: &StackRequest<'_>,
    ) -> Result<Submitted, AwsError>;
    /// DeleteStack (success for a stack that does not exist). Returns the request id.
    async fn delete_stack(
        &self,
        creds: &TemporaryCredentials,
        name: &str,
        token: &str,
    ) -> Result<Option<String>, AwsError>;
    /// CancelUpdateStack. Returns the request id.
    async fn cancel_update_stack(
        &self,
        creds: &TemporaryCredentials,
        name: &str,
        token: &str,
    ) -> Result<Option<String>, AwsError>;
    /// The stack's events, newest first (at most `limit`).
    async fn stack_events(
        &self,
        creds: &TemporaryCredentials,
        name: &str,
        limit: usize,
    ) -> Result<Vec<StackEvent>, AwsError>;
    async fn stack_resources(
        &self,
        creds: &TemporaryCredentials,
        name: &str,
    ) -> Result<Vec<StackResource>, AwsError>;
}

/// The CloudFormation of a process that runs no jobs: every call is `Unavailable`.
#[derive(Debug, Default)]
pub struct NoCloudFormation;

fn none<T>() -> Result<T, AwsError> {
    Err(AwsError::Unavailable(
        "no CloudFormation client in this process".into(),
    ))
}

#[async_trait]
impl CloudFormation for NoCloudFormation {
    async fn describe_stack(
        &self,
        _: &TemporaryCredentials,
        _: &str,
    ) -> Result<Option<StackInfo>, AwsError> {
        none()
    }
    async fn list_stacks(
        &self,
        _: &TemporaryCredentials,
        _: &str,
    ) -> Result<Vec<StackInfo>, AwsError> {
        none()
    }
    async fn create_stack(
        &self,
        _: &TemporaryCredentials,
        _: &StackRequest<'_>,
    ) -> Result<Submitted, AwsError> {
        none()
    }
    async fn update_stack(
        &self,
        _: &TemporaryCredentials,
        _: &StackRequest<'_>,
    ) -> Result<Submitted, AwsError> {
        none()
    }
    async fn delete_stack(
        &self,
        _: &TemporaryCredentials,
        _: &str,
        _: &str,
    ) -> Result<Option<String>, AwsError> {
        none()
    }
    async fn cancel_update_stack(
        &self,
        _: &TemporaryCredentials,
        _: &str,
        _: &str,
    ) -> Result<Option<String>, AwsError> {
        none()
    }
    async fn stack_events(
        &self,
        _: &TemporaryCredentials,
        _: &str,
        _: usize,
    ) -> Result<Vec<StackEvent>, AwsError> {
        none()
    }
    async fn stack_resources(
        &self,
        _: &TemporaryCredentials,
        _: &str,
    ) -> Result<Vec<StackResource>, AwsError> {
        none()
    }
}
