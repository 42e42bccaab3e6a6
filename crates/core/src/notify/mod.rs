//! Notifications: an audit-log follower that turns the events worth telling someone about
//! (new requests, decisions, expiry, break-glass, revocations, allowlist misses, failed-login
//! bursts, credentials from a new address) into messages for the configured sinks, and
//! delivers them durably (ADR 0019).
//!
//! - Every such event is already audited in the same transaction as its action (ADR 0004),
//!   so following the chain from a durable cursor (`notify/cursor`) loses nothing and needs
//!   no change where the actions happen. Delivery never blocks or fails an action.
//! - One replica at a time follows and delivers: the cursor record carries a lease, taken
//!   and renewed by compare-and-swap. Events become outbox entries (`notify/out/…`, one per
//!   sink) in the same transaction that moves the cursor; an entry is deleted once its sink
//!   takes it (at-least-once: a receiver drops duplicates by `id`).
//! - A failed delivery is retried with exponential backoff on the injected clock; after
//!   `max_attempts` it becomes a dead letter (`notify/dead/…`) an admin lists and retries.
//! - Approve-from-Slack (`chat`) maps a Slack user to an operator through an explicit link
//!   and decides through `Access::decide`, so every rule of the access area applies.

use std::sync::Arc;
use std::time::Duration;

use crate::access::Access;
use crate::levels::CredentialPolicy;
use crate::ports::notify::Notifier;
use crate::records::Records;

/// Approve and deny from Slack; chat links.
mod chat;
/// Outbox delivery, backoff, dead letters.
mod deliver;
/// The follower: cursor, lease, events to outbox entries, seen addresses.
mod follow;
/// Audit events to notifications.
mod map;
#[cfg(test)]
mod tests;

pub use chat::{ChatAction, ChatLinkView, ChatOutcome, plausible_slack_user};
pub use deliver::DeadLetter;

/// At most this many addresses are remembered per principal.
pub const MAX_SEEN_ADDRESSES: usize = 16;

/// How notifications are followed and delivered.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    /// How often the follower looks for new events and due retries.
    pub poll_interval: Duration,
    /// How long a replica's delivery lease lasts without renewal.
    pub lease: Duration,
    /// Failed attempts before a notification becomes a dead letter.
    pub max_attempts: u32,
    /// The first retry's delay; each further one doubles, up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// A minute with at least this many failed sign-ins from one source is an alert.
    pub failed_login_burst: u64,
    /// The server's public base URL, for links in messages.
    pub base_url: Option<String>,
}

impl Default for NotifySettings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            lease: Duration::from_secs(30),
            max_attempts: 5,
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(900),
            failed_login_burst: 10,
            base_url: None,
        }
    }
}

/// The notifications area.
#[derive(Debug, Clone)]
pub struct Notifications {
    records: Records,
    access: Access,
    levels: Arc<CredentialPolicy>,
    sinks: Arc<[Arc<dyn Notifier>]>,
    settings: Arc<NotifySettings>,
    /// This replica, as the lease names it.
    replica: Arc<str>,
}

impl Notifications {
    /// The area without sinks: nothing is followed until [`Notifications::with_sinks`].
    #[must_use]
    pub fn new(records: Records, access: Access, levels: Arc<CredentialPolicy>) -> Self {
        Self {
            records,
            access,
            levels,
            sinks: Arc::from(Vec::new()),
            settings: Arc::new(NotifySettings::default()),
            replica: Arc::from(uuid::Uuid::new_v4().simple().to_string()),
        }
    }

    /// Gives the area its sinks and settings (a serving process).
    #[must_use]
    pub fn with_sinks(mut self, sinks: Vec<Arc<dyn Notifier>>, settings: NotifySettings) -> Self {
        self.sinks = Arc::from(sinks);
        self.settings = Arc::new(settings);
        self
    }

    /// Whether any sink is configured.
    #[must_use]
    pub fn enabled(&self) -> bool {
        !self.sinks.is_empty()
    }

    /// Follows and delivers every `poll_interval` until the process ends.
    pub async fn run(self) {
        if !self.enabled() {
            return;
        }
        loop {
            if let Err(e) = self.tick().await {
                tracing::warn!(error = %e, "notification follower failed; retrying");
            }
            tokio::time::sleep(self.settings.poll_interval).await;
        }
    }

    /// One round: follow the log into the outbox (when this replica holds the lease), then
    /// deliver what is due.
    pub async fn tick(&self) -> Result<(), crate::error::Error> {
        if self.follow().await? {
            self.deliver_due().await?;
        }
        Ok(())
    }
}
