//! The follower: reads the audit log after the durable cursor, turns events into outbox
//! entries (one per sink) and moves the cursor, all in one compare-and-swapped transaction
//! that also takes or renews this replica's lease.

use std::collections::HashMap;

use super::map::{self, MapContext};
use super::{MAX_SEEN_ADDRESSES, Notifications};
use crate::audit::{EVENT_PREFIX, HEAD_KEY, event_key};
use crate::error::Error;
use crate::keyspace;
use crate::model::{AuditEvent, AuditHead, NotifyCursor, OutboxEntry, Outcome, SeenAddresses};
use crate::ports::Txn;

/// Events read per round.
const BATCH: usize = 200;

/// The outbox (and dead-letter) id of notification `id` for `sink`.
pub(super) fn entry_id(id: &str, sink: &str) -> String {
    format!("{id}.{sink}")
}

impl Notifications {
    /// Starts the cursor at the log's head when there is none yet, so that turning
    /// notifications on does not replay the history. `serve` calls it before it listens.
    pub async fn init_cursor(&self) -> Result<(), Error> {
        if !self.enabled() {
            return Ok(());
        }
        let key = keyspace::notify_cursor();
        if self.records.get(&key).await?.is_some() {
            return Ok(());
        }
        let head = self
            .records
            .vault()
            .get::<AuditHead>(HEAD_KEY)
            .await?
            .map_or(0, |h| h.value.seq);
        let cursor = NotifyCursor {
            seq: head,
            holder: String::new(),
            lease_until_ms: 0,
        };
        let txn = self
            .records
            .put(Txn::new().absent(key.as_str()), &key, &cursor)?;
        // A lost race means another replica started it: as good.
        self.records.vault().commit(txn).await?;
        Ok(())
    }

    fn lease_ms(&self) -> i64 {
        i64::try_from(self.settings.lease.as_millis()).unwrap_or(i64::MAX)
    }

    /// One round of following. `Ok(true)` when this replica holds the lease (and so
    /// delivers).
    pub(super) async fn follow(&self) -> Result<bool, Error> {
        let key = keyspace::notify_cursor();
        let now = self.records.clock().now_ms();
        let Some(cur) = self.records.get(&key).await? else {
            self.init_cursor().await?;
            return Ok(false);
        };
        let mine = *cur.value.holder == *self.replica;
        if !mine && cur.value.lease_until_ms > now {
            return Ok(false);
        }
        let lease = self.lease_ms();
        let renew = !mine || cur.value.lease_until_ms.saturating_sub(now) < lease / 2;
        let store = self.records.vault().store();
        let after = event_key(cur.value.seq);
        let page = store.list(EVENT_PREFIX, Some(&after), BATCH).await?;
        if page.items.is_empty() && !renew {
            return Ok(true);
        }
        let mut next = NotifyCursor {
            seq: cur.value.seq,
            holder: self.replica.to_string(),
            lease_until_ms: now.saturating_add(lease),
        };
        let cx = MapContext {
            levels: &self.levels,
            base_url: self.settings.base_url.as_deref(),
            failed_login_burst: self.settings.failed_login_burst,
        };
        let mut txn = Txn::new().equals(key.as_str(), cur.rev);
        let mut seen: HashMap<String, SeenAddresses> = HashMap::new();
        let stamp = self.records.now();
        for (k, raw) in &page.items {
            let event: AuditEvent = match self.records.vault().open(k, raw) {
                Ok(e) => e,
                Err(e) => {
                    // `audit verify` reports it; one unreadable event must not stop the rest.
                    tracing::error!(key = %k, error = %e, "notifications skip an unreadable audit event");
                    continue;
                }
            };
            next.seq = next.seq.max(event.seq);
            let mut out = map::notifications(&event, cx);
            if let Some(n) = self.new_address(&event, &mut seen).await? {
                out.push(n);
            }
            for (i, mut n) in out.into_iter().enumerate() {
                n.id = format!("{:020}-{i}", event.seq);
                for sink in self.sinks.iter() {
                    let entry = OutboxEntry {
                        sink: sink.name().to_owned(),
                        notification: n.clone(),
                        attempts: 0,
                        next_attempt_ms: now,
                        last_error: None,
                        created_at: stamp.clone(),
                    };
                    let out_key = keyspace::notify_outbox(&entry_id(&n.id, sink.name()));
                    txn = self.records.put(txn, &out_key, &entry)?;
                }
            }
        }
        for (digest, addresses) in &seen {
            txn = self
                .records
                .put(txn, &keyspace::notify_seen_ip(digest), addresses)?;
        }
        txn = self.records.put(txn, &key, &next)?;
        // Only the lease holder gets here; a failed condition means another replica took
        // the lease (or moved the cursor) meanwhile: it delivers, this one does not.
        self.records.vault().commit(txn).await
    }

    /// For a successful credential issuance: remembers its source address for the
    /// principal, and notifies when the principal had addresses on record and this one is
    /// not among them (the first issuance sets the baseline silently).
    async fn new_address(
        &self,
        e: &AuditEvent,
        seen: &mut HashMap<String, SeenAddresses>,
    ) -> Result<Option<crate::ports::notify::Notification>, Error> {
        if e.action != "credentials.issue" || e.outcome != Outcome::Success {
            return Ok(None);
        }
        let Some(ip) = e.source_ip.as_deref() else {
            return Ok(None);
        };
        let digest = self
            .records
            .pepper()
            .digest("notify-seen-addresses", &e.actor)
            .to_hex();
        if !seen.contains_key(&digest) {
            let stored = self
                .records
                .get(&keyspace::notify_seen_ip(&digest))
                .await?
                .map(|v| v.value)
                .unwrap_or_default();
            seen.insert(digest.clone(), stored);
        }
        let Some(list) = seen.get_mut(&digest) else {
            return Ok(None);
        };
        let known = list.addresses.len();
        let new = !list.addresses.iter().any(|a| a == ip);
        list.addresses.retain(|a| a != ip);
        list.addresses.push(ip.to_owned());
        if list.addresses.len() > MAX_SEEN_ADDRESSES {
            let drop = list.addresses.len() - MAX_SEEN_ADDRESSES;
            list.addresses.drain(..drop);
        }
        Ok((new && known > 0).then(|| map::new_address(e, known)))
    }
}
