//! The transitions time makes, written down: a pending request past its `request_ttl`
//! expires, an approved grant whose start came becomes active, a grant past its end
//! expires. Enforcement never waits for this (it reads each record's state as of now);
//! the sweep makes the stored state, the indexes and the audit log say so too. The same
//! loop writes queued revocations into customers' roles (`revoke_sessions`).

use std::time::Duration;

use super::Access;
use crate::audit::AuditRecord;
use crate::error::Error;
use crate::keyspace;
use crate::model::AccessState;
use crate::ports::Txn;
use crate::principal::Caller;
use crate::records::Change;

impl Access {
    /// One pass over the open requests; returns how many transitions it wrote.
    pub async fn sweep(&self) -> Result<usize, Error> {
        let caller = Caller::system("access-sweep");
        let store = self.records.vault().store();
        let prefix = keyspace::ACCESS_OPEN.prefix;
        let mut after: Option<String> = None;
        let mut written = 0;
        loop {
            let page = store.list(prefix, after.as_deref(), 200).await?;
            for (key, _) in &page.items {
                after = Some(key.clone());
                let Some(id) = key.strip_prefix(prefix) else {
                    continue;
                };
                let rkey = keyspace::access_request(id);
                let now = self.now();
                let stamp = self.records.now();
                let result = self
                    .records
                    .update(&caller, &rkey, |rec| {
                        let to = rec.state_at(now);
                        if to == rec.state {
                            return Ok(Change::Keep);
                        }
                        let mut next = rec.clone();
                        next.state = to;
                        next.updated_at = stamp.clone();
                        let mut txn = Txn::new();
                        if to.is_final() {
                            txn = txn.delete(keyspace::access_open(&rec.id)).delete(
                                keyspace::access_grant(
                                    &rec.org,
                                    &rec.access_level,
                                    &rec.requested_by,
                                    &rec.id,
                                )
                                .as_str(),
                            );
                        }
                        let name = match (rec.state, to) {
                            (AccessState::Pending, _) => "access.request.expire",
                            (_, AccessState::Active) => "access.grant.activate",
                            _ => "access.grant.expire",
                        };
                        let audit = AuditRecord::new(name)
                            .org(rec.org.to_string())
                            .target(rec.id.clone())
                            .details(serde_json::json!({
                                "access_level": rec.access_level,
                                "requested_by": rec.requested_by,
                                "from": rec.state.as_str(),
                                "to": to.as_str(),
                            }));
                        Ok(Change::write_with(next, txn, audit))
                    })
                    .await;
                match result {
                    Ok(u) if u.changed => written += 1,
                    // Already final (another replica wrote it): the marker has no use left.
                    Ok(u) if u.value.state.is_final() => {
                        let _ = store.commit(Txn::new().delete(key.clone())).await;
                    }
                    Ok(_) => {}
                    // A marker whose record is gone: drop it.
                    Err(Error::NotFound { .. }) => {
                        let _ = store.commit(Txn::new().delete(key.clone())).await;
                    }
                    Err(e) => return Err(e),
                }
            }
            if page.next.is_none() {
                return Ok(written);
            }
        }
    }

    /// Sweeps every `every`, until the process ends (`serve` runs one per replica; the
    /// update loop makes concurrent sweeps write each transition once).
    pub async fn run_sweeper(self, every: Duration) {
        loop {
            if let Err(e) = self.sweep().await {
                tracing::warn!(error = %e, "access sweep failed; retrying");
            }
            if let Err(e) = self.write_revocations().await {
                tracing::warn!(error = %e, "revocation writes failed; retrying");
            }
            tokio::time::sleep(every).await;
        }
    }
}
