//! Access levels: named session policies that narrow what vended credentials may do, and who
//! may use each one. They are checked against AWS's limits when the configuration loads,
//! never at request time; the policy (`crate::policy`) reads the grants.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use crate::ids::OrgName;

/// Approval rules: levels usable only through an approved grant.
pub mod approval;

pub use approval::{ApprovalRule, ApprovalSettings, LevelApproval};

/// AWS accepts an inline session policy of at most 2,048 characters (whitespace aside).
pub const MAX_INLINE_POLICY_CHARS: usize = 2048;
/// AWS accepts at most 10 managed session policy ARNs.
pub const MAX_POLICY_ARNS: usize = 10;
/// The STS bounds for `DurationSeconds`.
pub const MIN_DURATION_SECS: u32 = 900;
pub const MAX_DURATION_SECS: u32 = 43_200;

/// Why an access level cannot be used, naming the part that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct LevelError {
    pub field: &'static str,
    pub reason: String,
}

fn bad(field: &'static str, reason: impl Into<String>) -> LevelError {
    LevelError {
        field,
        reason: reason.into(),
    }
}

/// Who may use an access level (besides, in a later issue, approved access grants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Grantee {
    /// The org's own API keys.
    ApiKeys,
    /// The operator who owns the org.
    Owners,
    /// Any admin.
    Admins,
    /// Workloads authenticated by an X.509 certificate (`POST /sessions`), and then only
    /// with the level their profile names.
    Workloads,
}

impl Grantee {
    pub const ALL: [Grantee; 4] = [
        Grantee::ApiKeys,
        Grantee::Owners,
        Grantee::Admins,
        Grantee::Workloads,
    ];

    /// The name used in configuration (`allow = ["api_keys", "owners", "admins"]`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ApiKeys => "api_keys",
            Self::Owners => "owners",
            Self::Admins => "admins",
            Self::Workloads => "workloads",
        }
    }

    pub fn parse(s: &str) -> Result<Self, LevelError> {
        Self::ALL
            .into_iter()
            .find(|g| g.as_str() == s)
            .ok_or_else(|| {
                bad(
                    "allow",
                    format!(
                        "{s:?} is not one of \"api_keys\", \"owners\", \"admins\", \"workloads\""
                    ),
                )
            })
    }
}

/// One validated access level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLevel {
    name: String,
    /// Minified inline session policy JSON.
    policy: Option<String>,
    policy_arns: Vec<String>,
    max_duration_secs: u32,
    /// SHA-256 over the policy and ARNs: part of the credential cache key, so that changing
    /// a level's policy never serves credentials minted under the old one.
    policy_hash: String,
    /// Who may use it; `None` until [`CredentialPolicy::new`] applies the default (every
    /// grantee for the default level, owners and admins for the others).
    allow: Option<Vec<Grantee>>,
    /// Approval rules (`[credentials.access_levels.NAME.approval]`); `None`: no level of
    /// this name needs approval anywhere.
    approval: Option<Arc<LevelApproval>>,
}

