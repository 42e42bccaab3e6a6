//! Approve and deny from chat. The chat platform's signature is checked at the edge; here
//! the action is refused when replayed, mapped to an operator through an explicit link an
//! admin made, refused for a request longer than the rule's
//! `chat_approval_max_duration_secs`, and then decided by `Access::decide` as that
//! operator, so self-approval, approver checks and quorum apply unchanged.

use std::time::Duration;

use serde::Serialize;

use super::Notifications;
use crate::access::Decision;
use crate::audit::AuditRecord;
use crate::error::{Code, Error};
use crate::ids::UserId;
use crate::keyspace;
use crate::model::{AccessRequestRecord, ChatLink};
use crate::policy::{Action, Facts};
use crate::ports::Txn;
use crate::principal::{Caller, Principal, RequestContext};

/// How long a handled action is remembered (well past the 300 s signature window).
pub const REPLAY_TTL: Duration = Duration::from_secs(15 * 60);

/// A button press, as the edge parsed it from a verified payload.
#[derive(Debug, Clone)]
pub struct ChatAction {
    /// The Slack user id (`U…`).
    pub chat_user: String,
    /// `Approve` or `Deny`.
    pub decision: Decision,
    pub request_id: String,
    /// Slack's `action_ts`: unique per press.
    pub action_ts: String,
}

/// What became of a press.
#[derive(Debug, Clone)]
pub struct ChatOutcome {
    /// The operator it was decided as.
    pub operator: UserId,
    /// The request as it is now.
    pub request: AccessRequestRecord,
}

/// A chat link, as admins see it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ChatLinkView {
    pub user_id: String,
    /// `slack`.
    pub platform: String,
    pub chat_user_id: String,
    pub linked_by: String,
    pub linked_at: String,
}

