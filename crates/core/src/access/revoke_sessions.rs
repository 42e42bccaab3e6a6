//! `revoke_sessions`: credentials already handed out stop working when their grant is
//! revoked. The revocation commits a marker (`access/revq/<org>/<id>`) in its own
//! transaction; the access sweeper of any replica then writes the org's markers into the
//! customer role's `rolegate-revocations` inline policy (read, merge, write), one replica
//! per org at a time (`access/revlock/<org>`, put-if-absent with a TTL), and removes
//! statements once the last session they can affect has expired (`access/revs/<org>`
//! says when). A failed write keeps the markers (issuance stopped already), is audited
//! (`access.revocation_write`, failure) and retried with backoff.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use super::Access;
use super::revocation_policy::{POLICY_NAME, RevocationPolicy};
use crate::audit::AuditRecord;
use crate::error::{Code, Error};
use crate::ids::OrgName;
use crate::keyspace;
use crate::model::{OrgStatus, PendingRevocation, RevocationState, RevokedBy};
use crate::ports::Txn;
use crate::ports::aws::iam::Iam;
use crate::ports::aws::{AssumeRoleRequest, Sts, TemporaryCredentials};
use crate::principal::Caller;
use crate::revocations::EXPIRY_MARGIN_SECS;
pub use crate::revocations::RevokeSessionsSettings;

/// How long one replica may hold an org's writer lock.
const LOCK_TTL: Duration = Duration::from_secs(60);
/// The longest wait between retries of a failed write.
const MAX_BACKOFF_SECS: i64 = 300;

/// What writing revocations needs.
#[derive(Debug, Clone)]
pub struct RevokeSessions {
    pub sts: Arc<dyn Sts>,
    pub iam: Arc<dyn Iam>,
    pub settings: RevokeSessionsSettings,
}

/// The role's name: the last segment of its ARN (`arn:aws:iam::<acct>:role/<path/>name`).
fn role_name(arn: &str) -> Option<&str> {
    arn.rsplit_once(":role/")
        .map(|(_, p)| p.rsplit('/').next().unwrap_or(p))
        .filter(|n| !n.is_empty())
}

/// The session policy of the writer's own session: the three calls, on the role only.
fn writer_policy(role_arn: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Action": ["iam:GetRolePolicy", "iam:PutRolePolicy", "iam:DeleteRolePolicy"],
            "Resource": role_arn,
        }],
    })
    .to_string()
}

/// An IAM failure as the error the audit event and the state record carry.
fn aws_error(e: crate::ports::aws::ec2::AwsError) -> Error {
    use crate::ports::aws::ec2::AwsError;
    let code = match &e {
        AwsError::AccessDenied { .. } => Code::AwsAccessDenied,
        AwsError::Service { .. } => Code::AwsError,
        AwsError::Throttled { .. } | AwsError::Unavailable(_) => Code::AwsUnavailable,
    };
    let message = match &e {
        AwsError::Unavailable(detail) => {
            tracing::warn!(%detail, "IAM unreachable");
            "IAM could not be reached after retries".to_owned()
        }
        other => format!("IAM: {other}"),
    };
    Error::Upstream {
        code,
        message,
        retry_after_secs: None,
    }
}

/// What one write did.
struct Written {
    added: Vec<PendingRevocation>,
    removed: usize,
    statements: usize,
    next_cleanup: Option<i64>,
    deleted: bool,
}

impl Access {
    /// The marker a revocation of grant `id` commits with itself, when `revoke_sessions`
    /// applies to `org`. `expires`: when the last session it can affect has expired.
    pub(super) fn revocation_marker(
        &self,
        txn: Txn,
        org: &OrgName,
        by: RevokedBy,
        value: &str,
        expires: i64,
    ) -> Result<Txn, Error> {
        if !self
            .revoke_sessions
            .as_ref()
            .is_some_and(|r| r.settings.applies(org))
        {
            return Ok(txn);
        }
        let now = self.now();
        let marker = PendingRevocation {
            org: org.clone(),
            by,
            value: value.to_owned(),
            before_unix: now,
            expires_unix: expires.max(now) + EXPIRY_MARGIN_SECS,
        };
        crate::revocations::queue(&self.records, txn, &marker)
    }

