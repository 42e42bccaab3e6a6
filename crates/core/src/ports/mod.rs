//! Ports: the traits that adapters outside `core` implement.

/// STS and S3 calls implemented by `rolegate-aws`.
pub mod aws;
/// Outgoing mail (customer approvers reached by email), implemented by the server over SMTP.
pub mod mail;
/// Notification sinks (Slack, signed webhooks) implemented by the server.
pub mod notify;
/// Storage primitives implemented by `rolegate-store`.
pub mod store;
/// Signed outgoing webhooks (customer approvers), implemented by the server.
pub mod webhook;

pub use store::{
    CommitFuture, Condition, KvStore, Page, RateDecision, RateLimit, StoreError, Txn, Write, gcra,
};
pub use store::{first_refused, gcra_all};
