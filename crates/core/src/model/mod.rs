//! The records rolegate keeps, and their public views. Plain data: the services decide how
//! they change, `keyspace` says where each lives.

/// Just-in-time access requests and the grants they become.
pub mod access;
/// The audit chain's events and head.
pub mod audit;
/// Cached credentials.
pub mod credential;
/// Jobs: the record, its steps, leases and one-time secrets.
pub mod job;
/// Notification delivery: cursor, outbox, dead letters, seen addresses, chat links.
pub mod notify;
/// Organisations and their API-key index.
pub mod org;
/// Secret text inside a sealed record.
pub mod secret;
/// Portal sessions.
pub mod session;
/// Operators and their token index.
pub mod user;
/// Trust anchors and workload profiles.
pub mod workload;

pub use access::{
    AccessRequestRecord, AccessState, Approval, ApproverChannel, CustomerApproval,
    CustomerApprover, CustomerDelivery, CustomerLink, OperatorRevocation, PendingRevocation,
    Review, RevocationState, RevokedBy,
};
pub use audit::{AuditEvent, AuditHead, Outcome};
pub use credential::CachedCredentials;
pub use job::{
    JobError, JobLease, JobRecord, JobSecret, JobSession, JobState, SecretState, Step, StepState,
};
pub use notify::{ChatLink, NotifyCursor, OutboxEntry, SeenAddresses};
pub use org::{ApiKeyEntry, Org, OrgRecord, OrgStatus};
pub use secret::Secret;
pub use session::{OidcPending, SessionRecord};
pub use user::{TokenEntry, User, UserRecord};
pub use workload::{
    AttributeMapping, CertField, Condition, StoredCrl, TrustAnchorRecord, WorkloadProfileRecord,
};
