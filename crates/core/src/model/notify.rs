//! Notification delivery state: the follower's cursor (and lease), the outbox, dead
//! letters, the addresses each principal has used, and chat links.

use serde::{Deserialize, Serialize};

use crate::ids::UserId;
use crate::ports::notify::Notification;

/// How far the notifier has read the audit log, and which replica holds the right to
/// deliver (one at a time; the lease lapses by the clock).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NotifyCursor {
    /// The last audit sequence number turned into outbox entries.
    pub seq: u64,
    /// The replica holding the lease.
    pub holder: String,
    /// Unix milliseconds at which the lease lapses.
    pub lease_until_ms: i64,
}

/// One notification for one sink, waiting to be delivered (or, as a dead letter, given up).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OutboxEntry {
    /// The sink's name (`slack`, `webhook`).
    pub sink: String,
    pub notification: Notification,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Unix milliseconds before which it is not tried again.
    pub next_attempt_ms: i64,
    /// Why the last attempt failed (a status or network failure; never a URL).
    pub last_error: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

/// The source addresses a principal recently took credentials from (most recent last).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SeenAddresses {
    pub addresses: Vec<String>,
}

/// A chat user linked to an operator by an admin.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChatLink {
    pub user_id: UserId,
    pub linked_by: String,
    /// RFC 3339.
    pub linked_at: String,
}