fn is_level_name(n: &str) -> bool {
    (1..=32).contains(&n.len())
        && n.starts_with(|c: char| c.is_ascii_lowercase())
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// `arn:PARTITION:iam::(aws|ACCOUNT):policy/NAME` with an optional path.
fn is_policy_arn(arn: &str) -> bool {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(owner), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let owner_ok =
        owner == "aws" || (owner.len() == 12 && owner.bytes().all(|b| b.is_ascii_digit()));
    let name_ok = resource.strip_prefix("policy/").is_some_and(|p| {
        !p.is_empty()
            && !p.ends_with('/')
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@-_/".contains(&b))
    });
    matches!(partition, "aws" | "aws-cn" | "aws-us-gov") && owner_ok && name_ok && arn.len() <= 2048
}

impl AccessLevel {
    /// Validates a level as AWS will judge its session policy.
    pub fn new(
        name: &str,
        policy: Option<&str>,
        policy_arns: Vec<String>,
        max_duration_secs: u32,
    ) -> Result<Self, LevelError> {
        if !is_level_name(name) {
            return Err(bad(
                "name",
                "must be 1 to 32 characters of a-z, 0-9, '-' or '_', starting with a letter",
            ));
        }
        if !(MIN_DURATION_SECS..=MAX_DURATION_SECS).contains(&max_duration_secs) {
            return Err(bad(
                "max_duration_secs",
                format!("must be between {MIN_DURATION_SECS} and {MAX_DURATION_SECS}"),
            ));
        }
        let policy = match policy {
            None => None,
            Some(text) => {
                let value: serde_json::Value = serde_json::from_str(text)
                    .map_err(|e| bad("policy", format!("is not valid JSON: {e}")))?;
                if value.get("Statement").is_none() || value.get("Version").is_none() {
                    return Err(bad(
                        "policy",
                        "must be an IAM policy document with Version and Statement",
                    ));
                }
                let minified = value.to_string();
                let chars = minified.chars().filter(|c| !c.is_whitespace()).count();
                if chars > MAX_INLINE_POLICY_CHARS {
                    return Err(bad(
                        "policy",
                        format!(
                            "is {chars} characters without whitespace; AWS allows at most {MAX_INLINE_POLICY_CHARS}"
                        ),
                    ));
                }
                Some(minified)
            }
        };
        if policy_arns.len() > MAX_POLICY_ARNS {
            return Err(bad(
                "policy_arns",
                format!("AWS allows at most {MAX_POLICY_ARNS} managed session policies"),
            ));
        }
        if let Some(arn) = policy_arns.iter().find(|a| !is_policy_arn(a)) {
            return Err(bad(
                "policy_arns",
                format!("{arn:?} is not an IAM policy ARN (arn:aws:iam::aws:policy/NAME)"),
            ));
        }
        Ok(Self::build(name, policy, policy_arns, max_duration_secs))
    }

    /// Says who may use this level (`allow` in configuration); without it the default
    /// applies (see [`AccessLevel::allows`]).
    pub fn with_allow(mut self, allow: &[String]) -> Result<Self, LevelError> {
        let mut grantees = allow
            .iter()
            .map(|s| Grantee::parse(s))
            .collect::<Result<Vec<_>, _>>()?;
        grantees.sort_unstable();
        grantees.dedup();
        self.allow = Some(grantees);
        Ok(self)
    }

    /// Assembles a level whose parts are already known to be valid.
    fn build(
        name: &str,
        policy: Option<String>,
        policy_arns: Vec<String>,
        max_duration_secs: u32,
    ) -> Self {
        let mut h = Sha256::new();
        h.update(policy.as_deref().unwrap_or_default());
        for arn in &policy_arns {
            h.update([0]);
            h.update(arn);
        }
        let policy_hash = hex::encode(&h.finalize()[..8]);
        Self {
            name: name.to_owned(),
            policy,
            policy_arns,
            max_duration_secs,
            policy_hash,
            allow: None,
            approval: None,
        }
    }

    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
    #[must_use]
    pub fn policy(&self) -> Option<&str> {
        self.policy.as_deref()
    }
    #[must_use]
    pub fn policy_arns(&self) -> &[String] {
        &self.policy_arns
    }
    #[must_use]
    pub fn max_duration_secs(&self) -> u32 {
        self.max_duration_secs
    }
    #[must_use]
    pub fn policy_hash(&self) -> &str {
        &self.policy_hash
    }

    /// Gives the level its approval rules.
    #[must_use]
    pub fn with_approval(mut self, approval: LevelApproval) -> Self {
        self.approval = Some(Arc::new(approval));
        self
    }

    /// The approval rule for `org`, if the level has any.
    #[must_use]
    pub fn approval_for(&self, org: &OrgName) -> Option<&ApprovalRule> {
        self.approval.as_deref().map(|a| a.for_org(org))
    }

    /// Whether the level is usable on `org` only through an active grant.
    #[must_use]
    pub fn requires_grant(&self, org: &OrgName) -> bool {
        self.approval_for(org).is_some_and(|r| r.requires_approval)
    }

    /// Whether `who` may use this level.
    #[must_use]
    pub fn allows(&self, who: Grantee) -> bool {
        self.allow.as_ref().is_some_and(|a| a.contains(&who))
    }

    /// Who may use this level, in configuration names.
    #[must_use]
    pub fn grantees(&self) -> Vec<&'static str> {
        self.allow.iter().flatten().map(|g| g.as_str()).collect()
    }
}

/// Every configured level, the default one, and how the cache refreshes.
#[derive(Debug, Clone)]
pub struct CredentialPolicy {
    /// Shared, so that an issuance holds its level without copying its policy text.
    levels: BTreeMap<String, Arc<AccessLevel>>,
    default_level: String,
    /// The duration when a request names none (capped by the level's maximum).
    pub default_duration_secs: u32,
    /// Cached credentials are served while more than this remains; `None` means the
    /// default, the smaller of 5 minutes and 25% of the duration.
    pub refresh_window: Option<Duration>,
    /// The region reported with credentials (the provider's AWS region).
    pub region: String,
}

