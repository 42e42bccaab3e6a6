//! `POST /api/access-requests`: a pending request, an auto-approved one (shorter than the
//! rule's `auto_approve_under`), or a break-glass grant that is active at once.

use super::{Access, MAX_START_AHEAD_SECS, RequestAccessCommand, operator_id, request_id, rfc3339};
use crate::audit::AuditRecord;
use crate::error::{Code, Error};
use crate::keyspace;
use crate::model::{AccessRequestRecord, AccessState};
use crate::policy::Action;
use crate::ports::Txn;
use crate::principal::Caller;

impl Access {
    /// Files a request (or takes a break-glass grant) for the calling operator.
    #[tracing::instrument(skip_all, fields(org = %cmd.org, level = %cmd.access_level))]
    pub async fn request(
        &self,
        caller: &Caller,
        cmd: &RequestAccessCommand,
    ) -> Result<AccessRequestRecord, Error> {
        let org = self
            .orgs
            .load(caller, Action::RequestAccess, &cmd.org)
            .await?;
        let me = operator_id(caller)?.clone();
        let level = self.levels.level(Some(&cmd.access_level))?;
        let Some(rule) = level.approval_for(&cmd.org).filter(|r| r.requires_approval) else {
            return Err(Error::invalid(
                "access_level",
                format!(
                    "access level {} needs no approval on {}: use it directly if it is granted to you",
                    level.name(),
                    cmd.org
                ),
            ));
        };
        if cmd.duration_secs > rule.max_duration_secs {
            return Err(Error::invalid(
                "duration_secs",
                format!(
                    "duration_secs must be at most {} for access level {} on {}",
                    rule.max_duration_secs,
                    level.name(),
                    cmd.org
                ),
            ));
        }
        if (rule.reason_required || cmd.break_glass) && cmd.reason.is_none() {
            let why = if cmd.break_glass {
                "break-glass access"
            } else {
                "this access level"
            };
            return Err(Error::invalid(
                "reason",
                format!("reason is required for {why}"),
            ));
        }
        if rule.ticket_required && cmd.ticket.is_none() {
            return Err(Error::invalid(
                "ticket",
                "ticket is required for this access level",
            ));
        }
        let now = self.now();
        if let Some(s) = cmd.starts_at
            && !(now - 60..=now + MAX_START_AHEAD_SECS).contains(&s)
        {
            return Err(Error::invalid(
                "starts_at",
                "starts_at must be between now and 7 days ahead",
            ));
        }
        // The customer's veto is the point of `customer_approval`: no way around it.
        if cmd.break_glass && (!rule.break_glass || rule.customer_approval) {
            let audit = AuditRecord::new("access.break_glass")
                .org(cmd.org.to_string())
                .failure(Code::BreakGlassNotAllowed.as_str())
                .details(serde_json::json!({"access_level": level.name(), "reason": cmd.reason}));
            self.records.record(caller, audit).await?;
            return Err(Error::Forbidden {
                code: Code::BreakGlassNotAllowed,
                message: format!(
                    "access level {} on {} does not allow break-glass access",
                    level.name(),
                    cmd.org
                ),
            });
        }
        let auto = !cmd.break_glass
            && !rule.customer_approval
            && rule
                .auto_approve_under_secs
                .is_some_and(|a| cmd.duration_secs < a);
        let granted = cmd.break_glass || auto;
        let id = request_id(self.records.clock().now_ms());
        let start = if cmd.break_glass {
            now
        } else {
            cmd.starts_at.unwrap_or(now).max(now)
        };
        let end = start + i64::from(cmd.duration_secs);
        let ttl_end = now + i64::from(rule.request_ttl_secs);
        let stamp = self.records.now();
        let mut rec = AccessRequestRecord {
            id: id.clone(),
            org: cmd.org.clone(),
            access_level: level.name().to_owned(),
            requested_by: me.to_string(),
            duration_secs: cmd.duration_secs,
            reason: cmd.reason.clone(),
            ticket: cmd.ticket.clone(),
            starts_at: cmd.starts_at.map(rfc3339),
            state: if granted {
                AccessState::Approved
            } else {
                AccessState::Pending
            },
            approvals: Vec::new(),
            min_approvals: rule.min_approvals,
            decided_by: auto.then(|| "rolegate".to_owned()),
            decision_comment: auto.then(|| "auto_approve_under".to_owned()),
            break_glass: cmd.break_glass,
            auto_approved: auto,
            review_required: cmd.break_glass,
            review: None,
            created_at: stamp.clone(),
            updated_at: stamp,
            request_expires_at: rfc3339(ttl_end),
            request_expires_unix: ttl_end,
            grant_starts_at: granted.then(|| rfc3339(start)),
            grant_ends_at: granted.then(|| rfc3339(end)),
            grant_start_unix: granted.then_some(start),
            grant_end_unix: granted.then_some(end),
            customer: None,
        };
        let key = keyspace::access_request(&id);
        let mut txn = Txn::new().absent(key.as_str());
        if rule.customer_approval {
            match self.customer_writes(&org.value, &mut rec, txn) {
                Ok(t) => txn = t,
                Err(e) => {
                    let audit = AuditRecord::new(Action::RequestAccess.name())
                        .org(cmd.org.to_string())
                        .failure(e.code().as_str())
                        .details(serde_json::json!({"access_level": level.name(), "reason": e.to_string()}));
                    self.records.record(caller, audit).await?;
                    return Err(e);
                }
            }
        }
        let mut txn = self
            .records
            .put(txn, &key, &rec)?
            .put(keyspace::access_open(&id), Vec::new());
        if granted {
            txn = self.records.put(
                txn,
                &keyspace::access_grant(&cmd.org, level.name(), me.as_str(), &id),
                &(),
            )?;
        }
        let name = if cmd.break_glass {
            "access.break_glass"
        } else {
            Action::RequestAccess.name()
        };
        let audit = AuditRecord::new(name)
            .org(cmd.org.to_string())
            .target(id.clone())
            .details(serde_json::json!({
                "access_level": rec.access_level,
                "duration_secs": rec.duration_secs,
                "reason": rec.reason,
                "ticket": rec.ticket,
                "starts_at": rec.starts_at,
                "state": rec.state.as_str(),
                "auto_approved": auto,
                "break_glass": cmd.break_glass,
                "review_required": rec.review_required,
                "grant_ends_at": rec.grant_ends_at,
                "customer_approvers": rec.customer.as_ref().map(|c| c.approvers.clone()),
            }));
        if !self.records.commit(caller, txn, audit).await? {
            return Err(Error::Contention);
        }
        if rec.customer.is_some() {
            self.deliveries.notify_one();
        }
        if cmd.break_glass {
            // Loud on purpose: break-glass is for emergencies and is reviewed afterwards.
            tracing::warn!(
                target: "rolegate::access::break_glass",
                org = %cmd.org, level = level.name(), user = %me, request = %id,
                "break-glass access taken"
            );
        }
        Ok(rec.view_at(now))
    }
}
