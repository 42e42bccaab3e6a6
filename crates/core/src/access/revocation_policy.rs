//! The `rolegate-revocations` inline policy of a customer's role, as a value: parsed from
//! what IAM holds, merged with new revocations, pruned of expired statements and rendered
//! compactly within IAM's size limit. Pure: no I/O.
//!
//! Each rolegate statement denies everything to sessions that carry one of its identities
//! (`aws:SourceIdentity`, or the session tag `rolegate:grant`) **and** were issued before
//! its time (`aws:TokenIssueTime`), so sessions issued later (after a new grant) still
//! work. Its `Sid` carries its kind, time and expiry (`RgG<before>E<expires>`), so the
//! policy itself is the record of what it holds; statements with other Sids (written by
//! someone else) are kept as they are.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::model::RevokedBy;

/// The inline policy's name on the customer's role.
pub const POLICY_NAME: &str = "rolegate-revocations";
/// IAM's limit on a role's inline policies, together (non-whitespace characters).
pub const MAX_POLICY_CHARS: usize = 10_240;
/// The session tag that names the grant a session was issued under.
pub const TAG_GRANT: &str = "rolegate:grant";

/// Revocation times are rounded up to the minute, so a burst of revocations shares one
/// statement. Harmless: a revoked grant, key or operator gets no new session meanwhile.
const ROUND_SECS: i64 = 60;

fn condition_key(by: RevokedBy) -> String {
    match by {
        RevokedBy::Grant => format!("aws:PrincipalTag/{TAG_GRANT}"),
        RevokedBy::SourceIdentity => "aws:SourceIdentity".to_owned(),
    }
}

fn letter(by: RevokedBy) -> char {
    match by {
        RevokedBy::Grant => 'G',
        RevokedBy::SourceIdentity => 'S',
    }
}

/// `before` rounded up to the minute.
#[must_use]
pub fn round_up(before: i64) -> i64 {
    before.div_euclid(ROUND_SECS) * ROUND_SECS
        + if before.rem_euclid(ROUND_SECS) == 0 {
            0
        } else {
            ROUND_SECS
        }
}

/// One of rolegate's statements: every identity of one kind revoked at one time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Statement {
    values: BTreeSet<String>,
    expires: i64,
}

/// The policy document.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RevocationPolicy {
    /// (kind, before) → statement.
    ours: BTreeMap<(RevokedBy, i64), Statement>,
    /// Statements rolegate did not write, kept verbatim.
    foreign: Vec<Value>,
}

/// The policy would not fit: nothing was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyFull {
    pub chars: usize,
}

impl std::fmt::Display for PolicyFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the {POLICY_NAME} policy would be {} characters; IAM allows {MAX_POLICY_CHARS} for a role's inline policies: wait for older statements to expire",
            self.chars
        )
    }
}

fn parse_sid(sid: &str) -> Option<(RevokedBy, i64, i64)> {
    let rest = sid.strip_prefix("Rg")?;
    let by = match rest.chars().next()? {
        'G' => RevokedBy::Grant,
        'S' => RevokedBy::SourceIdentity,
        _ => return None,
    };
    let (before, expires) = rest[1..].split_once('E')?;
    Some((by, before.parse().ok()?, expires.parse().ok()?))
}

fn strings(v: &Value) -> Option<BTreeSet<String>> {
    match v {
        Value::String(s) => Some(BTreeSet::from([s.clone()])),
        Value::Array(a) => a.iter().map(|x| x.as_str().map(str::to_owned)).collect(),
        _ => None,
    }
}

impl RevocationPolicy {
    /// The policy IAM holds (`None`: no such policy). A document that is not JSON, or a
    /// statement rolegate cannot read as its own, is kept as someone else's.
    #[must_use]
    pub fn parse(document: Option<&str>) -> Self {
        let mut out = Self::default();
        let Some(doc) = document.and_then(|d| serde_json::from_str::<Value>(d).ok()) else {
            return out;
        };
        let statements = match &doc["Statement"] {
            Value::Array(a) => a.clone(),
            Value::Object(_) => vec![doc["Statement"].clone()],
            _ => Vec::new(),
        };
        for st in statements {
            let ours = st["Sid"]
                .as_str()
                .and_then(parse_sid)
                .and_then(|(by, before, expires)| {
                    let values = strings(&st["Condition"]["StringEquals"][condition_key(by)])?;
                    Some(((by, before), Statement { values, expires }))
                });
            match ours {
                Some((k, s)) => {
                    let e = out.ours.entry(k).or_insert(Statement {
                        values: BTreeSet::new(),
                        expires: s.expires,
                    });
                    e.values.extend(s.values);
                    e.expires = e.expires.max(s.expires);
                }
                None => out.foreign.push(st),
            }
        }
        out
    }