fn shared(levels: BTreeMap<String, AccessLevel>) -> BTreeMap<String, Arc<AccessLevel>> {
    levels.into_iter().map(|(k, v)| (k, Arc::new(v))).collect()
}

impl CredentialPolicy {
    pub fn new(
        levels: Vec<AccessLevel>,
        default_level: &str,
        default_duration_secs: u32,
        refresh_window: Option<Duration>,
        region: String,
    ) -> Result<Self, LevelError> {
        let mut levels: BTreeMap<String, AccessLevel> =
            levels.into_iter().map(|l| (l.name.clone(), l)).collect();
        if !levels.contains_key(default_level) {
            return Err(bad(
                "default_access_level",
                format!("{default_level:?} is not one of the configured access levels"),
            ));
        }
        if !(MIN_DURATION_SECS..=MAX_DURATION_SECS).contains(&default_duration_secs) {
            return Err(bad(
                "default_duration_secs",
                format!("must be between {MIN_DURATION_SECS} and {MAX_DURATION_SECS}"),
            ));
        }
        for level in levels.values_mut() {
            level
                .allow
                .get_or_insert_with(|| default_allow(level.name == default_level));
        }
        Ok(Self {
            levels: shared(levels),
            default_level: default_level.to_owned(),
            default_duration_secs,
            refresh_window,
            region,
        })
    }

    /// `readonly` (the default: the AWS-managed ReadOnlyAccess policy as a session policy)
    /// and `operator` (no session policy: whatever the customer's role allows), 1 hour max.
    #[must_use]
    pub fn defaults(partition: &str, region: String) -> Self {
        let readonly = AccessLevel::build(
            "readonly",
            None,
            vec![format!("arn:{partition}:iam::aws:policy/ReadOnlyAccess")],
            3600,
        );
        let operator = AccessLevel::build("operator", None, Vec::new(), 3600);
        let mut levels = BTreeMap::new();
        for mut level in [readonly, operator] {
            level.allow = Some(default_allow(level.name == "readonly"));
            levels.insert(level.name.clone(), level);
        }
        Self {
            levels: shared(levels),
            default_level: "readonly".to_owned(),
            default_duration_secs: 3600,
            refresh_window: None,
            region,
        }
    }

    /// The built-in levels with another default level: who may use each follows the new
    /// default (API keys get the default level only).
    pub fn defaults_with(
        partition: &str,
        region: String,
        default_level: &str,
        default_duration_secs: u32,
        refresh_window: Option<Duration>,
    ) -> Result<Self, LevelError> {
        let mut levels: Vec<AccessLevel> = Self::defaults(partition, region.clone())
            .levels
            .into_values()
            .map(Arc::unwrap_or_clone)
            .collect();
        for level in &mut levels {
            level.allow = None;
        }
        Self::new(
            levels,
            default_level,
            default_duration_secs,
            refresh_window,
            region,
        )
    }

    /// Every configured level, by name.
    pub fn levels(&self) -> impl Iterator<Item = &AccessLevel> {
        self.levels.values().map(AsRef::as_ref)
    }

    /// The named level, or the default one. A name that could never be a level is refused
    /// without being echoed (it came from a request).
    pub fn level(&self, name: Option<&str>) -> Result<&AccessLevel, crate::error::Error> {
        self.shared_level(name).map(AsRef::as_ref)
    }

    /// [`CredentialPolicy::level`], shared: what an issuance holds on to, without copying
    /// the level's policy text.
    pub fn shared_level(
        &self,
        name: Option<&str>,
    ) -> Result<&Arc<AccessLevel>, crate::error::Error> {
        let name = name.unwrap_or(&self.default_level);
        if !is_level_name(name) {
            return Err(crate::error::Error::invalid(
                "access_level",
                "access_level must be 1 to 32 characters of a-z, 0-9, '-' or '_', starting with a letter",
            ));
        }
        self.levels.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.levels.keys().map(String::as_str).collect();
            crate::error::Error::invalid(
                "access_level",
                format!(
                    "unknown access level {name:?}; configured levels: {}",
                    known.join(", ")
                ),
            )
        })
    }

    #[must_use]
    pub fn default_level(&self) -> &str {
        &self.default_level
    }

    /// How long before expiry a cached credential stops being served.
    #[must_use]
    pub fn window_for(&self, duration_secs: u32) -> Duration {
        self.refresh_window.unwrap_or_else(|| {
            Duration::from_secs(u64::from(duration_secs) / 4).min(Duration::from_secs(300))
        })
    }
}

