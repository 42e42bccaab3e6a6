//! Account binding: the first verified "created" callback binds; a different account needs
//! an operator's reset; only the bound stack's deletion offboards.

use super::callback::{Callback, outcome};
use super::{CallbackOutcome, Verified};
use crate::audit::AuditRecord;
use crate::ids::OrgName;
use crate::orgs::{AccountId, OrgRecord, OrgStatus, api_key_key, org_key};
use crate::ports::Txn;
use crate::{Error, RequestContext, Services};

impl Services {
    /// Binds the org to the reporting account (first verified "created" wins).
    pub(super) async fn bind(
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
            rec.max_session_duration = cb.max_session_duration;
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

    /// The stack was deleted: the org is offboarded and its cached credentials dropped.
    pub(super) async fn stack_deleted(
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
            rec.max_session_duration = None;
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
