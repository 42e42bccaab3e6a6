//! The customer's access history (issue 12 §6): who obtained credentials, console sessions
//! or ran jobs in an org's account, and the access requests and grants on it — when, why,
//! from where, under which grant and SourceIdentity. Read from the audit log through its
//! per-org index (`audit/org/<org>/<seq>`), so a page costs the org's own events, never a
//! scan of the whole log; rows carry a fixed set of fields, never an event's raw details.
//! The cursor is the last sequence number looked at: events are numbered in commit order,
//! so resuming after it neither skips nor repeats (the export relies on it).

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::audit::{AuditEvent, Outcome};
use crate::error::Error;
use crate::ids::OrgName;
use crate::keyspace;
use crate::orgs::Orgs;
use crate::policy::Action;
use crate::principal::Caller;
use crate::records::Records;

/// The actions the history shows (successes and refusals).
pub const HISTORY_ACTIONS: &[&str] = &[
    "credentials.issue",
    "credentials.console",
    "workload.session",
    "job.create",
    "access.request",
    "access.break_glass",
    "access.approve",
    "access.deny",
    "access.cancel",
    "access.revoke",
    "access.request.expire",
    "access.grant.activate",
    "access.grant.expire",
    "access.customer_decision",
    "org.customer_approvers.set",
    "org.customer_approvers.clear",
];

/// Index entries looked at per page at most; a page may end early with a cursor.
const SCAN_BUDGET: usize = 5_000;

/// A validated history query.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    /// Only this action (one of [`HISTORY_ACTIONS`]).
    pub action: Option<String>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    pub limit: usize,
    /// Rows with a sequence number greater than this.
    pub after: Option<u64>,
}

impl HistoryQuery {
    /// Parses query-string values; `max_limit` is the route's page bound.
    pub fn parse(
        action: Option<&str>,
        since: Option<&str>,
        until: Option<&str>,
        limit: Option<&str>,
        after: Option<&str>,
        max_limit: usize,
    ) -> Result<Self, Error> {
        let time = |field: &str, v: Option<&str>| {
            v.map(|s| {
                OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
                    Error::invalid(
                        field,
                        format!("{field} must be an RFC 3339 time such as 2026-01-01T00:00:00Z"),
                    )
                })
            })
            .transpose()
        };
        let limit = match limit {
            None => 100.min(max_limit),
            Some(l) => l
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=max_limit).contains(n))
                .ok_or_else(|| {
                    Error::invalid("limit", format!("limit must be between 1 and {max_limit}"))
                })?,
        };
        let after = after
            .map(|c| {
                c.parse::<u64>()
                    .map_err(|_| Error::invalid("cursor", "cursor is not one this server returned"))
            })
            .transpose()?;
        let action = match action {
            Some(a) if !HISTORY_ACTIONS.contains(&a) => {
                return Err(Error::invalid(
                    "action",
                    format!("action must be one of {}", HISTORY_ACTIONS.join(", ")),
                ));
            }
            other => other.map(str::to_owned),
        };
        Ok(Self {
            action,
            since: time("since", since)?,
            until: time("until", until)?,
            limit,
            after,
        })
    }

    fn matches(&self, e: &AuditEvent) -> bool {
        let at = || OffsetDateTime::parse(&e.time, &Rfc3339).ok();
        HISTORY_ACTIONS.contains(&e.action.as_str())
            && self.action.as_ref().is_none_or(|a| *a == e.action)
            && self.since.is_none_or(|s| at().is_some_and(|t| t >= s))
            && self.until.is_none_or(|u| at().is_some_and(|t| t < u))
    }
}

/// One row of an org's access history.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryEntry {
    /// The audit event's sequence number (also the cursor after this row).
    pub seq: u64,
    pub time: String,
    /// `credentials.issue`, `credentials.console`, `job.create`, `access.request`, …
    pub action: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub outcome: Outcome,
    /// The error code of a refusal or failure.
    pub code: Option<String>,
    /// Who: `user:ID`, `apikey:ID`, `workload:…`, `customer:ID`, `system`.
    pub actor: String,
    pub source_ip: Option<String>,
    pub access_level: Option<String>,
    /// The grant (access request id) the credentials, session or job were used under, or
    /// the request a decision was about.
    pub grant_id: Option<String>,
    /// The SourceIdentity the AWS session carries (CloudTrail shows it).
    pub source_identity: Option<String>,
    pub session_name: Option<String>,
    pub reason: Option<String>,
    pub ticket: Option<String>,
    /// Credentials' expiry, a grant's end.
    pub expires_at: Option<String>,
    /// A job's kind, a request's state after the event, a customer's decision.
    pub detail: Option<String>,
    pub request_id: String,
}

