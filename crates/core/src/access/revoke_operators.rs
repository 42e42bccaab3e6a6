//! A disabled operator's `revoke_sessions` deny, scoped by the access history. Disabling
//! commits one `access/revu/<id>` marker in its own transaction (`revocations`); here the
//! access sweeper turns it into one `access/revq/<org>/…` marker per org whose role the
//! operator's sessions may still reach: each org with `revoke_sessions` and a validated
//! role where the audit log's per-org index shows a credential issuance, a console
//! session or a job by the operator since its longest session could have begun. The read
//! starts at the first event of that window (a binary search over the log), stops at the
//! first match, and is bounded per org: an org whose window holds more events than the
//! bound is queued without proof (a statement too many costs little; a missed one leaves
//! sessions working). The lookup runs again on every pass until the marker settles
//! (`SETTLE_SECS`), so issuances in flight at the disable are caught; then it goes.

use std::collections::BTreeSet;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Access;
use super::revoke_sessions::RevokeSessions;
use crate::audit::{AuditEvent, AuditRecord, Outcome};
use crate::error::Error;
use crate::ids::OrgName;
use crate::keyspace;
use crate::model::{OperatorRevocation, OrgRecord, OrgStatus, PendingRevocation, RevokedBy};
use crate::ports::Txn;
use crate::principal::Caller;

/// The events that hand an operator a session in the org's account.
const ISSUING: &[&str] = &["credentials.issue", "credentials.console", "job.create"];
/// Index entries looked at per org and lookup at most.
const ORG_SCAN_BUDGET: usize = 2_000;

/// Whether an org's window shows the operator, or could not be read to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Used {
    Yes,
    No,
    /// The bound was reached first: queued without proof.
    Unsure,
}

impl Access {
    /// One pass over the operators' pending revocations; returns how many orgs it queued.
    pub(super) async fn scope_operator_revocations(
        &self,
        rs: &RevokeSessions,
    ) -> Result<usize, Error> {
        let pending = self
            .records
            .vault()
            .list_all::<OperatorRevocation>(keyspace::ACCESS_REVOCATION_OPERATOR.prefix)
            .await?;
        let mut queued = 0;
        for (key, _) in pending {
            let Some(id) = key.strip_prefix(keyspace::ACCESS_REVOCATION_OPERATOR.prefix) else {
                continue;
            };
            queued += self.scope_one(rs, id).await?;
        }
        Ok(queued)
    }

    /// Scopes one marker: queues the orgs found since the last pass, and drops the marker
    /// once settled. Conditioned on the marker's revision, so replicas queue each org once.
    async fn scope_one(&self, rs: &RevokeSessions, id: &str) -> Result<usize, Error> {
        let key = keyspace::access_operator_revocation(id);
        let Some(cur) = self.records.get(&key).await? else {
            return Ok(0);
        };
        let m = cur.value;
        let now = self.now();
        let actor = format!("user:{}", m.user_id);
        // Its sessions began no earlier than the longest session before the disable.
        let longest = m.expires_unix - m.before_unix - crate::revocations::EXPIRY_MARGIN_SECS;
        let since = m.before_unix - longest.max(0);
        let mut found = BTreeSet::new();
        let mut unsure = Vec::new();
        let start = self.first_seq_since(since).await?;
        for org in self.revocable_orgs(rs).await? {
            if m.queued.contains(&org) {
                continue;
            }
            match self.used_by(&org, &actor, start, since).await? {
                Used::Yes => {
                    found.insert(org);
                }
                Used::Unsure => {
                    unsure.push(org.to_string());
                    found.insert(org);
                }
                Used::No => {}
            }
        }
        let settled = now >= m.settle_unix;
        if found.is_empty() && !settled {
            return Ok(0);
        }
        let mut txn = Txn::new().equals(key.as_str(), cur.rev);
        for org in &found {
            let marker = PendingRevocation {
                org: org.clone(),
                by: RevokedBy::SourceIdentity,
                value: m.source_identity.clone(),
                before_unix: m.before_unix,
                expires_unix: m.expires_unix,
            };
            txn = crate::revocations::queue(&self.records, txn, &marker)?;
        }
        let mut next = m.clone();
        next.queued.extend(found.iter().cloned());
        txn = if settled {
            txn.delete(key.as_str())
        } else {
            self.records.put(txn, &key, &next)?
        };
        let orgs: Vec<String> = found.iter().map(ToString::to_string).collect();
        let all: Vec<String> = next.queued.iter().map(ToString::to_string).collect();
        let audit = AuditRecord::new("access.revocation_scope")
            .target(m.user_id.to_string())
            .details(serde_json::json!({
                "source_identity": m.source_identity,
                "orgs": orgs,
                "unsure": unsure,
                "queued": all,
                "settled": settled,
                "expires_unix": m.expires_unix,
            }));
        let caller = Caller::system("access-revoke");
        if self.records.commit(&caller, txn, audit).await? {
            Ok(found.len())
        } else {
            // Another replica moved it first; the next pass reads it again.
            Ok(0)
        }
    }

