//! A customer approver's decision through its single-use link: `show` (what a GET sees:
//! nothing changes, so link scanners that prefetch are harmless) and `decide_by_link` (a
//! POST), one compare-and-swap through the update loop with its audit event. The token is
//! the credential; it is bound to one request, one approver and one decision, expires with
//! the request's TTL, and decides once.

use serde::Serialize;

use super::{Access, LINK_TOKEN_PREFIX, rfc3339};
use crate::audit::AuditRecord;
use crate::error::{Code, Error};
use crate::keyspace;
use crate::model::{AccessRequestRecord, AccessState, CustomerLink};
use crate::policy::{Action, Facts};
use crate::ports::Txn;
use crate::principal::{Caller, RequestContext};
use crate::records::Change;

/// What a link shows and what it decided.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CustomerLinkView {
    /// `approve` or `deny`: what a POST to this link does.
    pub decision: String,
    pub approver_id: String,
    /// When the link stops working (RFC 3339).
    pub expires_at: String,
    pub request: LinkRequestView,
}

/// The request a link decides, as its customer approver sees it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LinkRequestView {
    pub id: String,
    pub org: String,
    pub access_level: String,
    pub requested_by: String,
    pub duration_secs: u32,
    pub reason: Option<String>,
    pub ticket: Option<String>,
    pub starts_at: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub state: AccessState,
    /// Provider approvals so far, and how many the rule needs.
    pub approvals: usize,
    pub min_approvals: u32,
    /// The customer's decision, once made.
    pub customer_decision: Option<String>,
}

fn view(link: &CustomerLink, rec: &AccessRequestRecord, now: i64) -> CustomerLinkView {
    CustomerLinkView {
        decision: link.decision.clone(),
        approver_id: link.approver_id.clone(),
        expires_at: rfc3339(link.expires_unix),
        request: LinkRequestView {
            id: rec.id.clone(),
            org: rec.org.to_string(),
            access_level: rec.access_level.clone(),
            requested_by: rec.requested_by.clone(),
            duration_secs: rec.duration_secs,
            reason: rec.reason.clone(),
            ticket: rec.ticket.clone(),
            starts_at: rec.starts_at.clone(),
            state: rec.state_at(now),
            approvals: rec.approvals.len(),
            min_approvals: rec.min_approvals,
            customer_decision: rec.customer.as_ref().and_then(|c| c.decision.clone()),
        },
    }
}

/// Why a link cannot decide `rec` now, if it cannot.
fn refusal(rec: &AccessRequestRecord, link: &CustomerLink, now: i64) -> Option<(Code, String)> {
    if rec.customer.as_ref().is_some_and(|c| c.decision.is_some()) {
        return Some((
            Code::ApprovalLinkUsed,
            format!(
                "the customer has already decided request {}; each link decides once",
                rec.id
            ),
        ));
    }
    if now >= link.expires_unix {
        return Some((
            Code::ApprovalLinkExpired,
            format!("this link expired at {}", rfc3339(link.expires_unix)),
        ));
    }
    let state = rec.state_at(now);
    if state != AccessState::Pending {
        return Some((
            Code::ApprovalLinkExpired,
            format!(
                "request {} is {}, no longer pending",
                rec.id,
                state.as_str()
            ),
        ));
    }
    None
}

fn link_error(code: Code, message: String) -> Error {
    match code.status() {
        409 | 410 => Error::Conflict { code, message },
        _ => Error::Forbidden { code, message },
    }
}

impl Access {
    async fn load_link(&self, token: &str) -> Result<CustomerLink, Error> {
        let not_found = Error::NotFound {
            what: keyspace::ACCESS_LINK.name,
        };
        let plausible = token.len() <= 128
            && token.starts_with(LINK_TOKEN_PREFIX)
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !plausible {
            return Err(not_found);
        }
        let key = keyspace::access_link(&self.link_digest(token));
        match self.records.get(&key).await? {
            Some(l) => Ok(l.value),
            None => Err(not_found),
        }
    }

    /// What the link would decide (a GET: changes nothing). 404 for an unknown link, 409
    /// once used, 410 once expired.
    pub async fn show_link(&self, token: &str) -> Result<CustomerLinkView, Error> {
        let link = self.load_link(token).await?;
        let rec = self
            .records
            .get(&keyspace::access_request(&link.request_id))
            .await?
            .ok_or(Error::NotFound {
                what: keyspace::ACCESS_LINK.name,
            })?
            .value;
        let now = self.now();
        if let Some((code, message)) = refusal(&rec, &link, now) {
            return Err(link_error(code, message));
        }
        Ok(view(&link, &rec, now))
    }