    /// Adds a revocation: sessions of `value` issued before `before` are denied until
    /// `expires` (both unix seconds). Revocations of one kind at one minute share a
    /// statement.
    pub fn add(&mut self, by: RevokedBy, value: &str, before: i64, expires: i64) {
        let e = self
            .ours
            .entry((by, round_up(before)))
            .or_insert(Statement {
                values: BTreeSet::new(),
                expires,
            });
        e.values.insert(value.to_owned());
        e.expires = e.expires.max(expires);
    }

    /// Removes the statements whose last affected session has expired by `now`; returns
    /// how many.
    pub fn prune(&mut self, now: i64) -> usize {
        let before = self.ours.len();
        self.ours.retain(|_, s| s.expires > now);
        before - self.ours.len()
    }

    /// When the next statement can go (unix seconds).
    #[must_use]
    pub fn next_expiry(&self) -> Option<i64> {
        self.ours.values().map(|s| s.expires).min()
    }

    /// How many of rolegate's statements it holds.
    #[must_use]
    pub fn statements(&self) -> usize {
        self.ours.len()
    }

    /// Whether there is nothing left to write (then the policy is deleted).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ours.is_empty() && self.foreign.is_empty()
    }

    /// The compact JSON document, or [`PolicyFull`] over IAM's limit.
    pub fn render(&self) -> Result<String, PolicyFull> {
        let mut statements: Vec<Value> = self
            .ours
            .iter()
            .map(|((by, before), s)| {
                let issued = crate::clock::rfc3339_unix(*before);
                json!({
                    "Sid": format!("Rg{}{before}E{}", letter(*by), s.expires),
                    "Effect": "Deny",
                    "Action": "*",
                    "Resource": "*",
                    "Condition": {
                        "StringEquals": {condition_key(*by): s.values},
                        "DateLessThan": {"aws:TokenIssueTime": issued},
                    },
                })
            })
            .collect();
        statements.extend(self.foreign.iter().cloned());
        let doc = json!({"Version": "2012-10-17", "Statement": statements}).to_string();
        let chars = doc.chars().filter(|c| !c.is_whitespace()).count();
        if chars > MAX_POLICY_CHARS {
            return Err(PolicyFull { chars });
        }
        Ok(doc)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn merges_by_kind_and_minute_and_round_trips() {
        let mut p = RevocationPolicy::parse(None);
        p.add(RevokedBy::Grant, "a1", 1_000_010, 1_003_600);
        p.add(RevokedBy::Grant, "a2", 1_000_015, 1_007_200);
        p.add(RevokedBy::SourceIdentity, "bob", 1_000_015, 1_001_000);
        assert_eq!(p.statements(), 2);
        let doc = p.render().unwrap();
        let v: Value = serde_json::from_str(&doc).unwrap();
        let g = &v["Statement"][0];
        assert_eq!(g["Effect"], "Deny");
        assert_eq!(g["Action"], "*");
        assert_eq!(
            g["Condition"]["StringEquals"]["aws:PrincipalTag/rolegate:grant"],
            json!(["a1", "a2"])
        );
        // Rounded up to the minute; the later expiry wins.
        assert_eq!(
            g["Condition"]["DateLessThan"]["aws:TokenIssueTime"],
            crate::clock::rfc3339_unix(1_000_020)
        );
        assert_eq!(g["Sid"], "RgG1000020E1007200");
        assert_eq!(
            v["Statement"][1]["Condition"]["StringEquals"]["aws:SourceIdentity"],
            json!(["bob"])
        );
        assert!(!doc.contains(' '));
        let again = RevocationPolicy::parse(Some(&doc));
        assert_eq!(again, p);
        assert_eq!(again.next_expiry(), Some(1_001_000));
    }

    #[test]
    fn prune_drops_expired_statements_and_keeps_foreign_ones() {
        let foreign = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Theirs","Effect":"Deny","Action":"s3:*","Resource":"*"}]}"#;
        let mut p = RevocationPolicy::parse(Some(foreign));
        p.add(RevokedBy::Grant, "a1", 60, 100);
        p.add(RevokedBy::Grant, "a2", 120, 200);
        assert_eq!(p.prune(100), 1);
        assert_eq!(p.next_expiry(), Some(200));
        assert_eq!(p.prune(200), 1);
        assert!(!p.is_empty(), "the foreign statement stays");
        assert!(p.render().unwrap().contains("Theirs"));
        assert!(RevocationPolicy::parse(Some("not json")).is_empty());
    }

    #[test]
    fn a_full_policy_is_refused() {
        let mut p = RevocationPolicy::default();
        for i in 0..400 {
            p.add(
                RevokedBy::Grant,
                &format!("a{i:028x}"),
                60 * i,
                60 * i + 900,
            );
        }
        let e = p.render().unwrap_err();
        assert!(e.chars > MAX_POLICY_CHARS);
        assert!(e.to_string().contains("10240"), "{e}");
    }

    #[test]
    fn rounding() {
        assert_eq!(round_up(60), 60);
        assert_eq!(round_up(61), 120);
        assert_eq!(round_up(0), 0);
    }
}
