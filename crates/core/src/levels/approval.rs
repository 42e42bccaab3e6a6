//! Approval rules: which levels may be used only through an approved, time-bound grant, who
//! approves, and how many must agree. Per level, optionally overridden per org. Validated
//! when the configuration loads; the policy (`crate::policy`) reads [`ApprovalRule::requires_approval`].

use std::collections::BTreeMap;

use super::{LevelError, MIN_DURATION_SECS, bad};
use crate::ids::{OrgName, UserId};

/// The longest a grant may last.
pub const MAX_GRANT_SECS: u32 = 7 * 24 * 3600;
/// At most this many approvals may be required.
pub const MAX_MIN_APPROVALS: u32 = 10;

/// One level's rule for one org (or its default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRule {
    /// The level is usable only through an active grant.
    pub requires_approval: bool,
    /// Operators who may approve, deny and revoke (groups already expanded).
    pub approvers: Vec<UserId>,
    /// Any admin may approve too (`"admins"` in `approvers`, or no approver listed).
    pub admins_approve: bool,
    /// Distinct approvals needed (the requester never counts).
    pub min_approvals: u32,
    /// The longest grant one request may ask for.
    pub max_duration_secs: u32,
    pub reason_required: bool,
    pub ticket_required: bool,
    /// How long a pending request waits before it expires.
    pub request_ttl_secs: u32,
    /// A request shorter than this is approved at once (by rolegate, audited).
    pub auto_approve_under_secs: Option<u32>,
    /// `break_glass` requests are allowed: active at once, reason required, flagged.
    pub break_glass: bool,
    /// Requests up to this long may be approved from chat (Slack buttons); longer ones get
    /// a link to the API instead. `None`: any request.
    pub chat_approval_max_duration_secs: Option<u32>,
    /// One of the org's customer approvers must agree too (ADR 0013); then neither
    /// break-glass nor `auto_approve_under` applies.
    pub customer_approval: bool,
}

impl Default for ApprovalRule {
    fn default() -> Self {
        Self {
            requires_approval: false,
            approvers: Vec::new(),
            admins_approve: true,
            min_approvals: 1,
            max_duration_secs: 8 * 3600,
            reason_required: false,
            ticket_required: false,
            request_ttl_secs: 24 * 3600,
            auto_approve_under_secs: None,
            break_glass: false,
            chat_approval_max_duration_secs: None,
            customer_approval: false,
        }
    }
}

/// Settings as written in configuration (`[credentials.access_levels.NAME.approval]` and its
/// `orgs.NAME` overrides); every field optional, so an org's table overrides only what it
/// names.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalSettings {
    /// The level is usable only through an approved, active grant.
    pub requires_approval: Option<bool>,
    /// Operator ids, `group:NAME` (from `[access.groups]`) or `admins` (any admin). None
    /// listed: any admin.
    pub approvers: Option<Vec<String>>,
    /// Distinct approvals needed (default 1); the requester never counts.
    pub min_approvals: Option<u32>,
    /// The longest grant one request may ask for (default 28800, at most 604800).
    pub max_duration_secs: Option<u32>,
    pub reason_required: Option<bool>,
    pub ticket_required: Option<bool>,
    /// How long a pending request waits before it expires (default 86400).
    pub request_ttl_secs: Option<u32>,
    /// Requests shorter than this are approved at once (audited as approved by rolegate).
    pub auto_approve_under_secs: Option<u32>,
    /// Allow `break_glass` requests: active at once, reason required, flagged for review.
    pub break_glass: Option<bool>,
    /// Requests up to this long may be approved from Slack; longer ones get a link.
    pub chat_approval_max_duration_secs: Option<u32>,
    /// One of the org's customer approvers (named by its API key) must agree too; then
    /// neither break-glass nor `auto_approve_under_secs` applies.
    pub customer_approval: Option<bool>,
}

impl ApprovalSettings {
    /// `self` with `over`'s fields where it names them.
    #[must_use]
    pub fn merged(&self, over: &Self) -> Self {
        Self {
            requires_approval: over.requires_approval.or(self.requires_approval),
            approvers: over.approvers.clone().or_else(|| self.approvers.clone()),
            min_approvals: over.min_approvals.or(self.min_approvals),
            max_duration_secs: over.max_duration_secs.or(self.max_duration_secs),
            reason_required: over.reason_required.or(self.reason_required),
            ticket_required: over.ticket_required.or(self.ticket_required),
            request_ttl_secs: over.request_ttl_secs.or(self.request_ttl_secs),
            auto_approve_under_secs: over
                .auto_approve_under_secs
                .or(self.auto_approve_under_secs),
            break_glass: over.break_glass.or(self.break_glass),
            chat_approval_max_duration_secs: over
                .chat_approval_max_duration_secs
                .or(self.chat_approval_max_duration_secs),
            customer_approval: over.customer_approval.or(self.customer_approval),
        }
    }

