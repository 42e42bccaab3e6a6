//! `bind_source_ip`: the session policy gains a deny of every call made from outside the
//! allowed blocks (unless an AWS service makes it on the session's behalf), so leaked
//! credentials fail elsewhere. The level's own session policy keeps narrowing as before.

use serde_json::{Value, json};

use crate::error::{Code, Error};
use crate::levels::{AccessLevel, MAX_INLINE_POLICY_CHARS};

/// The inline session policy for `level` with the deny outside `sources` (CIDR strings).
pub fn bound_policy(level: &AccessLevel, sources: &[String]) -> Result<String, Error> {
    let deny = json!({
        "Sid": "RolegateBindSourceIp",
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {
            "NotIpAddress": {"aws:SourceIp": sources},
            "Bool": {"aws:ViaAWSService": "false"},
        },
    });
    let doc = match level.policy() {
        Some(text) => {
            // Validated JSON with a Statement when the configuration loaded.
            let mut doc: Value = serde_json::from_str(text).unwrap_or_else(|_| json!({}));
            let statements = match doc.get_mut("Statement").map(Value::take) {
                Some(Value::Array(a)) => a,
                Some(one @ Value::Object(_)) => vec![one],
                _ => Vec::new(),
            };
            doc["Statement"] = Value::Array(statements.into_iter().chain([deny]).collect());
            doc
        }
        // Managed session policies already allow what the level may do: the deny alone
        // narrows them further.
        None if !level.policy_arns().is_empty() => {
            json!({"Version": "2012-10-17", "Statement": [deny]})
        }
        // No session policy: the role's own permissions, minus calls from elsewhere.
        None => json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"}, deny,
        ]}),
    };
    let text = doc.to_string();
    let chars = text.chars().filter(|c| !c.is_whitespace()).count();
    if chars > MAX_INLINE_POLICY_CHARS {
        return Err(Error::Upstream {
            code: Code::SessionPolicyTooLarge,
            message: format!(
                "with bind_source_ip the session policy of access level {} is {chars} characters; AWS allows {MAX_INLINE_POLICY_CHARS}: allow fewer blocks",
                level.name()
            ),
            retry_after_secs: None,
        });
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_deny_joins_every_kind_of_level() {
        let inline = AccessLevel::new(
            "s3",
            Some(r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}"#),
            vec![],
            3600,
        )
        .unwrap();
        let arns = AccessLevel::new(
            "ro",
            None,
            vec!["arn:aws:iam::aws:policy/ReadOnlyAccess".into()],
            3600,
        )
        .unwrap();
        let none = AccessLevel::new("op", None, vec![], 3600).unwrap();
        let src = vec!["192.0.2.0/24".to_owned()];
        for (level, n) in [(&inline, 2), (&arns, 1), (&none, 2)] {
            let v: Value = serde_json::from_str(&bound_policy(level, &src).unwrap()).unwrap();
            let st = v["Statement"].as_array().unwrap();
            assert_eq!(st.len(), n, "{v}");
            let deny = st.last().unwrap();
            assert_eq!(deny["Effect"], "Deny");
            assert_eq!(
                deny["Condition"]["NotIpAddress"]["aws:SourceIp"][0],
                "192.0.2.0/24"
            );
            assert_eq!(deny["Condition"]["Bool"]["aws:ViaAWSService"], "false");
        }
        let many: Vec<String> = (0..200).map(|i| format!("10.{i}.0.0/16")).collect();
        assert_eq!(
            bound_policy(&none, &many).unwrap_err().code(),
            Code::SessionPolicyTooLarge
        );
    }
}
