//! Slack: Block Kit messages (header, a fields section with the login-alert fields, a
//! context line, and for a new request Approve/Deny buttons carrying the request id, or a
//! link when it is too long to approve from chat), posted to an incoming webhook.

use async_trait::async_trait;
use rolegate_core::ports::notify::{Decide, DeliveryError, Notification, Notifier, Severity};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};

/// The `block_id` of the Approve/Deny buttons; interactions name it.
pub const ACTIONS_BLOCK: &str = "rolegate_decide";
/// The buttons' `action_id`s.
pub const APPROVE: &str = "approve";
pub const DENY: &str = "deny";

/// A Slack incoming webhook. Its URL is a credential.
pub struct SlackWebhook {
    http: crate::webhook::HttpWebhooks,
    url: SecretString,
    timeout: std::time::Duration,
}

impl std::fmt::Debug for SlackWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SlackWebhook { url: [redacted] }")
    }
}

impl SlackWebhook {
    #[must_use]
    pub fn new(
        http: crate::webhook::HttpWebhooks,
        url: SecretString,
        timeout: std::time::Duration,
    ) -> Self {
        Self { http, url, timeout }
    }
}

#[async_trait]
impl Notifier for SlackWebhook {
    fn name(&self) -> &'static str {
        "slack"
    }

    async fn deliver(&self, n: &Notification) -> Result<(), DeliveryError> {
        self.http
            .post_json(self.url.expose_secret(), &message(n), self.timeout)
            .await
            .map_err(DeliveryError)
    }
}

/// Escapes text for `mrkdwn` (Slack reads `&`, `<` and `>` as markup).
#[must_use]
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// At most `max` characters (Block Kit limits).
fn clip(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

fn field(name: &str, value: Option<&str>) -> Value {
    json!({"type": "mrkdwn", "text": clip(&format!("*{name}*\n{}", escape(value.unwrap_or("—"))), 2000)})
}

/// The Block Kit message for `n`.
#[must_use]
pub fn message(n: &Notification) -> Value {
    let mark = match n.severity {
        Severity::Critical => ":rotating_light: ",
        Severity::Warning => ":warning: ",
        Severity::Info => "",
    };
    let org = match (&n.org, &n.environment) {
        (Some(o), Some(e)) => Some(format!("{o} / {e}")),
        (Some(o), None) => Some(o.clone()),
        (None, e) => e.clone(),
    };
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": clip(&format!("{mark}{}", n.title), 150)}}),
        json!({"type": "section", "fields": [
            field("Status", Some(&n.status)),
            field("User", Some(&n.user)),
            field("Org / environment", org.as_deref()),
            field("Source IP", n.source_ip.as_deref()),
            field("Action taken", Some(&n.action_taken)),
            field("Time", Some(&n.time)),
        ]}),
    ];
    let mut context = format!("rolegate · {} · {}", n.event, n.id);
    if !n.recipients.is_empty() {
        context.push_str(&format!(" · for {}", n.recipients.join(", ")));
    }
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": clip(&escape(&context), 2000)}]}));
    match &n.decide {
        Some(Decide::Buttons { request_id }) => blocks.push(json!({
            "type": "actions",
            "block_id": ACTIONS_BLOCK,
            "elements": [
                {"type": "button", "action_id": APPROVE, "style": "primary", "value": request_id,
                 "text": {"type": "plain_text", "text": "Approve"}},
                {"type": "button", "action_id": DENY, "style": "danger", "value": request_id,
                 "text": {"type": "plain_text", "text": "Deny"}},
            ],
        })),
        Some(Decide::Link { request_id }) => {
            let how = match &n.link {
                Some(l) => format!("<{l}|Decide in rolegate>"),
                None => format!("`rolegate approve {request_id}`"),
            };
            blocks.push(
                json!({"type": "section", "text": {"type": "mrkdwn", "text": format!(
                    "Too long to approve from Slack: {how}"
                )}}),
            );
        }
        None => {
            if let Some(l) = &n.link {
                blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!("<{l}|Open in rolegate>")}]}));
            }
        }
    }
    json!({"text": clip(&n.title, 3000), "blocks": blocks})
}

/// The answer to a press through its `response_url`: once decided it replaces the original
/// message (its buttons go); a refusal is shown only to the person who pressed, and the
/// buttons stay for the other approvers.
#[must_use]
pub fn reply(text: &str, decided: bool) -> Value {
    json!({
        "replace_original": decided,
        "response_type": "ephemeral",
        "text": clip(text, 3000),
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": clip(&escape(text), 3000)}}],
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn n(decide: Option<Decide>) -> Notification {
        Notification {
            id: "00000000000000000007-0".into(),
            event: "access.requested".into(),
            severity: Severity::Info,
            title: "alice asks for operator on acme for 1 h".into(),
            status: "pending".into(),
            user: "user:alice".into(),
            org: Some("acme".into()),
            environment: Some("operator".into()),
            source_ip: Some("192.0.2.1".into()),
            action_taken: "waiting for approval".into(),
            time: "2026-01-01T00:00:00Z".into(),
            recipients: vec!["bob".into()],
            link: Some("https://rg.example/api/access-requests/a1".into()),
            decide,
            audit_seq: 7,
        }
    }

    #[test]
    fn a_new_request_has_buttons_and_a_long_one_a_link() {
        let m = message(&n(Some(Decide::Buttons {
            request_id: "a1".into(),
        })));
        let blocks = m["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[1]["fields"].as_array().unwrap().len(), 6);
        let actions = blocks.iter().find(|b| b["type"] == "actions").unwrap();
        assert_eq!(actions["elements"][0]["value"], "a1");
        assert_eq!(actions["elements"][1]["action_id"], DENY);
        let m = message(&n(Some(Decide::Link {
            request_id: "a1".into(),
        })));
        let text = m.to_string();
        assert!(!text.contains("\"actions\""), "{text}");
        assert!(text.contains("Decide in rolegate"), "{text}");
        assert_eq!(escape("<a&b>"), "&lt;a&amp;b&gt;");
    }
}
