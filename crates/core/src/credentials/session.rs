//! What makes a vended credential attributable in the customer's CloudTrail: the role
//! session name, the SourceIdentity and the session tags, each fitted to AWS's charset and
//! length rules.

use crate::error::Error;
use crate::ids::OrgName;
use crate::principal::Principal;

/// `RoleSessionName` and `SourceIdentity` allow `[\w+=,.@-]`, 2 to 64 characters.
pub const MAX_SESSION_NAME: usize = 64;
/// The longest `reason` a request may carry (and the longest tag value AWS accepts).
pub const MAX_REASON_CHARS: usize = 256;

/// Session tag keys rolegate sets.
pub const TAG_ORG: &str = "rolegate:org";
pub const TAG_PRINCIPAL: &str = "rolegate:principal";
pub const TAG_REASON: &str = "rolegate:reason";

fn is_session_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

/// Replaces every character outside `[\w+=,.@-]` with `-`.
#[must_use]
pub fn sanitize_session_part(s: &str) -> String {
    s.chars()
        .map(|c| if is_session_char(c) { c } else { '-' })
        .collect()
}

/// The SourceIdentity: the operator's user id, or `apikey.<key id>` for an org API key.
/// User ids never start with `apikey.` (see `UserId::parse`), so the two cannot collide.
#[must_use]
pub fn source_identity(p: &Principal) -> String {
    let raw = match p {
        Principal::Operator { user_id, .. } => user_id.to_string(),
        Principal::OrgKey { key_id, .. } => format!("apikey.{key_id}"),
        // The policy gives neither credentials; named anyway so that nothing is unnamed.
        Principal::Stack { org } => format!("stack.{org}"),
        Principal::System { task } => format!("rolegate.{task}"),
        // The certificate's CN; a CN of fewer than two usable characters is padded so that
        // STS's minimum length holds.
        Principal::Workload { common_name, .. } => {
            let cn = common_name.trim();
            if cn.chars().count() < 2 {
                format!("workload.{cn}")
            } else {
                cn.to_owned()
            }
        }
    };
    let mut s = sanitize_session_part(&raw);
    s.truncate(MAX_SESSION_NAME);
    s
}

/// `<org>.<principal>.<unique>`, at most 64 characters: the org and principal are visible
/// in CloudTrail at a glance, and `unique` (random hex) keeps every issuance distinct.
#[must_use]
pub fn session_name(org: &OrgName, p: &Principal, unique: &str) -> String {
    let org = org.as_str();
    let unique = sanitize_session_part(unique);
    let room = MAX_SESSION_NAME.saturating_sub(org.len() + unique.len() + 2);
    let mut who = source_identity(p);
    who.truncate(room);
    sanitize_session_part(&format!("{org}.{who}.{unique}"))
        .chars()
        .take(MAX_SESSION_NAME)
        .collect()
}

/// Session tag values allow Unicode letters, digits, spaces and `_.:/=+-@`, up to 256
/// characters; anything else becomes `_`.
#[must_use]
pub fn sanitize_tag_value(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(MAX_REASON_CHARS)
        .collect()
}

/// A validated `reason`: at most 256 characters and no control characters.
pub fn parse_reason(raw: Option<&str>) -> Result<Option<String>, Error> {
    let Some(r) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    if r.chars().count() > MAX_REASON_CHARS {
        return Err(Error::invalid(
            "reason",
            format!("reason must be at most {MAX_REASON_CHARS} characters"),
        ));
    }
    if r.chars().any(char::is_control) {
        return Err(Error::invalid(
            "reason",
            "reason must not contain control characters",
        ));
    }
    Ok(Some(r.to_owned()))
}

