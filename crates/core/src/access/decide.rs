//! Approving, denying, cancelling and revoking: each a compare-and-swap through the update
//! loop, with its audit event (a refusal is audited too).

use super::{Access, may_approve, operator_id, plausible_id, refusal};
use crate::audit::AuditRecord;
use crate::error::{Code, Error};
use crate::keyspace;
use crate::model::{AccessRequestRecord, AccessState, Approval, RevokedBy};
use crate::policy::{Action, Facts};
use crate::ports::Txn;
use crate::principal::Caller;
use crate::records::Change;

/// What a caller decides about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Deny,
    Cancel,
    Revoke,
}

impl Decision {
    #[must_use]
    pub const fn action(self) -> Action {
        match self {
            Self::Approve => Action::ApproveAccess,
            Self::Deny => Action::DenyAccess,
            Self::Cancel => Action::CancelAccessRequest,
            Self::Revoke => Action::RevokeAccess,
        }
    }
}

/// The longest session AWS issues for a role (12 hours), when the level is gone.
const MAX_SESSION_SECS: i64 = 12 * 3600;

/// At most this many characters of comment.
pub const MAX_COMMENT_CHARS: usize = 512;

pub(super) fn parse_comment(raw: Option<&str>) -> Result<Option<String>, Error> {
    let Some(c) = raw.map(str::trim).filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    if c.chars().count() > MAX_COMMENT_CHARS || c.chars().any(char::is_control) {
        return Err(Error::invalid(
            "comment",
            format!(
                "comment must be at most {MAX_COMMENT_CHARS} characters, without control characters"
            ),
        ));
    }
    Ok(Some(c.to_owned()))
}

impl Access {
    /// Applies `decision` to request `id` for `caller`, and answers with the record as it
    /// is now.
    #[tracing::instrument(skip_all, fields(id, ?decision))]
    pub async fn decide(
        &self,
        caller: &Caller,
        id: &str,
        decision: Decision,
        comment: Option<&str>,
    ) -> Result<AccessRequestRecord, Error> {
        let action = decision.action();
        self.records
            .authorize(caller, action, &Facts::default())
            .await?;
        let comment = parse_comment(comment)?;
        let not_found = Error::NotFound {
            what: keyspace::ACCESS_REQUEST.name,
        };
        if !plausible_id(id) {
            return Err(not_found);
        }
        let key = keyspace::access_request(id);
        let Some(cur) = self.records.get(&key).await? else {
            return Err(not_found);
        };
        let me = operator_id(caller)?.to_string();
        let rule = self.rule_of(&cur.value);
        let approver = may_approve(caller, rule.as_ref());
        let mine = cur.value.requested_by == me;
        let now = self.now();
        let stamp = self.records.now();
        let updated = self
            .records
            .update(caller, &key, |rec| {
                let state = rec.state_at(now);
                let refuse = |code: Code, message: String| {
                    refusal(
                        action,
                        rec,
                        code,
                        message,
                        serde_json::json!({"state": state.as_str()}),
                    )
                };
                let wanted: &[AccessState] = match decision {
                    Decision::Approve | Decision::Deny | Decision::Cancel => {
                        &[AccessState::Pending]
                    }
                    Decision::Revoke => &[AccessState::Approved, AccessState::Active],
                };
                if !wanted.contains(&state) {
                    return refuse(
                        Code::InvalidTransition,
                        format!("request {} is {}", rec.id, state.as_str()),
                    );
                }
                match decision {
                    Decision::Cancel if !mine => {
                        return refuse(
                            Code::Forbidden,
                            "only the requester cancels a request; approvers deny it".into(),
                        );
                    }
                    Decision::Approve | Decision::Deny | Decision::Revoke if mine => {
                        return refuse(
                            Code::SelfApproval,
                            format!(
                                "nobody may {} their own request",
                                match decision {
                                    Decision::Approve => "approve",
                                    Decision::Deny => "deny",
                                    _ => "revoke",
                                }
                            ),
                        );
                    }
                    Decision::Approve | Decision::Deny | Decision::Revoke if !approver => {
                        return refuse(
                            Code::NotAnApprover,
                            format!(
                                "you are not an approver of access level {} on {}",
                                rec.access_level, rec.org
                            ),
                        );
                    }
                    _ => {}
                }
                let mut next = rec.clone();
                next.updated_at = stamp.clone();
                let mut txn = Txn::new();
                let grant_key =
                    keyspace::access_grant(&rec.org, &rec.access_level, &rec.requested_by, &rec.id);
                let mut granted = false;
                match decision {
                    Decision::Approve => {
                        if rec.approvals.iter().any(|a| a.by == me) {
                            return refuse(
                                Code::InvalidTransition,
                                "you have already approved this request".into(),
                            );
                        }
                        next.approvals.push(Approval {
                            by: me.clone(),
                            at: stamp.clone(),
                            comment: comment.clone(),
                        });
                        let count = u32::try_from(next.approvals.len()).unwrap_or(u32::MAX);
                        // A level that needs the customer's approval waits for it too.
                        let customer_waits = rec
                            .customer
                            .as_ref()
                            .is_some_and(|c| c.decision.as_deref() != Some("approved"));
                        if count >= rec.min_approvals && !customer_waits {
                            granted = true;
                            self.grant(&mut next, now);
                        }
                    }
                    Decision::Deny | Decision::Cancel | Decision::Revoke => {
                        next.state = match decision {
                            Decision::Deny => AccessState::Denied,
                            Decision::Cancel => AccessState::Cancelled,
                            _ => AccessState::Revoked,
                        };
                        next.decided_by = Some(me.clone());
                        next.decision_comment = comment.clone();
                        txn = txn
                            .delete(grant_key.as_str())
                            .delete(keyspace::access_open(&rec.id));
                        if decision == Decision::Revoke {
                            // Sessions issued under the grant end by its end, and by the
                            // longest a level allows (jobs: 900 s) after their issue.
                            let longest = self
                                .levels
                                .level(Some(&rec.access_level))
                                .map_or(MAX_SESSION_SECS, |l| i64::from(l.max_duration_secs()))
                                .max(900);
                            let expires = rec
                                .grant_end_unix
                                .map_or(now + longest, |end| end.min(now + longest));
                            txn = self.revocation_marker(
                                txn,
                                &rec.org,
                                RevokedBy::Grant,
                                &rec.id,
                                expires,
                            )?;
                        }
                    }
                }
                let audit = AuditRecord::new(action.name())
                    .org(rec.org.to_string())
                    .target(rec.id.clone())
                    .details(serde_json::json!({
                        "access_level": rec.access_level,
                        "requested_by": rec.requested_by,
                        "comment": comment,
                        "from": state.as_str(),
                        "to": next.state.as_str(),
                        "approvals": next.approvals.len(),
                        "min_approvals": rec.min_approvals,
                        "grant_ends_at": next.grant_ends_at,
                        "awaiting_customer": next.state == AccessState::Pending
                            && next.customer.is_some(),
                    }));
                if granted {
                    // The index is sealed like any record; its value says nothing.
                    txn = self.records.put(txn, &grant_key, &())?;
                }
                Ok(Change::write_with(next, txn, audit))
            })
            .await?;
        if decision == Decision::Revoke {
            // Drop the org's cached credentials: the next request of anyone still entitled
            // mints fresh ones, and nothing minted under the grant is served again.
            if let Err(e) = self.orgs.evict_credentials(&updated.value.org).await {
                tracing::error!(error = %e, "could not drop cached credentials after a revocation");
            }
        }
        Ok(updated.value.view_at(now))
    }
}