/// Who may use a level whose configuration says nothing: an org's API keys and workloads get
/// only the default level; the owning operator and admins get every level.
fn default_allow(is_default: bool) -> Vec<Grantee> {
    if is_default {
        Grantee::ALL.to_vec()
    } else {
        vec![Grantee::Owners, Grantee::Admins]
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const POLICY: &str = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}"#;

    #[test]
    fn a_valid_level_is_minified_and_hashed() {
        let l = AccessLevel::new("ops", Some(POLICY), vec![], 3600).unwrap();
        assert!(!l.policy().unwrap().contains(' '));
        let m = AccessLevel::new(
            "ops",
            None,
            vec!["arn:aws:iam::aws:policy/ReadOnlyAccess".into()],
            3600,
        )
        .unwrap();
        assert_ne!(l.policy_hash(), m.policy_hash());
        assert_eq!(l.policy_hash().len(), 16);
    }

    #[test]
    fn bad_levels_name_the_problem() {
        let too_big = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"s3:GetObject","Resource":"{}"}}]}}"#,
            "a".repeat(2100)
        );
        for (name, policy, arns, max, field) in [
            ("Bad", None, vec![], 3600, "name"),
            ("ok", Some("{"), vec![], 3600, "policy"),
            ("ok", Some("{\"a\":1}"), vec![], 3600, "policy"),
            ("ok", Some(too_big.as_str()), vec![], 3600, "policy"),
            (
                "ok",
                None,
                vec!["arn:aws:s3:::bucket".to_owned()],
                3600,
                "policy_arns",
            ),
            (
                "ok",
                None,
                vec!["arn:aws:iam::aws:policy/X".to_owned(); 11],
                3600,
                "policy_arns",
            ),
            ("ok", None, vec![], 899, "max_duration_secs"),
            ("ok", None, vec![], 43_201, "max_duration_secs"),
        ] {
            let e = AccessLevel::new(name, policy, arns, max).unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
    }

    #[test]
    fn policy_arns_are_checked() {
        for ok in [
            "arn:aws:iam::aws:policy/ReadOnlyAccess",
            "arn:aws-cn:iam::123456789012:policy/team/Narrow",
            "arn:aws-us-gov:iam::aws:policy/job-function/ViewOnlyAccess",
        ] {
            assert!(is_policy_arn(ok), "{ok}");
        }
        for bad in [
            "arn:aws:iam::aws:role/X",
            "arn:aws:iam::12345:policy/X",
            "arn:aws:iam::aws:policy/",
            "arn:other:iam::aws:policy/X",
            "arn:aws:iam::aws:policy/X Y",
        ] {
            assert!(!is_policy_arn(bad), "{bad}");
        }
    }

    #[test]
    fn defaults_and_lookup() {
        let p = CredentialPolicy::defaults("aws", "us-east-1".into());
        assert_eq!(p.level(None).unwrap().name(), "readonly");
        assert_eq!(
            p.level(None).unwrap().policy_arns(),
            ["arn:aws:iam::aws:policy/ReadOnlyAccess"]
        );
        assert!(p.level(Some("operator")).unwrap().policy().is_none());
        let e = p.level(Some("root")).unwrap_err();
        assert!(e.to_string().contains("operator, readonly"), "{e}");
        assert_eq!(p.window_for(3600), Duration::from_secs(300));
        assert_eq!(p.window_for(900), Duration::from_secs(225));
        assert!(CredentialPolicy::new(vec![], "readonly", 3600, None, "us-east-1".into()).is_err());
    }

    #[test]
    fn grants_default_to_keys_on_the_default_level_only() {
        let p = CredentialPolicy::defaults("aws", "us-east-1".into());
        let ro = p.level(Some("readonly")).unwrap();
        let op = p.level(Some("operator")).unwrap();
        assert!(Grantee::ALL.iter().all(|g| ro.allows(*g)));
        assert!(!op.allows(Grantee::ApiKeys));
        assert!(op.allows(Grantee::Owners) && op.allows(Grantee::Admins));
        let custom = AccessLevel::new("ops", Some(POLICY), vec![], 3600)
            .unwrap()
            .with_allow(&["api_keys".to_owned()])
            .unwrap();
        let p = CredentialPolicy::new(vec![ro.clone(), custom], "readonly", 3600, None, "x".into())
            .unwrap();
        let ops = p.level(Some("ops")).unwrap();
        assert!(ops.allows(Grantee::ApiKeys) && !ops.allows(Grantee::Admins));
        assert_eq!(ops.grantees(), ["api_keys"]);
        let e = AccessLevel::new("x", None, vec![], 3600)
            .unwrap()
            .with_allow(&["everyone".to_owned()])
            .unwrap_err();
        assert_eq!(e.field, "allow");
    }
}
