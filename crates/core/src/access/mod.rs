//! Just-in-time access: requests for a level that needs approval, their approvals (quorum,
//! never one's own), the time-bound grants they become, revocation, break-glass, and the
//! sweeper that writes the transitions time makes (a pending request's TTL, a grant's
//! start and end).
//!
//! - One sealed record per request (`access/req/<id>`); every transition goes through
//!   `Records::update` with its audit event, so two concurrent approvals make one
//!   transition (or, under a quorum, count as two).
//! - `access/grant/<org>/<level>/<user>/<id>` indexes approved grants: `Orgs::load_granted`
//!   reads it on every use of a level that needs approval and shows the grant to the one
//!   policy. Enforcement reads the record's state *as of now*, so it never waits for the
//!   sweeper.
//! - `access/open/<id>` marks requests not yet final, for the sweeper.

use std::sync::Arc;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::Error;
use crate::ids::{OrgName, UserId};
use crate::levels::{ApprovalRule, CredentialPolicy, MIN_DURATION_SECS};
use crate::model::AccessRequestRecord;
use crate::orgs::Orgs;
use crate::principal::{Caller, Principal};
use crate::records::Records;

/// The customer's approvers, and the links and deliveries a request owes them.
mod customer;
/// Approving, denying, cancelling, revoking.
mod decide;
/// Sending what is owed to customer approvers: signed, retried with backoff.
mod deliver;
/// The email a customer approver reached by mail receives (pure).
mod email;
/// A customer approver's decision through its single-use link.
mod link;
/// Listing requests and grants, and who may see which.
mod list;
/// The levels a request form may offer on an org, with their rules.
mod options;
/// Creating requests (and break-glass grants).
mod request;
/// Reviewing break-glass grants.
mod review;
/// The `rolegate-revocations` policy document (pure).
pub mod revocation_policy;
/// A disabled operator's revocation, scoped to the orgs its history shows.
mod revoke_operators;
/// Writing revocations into customers' roles (`revoke_sessions`).
mod revoke_sessions;
/// `revoke_sessions` end to end against stand-ins.
#[cfg(test)]
mod revoke_tests;
/// Writing the transitions time makes.
mod sweep;
#[cfg(test)]
mod tests;

pub use customer::{
    CustomerApproverView, LINK_TOKEN_PREFIX, MAX_CUSTOMER_APPROVERS, MAX_EMAIL_CHARS,
    MAX_WEBHOOK_URL_CHARS, NewCustomerApprover, parse_email_address, parse_webhook_url,
};
pub use decide::Decision;
pub use deliver::Senders;
pub use link::{CustomerLinkView, LinkRequestView};
pub use list::{AccessFilter, AccessPage};
pub use options::Requestable;
pub use revoke_sessions::{RevokeSessions, RevokeSessionsSettings};

/// At most this many characters of ticket reference.
pub const MAX_TICKET_CHARS: usize = 64;
/// How far ahead a grant may be asked to start.
pub const MAX_START_AHEAD_SECS: i64 = 7 * 24 * 3600;

/// A validated request for access.
#[derive(Debug, Clone)]
pub struct RequestAccessCommand {
    pub org: OrgName,
    pub access_level: String,
    pub duration_secs: u32,
    pub reason: Option<String>,
    pub ticket: Option<String>,
    /// Unix seconds.
    pub starts_at: Option<i64>,
    pub break_glass: bool,
}

impl RequestAccessCommand {
    /// Checks each field on its own; the level's rule checks the rest.
    pub fn parse(
        org_name: Option<&str>,
        access_level: Option<&str>,
        duration_secs: Option<i64>,
        reason: Option<&str>,
        ticket: Option<&str>,
        starts_at: Option<&str>,
        break_glass: bool,
    ) -> Result<Self, Error> {
        let org = org_name.ok_or_else(|| Error::invalid("org_name", "org_name is required"))?;
        let level = access_level
            .ok_or_else(|| Error::invalid("access_level", "access_level is required"))?;
        let duration = duration_secs
            .ok_or_else(|| Error::invalid("duration_secs", "duration_secs is required"))?;
        let duration_secs = u32::try_from(duration)
            .ok()
            .filter(|d| *d >= MIN_DURATION_SECS)
            .ok_or_else(|| {
                Error::invalid(
                    "duration_secs",
                    format!("duration_secs must be at least {MIN_DURATION_SECS}"),
                )
            })?;
        let ticket = match ticket.map(str::trim).filter(|t| !t.is_empty()) {
            None => None,
            Some(t) => {
                let ok = t.chars().count() <= MAX_TICKET_CHARS
                    && t.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_./#:".contains(c));
                if !ok {
                    return Err(Error::invalid(
                        "ticket",
                        format!(
                            "ticket must be at most {MAX_TICKET_CHARS} characters of A-Z, a-z, 0-9, '-', '_', '.', '/', '#', ':'"
                        ),
                    ));
                }
                Some(t.to_owned())
            }
        };
        let starts_at = starts_at
            .map(|s| {
                OffsetDateTime::parse(s, &Rfc3339)
                    .map(OffsetDateTime::unix_timestamp)
                    .map_err(|_| {
                        Error::invalid(
                            "starts_at",
                            "starts_at must be an RFC 3339 time (2026-01-01T09:00:00Z)",
                        )
                    })
            })
            .transpose()?;
        Ok(Self {
            org: crate::ids::OrgName::parse(org)?,
            access_level: level.to_owned(),
            duration_secs,
            reason: crate::credentials::session::parse_reason(reason)?,
            ticket,
            starts_at,
            break_glass,
        })
    }
}

