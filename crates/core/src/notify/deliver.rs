//! Delivering the outbox: each due entry goes to its sink; a failure is retried with
//! exponential backoff on the injected clock, and after `max_attempts` it becomes a dead
//! letter that an admin can list and send back to the outbox.

use serde::Serialize;

use super::Notifications;
use crate::audit::AuditRecord;
use crate::error::Error;
use crate::keyspace;
use crate::model::OutboxEntry;
use crate::policy::{Action, Facts};
use crate::ports::Txn;
use crate::principal::Caller;

/// Entries looked at per round.
const BATCH: usize = 100;

/// A notification given up after its last retry, as admins see it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DeadLetter {
    /// `<audit seq>-<n>.<sink>`: what `POST …/dead-letters/{id}/retry` takes.
    #[cfg_attr(
        feature = "openapi",
        schema(example = "00000000000000000042-0.webhook")
    )]
    pub id: String,
    /// `slack` or `webhook`.
    pub sink: String,
    /// What happened (`access.requested`, `network.blocked`, …).
    pub event: String,
    pub title: String,
    pub user: String,
    pub org: Option<String>,
    pub source_ip: Option<String>,
    /// When the event happened (RFC 3339).
    pub time: String,
    pub attempts: u32,
    /// The last failure: a status or a kind of network failure, never a URL.
    pub last_error: Option<String>,
    pub audit_seq: u64,
}

impl DeadLetter {
    fn of(id: &str, e: &OutboxEntry) -> Self {
        let n = &e.notification;
        Self {
            id: id.to_owned(),
            sink: e.sink.clone(),
            event: n.event.clone(),
            title: n.title.clone(),
            user: n.user.clone(),
            org: n.org.clone(),
            source_ip: n.source_ip.clone(),
            time: n.time.clone(),
            attempts: e.attempts,
            last_error: e.last_error.clone(),
            audit_seq: n.audit_seq,
        }
    }
}

/// Whether `id` could name a dead letter (`<20 digits>-<n>.<sink>`).
fn plausible_id(id: &str) -> bool {
    let Some((num, sink)) = id.split_once('.') else {
        return false;
    };
    let Some((seq, n)) = num.split_once('-') else {
        return false;
    };
    seq.len() == 20
        && seq.bytes().all(|b| b.is_ascii_digit())
        && (1..=4).contains(&n.len())
        && n.bytes().all(|b| b.is_ascii_digit())
        && (1..=16).contains(&sink.len())
        && sink.bytes().all(|b| b.is_ascii_lowercase())
}

impl Notifications {
    /// The delay before retry number `attempts` (1-based): base × 2^(attempts−1), capped.
    fn backoff_ms(&self, attempts: u32) -> i64 {
        let base = self.settings.backoff_base.as_millis();
        let max = self.settings.backoff_max.as_millis();
        let factor = 1u128 << attempts.saturating_sub(1).min(30);
        i64::try_from(base.saturating_mul(factor).min(max)).unwrap_or(i64::MAX)
    }

    /// Delivers every due outbox entry once.
    pub(super) async fn deliver_due(&self) -> Result<(), Error> {
        let vault = self.records.vault();
        let page = vault
            .store()
            .list(keyspace::NOTIFY_OUTBOX.prefix, None, BATCH)
            .await?;
        for (k, raw) in page.items {
            let entry: OutboxEntry = match vault.open(&k, &raw) {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(key = %k, error = %e, "unreadable notification outbox entry");
                    continue;
                }
            };
            let now = self.records.clock().now_ms();
            if entry.next_attempt_ms > now {
                continue;
            }
            let id = k
                .strip_prefix(keyspace::NOTIFY_OUTBOX.prefix)
                .unwrap_or(&k)
                .to_owned();
            let sink = self.sinks.iter().find(|s| s.name() == entry.sink);
            let result = match sink {
                Some(s) => s.deliver(&entry.notification).await,
                None => Err(crate::ports::notify::DeliveryError(
                    "the sink is no longer configured".to_owned(),
                )),
            };
            let mut txn = Txn::new().equals(k.clone(), raw);
            match result {
                Ok(()) => txn = txn.delete(k.clone()),
                Err(err) => {
                    let mut next = entry;
                    next.attempts = next.attempts.saturating_add(1);
                    next.last_error = Some(err.0);
                    if next.attempts >= self.settings.max_attempts || sink.is_none() {
                        tracing::warn!(
                            id = %id, sink = %next.sink, attempts = next.attempts,
                            "a notification became a dead letter"
                        );
                        txn = self.records.put(
                            txn.delete(k.clone()),
                            &keyspace::notify_dead(&id),
                            &next,
                        )?;
                    } else {
                        next.next_attempt_ms = now.saturating_add(self.backoff_ms(next.attempts));
                        txn = self
                            .records
                            .put(txn, &keyspace::notify_outbox(&id), &next)?;
                    }
                }
            }
            vault.commit(txn).await?;
        }
        Ok(())
    }

    /// The dead letters, oldest first (at most 500).
    pub async fn dead_letters(&self, caller: &Caller) -> Result<Vec<DeadLetter>, Error> {
        self.records
            .authorize(
                caller,
                Action::ListNotificationDeadLetters,
                &Facts::default(),
            )
            .await?;
        let vault = self.records.vault();
        let page = vault
            .store()
            .list(keyspace::NOTIFY_DEAD.prefix, None, 500)
            .await?;
        let mut out = Vec::with_capacity(page.items.len());
        for (k, raw) in &page.items {
            let entry: OutboxEntry = vault.open(k, raw)?;
            let id = k.strip_prefix(keyspace::NOTIFY_DEAD.prefix).unwrap_or(k);
            out.push(DeadLetter::of(id, &entry));
        }
        Ok(out)
    }

    /// Sends dead letter `id` back to the outbox with its attempts reset (audited).
    pub async fn retry_dead_letter(&self, caller: &Caller, id: &str) -> Result<DeadLetter, Error> {
        self.records
            .authorize(
                caller,
                Action::RetryNotificationDeadLetter,
                &Facts::default(),
            )
            .await?;
        let not_found = Error::NotFound {
            what: keyspace::NOTIFY_DEAD.name,
        };
        if !plausible_id(id) {
            return Err(not_found);
        }
        let key = keyspace::notify_dead(id);
        let Some(cur) = self.records.get(&key).await? else {
            return Err(not_found);
        };
        let mut entry = cur.value;
        let view = DeadLetter::of(id, &entry);
        entry.attempts = 0;
        entry.next_attempt_ms = self.records.clock().now_ms();
        let txn = Txn::new()
            .equals(key.as_str(), cur.rev)
            .delete(key.as_str());
        let txn = self
            .records
            .put(txn, &keyspace::notify_outbox(id), &entry)?;
        let audit = AuditRecord::new(Action::RetryNotificationDeadLetter.name())
            .target(id.to_owned())
            .details(serde_json::json!({
                "sink": entry.sink,
                "event": entry.notification.event,
                "attempts": view.attempts,
            }));
        if !self.records.commit(caller, txn, audit).await? {
            return Err(not_found);
        }
        Ok(view)
    }
}
