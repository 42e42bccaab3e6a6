//! The trust check after binding: assume the role with the ExternalId, then without it,
//! and record the verdict (`validated`, `unsafe_trust` or `failed`).

use super::callback::{Callback, outcome};
use super::{CallbackOutcome, Onboarding};
use crate::audit::AuditRecord;
use crate::error::{Code, Error, sts_code};
use crate::keyspace;
use crate::model::OrgStatus;
use crate::ports::aws::{AssumeRoleRequest, StsError};
use crate::principal::Caller;
use crate::records::Change;

impl Onboarding {
    /// Assumes the role with the ExternalId, then without it, and records the verdict.
    pub(super) async fn verify_trust(
        &self,
        caller: &Caller,
        cb: &Callback,
    ) -> Result<CallbackOutcome, Error> {
        let policy = &self.policy;
        let cur = self
            .records
            .get(&keyspace::org(&cb.org))
            .await?
            .ok_or(Error::NotFound {
                what: keyspace::ORG.name,
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
                self.records.clock().sleep(policy.verify_delay).await;
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
                let code = sts_code(&e);
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
                                sts_code(&e)
                            )),
                        )
                    }
                }
            }
        };
        self.set_status(caller, cb, status, Some(trust), message)
            .await
    }

    /// Moves a bound org to `status`, if it is still bound exactly as `cb` reported (the
    /// account and the role): a verdict is never applied to another binding.
    async fn set_status(
        &self,
        caller: &Caller,
        cb: &Callback,
        status: OrgStatus,
        trust_check: Option<String>,
        message: Option<String>,
    ) -> Result<CallbackOutcome, Error> {
        let now = self.records.now();
        let updated = self
            .records
            .update(caller, &keyspace::org(&cb.org), |cur| {
                if cur.account_id.as_ref() != Some(&cb.account)
                    || cur.role_arn.as_deref() != Some(cb.role_arn.as_str())
                    || cur.status == OrgStatus::Offboarded
                {
                    return Err(Error::conflict(
                        Code::BindingChanged,
                        "the binding changed while it was being verified; retry",
                    ));
                }
                let mut rec = cur.clone();
                let from = rec.status;
                rec.status = status;
                rec.trust_check.clone_from(&trust_check);
                rec.status_message.clone_from(&message);
                rec.updated_at.clone_from(&now);
                let mut audit = AuditRecord::new("org.status_changed").org(cb.org.to_string()).details(
                    serde_json::json!({"from_status": from, "to_status": status, "trust_check": trust_check}),
                );
                if status == OrgStatus::Failed {
                    audit = audit.failure("assume_role_failed");
                }
                Ok(Change::write(rec, audit))
            })
            .await?;
        Ok(outcome(&updated.value))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::ids::{Role, UserId};
    use crate::orgs::RegisterOrgCommand;
    use crate::principal::{Principal, RequestContext};

    fn callback(role: &str) -> Callback {
        let body = serde_json::json!({
            "event": "created", "org_name": "acme", "account_id": "111122223333",
            "region": "eu-west-1", "partition": "aws",
            "role_arn": format!("arn:aws:iam::111122223333:role/{role}"),
            "stack_id": "arn:aws:cloudformation:eu-west-1:111122223333:stack/rolegate-acme/0b5e2b40-1111-2222-3333-444455556666"
        });
        Callback::parse(&serde_json::to_vec(&body).unwrap()).unwrap()
    }

    /// A verdict reached for one role is never applied to a binding that moved to another
    /// role of the same account meanwhile (issue 10, defect 5).
    #[tokio::test]
    async fn a_verdict_for_another_role_is_refused() {
        let (services, _) = crate::testing::services().await;
        let alice = Caller::new(
            Principal::Operator {
                user_id: UserId::parse("alice").unwrap(),
                role: Role::Operator,
            },
            RequestContext::default(),
        );
        services
            .orgs
            .register(&alice, RegisterOrgCommand::parse("acme", None).unwrap())
            .await
            .unwrap();
        let stack = Caller::system("test");
        let bound_to = |role: &'static str| {
            move |cur: &crate::model::OrgRecord| {
                let mut rec = cur.clone();
                rec.account_id = Some(crate::ids::AccountId::parse("111122223333").unwrap());
                rec.role_arn = Some(format!("arn:aws:iam::111122223333:role/{role}"));
                rec.status = OrgStatus::CallbackReceived;
                Ok(Change::write(
                    rec,
                    crate::audit::AuditRecord::new("test.bind"),
                ))
            }
        };
        let org = crate::ids::OrgName::parse("acme").unwrap();
        services
            .records
            .update(&stack, &keyspace::org(&org), bound_to("second"))
            .await
            .unwrap();
        // The check ran for role "first", but the org is now bound to "second".
        let err = services
            .onboarding
            .set_status(
                &stack,
                &callback("first"),
                OrgStatus::Validated,
                Some("external_id_enforced".into()),
                None,
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::BindingChanged);
        let rec = services
            .records
            .get(&keyspace::org(&org))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rec.value.status, OrgStatus::CallbackReceived);
        // The verdict for the role that is bound applies.
        let ok = services
            .onboarding
            .set_status(
                &stack,
                &callback("second"),
                OrgStatus::Validated,
                Some("external_id_enforced".into()),
                None,
            )
            .await
            .unwrap();
        assert_eq!(ok.status, OrgStatus::Validated);
    }
}
