//! The trust check after binding: assume the role with the ExternalId, then without it,
//! and record the verdict (`validated`, `unsafe_trust` or `failed`).

use super::callback::{Callback, outcome};
use super::{CallbackOutcome, OnboardingPolicy};
use crate::audit::AuditRecord;
use crate::ids::OrgName;
use crate::orgs::{AccountId, OrgRecord, OrgStatus, org_key};
use crate::ports::Txn;
use crate::ports::aws::{AssumeRoleRequest, StsError};
use crate::{Error, RequestContext, Services};

impl Services {
    /// Assumes the role with the ExternalId, then without it, and records the verdict.
    pub(super) async fn verify_trust(
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
    pub(super) async fn set_status(
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
}