    /// Validates and resolves groups (`groups`: name → operator ids).
    pub fn build(
        &self,
        groups: &BTreeMap<String, Vec<String>>,
    ) -> Result<ApprovalRule, LevelError> {
        let d = ApprovalRule::default();
        let mut approvers = Vec::new();
        let mut admins_approve = false;
        let names = self.approvers.clone().unwrap_or_default();
        for name in &names {
            if name == "admins" {
                admins_approve = true;
            } else if let Some(g) = name.strip_prefix("group:") {
                let members = groups.get(g).ok_or_else(|| {
                    bad(
                        "approvers",
                        format!("group {g:?} is not defined in [access.groups]"),
                    )
                })?;
                for m in members {
                    approvers.push(parse_user(m)?);
                }
            } else {
                approvers.push(parse_user(name)?);
            }
        }
        approvers.sort();
        approvers.dedup();
        if names.is_empty() {
            admins_approve = true;
        }
        let min_approvals = self.min_approvals.unwrap_or(d.min_approvals);
        if !(1..=MAX_MIN_APPROVALS).contains(&min_approvals) {
            return Err(bad(
                "min_approvals",
                format!("must be between 1 and {MAX_MIN_APPROVALS}"),
            ));
        }
        if !admins_approve && approvers.len() < usize::try_from(min_approvals).unwrap_or(usize::MAX)
        {
            return Err(bad(
                "min_approvals",
                format!(
                    "{min_approvals} approvals need at least {min_approvals} approvers (and a requester among them never approves its own request)"
                ),
            ));
        }
        let max_duration_secs = self.max_duration_secs.unwrap_or(d.max_duration_secs);
        if !(MIN_DURATION_SECS..=MAX_GRANT_SECS).contains(&max_duration_secs) {
            return Err(bad(
                "max_duration_secs",
                format!("must be between {MIN_DURATION_SECS} and {MAX_GRANT_SECS}"),
            ));
        }
        let request_ttl_secs = self.request_ttl_secs.unwrap_or(d.request_ttl_secs);
        if !(60..=MAX_GRANT_SECS).contains(&request_ttl_secs) {
            return Err(bad(
                "request_ttl_secs",
                format!("must be between 60 and {MAX_GRANT_SECS}"),
            ));
        }
        if let Some(a) = self.auto_approve_under_secs
            && a > max_duration_secs
        {
            return Err(bad(
                "auto_approve_under_secs",
                "must not exceed max_duration_secs",
            ));
        }
        if let Some(c) = self.chat_approval_max_duration_secs
            && c > max_duration_secs
        {
            return Err(bad(
                "chat_approval_max_duration_secs",
                "must not exceed max_duration_secs",
            ));
        }
        Ok(ApprovalRule {
            requires_approval: self.requires_approval.unwrap_or(d.requires_approval),
            approvers,
            admins_approve,
            min_approvals,
            max_duration_secs,
            reason_required: self.reason_required.unwrap_or(d.reason_required),
            ticket_required: self.ticket_required.unwrap_or(d.ticket_required),
            request_ttl_secs,
            auto_approve_under_secs: self.auto_approve_under_secs,
            break_glass: self.break_glass.unwrap_or(d.break_glass),
            chat_approval_max_duration_secs: self.chat_approval_max_duration_secs,
            customer_approval: self.customer_approval.unwrap_or(d.customer_approval),
        })
    }
}

fn parse_user(s: &str) -> Result<UserId, LevelError> {
    UserId::parse(s).map_err(|_| bad("approvers", format!("{s:?} is not an operator id")))
}

/// A level's rules: its default and per-org overrides.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LevelApproval {
    pub default: ApprovalRule,
    pub orgs: BTreeMap<OrgName, ApprovalRule>,
}

impl LevelApproval {
    /// The rule for `org`.
    #[must_use]
    pub fn for_org(&self, org: &OrgName) -> &ApprovalRule {
        self.orgs.get(org).unwrap_or(&self.default)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn groups_expand_and_bad_rules_name_the_field() {
        let groups = BTreeMap::from([("sre".to_owned(), vec!["bob".into(), "carol".into()])]);
        let s = ApprovalSettings {
            requires_approval: Some(true),
            approvers: Some(vec!["group:sre".into(), "alice".into()]),
            min_approvals: Some(2),
            ..Default::default()
        };
        let r = s.build(&groups).unwrap();
        assert_eq!(r.approvers.len(), 3);
        assert!(!r.admins_approve);
        for (bad_settings, field) in [
            (
                ApprovalSettings {
                    approvers: Some(vec!["group:nope".into()]),
                    ..Default::default()
                },
                "approvers",
            ),
            (
                ApprovalSettings {
                    approvers: Some(vec!["alice".into()]),
                    min_approvals: Some(2),
                    ..Default::default()
                },
                "min_approvals",
            ),
            (
                ApprovalSettings {
                    min_approvals: Some(0),
                    ..Default::default()
                },
                "min_approvals",
            ),
            (
                ApprovalSettings {
                    max_duration_secs: Some(60),
                    ..Default::default()
                },
                "max_duration_secs",
            ),
            (
                ApprovalSettings {
                    auto_approve_under_secs: Some(MAX_GRANT_SECS),
                    ..Default::default()
                },
                "auto_approve_under_secs",
            ),
        ] {
            assert_eq!(bad_settings.build(&groups).unwrap_err().field, field);
        }
        let over = ApprovalSettings {
            min_approvals: Some(1),
            ..Default::default()
        };
        let merged = s.merged(&over);
        assert_eq!(merged.min_approvals, Some(1));
        assert_eq!(merged.requires_approval, Some(true));
    }
}
