//! The `[credentials]` table (access levels and the cache) and `[console]`.
//!
//! ```toml
//! [credentials]
//! default_access_level = "readonly"
//! [credentials.access_levels.readonly]
//! policy_arns = ["arn:aws:iam::aws:policy/ReadOnlyAccess"]
//! max_duration_secs = 3600
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use rolegate_core::credentials::{AccessLevel, ConsoleSettings};
use rolegate_core::levels::CredentialPolicy;
use serde::Deserialize;

use super::{ConfigError, bad};

/// One `[credentials.access_levels.NAME]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccessLevel {
    /// Inline session policy JSON.
    pub policy: Option<String>,
    /// Managed session policy ARNs.
    #[serde(default)]
    pub policy_arns: Vec<String>,
    pub max_duration_secs: Option<u32>,
    /// Who may use the level: any of `api_keys` (the org's API keys), `owners` (the operator
    /// who owns the org) and `admins`. When absent: everyone for the default level, owners
    /// and admins for the others.
    pub allow: Option<Vec<String>>,
    /// Approval rules: the level usable only through an approved grant (see
    /// `config::access`).
    pub approval: Option<super::access::RawApproval>,
}

/// `[credentials]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCredentials {
    pub default_access_level: Option<String>,
    pub default_duration_secs: Option<u32>,
    pub refresh_window_secs: Option<u64>,
    pub region: Option<String>,
    /// When absent, `readonly` and `operator` are defined (see `CredentialPolicy::defaults`).
    pub access_levels: Option<BTreeMap<String, RawAccessLevel>>,
}

/// `[console]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConsole {
    pub federation_url: Option<String>,
    pub issuer: Option<String>,
}

impl RawCredentials {
    pub fn validate(
        self,
        partition: &str,
        region: &str,
        groups: &BTreeMap<String, Vec<String>>,
    ) -> Result<CredentialPolicy, ConfigError> {
        let region = self.region.unwrap_or_else(|| region.to_owned());
        let window = self.refresh_window_secs.map(Duration::from_secs);
        if let Some(w) = self.refresh_window_secs
            && w > 3_600
        {
            return Err(bad(
                "credentials.refresh_window_secs",
                "must be at most 3600",
            ));
        }
        let Some(raw_levels) = self.access_levels else {
            let default = self
                .default_access_level
                .unwrap_or_else(|| "readonly".into());
            return CredentialPolicy::defaults_with(
                partition,
                region,
                &default,
                self.default_duration_secs.unwrap_or(3_600),
                window,
            )
            .map_err(|e| bad(&format!("credentials.{}", e.field), e.reason));
        };
        let mut levels = Vec::with_capacity(raw_levels.len());
        for (name, raw) in raw_levels {
            let level = AccessLevel::new(
                &name,
                raw.policy.as_deref(),
                raw.policy_arns,
                raw.max_duration_secs.unwrap_or(3_600),
            )
            .and_then(|l| match &raw.allow {
                Some(allow) => l.with_allow(allow),
                None => Ok(l),
            })
            .map_err(|e| {
                let setting = if e.field == "name" {
                    format!("credentials.access_levels.{name}")
                } else {
                    format!("credentials.access_levels.{name}.{}", e.field)
                };
                bad(&setting, e.reason)
            })?;
            let level = match &raw.approval {
                Some(a) => level.with_approval(a.validate(
                    &format!("credentials.access_levels.{name}.approval"),
                    groups,
                )?),
                None => level,
            };
            levels.push(level);
        }
        let default = self
            .default_access_level
            .unwrap_or_else(|| "readonly".to_owned());
        CredentialPolicy::new(
            levels,
            &default,
            self.default_duration_secs.unwrap_or(3_600),
            window,
            region,
        )
        .map_err(|e| bad(&format!("credentials.{}", e.field), e.reason))
    }
}

impl RawConsole {
    pub fn validate(self) -> Result<ConsoleSettings, ConfigError> {
        if let Some(u) = &self.federation_url
            && !(u.starts_with("https://")
                || u.starts_with("http://127.0.0.1")
                || u.starts_with("http://localhost")
                || u.starts_with("http://[::1]"))
        {
            return Err(bad(
                "console.federation_url",
                "must be an https:// URL (plain http only on the loopback, for tests)",
            ));
        }
        let issuer = self.issuer.unwrap_or_else(|| "rolegate".to_owned());
        if issuer.is_empty() || issuer.len() > 256 || issuer.chars().any(char::is_control) {
            return Err(bad(
                "console.issuer",
                "must be 1 to 256 printable characters",
            ));
        }
        Ok(ConsoleSettings {
            federation_url: self.federation_url,
            issuer,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(text: &str) -> Result<CredentialPolicy, ConfigError> {
        toml::from_str::<RawCredentials>(text).unwrap().validate(
            "aws",
            "eu-west-1",
            &BTreeMap::new(),
        )
    }

    #[test]
    fn defaults_without_a_table() {
        let p = parse("").unwrap();
        assert_eq!(p.default_level(), "readonly");
        assert!(p.level(Some("operator")).is_ok());
        assert_eq!(p.region, "eu-west-1");
        assert_eq!(
            parse("default_access_level = \"operator\"")
                .unwrap()
                .default_level(),
            "operator"
        );
    }

    #[test]
    fn bad_levels_name_the_setting() {
        let e = parse("[access_levels.ops]\npolicy = \"{not json\"").unwrap_err();
        assert_eq!(e.setting, "credentials.access_levels.ops.policy");
        let e = parse("[access_levels.ops]\nmax_duration_secs = 100").unwrap_err();
        assert_eq!(e.setting, "credentials.access_levels.ops.max_duration_secs");
        let e = parse("[access_levels.Ops]").unwrap_err();
        assert_eq!(e.setting, "credentials.access_levels.Ops");
        let e = parse("[access_levels.ops]").unwrap_err();
        assert_eq!(
            e.setting, "credentials.default_access_level",
            "readonly is not defined"
        );
        let e = parse("refresh_window_secs = 7200").unwrap_err();
        assert_eq!(e.setting, "credentials.refresh_window_secs");
        assert!(parse("default_access_level = \"ops\"\n[access_levels.ops]\npolicy_arns = [\"arn:aws:iam::aws:policy/ReadOnlyAccess\"]").is_ok());
        let e =
            parse("default_access_level = \"ops\"\n[access_levels.ops]\nallow = [\"everyone\"]")
                .unwrap_err();
        assert_eq!(e.setting, "credentials.access_levels.ops.allow");
    }

    #[test]
    fn allow_names_who_may_use_a_level() {
        use rolegate_core::levels::Grantee;
        let p = parse("default_access_level = \"ro\"\n[access_levels.ro]\npolicy_arns = [\"arn:aws:iam::aws:policy/ReadOnlyAccess\"]\n[access_levels.ops]\nallow = [\"api_keys\", \"admins\"]").unwrap();
        let ops = p.level(Some("ops")).unwrap();
        assert!(ops.allows(Grantee::ApiKeys) && ops.allows(Grantee::Admins));
        assert!(!ops.allows(Grantee::Owners));
        let ro = p.level(Some("ro")).unwrap();
        assert!(
            Grantee::ALL.iter().all(|g| ro.allows(*g)),
            "the default level: everyone"
        );
    }

    #[test]
    fn console_settings() {
        let c: RawConsole = toml::from_str("federation_url = \"http://evil.example/f\"").unwrap();
        assert_eq!(c.validate().unwrap_err().setting, "console.federation_url");
        let c: RawConsole = toml::from_str("").unwrap();
        assert_eq!(c.validate().unwrap().issuer, "rolegate");
    }
}
