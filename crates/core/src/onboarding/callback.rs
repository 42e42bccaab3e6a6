use serde::Deserialize;

use super::{CallbackOutcome, Onboarding, SignatureHeaders, Verified};
use crate::audit::AuditRecord;
use crate::error::{Code, Error};
use crate::ids::{AccountId, OrgName};
use crate::model::OrgRecord;
use crate::policy::{Action, Facts, Owner};
use crate::principal::{Caller, Principal, RequestContext};

pub const PARTITIONS: &[&str] = &["aws", "aws-cn", "aws-us-gov"];

/// What the stack reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackEvent {
    Created,
    Updated,
    Deleted,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallbackBody {
    event: String,
    org_name: String,
    account_id: String,
    region: String,
    partition: String,
    role_arn: String,
    stack_id: String,
    /// The role's MaxSessionDuration (stacks from before it was sent omit it).
    #[serde(default)]
    max_session_duration: Option<u32>,
}

/// A schema-checked callback.
#[derive(Debug, Clone)]
pub struct Callback {
    pub event: CallbackEvent,
    pub org: OrgName,
    pub account: AccountId,
    pub region: String,
    pub partition: String,
    pub role_arn: String,
    pub stack_id: String,
    /// The role's MaxSessionDuration, when the stack reports it.
    pub max_session_duration: Option<u32>,
}

fn is_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    (3..=4).contains(&parts.len())
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok()
}

impl Callback {
    /// Checks the body's schema. Called only after the signature has been verified.
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        let b: CallbackBody = serde_json::from_slice(body).map_err(|e| {
            let msg = e.to_string();
            let field = msg
                .split('`')
                .nth(1)
                .filter(|_| msg.contains("field"))
                .unwrap_or("body")
                .to_owned();
            Error::invalid(
                field,
                format!(
                    "callback body: {}",
                    msg.split(" at line ").next().unwrap_or(&msg)
                ),
            )
        })?;
        let event = match b.event.as_str() {
            "created" => CallbackEvent::Created,
            "updated" => CallbackEvent::Updated,
            "deleted" => CallbackEvent::Deleted,
            _ => {
                return Err(Error::invalid(
                    "event",
                    "event must be created, updated or deleted",
                ));
            }
        };
        let org = OrgName::parse(&b.org_name)?;
        let account = AccountId::parse(&b.account_id)?;
        if !PARTITIONS.contains(&b.partition.as_str()) {
            return Err(Error::invalid(
                "partition",
                "partition must be aws, aws-cn or aws-us-gov",
            ));
        }
        if !is_region(&b.region) {
            return Err(Error::invalid("region", "region must look like eu-west-1"));
        }
        let role_prefix = format!("arn:{}:iam::{}:role/", b.partition, b.account_id);
        let role_name = b.role_arn.strip_prefix(&role_prefix).unwrap_or_default();
        let name_ok = |n: &str| {
            !n.is_empty()
                && n.len() <= 64
                && n.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"+=,.@_-".contains(&c))
        };
        if role_name.is_empty()
            || b.role_arn.len() > 2048
            || !role_name.rsplit('/').next().is_some_and(name_ok)
        {
            return Err(Error::invalid(
                "role_arn",
                format!(
                    "role_arn must be an IAM role ARN in account {} ({role_prefix}NAME)",
                    b.account_id
                ),
            ));
        }
        let stack_prefix = format!(
            "arn:{}:cloudformation:{}:{}:stack/",
            b.partition, b.region, b.account_id
        );
        if !b.stack_id.starts_with(&stack_prefix) || b.stack_id.len() > 1024 {
            return Err(Error::invalid(
                "stack_id",
                format!(
                    "stack_id must be a stack ARN in {}/{}",
                    b.account_id, b.region
                ),
            ));
        }
        if let Some(d) = b.max_session_duration
            && !(3_600..=43_200).contains(&d)
        {
            return Err(Error::invalid(
                "max_session_duration",
                "max_session_duration must be between 3600 and 43200",
            ));
        }
        Ok(Self {
            event,
            org,
            account,
            region: b.region,
            partition: b.partition,
            role_arn: b.role_arn,
            stack_id: b.stack_id,
            max_session_duration: b.max_session_duration,
        })
    }
}

pub(super) fn rejected(code: Code, message: &str) -> Error {
    Error::SignatureRejected {
        code,
        message: message.to_owned(),
    }
}

/// Pulls `org_name` out of an unverified body, only to find the key to verify it with.
#[must_use]
pub fn claimed_org(body: &[u8]) -> Option<OrgName> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    OrgName::parse(v.get("org_name")?.as_str()?).ok()
}

impl Onboarding {
    /// Verifies and applies a customer stack's callback.
    pub async fn handle_callback(
        &self,
        ctx: &RequestContext,
        headers: &SignatureHeaders,
        body: &[u8],
    ) -> Result<CallbackOutcome, Error> {
        let verified = self.authenticate_callback(ctx, headers, body).await?;
        self.apply_callback(ctx, verified, body).await
    }

    /// The signature checks (headers, timestamp, signature, nonce), audited when they fail.
    /// A success consumes the nonce: call [`Self::apply_callback`] next.
    pub async fn authenticate_callback(
        &self,
        ctx: &RequestContext,
        headers: &SignatureHeaders,
        body: &[u8],
    ) -> Result<Verified, Error> {
        match self.verify_callback(headers, body).await {
            Ok(v) => Ok(v),
            Err(e) => {
                let mut rec =
                    AuditRecord::new("onboarding.callback.rejected").failure(e.code().as_str());
                if let Some(org) = claimed_org(body) {
                    rec = rec.org(org.to_string());
                }
                self.records.record_unauthenticated(ctx, rec).await?;
                Err(e)
            }
        }
    }