/// The access area.
#[derive(Debug, Clone)]
pub struct Access {
    records: Records,
    orgs: Orgs,
    levels: Arc<CredentialPolicy>,
    /// `revoke_sessions`: what writes deny statements into customers' roles (none: off).
    revoke_sessions: Option<RevokeSessions>,
    /// Where customers reach rolegate (`access.public_url`), for approval links.
    public_url: Option<Arc<str>>,
    /// Wakes the delivery loop when a request owes customer approvers a delivery.
    deliveries: Arc<tokio::sync::Notify>,
    /// Whether mail can be sent (`[smtp]`): email customer approvers need it.
    mail: bool,
}

/// `a` + 12 hex digits of milliseconds + 16 random hex digits (29 characters).
fn request_id(now_ms: i64) -> String {
    format!("a{:012x}{}", now_ms.max(0), rolegate_crypto::short_id())
}

fn plausible_id(id: &str) -> bool {
    id.len() == 29 && id.starts_with('a') && id[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// The operator behind `caller`, or 403: grants are for people.
fn operator_id(caller: &Caller) -> Result<&UserId, Error> {
    match &caller.principal {
        Principal::Operator { user_id, .. } => Ok(user_id),
        _ => Err(Error::forbidden("only operators hold access grants")),
    }
}

/// Whether `caller` may approve, deny and revoke under `rule` (the requester aside).
fn may_approve(caller: &Caller, rule: Option<&ApprovalRule>) -> bool {
    let Principal::Operator { user_id, .. } = &caller.principal else {
        return false;
    };
    let admin = caller.principal.is_admin();
    match rule {
        Some(r) => r.approvers.contains(user_id) || (admin && r.admins_approve),
        // The level is gone from the configuration: only admins decide.
        None => admin,
    }
}

impl Access {
    #[must_use]
    pub fn new(orgs: Orgs, levels: Arc<CredentialPolicy>) -> Self {
        Self {
            records: orgs.records().clone(),
            orgs,
            levels,
            revoke_sessions: None,
            public_url: None,
            deliveries: Arc::new(tokio::sync::Notify::new()),
            mail: false,
        }
    }

    /// The same area, allowing email customer approvers (the server has `[smtp]`).
    #[must_use]
    pub fn with_mail(mut self, mail: bool) -> Self {
        self.mail = mail;
        self
    }

    /// The same area, writing revocations into the roles of the orgs `revoke` names.
    #[must_use]
    pub fn with_revoke_sessions(mut self, revoke: RevokeSessions) -> Self {
        self.revoke_sessions = Some(revoke);
        self
    }

    /// With the address customers reach rolegate at, for customer approval links.
    #[must_use]
    pub fn with_public_url(mut self, url: Option<String>) -> Self {
        self.public_url = url.map(Arc::from);
        self
    }

    /// The rule of `rec`'s level on its org, as configured now.
    fn rule_of(&self, rec: &AccessRequestRecord) -> Option<ApprovalRule> {
        self.levels
            .level(Some(&rec.access_level))
            .ok()
            .and_then(|l| l.approval_for(&rec.org).cloned())
    }

    fn now(&self) -> i64 {
        self.records.clock().now().unix_timestamp()
    }
}

/// A refusal of `action` on `rec` inside the update loop: audited with `code` and
/// `details` (plus the message as `reason`), answered 409 or 403 by the code's status.
fn refusal<T>(
    action: crate::policy::Action,
    rec: &AccessRequestRecord,
    code: crate::error::Code,
    message: String,
    mut details: serde_json::Value,
) -> Result<crate::records::Change<T>, Error> {
    details["reason"] = serde_json::Value::from(message.clone());
    let audit = crate::audit::AuditRecord::new(action.name())
        .org(rec.org.to_string())
        .target(rec.id.clone())
        .failure(code.as_str())
        .details(details);
    let error = match code.status() {
        409 => Error::Conflict { code, message },
        _ => Error::Forbidden { code, message },
    };
    Ok(crate::records::Change::Refuse { audit, error })
}

/// Unix seconds as RFC 3339.
fn rfc3339(unix: i64) -> String {
    crate::clock::rfc3339_unix(unix)
}