impl HistoryEntry {
    fn from_event(e: &AuditEvent) -> Self {
        let s = |k: &str| e.details.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        let access_event = e.action.starts_with("access.");
        Self {
            seq: e.seq,
            time: e.time.clone(),
            action: e.action.clone(),
            outcome: e.outcome,
            code: e.code.clone(),
            actor: e.actor.clone(),
            source_ip: e.source_ip.clone(),
            access_level: s("access_level"),
            grant_id: if access_event {
                e.target.clone()
            } else {
                s("grant_id")
            },
            source_identity: s("source_identity"),
            session_name: s("session_name"),
            reason: s("reason"),
            ticket: s("ticket"),
            expires_at: s("expiration").or_else(|| s("grant_ends_at")),
            detail: s("kind")
                .or_else(|| s("decision"))
                .or_else(|| s("to"))
                .or_else(|| s("state")),
            request_id: e.request_id.clone(),
        }
    }
}

/// One page of history, oldest first.
#[derive(Debug, Clone)]
pub struct HistoryPage {
    pub entries: Vec<HistoryEntry>,
    /// Pass back as `cursor` (or `after`) to continue; `None` once the log's end is read.
    pub next: Option<u64>,
    /// The last sequence number looked at, even at the end: a follower resumes after it.
    pub last_seq: Option<u64>,
}

/// The access-history area.
#[derive(Debug, Clone)]
pub struct AccessHistory {
    records: Records,
    orgs: Orgs,
}

impl AccessHistory {
    #[must_use]
    pub fn new(orgs: Orgs) -> Self {
        Self {
            records: orgs.records().clone(),
            orgs,
        }
    }

    /// A page of `org`'s history for `caller` (its API key, its owner, an admin).
    pub async fn query(
        &self,
        caller: &Caller,
        org: &OrgName,
        q: &HistoryQuery,
    ) -> Result<HistoryPage, Error> {
        // 404/403 as for reading the org; the key of another org gets 403.
        self.orgs
            .load(caller, Action::ReadAccessHistory, org)
            .await?;
        let prefix = keyspace::audit_org_prefix(org.as_str());
        let mut after = q.after.map(|s| format!("{prefix}{s:020}"));
        let mut entries = Vec::new();
        let mut scanned = 0;
        let mut last_seq = q.after;
        loop {
            let page = self
                .records
                .vault()
                .store()
                .list(&prefix, after.as_deref(), 500)
                .await?;
            for (i, (key, _)) in page.items.iter().enumerate() {
                scanned += 1;
                let Ok(seq) = key[prefix.len()..].parse::<u64>() else {
                    continue;
                };
                last_seq = Some(seq);
                if let Some(ev) = self.records.get(&keyspace::audit_event(seq)).await?
                    && q.matches(&ev.value)
                {
                    entries.push(HistoryEntry::from_event(&ev.value));
                }
                if entries.len() >= q.limit || scanned >= SCAN_BUDGET {
                    let end = page.next.is_none() && i + 1 == page.items.len();
                    return Ok(HistoryPage {
                        entries,
                        next: (!end).then_some(seq),
                        last_seq,
                    });
                }
            }
            match page.next {
                Some(n) => after = Some(n),
                None => {
                    return Ok(HistoryPage {
                        entries,
                        next: None,
                        last_seq,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn queries_name_their_bad_field() {
        let q = HistoryQuery::parse(Some("credentials.issue"), None, None, None, Some("7"), 1000)
            .unwrap();
        assert_eq!((q.limit, q.after), (100, Some(7)));
        for (args, field) in [
            ((Some("org.read"), None, None, None, None), "action"),
            ((None, Some("yesterday"), None, None, None), "since"),
            ((None, None, Some("x"), None, None), "until"),
            ((None, None, None, Some("0"), None), "limit"),
            ((None, None, None, Some("1001"), None), "limit"),
            ((None, None, None, None, Some("-1")), "cursor"),
        ] {
            let (a, s, u, l, c) = args;
            let e = HistoryQuery::parse(a, s, u, l, c, 1000).unwrap_err();
            assert!(
                matches!(e, Error::Invalid { field: ref f, .. } if f == field),
                "{field}"
            );
        }
    }

    #[test]
    fn rows_project_fixed_fields_only() {
        let e = AuditEvent {
            seq: 3,
            time: "2026-01-01T00:00:00Z".into(),
            actor: "user:dave".into(),
            action: "credentials.issue".into(),
            org: Some("acme".into()),
            target: Some("arn:aws:iam::111122223333:role/x".into()),
            outcome: Outcome::Success,
            code: None,
            request_id: "r1".into(),
            source_ip: Some("203.0.113.9".into()),
            details: serde_json::json!({
                "access_level": "operator", "grant_id": "a1", "source_identity": "dave",
                "reason": "INC-1", "expiration": "2026-01-01T01:00:00Z", "secret": "nope",
            }),
            prev: String::new(),
            hash: String::new(),
        };
        let row = HistoryEntry::from_event(&e);
        assert_eq!(row.grant_id.as_deref(), Some("a1"));
        assert_eq!(row.source_identity.as_deref(), Some("dave"));
        assert_eq!(row.source_ip.as_deref(), Some("203.0.113.9"));
        assert!(!serde_json::to_string(&row).unwrap().contains("nope"));
    }
}