    /// Applies a callback whose signature [`Self::authenticate_callback`] accepted, as the
    /// org's onboarding stack.
    pub async fn apply_callback(
        &self,
        ctx: &RequestContext,
        verified: Verified,
        body: &[u8],
    ) -> Result<CallbackOutcome, Error> {
        let caller = Caller::new(
            Principal::Stack {
                org: verified.org.clone(),
            },
            ctx.clone(),
        );
        let cb = Callback::parse(body)?;
        let rec = self.records.get(&crate::keyspace::org(&cb.org)).await?;
        let owner = rec
            .as_ref()
            .map_or(Owner::NoSuchOrg, |r| Owner::Is(&r.value.owner));
        self.records
            .authorize(&caller, Action::ApplyCallback, &Facts::org(&cb.org, owner))
            .await?;
        match cb.event {
            CallbackEvent::Created | CallbackEvent::Updated => {
                self.bind(&caller, &cb, &verified).await?;
                let outcome = self.verify_trust(&caller, &cb).await?;
                if outcome.status == crate::model::OrgStatus::Failed {
                    // The stack should fail with a reason the customer can act on.
                    return Err(Error::Upstream {
                        code: crate::error::Code::RoleNotAssumable,
                        message: outcome
                            .message
                            .unwrap_or_else(|| "rolegate could not assume the role".to_owned()),
                        retry_after_secs: None,
                    });
                }
                Ok(outcome)
            }
            CallbackEvent::Deleted => self.stack_deleted(&caller, &cb).await,
        }
    }
}

pub(super) fn outcome(rec: &OrgRecord) -> CallbackOutcome {
    CallbackOutcome {
        org_name: rec.name.to_string(),
        status: rec.status,
        account_id: rec.account_id.as_ref().map(|a| a.as_str().to_owned()),
        role_arn: rec.role_arn.clone(),
        trust_check: rec.trust_check.clone(),
        message: rec.status_message.clone(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn body(over: serde_json::Value) -> Vec<u8> {
        let mut b = serde_json::json!({
            "event": "created", "org_name": "acme", "account_id": "111122223333", "region": "eu-west-1", "partition": "aws",
            "role_arn": "arn:aws:iam::111122223333:role/rolegate-acme",
            "stack_id": "arn:aws:cloudformation:eu-west-1:111122223333:stack/rolegate-acme/0b5e2b40-1111-2222-3333-444455556666"
        });
        for (k, v) in over.as_object().unwrap() {
            b[k] = v.clone();
        }
        serde_json::to_vec(&b).unwrap()
    }

    #[test]
    fn schema() {
        assert!(Callback::parse(&body(serde_json::json!({}))).is_ok());
        for (over, field) in [
            (serde_json::json!({"event": "exploded"}), "event"),
            (serde_json::json!({"account_id": "1234"}), "account_id"),
            (serde_json::json!({"partition": "azure"}), "partition"),
            (serde_json::json!({"region": "moon"}), "region"),
            (
                serde_json::json!({"role_arn": "arn:aws:iam::999999999999:role/x"}),
                "role_arn",
            ),
            (
                serde_json::json!({"stack_id": "arn:aws:cloudformation:us-east-1:111122223333:stack/x"}),
                "stack_id",
            ),
            (serde_json::json!({"extra": 1}), "extra"),
        ] {
            match Callback::parse(&body(over.clone())) {
                Err(Error::Invalid { field: f, .. }) => assert_eq!(f, field, "{over}"),
                other => panic!("{over}: {other:?}"),
            }
        }
    }
}

#[cfg(test)]
mod props {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    const FIELDS: [&str; 7] = [
        "event",
        "org_name",
        "account_id",
        "region",
        "partition",
        "role_arn",
        "stack_id",
    ];

    fn valid() -> serde_json::Value {
        serde_json::json!({
            "event": "created", "org_name": "acme", "account_id": "111122223333",
            "region": "eu-west-1", "partition": "aws",
            "role_arn": "arn:aws:iam::111122223333:role/rolegate-acme",
            "stack_id": "arn:aws:cloudformation:eu-west-1:111122223333:stack/rolegate-acme/0b5e2b40-1111-2222-3333-444455556666"
        })
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<String>().prop_map(serde_json::Value::from),
            "[a-z0-9:/_.-]{0,80}".prop_map(serde_json::Value::from),
            Just(serde_json::json!({"nested": [1, "x"]})),
        ]
    }

    fn assert_typed(result: Result<Callback, Error>) -> Result<(), TestCaseError> {
        match result {
            Ok(_) => Ok(()),
            Err(Error::Invalid { field, .. }) => {
                prop_assert!(!field.is_empty());
                Ok(())
            }
            Err(other) => Err(TestCaseError::fail(format!("untyped error {other:?}"))),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any bytes as a (verified) callback body: a callback, or `invalid_field`; and the
        /// unverified org lookup never panics.
        #[test]
        fn any_bytes_are_a_callback_or_invalid(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = claimed_org(&body);
            assert_typed(Callback::parse(&body))?;
        }

        /// A well-formed body with one field replaced, removed or added: the same.
        #[test]
        fn any_field_value_is_accepted_or_named(
            field in 0..FIELDS.len(), value in json_value(), drop in any::<bool>(), extra in any::<bool>(),
        ) {
            let mut b = valid();
            let name = FIELDS[field];
            if drop {
                b.as_object_mut().unwrap().remove(name);
            } else {
                b[name] = value.clone();
            }
            if extra {
                b["unexpected"] = value;
            }
            let bytes = serde_json::to_vec(&b).unwrap();
            if let Some(org) = claimed_org(&bytes) {
                prop_assert!(OrgName::parse(org.as_str()).is_ok());
            }
            assert_typed(Callback::parse(&bytes))?;
        }
    }
}
