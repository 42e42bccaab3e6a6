//! Where notifications go: a Slack incoming webhook, a signed generic webhook (adapters in
//! the server crate). The port knows nothing of HTTP; an adapter turns a [`Notification`]
//! into its sink's format and reports whether the sink took it.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// How loud a notification is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    /// Break-glass and blocked sign-ins: meant to wake someone.
    Critical,
}

/// What a chat sink may offer under a new request: buttons, or a link when the request is
/// longer than the rule's `chat_approval_max_duration_secs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Decide {
    /// Approve/Deny buttons carrying the request id.
    Buttons { request_id: String },
    /// Too long to approve from chat: decide through the API or the portal.
    Link { request_id: String },
}

/// One message, with the fields of an Identity Center login alert (status, user,
/// org/environment, source IP, action taken, time), a title and what to do about it.
/// Never carries a secret: everything here comes from an audit event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// `<audit seq>-<n>`: stable across retries, so a receiver can drop duplicates.
    pub id: String,
    /// `access.requested`, `access.approved`, `access.denied`, `access.expired`,
    /// `access.revoked`, `access.break_glass`, `network.blocked`, `credentials.new_ip`,
    /// `auth.failure_burst`.
    pub event: String,
    pub severity: Severity,
    pub title: String,
    /// `pending`, `approved`, `denied`, `expired`, `revoked`, `active`, `blocked`, `alert`.
    pub status: String,
    /// Who did it (`user:alice`, an API key, a source address for failed logins).
    pub user: String,
    pub org: Option<String>,
    /// The access level (the "environment" of the grant).
    pub environment: Option<String>,
    pub source_ip: Option<String>,
    /// What rolegate did about it.
    pub action_taken: String,
    /// RFC 3339, from the audit event.
    pub time: String,
    /// Who should act or be told (operator ids).
    pub recipients: Vec<String>,
    /// The API or portal address of the thing concerned, when there is one.
    pub link: Option<String>,
    pub decide: Option<Decide>,
    /// The audit event it was made from.
    pub audit_seq: u64,
}

/// Why a delivery failed. The text names a status or a kind of network failure, never a
/// URL (a Slack webhook URL is a secret) or a body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DeliveryError(pub String);

/// A notification sink.
#[async_trait]
pub trait Notifier: Send + Sync + fmt::Debug + 'static {
    /// A short stable name (`slack`, `webhook`): part of outbox keys and dead letters.
    fn name(&self) -> &'static str;
    /// Delivers one notification; an error is retried with backoff.
    async fn deliver(&self, notification: &Notification) -> Result<(), DeliveryError>;
}
