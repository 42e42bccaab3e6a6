//! Account binding: the first verified "created" callback binds; a different account needs
//! an operator's reset; only the bound stack's deletion offboards.

use super::callback::{Callback, outcome};
use super::{CallbackOutcome, Onboarding, Verified};
use crate::audit::AuditRecord;
use crate::error::{Code, Error};
use crate::ids::{AccountId, OrgName};
use crate::keyspace;
use crate::model::{Org, OrgStatus};
use crate::policy::Action;
use crate::principal::Caller;
use crate::records::Change;

impl Onboarding {
    /// Binds the org to the reporting account (first verified "created" wins).
    pub(super) async fn bind(
        &self,
        caller: &Caller,
        cb: &Callback,
        verified: &Verified,
    ) -> Result<(), Error> {
        let now = self.records.now();
        self.records
            .update(caller, &keyspace::org(&cb.org), |cur| {
                if cur.status == OrgStatus::Offboarded {
                    return Err(Error::offboarded(&cb.org));
                }
                let expected = cur
                    .expected_account_id
                    .as_ref()
                    .filter(|a| **a != cb.account);
                let bound = cur.account_id.as_ref().filter(|a| **a != cb.account);
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
                        .failure(Code::AccountMismatch.as_str())
                        .details(serde_json::json!({"reported_account": cb.account.as_str(), "bound_account": other.as_str()}));
                    return Ok(Change::Refuse {
                        audit,
                        error: Error::conflict(Code::AccountMismatch, msg),
                    });
                }
                let mut rec = cur.clone();
                let from = rec.status;
                rec.account_id = Some(cb.account.clone());
                rec.role_arn = Some(cb.role_arn.clone());
                rec.stack_id = Some(cb.stack_id.clone());
                rec.max_session_duration = cb.max_session_duration;
                rec.status = OrgStatus::CallbackReceived;
                rec.status_message = None;
                if !verified.previous_secret {
                    // The current secret is in use now: the previous stack's one retires.
                    rec.callback_secret_used = true;
                    rec.previous_callback_secret = None;
                }
                rec.last_callback_at = Some(now.clone());
                rec.updated_at.clone_from(&now);
                let audit = AuditRecord::new("org.callback_received").org(cb.org.to_string()).target(cb.role_arn.clone()).details(
                    serde_json::json!({"from_status": from, "to_status": rec.status, "account_id": cb.account.as_str(), "region": cb.region, "stack_id": cb.stack_id}),
                );
                Ok(Change::write(rec, audit))
            })
            .await?;
        Ok(())
    }

    /// The stack was deleted: the bound stack's deletion offboards the org and drops its
    /// cached credentials; any other stack's changes nothing.
    pub(super) async fn stack_deleted(
        &self,
        caller: &Caller,
        cb: &Callback,
    ) -> Result<CallbackOutcome, Error> {
        let cur = self
            .records
            .get(&keyspace::org(&cb.org))
            .await?
            .ok_or(Error::NotFound {
                what: keyspace::ORG.name,
            })?
            .value;
        if cur.account_id.as_ref().is_some_and(|a| *a != cb.account) {
            return Err(Error::conflict(
                Code::AccountMismatch,
                format!("organisation {} is bound to another account", cb.org),
            ));
        }
        if cur.status == OrgStatus::Offboarded {
            return Ok(outcome(&cur));
        }
        // Only the deletion of the bound stack offboards. A stack deleted before any
        // binding (a failed create rolling back) or another stack of the same account
        // (a second attempt) changes nothing, so the customer can simply try again.
        let bound_stack =
            cur.account_id.is_some() && cur.stack_id.as_ref().is_none_or(|s| *s == cb.stack_id);
        if !bound_stack {
            let audit = AuditRecord::new("onboarding.stack_deleted")
                .org(cb.org.to_string())
                .details(serde_json::json!({
                    "stack_id": cb.stack_id,
                    "bound": cur.account_id.is_some(),
                    "effect": "none: not the bound stack",
                }));
            self.records.record(caller, audit).await?;
            return Ok(outcome(&cur));
        }
        if !matches!(cur.status, OrgStatus::Validated | OrgStatus::UnsafeTrust) {
            return self.failed_stack_deleted(caller, cb).await;
        }
        let rec = self
            .orgs
            .offboard_record(caller, &cb.org, "stack deleted", Some(&cb.stack_id))
            .await?;
        Ok(outcome(&rec))
    }

    /// The bound stack was deleted before the org was ever onboarded: its create failed (the
    /// trust check refused, IAM had not propagated yet, …) and CloudFormation rolled it back.
    /// That never offboards. The stack's role and secret go with it; the account stays bound,
    /// and the customer deploys again with new links.
    async fn failed_stack_deleted(
        &self,
        caller: &Caller,
        cb: &Callback,
    ) -> Result<CallbackOutcome, Error> {
        let now = self.records.now();
        let updated = self
            .records
            .update(caller, &keyspace::org(&cb.org), |cur| {
                if matches!(
                    cur.status,
                    OrgStatus::Validated | OrgStatus::UnsafeTrust | OrgStatus::Offboarded
                ) || cur.stack_id.as_deref().is_some_and(|s| s != cb.stack_id)
                {
                    // Validated or rebound meanwhile: the caller's view is stale.
                    return Err(Error::conflict(
                        Code::BindingChanged,
                        "the binding changed while the deletion was applied; retry",
                    ));
                }
                let mut rec = cur.clone();
                let from = rec.status;
                rec.status = OrgStatus::Failed;
                rec.role_arn = None;
                rec.stack_id = None;
                rec.max_session_duration = None;
                rec.status_message = Some(
                    "the onboarding stack was deleted after its creation failed; issue new links (POST /api/integrate) and deploy it again".to_owned(),
                );
                rec.last_callback_at = Some(now.clone());
                rec.updated_at.clone_from(&now);
                rec.retire_callback_secrets(&now);
                let audit = AuditRecord::new("onboarding.stack_deleted")
                    .org(cb.org.to_string())
                    .details(serde_json::json!({
                        "stack_id": cb.stack_id,
                        "from_status": from,
                        "effect": "unbound the failed stack; not offboarded",
                    }));
                Ok(Change::write(rec, audit))
            })
            .await?;
        Ok(outcome(&updated.value))
    }

    /// Clears an org's account binding so that a callback from another account can bind it.
    pub async fn reset_binding(&self, caller: &Caller, org: &OrgName) -> Result<Org, Error> {
        self.orgs.load(caller, Action::ResetBinding, org).await?;
        let now = self.records.now();
        let updated = self
            .records
            .update(caller, &keyspace::org(org), |cur| {
                if cur.status == OrgStatus::Offboarded {
                    return Err(Error::offboarded(org));
                }
                let mut rec = cur.clone();
                let from = (rec.status, rec.account_id.clone(), rec.role_arn.clone());
                rec.account_id = None;
                rec.role_arn = None;
                rec.stack_id = None;
                rec.max_session_duration = None;
                rec.trust_check = None;
                rec.status_message = None;
                rec.status = OrgStatus::Pending;
                rec.updated_at.clone_from(&now);
                // The old stack's secrets die with its binding: new links bring a new one.
                rec.retire_callback_secrets(&now);
                let audit = AuditRecord::new(Action::ResetBinding.name()).org(org.to_string()).details(serde_json::json!({
                    "from_status": from.0, "from_account": from.1.as_ref().map(AccountId::as_str), "from_role_arn": from.2, "to_status": rec.status,
                    "callback_secrets": "retired",
                }));
                Ok(Change::write(rec, audit))
            })
            .await?;
        self.orgs.evict_credentials(org).await?;
        Ok(self.orgs.view(caller, &updated.value))
    }
}
