//! Which audit events are worth a notification, and what it says. Pure: the follower
//! feeds it events in order; the seen-address check (which needs state) is in `follow`.

use serde_json::Value;

use crate::error::Code;
use crate::ids::OrgName;
use crate::levels::CredentialPolicy;
use crate::model::{AuditEvent, Outcome};
use crate::ports::notify::{Decide, Notification, Severity};

/// What the mapping needs besides the event.
#[derive(Debug, Clone, Copy)]
pub(super) struct MapContext<'a> {
    pub levels: &'a CredentialPolicy,
    /// The server's public base URL, for links (`None`: no links).
    pub base_url: Option<&'a str>,
    /// A failed-login aggregate of at least this many failures is a burst.
    pub failed_login_burst: u64,
}

fn text<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v.get(field).and_then(Value::as_str)
}

/// `user:alice` → `alice`; anything else as it is.
fn operator(actor: &str) -> &str {
    actor.strip_prefix("user:").unwrap_or(actor)
}

fn hours(secs: u64) -> String {
    if secs.is_multiple_of(3600) {
        format!("{} h", secs / 3600)
    } else {
        format!("{} min", secs.div_ceil(60))
    }
}

/// The notifications `e` gives rise to (ids are set by the caller).
pub(super) fn notifications(e: &AuditEvent, cx: MapContext<'_>) -> Vec<Notification> {
    let d = &e.details;
    let level = text(d, "access_level").map(str::to_owned);
    let base =
        |event: &str, severity: Severity, title: String, status: &str, taken: &str| Notification {
            id: String::new(),
            event: event.to_owned(),
            severity,
            title,
            status: status.to_owned(),
            user: e.actor.clone(),
            org: e.org.clone(),
            environment: level.clone(),
            source_ip: e.source_ip.clone(),
            action_taken: taken.to_owned(),
            time: e.time.clone(),
            recipients: Vec::new(),
            link: None,
            decide: None,
            audit_seq: e.seq,
        };
    let link = |id: &str| {
        cx.base_url
            .map(|b| format!("{}/api/access-requests/{id}", b.trim_end_matches('/')))
    };
    let rule = || {
        let org = OrgName::parse(e.org.as_deref()?).ok()?;
        let level = cx.levels.level(level.as_deref()).ok()?;
        level.approval_for(&org).cloned()
    };
    let approvers = || {
        rule()
            .map(|r| {
                let mut names: Vec<String> = r.approvers.iter().map(ToString::to_string).collect();
                if r.admins_approve {
                    names.push("admins".to_owned());
                }
                names
            })
            .unwrap_or_default()
    };
    let what = || {
        format!(
            "{} on {}",
            level.as_deref().unwrap_or("?"),
            e.org.as_deref().unwrap_or("?")
        )
    };
    let target = e.target.clone().unwrap_or_default();
    let requester = text(d, "requested_by").unwrap_or_else(|| operator(&e.actor));

    if e.outcome == Outcome::Failure {
        if e.code.as_deref() == Some(Code::SourceIpNotAllowed.as_str()) {
            let mut n = base(
                "network.blocked",
                Severity::Critical,
                format!(
                    "Blocked: {} from {} outside the allowlist ({})",
                    e.actor,
                    e.source_ip.as_deref().unwrap_or("an unknown address"),
                    e.action
                ),
                "blocked",
                "refused with 403 source_ip_not_allowed; no credentials issued",
            );
            n.recipients = vec!["admins".to_owned()];
            return vec![n];
        }
        if e.action == "auth.failed" && d.get("first").is_some() {
            // An aggregate: `count` failures after the window's first one.
            let total = d.get("count").and_then(Value::as_u64).unwrap_or(0) + 1;
            if total >= cx.failed_login_burst {
                let source = text(d, "source").unwrap_or("an unknown source");
                let mut n = base(
                    "auth.failure_burst",
                    Severity::Warning,
                    format!("{total} failed sign-ins from {source} within a minute"),
                    "alert",
                    "refused each with 401; the source is rate limited",
                );
                n.user = source.to_owned();
                n.recipients = vec!["admins".to_owned()];
                return vec![n];
            }
        }
        return Vec::new();
    }

    match e.action.as_str() {
        "access.request" if text(d, "state") == Some("pending") => {
            let secs = d.get("duration_secs").and_then(Value::as_u64).unwrap_or(0);
            let mut n = base(
                "access.requested",
                Severity::Info,
                format!(
                    "{} asks for {} for {}",
                    operator(&e.actor),
                    what(),
                    hours(secs)
                ),
                "pending",
                "waiting for approval",
            );
            let max = rule().and_then(|r| r.chat_approval_max_duration_secs);
            n.decide = Some(if max.is_none_or(|m| secs <= u64::from(m)) {
                Decide::Buttons {
                    request_id: target.clone(),
                }
            } else {
                Decide::Link {
                    request_id: target.clone(),
                }
            });
            n.recipients = approvers();
            n.link = link(&target);
            vec![n]
        }
        "access.request" | "access.approve"
            if text(d, "state") == Some("approved") || text(d, "to") == Some("approved") =>
        {
            let mut n = base(
                "access.approved",
                Severity::Info,
                format!("Approved: {requester}'s access to {}", what()),
                "approved",
                "the grant is approved",
            );
            n.recipients = vec![requester.to_owned()];
            n.link = link(&target);
            vec![n]
        }
        "access.deny" | "access.request.expire" | "access.revoke" => {
            let (event, status, taken) = match e.action.as_str() {
                "access.deny" => ("access.denied", "denied", "the request was denied"),
                "access.revoke" => (
                    "access.revoked",
                    "revoked",
                    "the grant was revoked; cached credentials dropped",
                ),
                _ => (
                    "access.expired",
                    "expired",
                    "the request expired without a decision",
                ),
            };
            let mut n = base(
                event,
                Severity::Info,
                format!("{}: {requester}'s access to {}", capital(status), what()),
                status,
                taken,
            );
            n.recipients = vec![requester.to_owned()];
            n.link = link(&target);
            vec![n]
        }
        "access.break_glass" => {
            let mut n = base(
                "access.break_glass",
                Severity::Critical,
                format!("BREAK-GLASS: {} took {}", operator(&e.actor), what()),
                "active",
                "access granted at once without approval; flagged for review",
            );
            n.recipients = approvers();
            n.link = link(&target);
            vec![n]
        }
        _ => Vec::new(),
    }
}

fn capital(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// A credential issuance from a new address for its principal: the notification.
pub(super) fn new_address(e: &AuditEvent, known: usize) -> Notification {
    Notification {
        id: String::new(),
        event: "credentials.new_ip".to_owned(),
        severity: Severity::Warning,
        title: format!(
            "{} took credentials from a new address {}",
            e.actor,
            e.source_ip.as_deref().unwrap_or("?")
        ),
        status: "alert".to_owned(),
        user: e.actor.clone(),
        org: e.org.clone(),
        environment: text(&e.details, "access_level").map(str::to_owned),
        source_ip: e.source_ip.clone(),
        action_taken: format!("credentials issued; {known} earlier addresses on record"),
        time: e.time.clone(),
        recipients: vec!["admins".to_owned()],
        link: None,
        decide: None,
        audit_seq: e.seq,
    }
}
