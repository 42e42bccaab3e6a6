//! rolegate's domain: validated identifiers, records, the policy, the area services, and
//! the ports (traits) that adapters implement. This crate must not depend on HTTP, Redis,
//! SQLite or AWS crates.
//!
//! Layers, each using only those below it: `ids`, `clock`, `ports` and `error` → `model`
//! → `keyspace` → `vault` → `audit` → `principal`, `levels`, `policy` → `records` (the one
//! update loop) → the areas (`users`, `orgs`, then `access`, `onboarding`, `credentials`,
//! `audit_log`, `jobs`, `sessions`) → `services` (the wiring).
//!
//! The `openapi` feature (used by the server) derives `utoipa::ToSchema` on the public views
//! (`Org`, `User`, `AuditEvent`, …) so the API document is generated from the very types that
//! are serialised; utoipa only builds schema values and does no I/O.

/// Just-in-time access: requests, approvals, grants, revocation, break-glass.
pub mod access;
/// The hash-chained audit log: appends, group commit, verification.
pub mod audit;
/// The audit area: queries, export, verification as a caller.
pub mod audit_log;
/// The injected clock.
pub mod clock;
/// The credentials area: vending, cache, console sign-in, validation.
pub mod credentials;
/// Decoded records kept beside their sealed bytes: the lookup cache (ADR 0017, 0018).
pub mod decoded;
/// The one table of error codes, and the domain error type.
pub mod error;
/// The customer's access history: an org's credential, console, job and access events.
pub mod history;
/// Idempotency-Key records.
pub mod idempotency;
/// Validated identifiers (`OrgName`, `UserId`, `AccountId`, `Role`).
pub mod ids;
/// The job engine: jobs in customer accounts, their workers, leases and locks.
pub mod jobs;
/// Every record family and its keys.
pub mod keyspace;
/// Access levels and who may use them.
pub mod levels;
/// The records rolegate keeps, and their public views.
pub mod model;
/// Source-address allowlists (CIDR blocks).
pub mod network;
/// Notifications: the audit-log follower, outbox, dead letters, approve-from-chat.
pub mod notify;
/// The onboarding area: signed callbacks, binding, links.
pub mod onboarding;
/// The organisations area: registration, lookup, key rotation, offboarding.
pub mod orgs;
/// The one authorization policy.
pub mod policy;
/// Traits implemented by storage and AWS adapters.
pub mod ports;
/// Callers and per-request context.
pub mod principal;
/// Typed reads, the update loop, audited commits and decisions.
pub mod records;
/// Queuing `revoke_sessions` denies, for every area that revokes something.
pub mod revocations;
/// The wiring of the area services.
pub mod services;
/// Portal sessions: sign-in, resolution with timeouts, sign-out.
pub mod sessions;
/// The operators area.
pub mod users;
/// The sealing barrier between services and storage.
pub mod vault;
/// Workload identity: trust anchors, profiles, `POST /sessions` (issue 14).
pub mod workload;

/// In-memory test doubles: a `KvStore` that passes the store conformance suite, and an STS
/// that is never reached.
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use error::{Code, Error};
pub use principal::{Caller, Principal, RequestContext};
pub use services::Services;