    /// Decides as the link's customer approver (a POST). With the provider's quorum already
    /// in, an approval makes the grant; a deny denies. Audited as `access.customer_decision`
    /// by `customer:<approver>`.
    #[tracing::instrument(skip_all)]
    pub async fn decide_by_link(
        &self,
        ctx: &RequestContext,
        token: &str,
        signature: Option<(&str, &[u8])>,
    ) -> Result<CustomerLinkView, Error> {
        let link = self.load_link(token).await?;
        let mut caller = Caller::system("customer-approval");
        caller.ctx = RequestContext {
            actor: format!("customer:{}", link.approver_id),
            ..ctx.clone()
        };
        self.records
            .authorize(&caller, Action::CustomerDecideAccess, &Facts::default())
            .await?;
        let key = keyspace::access_request(&link.request_id);
        let Some(cur) = self.records.get(&key).await? else {
            return Err(Error::NotFound {
                what: keyspace::ACCESS_LINK.name,
            });
        };
        // The approver must still be one of the org's (the key may have replaced them).
        let approver = self
            .records
            .get(&keyspace::org(&cur.value.org))
            .await?
            .and_then(|o| {
                o.value
                    .customer_approvers
                    .into_iter()
                    .find(|a| a.id == link.approver_id)
            });
        let still = approver.is_some();
        if let Some((header, body)) = signature {
            let secret = approver.as_ref().map(|a| a.secret.clone());
            let verdict = match &secret {
                Some(s) => rolegate_crypto::webhook::verify(
                    s.expose().as_bytes(),
                    header,
                    body,
                    self.now(),
                ),
                None => Err(rolegate_crypto::webhook::SignatureError::Mismatch),
            };
            if let Err(e) = verdict {
                let code = match e {
                    rolegate_crypto::webhook::SignatureError::Stale => Code::StaleTimestamp,
                    _ => Code::InvalidSignature,
                };
                return Err(Error::SignatureRejected {
                    code,
                    message: e.to_string(),
                });
            }
        }
        let now = self.now();
        let stamp = self.records.now();
        let approve = link.decision == "approve";
        let action = Action::CustomerDecideAccess;
        let updated = self
            .records
            .update(&caller, &key, |rec| {
                let refuse = |code: Code, message: String| {
                    let audit = AuditRecord::new(action.name())
                        .org(rec.org.to_string())
                        .target(rec.id.clone())
                        .failure(code.as_str())
                        .details(serde_json::json!({
                            "approver_id": link.approver_id,
                            "decision": link.decision,
                            "reason": message,
                        }));
                    Ok(Change::Refuse {
                        audit,
                        error: link_error(code, message),
                    })
                };
                if let Some((code, message)) = refusal(rec, &link, now) {
                    return refuse(code, message);
                }
                if !still {
                    return refuse(
                        Code::Forbidden,
                        "this approver is no longer one of the org's customer approvers".into(),
                    );
                }
                let from = rec.state_at(now);
                let mut next = rec.clone();
                next.updated_at = stamp.clone();
                if let Some(c) = next.customer.as_mut() {
                    c.decision = Some(if approve { "approved" } else { "denied" }.to_owned());
                    c.decided_by = Some(link.approver_id.clone());
                    c.decided_at = Some(stamp.clone());
                }
                let mut txn = Txn::new();
                let quorum =
                    u32::try_from(rec.approvals.len()).unwrap_or(u32::MAX) >= rec.min_approvals;
                if !approve {
                    next.state = AccessState::Denied;
                    next.decided_by = Some(format!("customer:{}", link.approver_id));
                    txn = txn.delete(keyspace::access_open(&rec.id));
                } else if quorum {
                    self.grant(&mut next, now);
                    txn = self.records.put(
                        txn,
                        &keyspace::access_grant(
                            &rec.org,
                            &rec.access_level,
                            &rec.requested_by,
                            &rec.id,
                        ),
                        &(),
                    )?;
                }
                let audit = AuditRecord::new(action.name())
                    .org(rec.org.to_string())
                    .target(rec.id.clone())
                    .details(serde_json::json!({
                        "approver_id": link.approver_id,
                        "decision": link.decision,
                        "access_level": rec.access_level,
                        "requested_by": rec.requested_by,
                        "from": from.as_str(),
                        "to": next.state.as_str(),
                        "approvals": rec.approvals.len(),
                        "min_approvals": rec.min_approvals,
                        "grant_ends_at": next.grant_ends_at,
                    }));
                Ok(Change::write_with(next, txn, audit))
            })
            .await?;
        Ok(view(&link, &updated.value, now))
    }

    /// Makes `next` an approved grant from its requested start (or now).
    pub(super) fn grant(&self, next: &mut AccessRequestRecord, now: i64) {
        let asked = next.starts_at.as_deref().and_then(|s| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
        });
        let start = asked.map_or(now, |t| t.unix_timestamp().max(now));
        let end = start + i64::from(next.duration_secs);
        next.state = AccessState::Approved;
        next.grant_start_unix = Some(start);
        next.grant_end_unix = Some(end);
        next.grant_starts_at = Some(rfc3339(start));
        next.grant_ends_at = Some(rfc3339(end));
    }
}
