use serde::Deserialize;

use super::{
    CallbackOutcome, NONCE_TTL, OnboardingPolicy, SignatureHeaders, TIMESTAMP_WINDOW_SECS, Verified,
};
use crate::audit::AuditRecord;
use crate::ids::OrgName;
use crate::orgs::{AccountId, OrgRecord, OrgStatus, api_key_key, org_key};
use crate::ports::Txn;
use crate::ports::aws::{AssumeRoleRequest, StsError};
use crate::{Error, RequestContext, Services};

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
        Ok(Self {
            event,
            org,
            account,
            region: b.region,
            partition: b.partition,
            role_arn: b.role_arn,
            stack_id: b.stack_id,
        })
    }
}

fn rejected(code: &'static str, message: &str) -> Error {
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

fn parse_headers(h: &SignatureHeaders) -> Result<(String, i64, String), Error> {
    let bad = |name: &str| {
        rejected(
            "invalid_signature",
            &format!("missing or malformed {name} header"),
        )
    };
    let sig = h
        .signature
        .as_deref()
        .filter(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| bad("X-Sig-Signature"))?;
    let ts = h
        .timestamp
        .as_deref()
        .and_then(|t| t.parse::<i64>().ok())
        .ok_or_else(|| bad("X-Sig-Timestamp"))?;
    let nonce = h
        .nonce
        .as_deref()
        .filter(|n| {
            (16..=128).contains(&n.len())
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .ok_or_else(|| bad("X-Sig-Nonce"))?;
    Ok((sig.to_ascii_lowercase(), ts, nonce.to_owned()))
}

impl Services {
    /// Verifies and applies a customer stack's callback.
    pub async fn handle_callback(
        &self,
        ctx: &RequestContext,
        headers: &SignatureHeaders,
        body: &[u8],
        policy: &OnboardingPolicy,
    ) -> Result<CallbackOutcome, Error> {
        let verified = self.authenticate_callback(ctx, headers, body).await?;
        self.apply_callback(ctx, verified, body, policy).await
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
                let code = match &e {
                    Error::SignatureRejected { code, .. } => *code,
                    _ => "callback_error",
                };
                let mut rec = AuditRecord::new("onboarding.callback.rejected").failure(code);
                if let Some(org) = claimed_org(body) {
                    rec = rec.org(org.to_string());
                }
                self.audit.append(ctx, rec).await?;
                Err(e)
            }
        }
    }

    /// Applies a callback whose signature [`Self::authenticate_callback`] accepted.
    pub async fn apply_callback(
        &self,
        ctx: &RequestContext,
        verified: Verified,
        body: &[u8],
        policy: &OnboardingPolicy,
    ) -> Result<CallbackOutcome, Error> {
        let cb = Callback::parse(body)?;
        match cb.event {
            CallbackEvent::Created | CallbackEvent::Updated => {
                self.bind(ctx, &cb, verified).await?;
                self.verify_trust(ctx, &cb, policy).await
            }
            CallbackEvent::Deleted => self.stack_deleted(ctx, &cb).await,
        }
    }

    /// Headers, timestamp, signature, nonce — in that order.
    async fn verify_callback(
        &self,
        headers: &SignatureHeaders,
        body: &[u8],
    ) -> Result<Verified, Error> {
        let (sig, ts, nonce) = parse_headers(headers)?;
        let now = self.clock.now().unix_timestamp();
        // abs_diff: an extreme timestamp from the network must not overflow.
        if now.abs_diff(ts) > TIMESTAMP_WINDOW_SECS.unsigned_abs() {
            return Err(rejected(
                "stale_timestamp",
                "X-Sig-Timestamp is more than 300 seconds from the server's clock",
            ));
        }
        let record = match claimed_org(body) {
            Some(org) => self
                .vault
                .get::<OrgRecord>(&org_key(&org))
                .await?
                .map(|v| v.value),
            None => None,
        };
        let secret_ok = |r: &OrgRecord| {
            r.callback_secret_used
                || r.callback_secret_expires_at.as_deref().is_none_or(|exp| {
                    time::OffsetDateTime::parse(exp, &time::format_description::well_known::Rfc3339)
                        .is_ok_and(|exp| self.clock.now() < exp)
                })
        };
        // An unknown org, an expired secret and a wrong signature all cost the same two
        // HMACs (the current secret and a live stack's previous one) and end in the same
        // answer, so the endpoint reveals nothing about org names.
        let key = record
            .as_ref()
            .filter(|r| secret_ok(r))
            .map(|r| r.callback_secret.clone());
        let previous = record
            .as_ref()
            .and_then(|r| r.previous_callback_secret.clone());
        let mut msg = format!("{ts}|{nonce}|").into_bytes();
        msg.extend_from_slice(body);
        let matches = |k: Option<&str>| {
            let expected = rolegate_crypto::hmac_sha256_hex(
                k.unwrap_or("rolegate-no-such-org").as_bytes(),
                &msg,
            );
            rolegate_crypto::ct_eq(expected.as_bytes(), sig.as_bytes()) && k.is_some()
        };
        let with_current = matches(key.as_deref());
        let with_previous = matches(previous.as_deref());
        if !(with_current || with_previous) {
            return Err(rejected(
                "invalid_signature",
                "the callback signature is not valid",
            ));
        }
        let org = record
            .map(|r| r.name)
            .ok_or_else(|| rejected("invalid_signature", "the callback signature is not valid"))?;
        let nonce_key = format!("{}{org}/{nonce}", super::NONCE_PREFIX);
        let claim = Txn::new()
            .absent(nonce_key.clone())
            .put_ttl(nonce_key, vec![1], NONCE_TTL);
        if !self.vault.commit(claim).await? {
            return Err(rejected(
                "nonce_reused",
                "this X-Sig-Nonce was already used",
            ));
        }
        Ok(Verified {
            previous_secret: !with_current,
        })
    }

    /// Binds the org to the reporting account (first verified "created" wins).
    async fn bind(
        &self,
        ctx: &RequestContext,
        cb: &Callback,
        verified: Verified,
    ) -> Result<(), Error> {
        for _ in 0..8 {
            let key = org_key(&cb.org);
            let cur = self
                .vault
                .get::<OrgRecord>(&key)
                .await?
                .ok_or(Error::NotFound {
                    what: "organisation",
                })?;
            let mut rec = cur.value.clone();
            if rec.status == OrgStatus::Offboarded {
                return Err(Error::conflict(
                    "org_offboarded",
                    format!("organisation {} is offboarded", cb.org),
                ));
            }
            let expected = rec
                .expected_account_id
                .as_ref()
                .filter(|a| **a != cb.account);
            let bound = rec.account_id.as_ref().filter(|a| **a != cb.account);
            if let Some(other) = expected.or(bound) {
                let why = if expected.is_some() {
                    "was registered for"
                } else {
                    "is bound to"
                };
                let msg = format!(
                    "organisation {} {why} account {}; reset the binding to change it",
                    cb.org,
                    other.as_str()
                );
                let audit = AuditRecord::new("onboarding.callback.rejected")
                    .org(cb.org.to_string())
                    .failure("account_mismatch")
                    .details(serde_json::json!({"reported_account": cb.account.as_str(), "bound_account": other.as_str()}));
                self.audit.append(ctx, audit).await?;
                return Err(Error::conflict("account_mismatch", msg));
            }
            let from = rec.status;
            rec.account_id = Some(cb.account.clone());
            rec.role_arn = Some(cb.role_arn.clone());
            rec.stack_id = Some(cb.stack_id.clone());
            rec.status = OrgStatus::CallbackReceived;
            rec.status_message = None;
            if !verified.previous_secret {
                // The current secret is in use now: the previous stack's one retires.
                rec.callback_secret_used = true;
                rec.previous_callback_secret = None;
            }
            rec.last_callback_at = Some(self.now());
            rec.updated_at = self.now();
            let txn = self
                .vault
                .put(Txn::new().equals(key.clone(), cur.rev), &key, &rec)?;
            let audit = AuditRecord::new("org.callback_received").org(cb.org.to_string()).target(cb.role_arn.clone()).details(
                serde_json::json!({"from_status": from, "to_status": rec.status, "account_id": cb.account.as_str(), "region": cb.region, "stack_id": cb.stack_id}),
            );
            if self.audit.commit_with(ctx, txn, audit).await? {
                return Ok(());
            }
        }
        Err(Error::Contention)
    }

    /// Assumes the role with the ExternalId, then without it, and records the verdict.
    async fn verify_trust(
        &self,
        ctx: &RequestContext,
        cb: &Callback,
        policy: &OnboardingPolicy,
    ) -> Result<CallbackOutcome, Error> {
        let cur = self
            .vault
            .get::<OrgRecord>(&org_key(&cb.org))
            .await?
            .ok_or(Error::NotFound {
                what: "organisation",
            })?;
        let mut req = AssumeRoleRequest {
            role_arn: cb.role_arn.clone(),
            external_id: Some(cur.value.external_id.clone()),
            session_name: format!("rolegate-verify-{}", cb.org),
            source_identity: Some("rolegate-onboarding".to_owned()),
            tags: vec![
                ("rolegate:org".to_owned(), cb.org.to_string()),
                ("rolegate:purpose".to_owned(), "onboarding-check".to_owned()),
            ],
            policy: None,
            policy_arns: Vec::new(),
            duration_seconds: 900,
        };
        let mut with = Err(StsError::Unavailable("not attempted".to_owned()));
        for attempt in 0..policy.verify_attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(policy.verify_delay).await;
            }
            with = self.sts.assume_role(&req).await;
            if !matches!(
                with,
                Err(StsError::AccessDenied(_) | StsError::Unavailable(_) | StsError::Throttled)
            ) {
                break;
            }
        }
        let (status, trust, message) = match with {
            Err(e) => {
                tracing::warn!(org = %cb.org, error = %e, "onboarding check: cannot assume the role");
                let code = crate::credentials::sts_error_code(&e);
                (
                    OrgStatus::Failed,
                    format!("assume_role_failed:{code}"),
                    Some(format!(
                        "rolegate could not assume {} with the ExternalId ({code}); check that the stack created the role and its trust policy",
                        cb.role_arn
                    )),
                )
            }
            Ok(_) => {
                req.external_id = None;
                match self.sts.assume_role(&req).await {
                    Ok(_) => {
                        let status = if policy.require_external_id_enforcement {
                            OrgStatus::UnsafeTrust
                        } else {
                            OrgStatus::Validated
                        };
                        (status, "external_id_not_enforced".to_owned(), Some("the role can be assumed WITHOUT the ExternalId: its trust policy must require sts:ExternalId (StringEquals); fix it and update the stack".to_owned()))
                    }
                    Err(StsError::AccessDenied(_)) => (
                        OrgStatus::Validated,
                        "external_id_enforced".to_owned(),
                        None,
                    ),
                    Err(e) => {
                        let status = if policy.require_external_id_enforcement {
                            OrgStatus::UnsafeTrust
                        } else {
                            OrgStatus::Validated
                        };
                        (
                            status,
                            "external_id_check_inconclusive".to_owned(),
                            Some(format!(
                                "could not confirm that the ExternalId is enforced: {}",
                                crate::credentials::sts_error_code(&e)
                            )),
                        )
                    }
                }
            }
        };
        self.set_status(ctx, &cb.org, &cb.account, status, Some(trust), message)
            .await
    }

    /// Moves a bound org to `status`, if it is still bound to `account`.
    async fn set_status(
        &self,
        ctx: &RequestContext,
        org: &OrgName,
        account: &AccountId,
        status: OrgStatus,
        trust_check: Option<String>,
        message: Option<String>,
    ) -> Result<CallbackOutcome, Error> {
        for _ in 0..8 {
            let key = org_key(org);
            let cur = self
                .vault
                .get::<OrgRecord>(&key)
                .await?
                .ok_or(Error::NotFound {
                    what: "organisation",
                })?;
            let mut rec = cur.value.clone();
            if rec.account_id.as_ref() != Some(account) || rec.status == OrgStatus::Offboarded {
                return Err(Error::conflict(
                    "binding_changed",
                    "the binding changed while it was being verified; retry",
                ));
            }
            let from = rec.status;
            rec.status = status;
            rec.trust_check.clone_from(&trust_check);
            rec.status_message.clone_from(&message);
            rec.updated_at = self.now();
            let txn = self
                .vault
                .put(Txn::new().equals(key.clone(), cur.rev), &key, &rec)?;
            let mut audit = AuditRecord::new("org.status_changed").org(org.to_string()).details(
                serde_json::json!({"from_status": from, "to_status": status, "trust_check": trust_check}),
            );
            if status == OrgStatus::Failed {
                audit = audit.failure("assume_role_failed");
            }
            if self.audit.commit_with(ctx, txn, audit).await? {
                return Ok(outcome(&rec));
            }
        }
        Err(Error::Contention)
    }

    /// The stack was deleted: the org is offboarded and its cached credentials dropped.
    async fn stack_deleted(
        &self,
        ctx: &RequestContext,
        cb: &Callback,
    ) -> Result<CallbackOutcome, Error> {
        for _ in 0..8 {
            let key = org_key(&cb.org);
            let cur = self
                .vault
                .get::<OrgRecord>(&key)
                .await?
                .ok_or(Error::NotFound {
                    what: "organisation",
                })?;
            let mut rec = cur.value.clone();
            if rec.account_id.as_ref().is_some_and(|a| *a != cb.account) {
                return Err(Error::conflict(
                    "account_mismatch",
                    format!("organisation {} is bound to another account", cb.org),
                ));
            }
            if rec.status == OrgStatus::Offboarded {
                return Ok(outcome(&rec));
            }
            // Only the deletion of the bound stack offboards. A stack deleted before any
            // binding (a failed create rolling back) or another stack of the same account
            // (a second attempt) changes nothing, so the customer can simply try again.
            let bound_stack =
                rec.account_id.is_some() && rec.stack_id.as_ref().is_none_or(|s| *s == cb.stack_id);
            if !bound_stack {
                let audit = AuditRecord::new("onboarding.stack_deleted")
                    .org(cb.org.to_string())
                    .details(serde_json::json!({
                        "stack_id": cb.stack_id,
                        "bound": rec.account_id.is_some(),
                        "effect": "none: not the bound stack",
                    }));
                self.audit.append(ctx, audit).await?;
                return Ok(outcome(&rec));
            }
            let from = rec.status;
            rec.status = OrgStatus::Offboarded;
            rec.status_message = Some("the customer deleted the onboarding stack".to_owned());
            rec.offboarded_at = Some(self.now());
            rec.last_callback_at = Some(self.now());
            rec.updated_at = self.now();
            let txn = Txn::new()
                .equals(key.clone(), cur.rev)
                .delete(api_key_key(&rec.api_key_digest));
            let txn = self.vault.put(txn, &key, &rec)?;
            let audit = AuditRecord::new("org.offboard").org(cb.org.to_string()).details(
                serde_json::json!({"from_status": from, "reason": "stack deleted", "stack_id": cb.stack_id}),
            );
            if self.audit.commit_with(ctx, txn, audit).await? {
                self.evict_credentials(&cb.org).await?;
                return Ok(outcome(&rec));
            }
        }
        Err(Error::Contention)
    }

    /// Clears an org's account binding so that a callback from another account can bind it.
    pub async fn reset_binding(
        &self,
        ctx: &RequestContext,
        by: &crate::Principal,
        org: &OrgName,
    ) -> Result<crate::orgs::Org, Error> {
        if matches!(by, crate::Principal::OrgKey { .. }) {
            return Err(Error::Forbidden(
                "only operators can reset a binding".to_owned(),
            ));
        }
        for _ in 0..8 {
            let cur = self.org_record(by, org).await?;
            let mut rec = cur.value.clone();
            if rec.status == OrgStatus::Offboarded {
                return Err(Error::conflict(
                    "org_offboarded",
                    format!("organisation {org} is offboarded"),
                ));
            }
            let from = (rec.status, rec.account_id.clone(), rec.role_arn.clone());
            rec.account_id = None;
            rec.role_arn = None;
            rec.stack_id = None;
            rec.trust_check = None;
            rec.status_message = None;
            rec.status = OrgStatus::Pending;
            rec.updated_at = self.now();
            let key = org_key(org);
            let txn = self
                .vault
                .put(Txn::new().equals(key.clone(), cur.rev), &key, &rec)?;
            let audit = AuditRecord::new("org.binding_reset").org(org.to_string()).details(serde_json::json!({
                "from_status": from.0, "from_account": from.1.as_ref().map(AccountId::as_str), "from_role_arn": from.2, "to_status": rec.status
            }));
            if self.audit.commit_with(ctx, txn, audit).await? {
                self.evict_credentials(org).await?;
                return Ok(crate::orgs::Org::from(&rec));
            }
        }
        Err(Error::Contention)
    }
}

fn outcome(rec: &OrgRecord) -> CallbackOutcome {
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
