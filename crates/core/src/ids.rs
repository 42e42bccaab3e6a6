//! Validated identifiers. Each has one `parse` constructor and no public fields, so an
//! invalid value cannot exist past the edge.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// An organisation name: 3–32 characters of `[a-z0-9-]`, starting with a letter and not
/// ending with `-`. Input is lower-cased first, so lookups are case-insensitive.
///
/// The rule fits every place the name travels: CloudFormation stack names
/// (`[a-zA-Z][-a-zA-Z0-9]*`), IAM role-session names (`[\w+=,.@-]`) and tag values.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrgName(String);

impl OrgName {
    /// The shortest name, in characters.
    pub const MIN_LEN: usize = 3;
    /// The longest name, in characters.
    pub const MAX_LEN: usize = 32;
    /// The rule as a JSON Schema (ECMA 262) pattern, for the OpenAPI document: every string
    /// it matches is accepted by [`OrgName::parse`] (which also trims and lower-cases).
    pub const PATTERN: &'static str = "^[a-zA-Z][a-zA-Z0-9-]{1,30}[a-zA-Z0-9]$";

    pub fn parse(input: &str) -> Result<Self, Error> {
        let name = input.trim().to_ascii_lowercase();
        let fail = |why: &str| Err(Error::invalid("org_name", format!("org_name {why}")));
        if name.len() < Self::MIN_LEN || name.len() > Self::MAX_LEN {
            return fail("must be 3 to 32 characters long");
        }
        if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
            return fail("must start with a letter");
        }
        if name.ends_with('-') {
            return fail("must not end with '-'");
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return fail("may contain only letters, digits and '-'");
        }
        Ok(Self(name))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for OrgName {
    type Error = Error;
    fn try_from(value: String) -> Result<Self, Error> {
        Self::parse(&value)
    }
}

impl From<OrgName> for String {
    fn from(value: OrgName) -> Self {
        value.0
    }
}

impl fmt::Display for OrgName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An operator's id: 2–64 characters of `[a-z0-9+=,.@_-]`, lower-cased. The charset and
/// length are those of STS `SourceIdentity`, which carries it into CloudTrail.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

impl UserId {
    /// The shortest id, in characters.
    pub const MIN_LEN: usize = 2;
    /// The longest id, in characters.
    pub const MAX_LEN: usize = 64;
    /// The rule as a JSON Schema (ECMA 262) pattern, for the OpenAPI document: every string
    /// it matches is accepted by [`UserId::parse`] except the reserved `apikey.` prefix.
    pub const PATTERN: &'static str = "^[a-zA-Z0-9+=,.@_-]{2,64}$";

    pub fn parse(input: &str) -> Result<Self, Error> {
        let id = input.trim().to_ascii_lowercase();
        if id.len() < Self::MIN_LEN || id.len() > Self::MAX_LEN {
            return Err(Error::invalid(
                "user_id",
                "user_id must be 2 to 64 characters long",
            ));
        }
        if !id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+=,.@_-".contains(c))
        {
            return Err(Error::invalid(
                "user_id",
                "user_id may contain only letters, digits and + = , . @ _ -",
            ));
        }
        // `apikey.<id>` is the SourceIdentity of org API keys: no operator may look like one.
        if id.starts_with("apikey.") {
            return Err(Error::invalid(
                "user_id",
                "user_id must not start with \"apikey.\" (reserved for API keys)",
            ));
        }
        Ok(Self(id))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for UserId {
    type Error = Error;
    fn try_from(value: String) -> Result<Self, Error> {
        Self::parse(&value)
    }
}

impl From<UserId> for String {
    fn from(value: UserId) -> Self {
        value.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A 12-digit AWS account id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountId(String);

impl AccountId {
    pub fn parse(input: &str) -> Result<Self, Error> {
        if input.len() == 12 && input.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(input.to_owned()))
        } else {
            Err(Error::invalid(
                "account_id",
                "account_id must be exactly 12 digits",
            ))
        }
    }
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AccountId {
    type Error = Error;
    fn try_from(v: String) -> Result<Self, Error> {
        Self::parse(&v)
    }
}
impl From<AccountId> for String {
    fn from(v: AccountId) -> Self {
        v.0
    }
}

/// An operator's role.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Operator,
}

impl Role {
    pub fn parse(input: &str) -> Result<Self, Error> {
        match input {
            "admin" => Ok(Self::Admin),
            "operator" => Ok(Self::Operator),
            _ => Err(Error::invalid(
                "role",
                "role must be \"admin\" or \"operator\"",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn org_names() {
        for ok in [
            "abc",
            "acme-corp",
            "a1-2",
            "ACME",
            "a23456789012345678901234567890bc",
        ] {
            assert!(OrgName::parse(ok).is_ok(), "{ok}");
        }
        assert_eq!(OrgName::parse("ACME").unwrap().as_str(), "acme");
        for bad in [
            "ab",
            "1abc",
            "-abc",
            "abc-",
            "ab_c",
            "a b c",
            "",
            "a234567890123456789012345678901234",
            "ab.c",
            "é-abc",
        ] {
            assert!(OrgName::parse(bad).is_err(), "{bad}");
        }
    }

    /// The documented patterns (OpenAPI) admit only what the parsers accept, and the parsers
    /// accept every trimmed name the patterns admit, so clients and fuzzers can trust them.
    mod patterns {
        use super::*;
        use proptest::prelude::*;

        fn unanchored(p: &str) -> &str {
            p.trim_start_matches('^').trim_end_matches('$')
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn every_documented_org_name_parses(s in unanchored(OrgName::PATTERN)) {
                prop_assert!(OrgName::parse(&s).is_ok(), "{:?}", s);
            }

            #[test]
            fn every_documented_user_id_parses(s in unanchored(UserId::PATTERN)) {
                prop_assume!(!s.to_ascii_lowercase().starts_with("apikey."));
                prop_assert!(UserId::parse(&s).is_ok(), "{:?}", s);
            }

            /// Any string: a name, or a typed `invalid_field`; a name is canonical and
            /// matches the documented shape.
            #[test]
            fn any_string_is_a_name_or_an_invalid_field(s in any::<String>()) {
                match OrgName::parse(&s) {
                    Ok(n) => {
                        prop_assert!((OrgName::MIN_LEN..=OrgName::MAX_LEN).contains(&n.as_str().len()));
                        prop_assert!(n.as_str().starts_with(|c: char| c.is_ascii_lowercase()));
                    }
                    Err(e) => prop_assert!(matches!(e, Error::Invalid { .. }), "{:?}", e),
                }
                match UserId::parse(&s) {
                    Ok(u) => prop_assert!((UserId::MIN_LEN..=UserId::MAX_LEN).contains(&u.as_str().len())),
                    Err(e) => prop_assert!(matches!(e, Error::Invalid { .. }), "{:?}", e),
                }
            }
        }
    }

    #[test]
    fn user_ids() {
        assert!(UserId::parse("alice@example.com").is_ok());
        assert!(UserId::parse("a").is_err());
        assert!(UserId::parse("al ice").is_err());
        assert!(UserId::parse("al/ice").is_err());
        assert!(
            UserId::parse("apikey.0123").is_err(),
            "reserved for API keys"
        );
        assert!(UserId::parse("apikeys").is_ok());
    }
}