    /// The orgs a deny can be written into: `revoke_sessions` on, a validated role.
    async fn revocable_orgs(&self, rs: &RevokeSessions) -> Result<Vec<OrgName>, Error> {
        let validated = |r: &OrgRecord| r.status == OrgStatus::Validated && r.role_arn.is_some();
        if rs.settings.all_orgs {
            let all = self
                .records
                .vault()
                .list_all::<OrgRecord>(keyspace::ORG.prefix)
                .await?;
            return Ok(all
                .into_iter()
                .filter(|(_, r)| validated(r))
                .map(|(_, r)| r.name)
                .collect());
        }
        let mut out = Vec::new();
        for org in &rs.settings.orgs {
            if let Some(r) = self.records.get(&keyspace::org(org)).await?
                && validated(&r.value)
            {
                out.push(org.clone());
            }
        }
        Ok(out)
    }

    /// Whether `org`'s index, from sequence number `start` on, shows `actor` obtaining a
    /// session at or after `since` (unix seconds).
    async fn used_by(
        &self,
        org: &OrgName,
        actor: &str,
        start: u64,
        since: i64,
    ) -> Result<Used, Error> {
        let prefix = keyspace::audit_org_prefix(org.as_str());
        let store = self.records.vault().store();
        let mut after = start
            .checked_sub(1)
            .map(|s| keyspace::audit_org(org.as_str(), s).to_string());
        let mut scanned = 0;
        loop {
            let page = store.list(&prefix, after.as_deref(), 500).await?;
            for (key, _) in &page.items {
                scanned += 1;
                if scanned > ORG_SCAN_BUDGET {
                    return Ok(Used::Unsure);
                }
                let Ok(seq) = key[prefix.len()..].parse::<u64>() else {
                    continue;
                };
                if let Some(ev) = self.records.get(&keyspace::audit_event(seq)).await?
                    && issued_to(&ev.value, actor, since)
                {
                    return Ok(Used::Yes);
                }
            }
            match page.next {
                Some(n) => after = Some(n),
                None => return Ok(Used::No),
            }
        }
    }

    /// The first sequence number whose event is at or after `since` (unix seconds), by a
    /// binary search over the log (its times follow its order); past the head when none.
    async fn first_seq_since(&self, since: i64) -> Result<u64, Error> {
        let Some(head) = self.records.get(&keyspace::audit_head()).await? else {
            return Ok(1);
        };
        let (mut lo, mut hi) = (1_u64, head.value.seq + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let at = self
                .records
                .get(&keyspace::audit_event(mid))
                .await?
                .and_then(|e| unix(&e.value.time));
            // A missing or unreadable event counts as older: the search only moves later.
            if at.is_some_and(|t| t >= since) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Ok(lo)
    }
}

fn unix(rfc3339: &str) -> Option<i64> {
    OffsetDateTime::parse(rfc3339, &Rfc3339)
        .ok()
        .map(OffsetDateTime::unix_timestamp)
}

/// Whether `e` handed `actor` a session at or after `since`.
fn issued_to(e: &AuditEvent, actor: &str, since: i64) -> bool {
    e.outcome == Outcome::Success
        && e.actor == actor
        && ISSUING.contains(&e.action.as_str())
        && unix(&e.time).is_none_or(|t| t >= since)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_successful_issuances_by_the_actor_count() {
        let e = AuditEvent {
            seq: 3,
            time: "2026-01-01T00:00:00Z".into(),
            actor: "user:dave".into(),
            action: "credentials.issue".into(),
            org: Some("acme".into()),
            target: None,
            outcome: Outcome::Success,
            code: None,
            request_id: "r1".into(),
            source_ip: None,
            details: serde_json::Value::Null,
            prev: String::new(),
            hash: String::new(),
        };
        let t = unix("2026-01-01T00:00:00Z").unwrap_or_default();
        assert!(issued_to(&e, "user:dave", t));
        assert!(!issued_to(&e, "user:dave", t + 1), "before the window");
        assert!(!issued_to(&e, "user:eve", t));
        let refused = AuditEvent {
            outcome: Outcome::Failure,
            ..e.clone()
        };
        assert!(!issued_to(&refused, "user:dave", t));
        let read = AuditEvent {
            action: "org.read".into(),
            ..e
        };
        assert!(!issued_to(&read, "user:dave", t));
    }
}
