//! The `[access]` table (approver groups, the sweeper) and each level's
//! `[credentials.access_levels.NAME.approval]` rule, with per-org overrides.
//!
//! ```toml
//! [access]
//! sweep_interval_ms = 5000
//! revoke_sessions = false
//! revoke_sessions_orgs = ["acme-corp"]
//! public_url = "https://rolegate.example.com"
//! [access.groups]
//! sre = ["bob", "carol"]
//!
//! [credentials.access_levels.operator.approval]
//! requires_approval = true
//! approvers = ["group:sre", "admins"]
//! min_approvals = 1
//! max_duration_secs = 28800
//! [credentials.access_levels.operator.approval.orgs.acme-corp]
//! min_approvals = 2
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use rolegate_core::access::RevokeSessionsSettings;
use rolegate_core::ids::OrgName;
use rolegate_core::levels::{ApprovalSettings, LevelApproval};
use serde::Deserialize;

use super::{ConfigError, bad};

/// `[access]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccess {
    /// Approver groups: name → operator ids (`approvers = ["group:NAME"]`).
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
    /// How often each replica writes the transitions time makes (default 5000).
    pub sweep_interval_ms: Option<u64>,
    /// Write a deny statement into the customer's role when a grant is revoked, so that
    /// credentials already handed out stop working (default false; the org's stack needs
    /// the template's `AllowRevocations` option).
    pub revoke_sessions: Option<bool>,
    /// Only these orgs, when `revoke_sessions` is not on for all.
    pub revoke_sessions_orgs: Option<Vec<String>>,
    /// Where customers reach rolegate, for customer approval links (`https://host[/prefix]`;
    /// default: the origin of `onboarding.callback_url`).
    pub public_url: Option<String>,
}

/// Validated `[access]`.
#[derive(Debug, Clone)]
pub struct AccessSettings {
    pub sweep_interval: Duration,
    /// Which orgs' roles get revocations written into them.
    pub revoke_sessions: RevokeSessionsSettings,
    pub public_url: Option<String>,
}

/// `scheme://authority` of an http(s) URL.
#[must_use]
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest
        .split(['/', '?', '#'])
        .next()
        .filter(|a| !a.is_empty())?;
    matches!(scheme, "http" | "https").then(|| format!("{scheme}://{authority}"))
}

impl RawAccess {
    pub fn validate(&self) -> Result<AccessSettings, ConfigError> {
        let ms = self.sweep_interval_ms.unwrap_or(5_000);
        if !(50..=600_000).contains(&ms) {
            return Err(bad(
                "access.sweep_interval_ms",
                "must be between 50 and 600000",
            ));
        }
        for (name, members) in &self.groups {
            if members.is_empty() {
                return Err(bad(&format!("access.groups.{name}"), "must name operators"));
            }
        }
        let mut orgs = std::collections::BTreeSet::new();
        for name in self.revoke_sessions_orgs.iter().flatten() {
            orgs.insert(
                OrgName::parse(name)
                    .map_err(|e| bad("access.revoke_sessions_orgs", format!("{name:?}: {e}")))?,
            );
        }
        if let Some(u) = &self.public_url
            && (origin_of(u).is_none() || u.contains(char::is_whitespace) || u.contains(['?', '#']))
        {
            return Err(bad(
                "access.public_url",
                "must be an http(s) URL (https://host[:port][/prefix]) without query or fragment",
            ));
        }
        Ok(AccessSettings {
            sweep_interval: Duration::from_millis(ms),
            revoke_sessions: RevokeSessionsSettings {
                all_orgs: self.revoke_sessions.unwrap_or(false),
                orgs,
            },
            public_url: self
                .public_url
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_owned()),
        })
    }
}

/// `[credentials.access_levels.NAME.approval]`: the fields of [`ApprovalSettings`] (listed
/// again because serde's `flatten` cannot be combined with `deny_unknown_fields`) and the
/// per-org overrides.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApproval {
    pub requires_approval: Option<bool>,
    pub approvers: Option<Vec<String>>,
    pub min_approvals: Option<u32>,
    pub max_duration_secs: Option<u32>,
    pub reason_required: Option<bool>,
    pub ticket_required: Option<bool>,
    pub request_ttl_secs: Option<u32>,
    pub auto_approve_under_secs: Option<u32>,
    pub break_glass: Option<bool>,
    pub chat_approval_max_duration_secs: Option<u32>,
    pub customer_approval: Option<bool>,
    /// Per-org overrides of the fields above.
    #[serde(default)]
    pub orgs: BTreeMap<String, ApprovalSettings>,
}