/// The session tags: org, principal and (when given) the reason.
#[must_use]
pub fn session_tags(org: &OrgName, p: &Principal, reason: Option<&str>) -> Vec<(String, String)> {
    let mut tags = vec![
        (TAG_ORG.to_owned(), sanitize_tag_value(org.as_str())),
        (TAG_PRINCIPAL.to_owned(), sanitize_tag_value(&p.actor())),
    ];
    if let Some(r) = reason {
        tags.push((TAG_REASON.to_owned(), sanitize_tag_value(r)));
    }
    tags
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::ids::{Role, UserId};

    fn op(id: &str) -> Principal {
        Principal::Operator {
            user_id: UserId::parse(id).unwrap(),
            role: Role::Operator,
        }
    }

    #[test]
    fn session_names_fit_aws_rules_for_any_input() {
        let org = OrgName::parse(&format!("a{}", "b".repeat(31))).unwrap();
        let long = op(&"x".repeat(64));
        for p in [
            op("alice"),
            long,
            Principal::OrgKey {
                org: org.clone(),
                key_id: "0123456789abcdef".into(),
            },
        ] {
            let n = session_name(&org, &p, "deadbeefcafe0000");
            assert!(n.len() <= 64 && n.len() >= 2, "{n}");
            assert!(n.chars().all(is_session_char), "{n}");
            assert!(n.starts_with(org.as_str()), "{n}");
            assert!(n.ends_with("deadbeefcafe0000"), "unique part kept: {n}");
        }
        let short = OrgName::parse("acme").unwrap();
        assert_eq!(
            session_name(&short, &op("alice"), "0f0f"),
            "acme.alice.0f0f"
        );
        assert_eq!(
            session_name(
                &short,
                &Principal::OrgKey {
                    org: short.clone(),
                    key_id: "k1".into()
                },
                "0f"
            ),
            "acme.apikey.k1.0f"
        );
    }

    #[test]
    fn sanitizers_replace_what_aws_refuses() {
        assert_eq!(sanitize_session_part("a b/c:d"), "a-b-c-d");
        assert_eq!(
            sanitize_tag_value("fix #42; (urgent) é"),
            "fix _42_ _urgent_ é"
        );
        assert_eq!(sanitize_tag_value(&"x".repeat(300)).chars().count(), 256);
    }

    #[test]
    fn reasons_are_checked() {
        assert_eq!(parse_reason(None).unwrap(), None);
        assert_eq!(parse_reason(Some("  ")).unwrap(), None);
        assert_eq!(
            parse_reason(Some("ticket 7")).unwrap().as_deref(),
            Some("ticket 7")
        );
        assert!(parse_reason(Some(&"r".repeat(257))).is_err());
        assert!(parse_reason(Some("a\nb")).is_err());
        assert!(
            parse_reason(Some(&"é".repeat(256))).is_ok(),
            "characters, not bytes"
        );
    }

    #[test]
    fn tags_carry_org_principal_and_reason() {
        let org = OrgName::parse("acme").unwrap();
        let tags = session_tags(&org, &op("alice"), Some("deploy #7"));
        assert_eq!(
            tags,
            vec![
                (TAG_ORG.to_owned(), "acme".to_owned()),
                (TAG_PRINCIPAL.to_owned(), "user:alice".to_owned()),
                (TAG_REASON.to_owned(), "deploy _7".to_owned()),
            ]
        );
    }

    proptest::proptest! {
        #[test]
        fn any_principal_makes_a_valid_session_name(
            org in "[a-z][a-z0-9-]{1,30}[a-z0-9]",
            user in "[a-z0-9+=,.@_-]{2,64}",
            key in "[0-9a-f]{16}",
            unique in "[0-9a-f]{16}",
        ) {
            let org = OrgName::parse(&org).unwrap();
            let ops = UserId::parse(&user).map(|u| Principal::Operator { user_id: u, role: Role::Operator });
            for p in ops.into_iter().chain([Principal::OrgKey { org: org.clone(), key_id: key.clone() }]) {
                let n = session_name(&org, &p, &unique);
                proptest::prop_assert!((2..=64).contains(&n.len()), "{}", n);
                proptest::prop_assert!(n.chars().all(is_session_char), "{}", n);
                proptest::prop_assert!(n.starts_with(org.as_str()));
                let si = source_identity(&p);
                proptest::prop_assert!((2..=64).contains(&si.len()) && si.chars().all(is_session_char));
            }
        }

        #[test]
        fn tag_values_and_reasons_hold_for_any_text(text in "\\PC{0,300}") {
            let v = sanitize_tag_value(&text);
            proptest::prop_assert!(v.chars().count() <= MAX_REASON_CHARS);
            proptest::prop_assert!(v.chars().all(|c| c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c)));
            if let Ok(Some(r)) = parse_reason(Some(&text)) {
                proptest::prop_assert!(r.chars().count() <= MAX_REASON_CHARS);
                proptest::prop_assert!(!r.chars().any(char::is_control));
            }
        }
    }
}
