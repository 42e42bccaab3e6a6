//! Sending what requests owe customer approvers. Each delivery is a sealed record written
//! with its request (so nothing is lost when a replica dies); every replica's loop claims a
//! due one with a compare-and-swap that also books its next attempt (so two replicas do not
//! send it at once, and a crash mid-send retries), POSTs it signed with the approver's
//! secret (or, for an email approver, mails it through the `Mailer`), and deletes it on a
//! 2xx (or once the mail server accepted it). Failures back off (10 s, doubling, at most 15 min) until
//! the request's TTL passes; then the delivery is dropped, audited.

use std::sync::Arc;
use std::time::Duration;

use super::Access;
use crate::audit::AuditRecord;
use crate::error::Error;
use crate::keyspace;
use crate::model::{ApproverChannel, CustomerDelivery};
use crate::ports::Txn;
use crate::ports::mail::Mailer;
use crate::ports::webhook::WebhookSender;
use crate::principal::Caller;

/// The wait before attempt `n + 1` (after `n` failures).
#[must_use]
pub fn backoff_secs(attempts: u32) -> i64 {
    10_i64.saturating_mul(1_i64 << attempts.min(10)).min(900)
}

/// What deliveries go out through: webhooks always, mail when `[smtp]` is configured.
#[derive(Debug, Clone)]
pub struct Senders {
    pub webhooks: Arc<dyn WebhookSender>,
    pub mail: Option<Arc<dyn Mailer>>,
}

impl Senders {
    /// Sends `d` once; the error names the kind of failure only.
    async fn send(&self, d: &CustomerDelivery, now: i64) -> Result<(), String> {
        let body = d.body.expose();
        match d.channel {
            ApproverChannel::Webhook => self
                .webhooks
                .post(&d.url, d.secret.expose().as_bytes(), now, body.as_bytes())
                .await
                .map_err(|e| e.to_string()),
            ApproverChannel::Email => {
                // Mail set up before and removed from the configuration since: the
                // delivery waits (and is dropped, audited, at the request's TTL).
                let Some(mailer) = &self.mail else {
                    return Err("no [smtp] configured".into());
                };
                let mail = super::email::render(&d.url, body).map_err(|e| e.to_string())?;
                mailer.send(&mail).await.map_err(|e| e.to_string())
            }
        }
    }
}

impl Access {
    /// One pass: sends every due delivery once. Returns how many landed.
    pub async fn deliver_due(&self, senders: &Senders) -> Result<usize, Error> {
        let caller = Caller::system("customer-approval");
        let vault = self.records.vault();
        let prefix = keyspace::ACCESS_DELIVERY.prefix;
        let mut after: Option<String> = None;
        let mut landed = 0;
        loop {
            let page = vault.store().list(prefix, after.as_deref(), 100).await?;
            for (key, raw) in &page.items {
                after = Some(key.clone());
                let d: CustomerDelivery = vault.open(key, raw)?;
                let now = self.now();
                if now >= d.expires_unix {
                    let audit = AuditRecord::new("access.customer_delivery.dropped")
                        .org(d.org.clone())
                        .target(d.request_id.clone())
                        .failure("undelivered")
                        .details(serde_json::json!({
                            "approver_id": d.approver_id,
                            "channel": d.channel.as_str(),
                            "attempts": d.attempts,
                        }));
                    let txn = Txn::new()
                        .equals(key.clone(), raw.clone())
                        .delete(key.clone());
                    self.records.commit(&caller, txn, audit).await?;
                    continue;
                }
                if d.next_unix > now {
                    continue;
                }
                // Claim: book the next attempt before sending.
                let mut booked = d.clone();
                booked.attempts = d.attempts.saturating_add(1);
                booked.next_unix = now + backoff_secs(d.attempts);
                let txn = Txn::new().equals(key.clone(), raw.clone());
                let txn = self
                    .records
                    .put(txn, &keyspace::access_delivery(&d.id), &booked)?;
                if !vault.commit(txn).await? {
                    continue;
                }
                match senders.send(&d, now).await {
                    Ok(()) => {
                        vault.commit(Txn::new().delete(key.clone())).await?;
                        landed += 1;
                    }
                    Err(e) => tracing::warn!(
                        target: "rolegate::access::customer",
                        org = %d.org, request = %d.request_id, approver = %d.approver_id,
                        channel = d.channel.as_str(), attempts = booked.attempts, error = %e,
                        "customer approver delivery failed; will retry"
                    ),
                }
            }
            if page.next.is_none() {
                return Ok(landed);
            }
        }
    }

    /// Delivers every `every`, and at once when a request owes a delivery, until the
    /// process ends (`serve` runs one per replica).
    pub async fn run_deliveries(self, senders: Senders, every: Duration) {
        loop {
            if let Err(e) = self.deliver_due(&senders).await {
                tracing::warn!(error = %e, "customer approval deliveries failed; retrying");
            }
            let _ = tokio::time::timeout(every, self.deliveries.notified()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(super::backoff_secs(0), 10);
        assert_eq!(super::backoff_secs(1), 20);
        assert_eq!(super::backoff_secs(6), 640);
        assert_eq!(super::backoff_secs(7), 900);
        assert_eq!(super::backoff_secs(u32::MAX), 900);
    }
}