/// Slack user ids: `U` or `W` and 2 to 20 upper-case letters and digits.
#[must_use]
pub fn plausible_slack_user(id: &str) -> bool {
    (3..=21).contains(&id.len())
        && (id.starts_with('U') || id.starts_with('W'))
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

impl Notifications {
    /// Links Slack user `slack_user_id` to operator `user` (admins; audited). A later link
    /// of the same Slack user replaces it.
    pub async fn link_slack(
        &self,
        caller: &Caller,
        user: &UserId,
        slack_user_id: &str,
    ) -> Result<ChatLinkView, Error> {
        self.records
            .authorize(caller, Action::LinkChatUser, &Facts::default())
            .await?;
        if !plausible_slack_user(slack_user_id) {
            return Err(Error::invalid(
                "slack_user_id",
                "slack_user_id must be a Slack user id: U or W and 2 to 20 of A-Z, 0-9",
            ));
        }
        if self.records.get(&keyspace::user(user)).await?.is_none() {
            return Err(Error::NotFound {
                what: keyspace::USER.name,
            });
        }
        let link = ChatLink {
            user_id: user.clone(),
            linked_by: caller.ctx.actor.clone(),
            linked_at: self.records.now(),
        };
        let key = keyspace::chat_link_slack(slack_user_id);
        let txn = self.records.put(Txn::new(), &key, &link)?;
        let audit = AuditRecord::new(Action::LinkChatUser.name())
            .target(user.to_string())
            .details(serde_json::json!({"platform": "slack", "chat_user_id": slack_user_id}));
        if !self.records.commit(caller, txn, audit).await? {
            return Err(Error::Contention);
        }
        Ok(ChatLinkView {
            user_id: user.to_string(),
            platform: "slack".to_owned(),
            chat_user_id: slack_user_id.to_owned(),
            linked_by: link.linked_by,
            linked_at: link.linked_at,
        })
    }

    /// Removes the link of Slack user `slack_user_id` to operator `user` (admins; audited):
    /// that Slack user's presses are refused from then on.
    pub async fn unlink_slack(
        &self,
        caller: &Caller,
        user: &UserId,
        slack_user_id: &str,
    ) -> Result<(), Error> {
        self.records
            .authorize(caller, Action::LinkChatUser, &Facts::default())
            .await?;
        let not_found = Error::NotFound {
            what: keyspace::CHAT_LINK.name,
        };
        if !plausible_slack_user(slack_user_id) {
            return Err(not_found);
        }
        let key = keyspace::chat_link_slack(slack_user_id);
        let Some(cur) = self.records.get(&key).await? else {
            return Err(not_found);
        };
        if cur.value.user_id != *user {
            return Err(not_found);
        }
        let txn = Txn::new()
            .equals(key.as_str(), cur.rev)
            .delete(key.as_str());
        let audit = AuditRecord::new(Action::LinkChatUser.name())
            .target(user.to_string())
            .details(serde_json::json!({"platform": "slack", "chat_user_id": slack_user_id, "removed": true}));
        if !self.records.commit(caller, txn, audit).await? {
            return Err(not_found);
        }
        Ok(())
    }

    /// Handles a verified Slack button press (see the module docs).
    #[tracing::instrument(skip_all, fields(request = %action.request_id))]
    pub async fn slack_action(
        &self,
        ctx: RequestContext,
        action: &ChatAction,
    ) -> Result<ChatOutcome, Error> {
        // Replays first: the same press (user and action_ts) is handled once.
        let digest = self
            .records
            .pepper()
            .digest(
                "chat-replay",
                &format!("slack\n{}\n{}", action.chat_user, action.action_ts),
            )
            .to_hex();
        let marker = keyspace::chat_replay(&digest);
        let fresh = self
            .records
            .vault()
            .commit(
                Txn::new()
                    .absent(marker.clone())
                    .put_ttl(marker, Vec::new(), REPLAY_TTL),
            )
            .await?;
        if !fresh {
            return Err(Error::Conflict {
                code: Code::InteractionReplayed,
                message: "this Slack action was already handled; nothing changed".to_owned(),
            });
        }
        let refused = |code: Code, message: String| Error::Forbidden { code, message };
        let Some(link) = self
            .records
            .get(&keyspace::chat_link_slack(&action.chat_user))
            .await?
        else {
            let audit = AuditRecord::new("chat.slack.action")
                .target(action.request_id.clone())
                .failure(Code::ChatUserNotLinked.as_str())
                .details(serde_json::json!({"chat_user_id": action.chat_user}));
            self.records.record_unauthenticated(&ctx, audit).await?;
            return Err(refused(
                Code::ChatUserNotLinked,
                "this Slack user is not linked to a rolegate operator (`rolegate user link-slack`)"
                    .to_owned(),
            ));
        };
        let user_id = link.value.user_id;
        let Some(user) = self.records.get(&keyspace::user(&user_id)).await? else {
            return Err(refused(
                Code::ChatUserNotLinked,
                "the linked operator no longer exists".to_owned(),
            ));
        };
        if user.value.disabled {
            return Err(refused(
                Code::UserDisabled,
                format!("operator {user_id} is disabled"),
            ));
        }
        let caller = Caller::new(
            Principal::Operator {
                user_id: user_id.clone(),
                role: user.value.role,
            },
            ctx,
        );
        if let Some(rec) = self
            .records
            .get(&keyspace::access_request(&action.request_id))
            .await?
        {
            let max = self
                .levels
                .level(Some(&rec.value.access_level))
                .ok()
                .and_then(|l| l.approval_for(&rec.value.org).cloned())
                .and_then(|r| r.chat_approval_max_duration_secs);
            if let Some(max) = max
                && rec.value.duration_secs > max
            {
                let message = format!(
                    "requests longer than {max} s are decided through the API or the portal, not from chat"
                );
                let audit = AuditRecord::new(action.decision.action().name())
                    .org(rec.value.org.to_string())
                    .target(action.request_id.clone())
                    .failure(Code::ChatApprovalNotAllowed.as_str())
                    .details(serde_json::json!({"via": "slack", "reason": message}));
                self.records.record(&caller, audit).await?;
                return Err(refused(Code::ChatApprovalNotAllowed, message));
            }
        }
        let request = self
            .access
            .decide(
                &caller,
                &action.request_id,
                action.decision,
                Some("decided from Slack"),
            )
            .await?;
        Ok(ChatOutcome {
            operator: user_id,
            request,
        })
    }
}