impl RawApproval {
    /// The level's rules; `setting` names the table in errors.
    pub fn validate(
        &self,
        setting: &str,
        groups: &BTreeMap<String, Vec<String>>,
    ) -> Result<LevelApproval, ConfigError> {
        let base = ApprovalSettings {
            requires_approval: self.requires_approval,
            approvers: self.approvers.clone(),
            min_approvals: self.min_approvals,
            max_duration_secs: self.max_duration_secs,
            reason_required: self.reason_required,
            ticket_required: self.ticket_required,
            request_ttl_secs: self.request_ttl_secs,
            auto_approve_under_secs: self.auto_approve_under_secs,
            break_glass: self.break_glass,
            chat_approval_max_duration_secs: self.chat_approval_max_duration_secs,
            customer_approval: self.customer_approval,
        };
        let default = base
            .build(groups)
            .map_err(|e| bad(&format!("{setting}.{}", e.field), e.reason))?;
        let mut orgs = BTreeMap::new();
        for (name, over) in &self.orgs {
            let org = OrgName::parse(name)
                .map_err(|e| bad(&format!("{setting}.orgs.{name}"), e.to_string()))?;
            let rule = base
                .merged(over)
                .build(groups)
                .map_err(|e| bad(&format!("{setting}.orgs.{name}.{}", e.field), e.reason))?;
            orgs.insert(org, rule);
        }
        Ok(LevelApproval { default, orgs })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn overrides_inherit_and_errors_name_the_setting() {
        let raw: RawApproval = toml::from_str(
            "requires_approval = true\napprovers = [\"group:sre\"]\n[orgs.acme]\nmin_approvals = 2\n",
        )
        .unwrap();
        let groups = BTreeMap::from([(
            "sre".to_owned(),
            vec!["ann".to_owned(), "bob".to_owned(), "cy".to_owned()],
        )]);
        let l = raw.validate("x", &groups).unwrap();
        let acme = OrgName::parse("acme").unwrap();
        assert_eq!(l.for_org(&acme).min_approvals, 2);
        assert!(l.for_org(&acme).requires_approval);
        assert_eq!(l.default.min_approvals, 1);
        let e = raw.validate("x", &BTreeMap::new()).unwrap_err();
        assert!(e.to_string().contains("x.approvers"), "{e}");
        assert!(toml::from_str::<RawApproval>("customer_approvals = true").is_err());
        let c: RawApproval =
            toml::from_str("requires_approval = true\n[orgs.acme]\ncustomer_approval = true\n")
                .unwrap();
        let l = c.validate("x", &BTreeMap::new()).unwrap();
        assert!(l.for_org(&acme).customer_approval);
        assert!(!l.default.customer_approval);
    }

    #[test]
    fn revoke_sessions_is_off_by_default_and_names_valid_orgs() {
        let off = RawAccess::default().validate().unwrap();
        let acme = OrgName::parse("acme").unwrap();
        assert!(!off.revoke_sessions.applies(&acme));
        let some: RawAccess = toml::from_str("revoke_sessions_orgs = [\"acme\"]").unwrap();
        let some = some.validate().unwrap();
        assert!(some.revoke_sessions.applies(&acme));
        assert!(
            !some
                .revoke_sessions
                .applies(&OrgName::parse("other").unwrap())
        );
        let all: RawAccess = toml::from_str("revoke_sessions = true").unwrap();
        assert!(all.validate().unwrap().revoke_sessions.applies(&acme));
        let bad: RawAccess = toml::from_str("revoke_sessions_orgs = [\"Not An Org\"]").unwrap();
        let e = bad.validate().unwrap_err();
        assert!(e.to_string().contains("access.revoke_sessions_orgs"), "{e}");
    }
}
