//! Reviewing break-glass use: an admin other than the grant's holder marks a break-glass
//! grant reviewed with a comment, through the update loop, audited (`access.review`).

use super::decide::parse_comment;
use super::{Access, operator_id, plausible_id, refusal};
use crate::audit::AuditRecord;
use crate::error::{Code, Error};
use crate::keyspace;
use crate::model::{AccessRequestRecord, Review};
use crate::policy::{Action, Facts};
use crate::principal::Caller;
use crate::records::Change;

impl Access {
    /// Marks break-glass grant `id` reviewed by `caller` (an admin, not its holder) with
    /// `comment` (required).
    #[tracing::instrument(skip_all, fields(id))]
    pub async fn review(
        &self,
        caller: &Caller,
        id: &str,
        comment: Option<&str>,
    ) -> Result<AccessRequestRecord, Error> {
        let action = Action::ReviewAccess;
        self.records
            .authorize(caller, action, &Facts::default())
            .await?;
        let comment = parse_comment(comment)?
            .ok_or_else(|| Error::invalid("comment", "a review needs a comment"))?;
        let not_found = Error::NotFound {
            what: keyspace::ACCESS_REQUEST.name,
        };
        if !plausible_id(id) {
            return Err(not_found);
        }
        let key = keyspace::access_request(id);
        if self
            .records
            .get::<AccessRequestRecord>(&key)
            .await?
            .is_none()
        {
            return Err(not_found);
        }
        let me = operator_id(caller)?.to_string();
        let now = self.now();
        let stamp = self.records.now();
        let updated = self
            .records
            .update(caller, &key, |rec| {
                let refuse = |code: Code, message: String| {
                    refusal(action, rec, code, message, serde_json::json!({}))
                };
                if rec.requested_by == me {
                    return refuse(
                        Code::SelfApproval,
                        "nobody reviews their own break-glass use".into(),
                    );
                }
                if !rec.break_glass || !rec.review_required || rec.review.is_some() {
                    return refuse(
                        Code::ReviewNotNeeded,
                        format!(
                            "request {} {}",
                            rec.id,
                            if rec.break_glass {
                                "has been reviewed already"
                            } else {
                                "was not taken through break-glass"
                            }
                        ),
                    );
                }
                let mut next = rec.clone();
                next.review_required = false;
                next.review = Some(Review {
                    by: me.clone(),
                    at: stamp.clone(),
                    comment: comment.clone(),
                });
                next.updated_at = stamp.clone();
                let audit = AuditRecord::new(action.name())
                    .org(rec.org.to_string())
                    .target(rec.id.clone())
                    .details(serde_json::json!({
                        "access_level": rec.access_level,
                        "requested_by": rec.requested_by,
                        "reason": rec.reason,
                        "comment": comment,
                        "state": rec.state_at(now).as_str(),
                    }));
                Ok(Change::write(next, audit))
            })
            .await?;
        Ok(updated.value.view_at(now))
    }
}