    /// The orgs with markers to write or statements due for removal.
    async fn revocation_work(&self) -> Result<BTreeSet<OrgName>, Error> {
        let store = self.records.vault().store();
        let mut orgs = BTreeSet::new();
        for family in [
            keyspace::ACCESS_REVOCATION.prefix,
            keyspace::ACCESS_REVOCATION_STATE.prefix,
        ] {
            let mut after: Option<String> = None;
            loop {
                let page = store.list(family, after.as_deref(), 200).await?;
                for (key, raw) in &page.items {
                    after = Some(key.clone());
                    let Some(rest) = key.strip_prefix(family) else {
                        continue;
                    };
                    let name = rest.split('/').next().unwrap_or(rest);
                    let Ok(org) = OrgName::parse(name) else {
                        continue;
                    };
                    if family == keyspace::ACCESS_REVOCATION_STATE.prefix {
                        let st: RevocationState = self.records.vault().open(key, raw)?;
                        let due = st.next_cleanup_unix.is_some_and(|t| t <= self.now());
                        if !due {
                            continue;
                        }
                    }
                    orgs.insert(org);
                }
                if page.next.is_none() {
                    break;
                }
            }
        }
        Ok(orgs)
    }

    /// One pass: every org with work gets its policy written (by at most one replica).
    /// Returns how many orgs were written.
    pub async fn write_revocations(&self) -> Result<usize, Error> {
        let Some(rs) = self.revoke_sessions.clone() else {
            return Ok(0);
        };
        // A disabled operator's revocation becomes one marker per org it used first.
        if let Err(e) = self.scope_operator_revocations(&rs).await {
            tracing::warn!(error = %e, "scoping operator revocations failed; retrying later");
        }
        let mut written = 0;
        for org in self.revocation_work().await? {
            match self.write_org(&rs, &org).await {
                Ok(true) => written += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(org = %org, error = %e, "revocation write failed; retrying later")
                }
            }
        }
        Ok(written)
    }

    /// Writes `org`'s pending revocations and drops its expired statements. `Ok(false)`
    /// when another replica holds the org or a retry is not due.
    async fn write_org(&self, rs: &RevokeSessions, org: &OrgName) -> Result<bool, Error> {
        let caller = Caller::system("access-revoke");
        let now = self.now();
        let state_key = keyspace::access_revocation_state(org);
        let state = self
            .records
            .get(&state_key)
            .await?
            .map(|s| s.value)
            .unwrap_or_default();
        if state.retry_at_unix > now {
            return Ok(false);
        }
        let lock = keyspace::access_revocation_lock(org);
        let store = self.records.vault().store();
        let took = store
            .commit(Txn::new().absent(lock.as_str()).put_ttl(
                lock.as_str(),
                b"1".to_vec(),
                LOCK_TTL,
            ))
            .await?;
        if !took {
            return Ok(false);
        }
        let result = self.write_locked(rs, org).await;
        let stamp = self.records.now();
        let (txn, audit) = match result {
            Ok((keys, w)) => {
                let mut txn = Txn::new().delete(lock.as_str());
                for k in &keys {
                    txn = txn.delete(k.as_str());
                }
                let next = RevocationState {
                    statements: w.statements,
                    next_cleanup_unix: w.next_cleanup,
                    attempts: 0,
                    retry_at_unix: 0,
                    last_error: None,
                    updated_at: stamp,
                };
                txn = if w.statements == 0 {
                    txn.delete(state_key.as_str())
                } else {
                    self.records.put(txn, &state_key, &next)?
                };
                let added: Vec<_> = w
                    .added
                    .iter()
                    .map(|m| serde_json::json!({"by": m.by, "value": m.value, "expires_unix": m.expires_unix}))
                    .collect();
                let audit = AuditRecord::new("access.revocation_write")
                    .org(org.to_string())
                    .target(POLICY_NAME)
                    .details(serde_json::json!({
                        "added": added,
                        "removed": w.removed,
                        "statements": w.statements,
                        "deleted": w.deleted,
                        "next_cleanup_unix": w.next_cleanup,
                    }));
                (txn, audit)
            }
            Err(e) => {
                let attempts = state.attempts.saturating_add(1);
                let backoff = (30_i64 << attempts.min(4)).min(MAX_BACKOFF_SECS);
                let next = RevocationState {
                    attempts,
                    retry_at_unix: now + backoff,
                    last_error: Some(e.to_string()),
                    updated_at: stamp,
                    ..state
                };
                let txn = self
                    .records
                    .put(Txn::new().delete(lock.as_str()), &state_key, &next)?;
                let audit = AuditRecord::new("access.revocation_write")
                    .org(org.to_string())
                    .target(POLICY_NAME)
                    .failure(e.code().as_str())
                    .details(serde_json::json!({
                        "error": e.to_string(),
                        "attempts": attempts,
                        "retry_at_unix": now + backoff,
                    }));
                (txn, audit)
            }
        };
        if !self.records.commit(&caller, txn, audit).await? {
            tracing::warn!(org = %org, "revocation state not recorded; the next pass redoes it");
        }
        Ok(true)
    }

    /// The IAM part, under the org's lock: the markers' keys it consumed, and what it did.
    async fn write_locked(
        &self,
        rs: &RevokeSessions,
        org: &OrgName,
    ) -> Result<(Vec<String>, Written), Error> {
        let prefix = keyspace::access_revocation_prefix(org);
        let store = self.records.vault().store();
        let mut markers = BTreeMap::new();
        let mut after: Option<String> = None;
        loop {
            let page = store.list(&prefix, after.as_deref(), 200).await?;
            for (key, raw) in &page.items {
                after = Some(key.clone());
                let m: PendingRevocation = self.records.vault().open(key, raw)?;
                markers.insert(key.clone(), m);
            }
            if page.next.is_none() {
                break;
            }
        }
        let rec = self
            .records
            .get(&keyspace::org(org))
            .await?
            .ok_or(Error::NotFound {
                what: keyspace::ORG.name,
            })?
            .value;
        let role_arn = match (&rec.status, &rec.role_arn) {
            (OrgStatus::Validated, Some(arn)) => arn.clone(),
            _ => {
                return Err(Error::Precondition {
                    code: Code::OrgNotValidated,
                    message: format!("organisation {org} has no validated role to write into"),
                    details: serde_json::Value::Null,
                });
            }
        };
        let role = role_name(&role_arn)
            .ok_or_else(|| Error::invalid("role_arn", "the bound role's ARN names no role"))?
            .to_owned();
        let creds = self
            .writer_session(rs, org, &role_arn, &rec.external_id)
            .await?;
        let current = rs
            .iam
            .get_role_policy(&creds, &role, POLICY_NAME)
            .await
            .map_err(aws_error)?;
        let mut policy = RevocationPolicy::parse(current.as_deref());
        for m in markers.values() {
            policy.add(m.by, &m.value, m.before_unix, m.expires_unix);
        }
        let removed = policy.prune(self.now());
        let mut deleted = false;
        if policy.is_empty() {
            if current.is_some() {
                rs.iam
                    .delete_role_policy(&creds, &role, POLICY_NAME)
                    .await
                    .map_err(aws_error)?;
                deleted = true;
            }
        } else {
            let doc = policy.render().map_err(|full| Error::Conflict {
                code: Code::RevocationPolicyFull,
                message: full.to_string(),
            })?;
            if current.as_deref() != Some(doc.as_str()) {
                rs.iam
                    .put_role_policy(&creds, &role, POLICY_NAME, &doc)
                    .await
                    .map_err(aws_error)?;
            }
        }
        let written = Written {
            statements: policy.statements(),
            next_cleanup: policy.next_expiry(),
            added: markers.values().cloned().collect(),
            removed,
            deleted,
        };
        Ok((markers.into_keys().collect(), written))
    }

    /// The customer's role, assumed with the org's ExternalId and a session policy that
    /// allows only the three IAM calls on the role itself.
    async fn writer_session(
        &self,
        rs: &RevokeSessions,
        org: &OrgName,
        role_arn: &str,
        external_id: &str,
    ) -> Result<TemporaryCredentials, Error> {
        let req = AssumeRoleRequest {
            role_arn: role_arn.to_owned(),
            external_id: Some(external_id.to_owned()),
            session_name: crate::credentials::session::sanitize_session_part(&format!(
                "rolegate-revoke-{org}"
            ))
            .chars()
            .take(64)
            .collect(),
            source_identity: Some("rolegate.revocations".to_owned()),
            tags: vec![(
                crate::credentials::session::TAG_ORG.to_owned(),
                crate::credentials::session::sanitize_tag_value(org.as_str()),
            )],
            policy: Some(writer_policy(role_arn)),
            policy_arns: Vec::new(),
            duration_seconds: 900,
        };
        rs.sts.assume_role(&req).await.map_err(Error::from_sts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_and_the_writer_policy() {
        assert_eq!(
            role_name("arn:aws:iam::111122223333:role/rolegate-access"),
            Some("rolegate-access")
        );
        assert_eq!(
            role_name("arn:aws:iam::111122223333:role/team/x/rolegate-access"),
            Some("rolegate-access")
        );
        assert_eq!(role_name("arn:aws:iam::111122223333:user/x"), None);
        let p = writer_policy("arn:aws:iam::111122223333:role/r");
        assert!(p.contains("\"Resource\":\"arn:aws:iam::111122223333:role/r\""));
        assert!(!p.contains('*'));
    }
}
