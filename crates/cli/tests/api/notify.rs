//! Notifications (issue 12 §5) against the running server, a stand-in Slack and a stand-in
//! webhook receiver: a new request reaches the approvers' channel with buttons; a signed
//! Slack interaction from a linked user approves it; bad, stale, replayed and unlinked
//! interactions change nothing; a too-long request gets a link; the webhook's signature
//! verifies; a failing receiver leads to a dead letter an admin lists and retries; an
//! allowlist miss and a break-glass reach the sink with user, org, source IP, action, time.

use serde_json::{Value, json};

use crate::both_engines;
use crate::support::recorder::{Received, Recorder};
use crate::support::{AppOptions, Engine, Resp, TestApp, spawn_with};

const SIGNING_SECRET: &str = "slack-signing-secret-for-tests";
const WEBHOOK_SECRET: &str = "webhook-secret-for-tests";

struct World {
    app: TestApp,
    slack: Recorder,
    hook: Recorder,
    alice: String,
    _secrets: tempfile::TempDir,
}

async fn world(engine: Engine, extra: &str) -> World {
    let slack = Recorder::start().await;
    let hook = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, format!("{text}\n")).unwrap();
        p.display().to_string()
    };
    let toml = format!(
        r#"
trust_forwarded_for = true
[access]
sweep_interval_ms = 100
[access.groups]
sre = ["bob"]
[credentials.access_levels.readonly]
policy_arns = ["arn:aws:iam::aws:policy/ReadOnlyAccess"]
[credentials.access_levels.operator]
max_duration_secs = 3600
[credentials.access_levels.operator.approval]
requires_approval = true
approvers = ["group:sre"]
break_glass = true
max_duration_secs = 14400
chat_approval_max_duration_secs = 3600
[notify]
slack_webhook_url_file = "{}"
webhook_url_file = "{}"
webhook_secret_file = "{}"
slack_signing_secret_file = "{}"
slack_response_url_prefix = "{}/"
public_url = "https://rolegate.example.com"
poll_interval_ms = 20
{extra}
"#,
        file("slack-url", &slack.url("/services/T0/B0/secret")),
        file("hook-url", &hook.url("/hook")),
        file("hook-secret", WEBHOOK_SECRET),
        file("slack-secret", SIGNING_SECRET),
        slack.base,
    );
    let app = spawn_with(
        engine,
        AppOptions {
            toml,
            manual_clock: true,
            ..Default::default()
        },
    )
    .await;
    let alice = app.create_user("alice", "operator").await;
    app.create_user("bob", "operator").await;
    assert_eq!(app.register(&alice, "acme").await.status, 201);
    World {
        app,
        slack,
        hook,
        alice,
        _secrets: dir,
    }
}

async fn request(w: &World, secs: i64, break_glass: bool) -> String {
    let r = w
        .app
        .post(
            "/api/access-requests",
            &w.alice,
            json!({"org_name": "acme", "access_level": "operator", "duration_secs": secs,
                   "reason": "INC-7", "break_glass": break_glass}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

async fn link(app: &TestApp, user: &str, slack_id: &str) {
    let r = app
        .send(
            app.client
                .put(app.url(&format!("/api/users/{user}/chat-links/slack")))
                .bearer_auth(&app.admin_token)
                .json(&json!({"slack_user_id": slack_id})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

/// A Slack message's text, flattened, and its buttons' values.
fn buttons(r: &Received) -> Vec<String> {
    r.json()["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().unwrap().clone())
        .map(|e| {
            format!(
                "{}:{}",
                e["action_id"].as_str().unwrap(),
                e["value"].as_str().unwrap()
            )
        })
        .collect()
}

/// Posts an interaction signed with `secret` at `ts` (unix seconds).
async fn interact(
    w: &World,
    secret: &str,
    ts: i64,
    user: &str,
    action: &str,
    id: &str,
    action_ts: &str,
) -> Resp {
    let payload = json!({
        "type": "block_actions",
        "user": {"id": user, "username": "someone"},
        "actions": [{"action_id": action, "block_id": "rolegate_decide", "value": id, "action_ts": action_ts}],
        "response_url": w.slack.url("/actions/T0/1/x"),
    })
    .to_string();
    let encoded: String = payload
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let body = format!("payload={encoded}");
    let sig =
        rolegate_crypto::hmac_sha256_hex(secret.as_bytes(), format!("v0:{ts}:{body}").as_bytes());
    w.app
        .send(
            w.app
                .client
                .post(w.app.url("/api/chat/slack/interactions"))
                .header("content-type", "application/x-www-form-urlencoded")
                .header("x-slack-request-timestamp", ts.to_string())
                .header("x-slack-signature", format!("v0={sig}"))
                .body(body),
        )
        .await
}

fn now(app: &TestApp) -> i64 {
    use rolegate_core::clock::Clock as _;
    app.clock.now().unix_timestamp()
}

async fn state_of(w: &World, id: &str) -> Value {
    let r = w
        .app
        .get(&format!("/api/access-requests/{id}"), &w.app.admin_token)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body
}

async fn approve_from_slack(engine: Engine) {
    let w = world(engine, "").await;
    let id = request(&w, 1800, false).await;
    let path = "/services/T0/B0/secret";
    let msg = w
        .slack
        .wait_for(path, |r| {
            r.body.windows(id.len()).any(|x| x == id.as_bytes())
        })
        .await;
    assert_eq!(
        buttons(&msg),
        vec![format!("approve:{id}"), format!("deny:{id}")]
    );
    let text = msg.json().to_string();
    assert!(text.contains("bob"), "the approvers are named: {text}");
    assert!(text.contains("acme / operator"), "{text}");

    // The webhook got the same event, signed over "t.body".
    let hooked = w
        .hook
        .wait_for("/hook", |r| r.json()["event"] == "access.requested")
        .await;
    let sig = hooked.headers["x-rolegate-signature"].to_str().unwrap();
    rolegate_crypto::webhook::verify(WEBHOOK_SECRET.as_bytes(), sig, &hooked.body, now(&w.app))
        .unwrap();
    assert!(rolegate_crypto::webhook::verify(b"other", sig, &hooked.body, now(&w.app)).is_err());

    // Bad and stale signatures: 401, nothing changes.
    let t = now(&w.app);
    let r = interact(&w, "wrong-secret", t, "U0BOB", "approve", &id, "1.1").await;
    assert_eq!(
        (r.status, r.code()),
        (401, "invalid_signature"),
        "{:?}",
        r.body
    );
    let r = interact(&w, SIGNING_SECRET, t - 301, "U0BOB", "approve", &id, "1.2").await;
    assert_eq!(
        (r.status, r.code()),
        (401, "stale_timestamp"),
        "{:?}",
        r.body
    );
    // A Slack user nobody linked is refused.
    let r = interact(&w, SIGNING_SECRET, t, "U0BOB", "approve", &id, "1.3").await;
    assert_eq!(
        (r.status, r.code()),
        (403, "chat_user_not_linked"),
        "{:?}",
        r.body
    );
    assert_eq!(state_of(&w, &id).await["state"], "pending");

    link(&w.app, "bob", "U0BOB").await;
    let r = interact(&w, SIGNING_SECRET, t, "U0BOB", "approve", &id, "1.4").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["state"], "active");
    assert_eq!(r.body["operator"], "bob");
    let rec = state_of(&w, &id).await;
    assert_eq!(rec["state"], "active");
    assert_eq!(rec["approvals"].as_array().unwrap().len(), 1);
    // The refusals were told only to the presser (the buttons stay); the decision replaced
    // the message through response_url.
    let refused = w
        .slack
        .wait_for("/actions/T0/1/x", |r| r.json()["replace_original"] == false)
        .await;
    assert!(
        refused.json()["text"]
            .as_str()
            .unwrap()
            .contains("chat_user_not_linked")
    );
    let upd = w
        .slack
        .wait_for("/actions/T0/1/x", |r| r.json()["replace_original"] == true)
        .await;
    assert!(
        upd.json()["text"]
            .as_str()
            .unwrap()
            .contains("Approved from Slack by bob")
    );
    // The requester hears of it.
    w.hook
        .wait_for("/hook", |r| r.json()["event"] == "access.approved")
        .await;

    // The same press again changes nothing.
    let r = interact(&w, SIGNING_SECRET, t, "U0BOB", "approve", &id, "1.4").await;
    assert_eq!(
        (r.status, r.code()),
        (409, "interaction_replayed"),
        "{:?}",
        r.body
    );
    let again = state_of(&w, &id).await;
    assert_eq!(again["approvals"], rec["approvals"]);
    assert_eq!(again["updated_at"], rec["updated_at"]);

    // An admin removes the link: the next press is refused.
    let r = w
        .app
        .delete("/api/users/bob/chat-links/slack/U0BOB", &w.app.admin_token)
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let r = interact(&w, SIGNING_SECRET, t, "U0BOB", "deny", &id, "1.5").await;
    assert_eq!(
        (r.status, r.code()),
        (403, "chat_user_not_linked"),
        "{:?}",
        r.body
    );
    link(&w.app, "bob", "U0BOB").await;

    // Too long for chat: a link, no buttons, and a press on it is refused.
    let long = request(&w, 7200, false).await;
    let msg = w
        .slack
        .wait_for(path, |r| {
            r.body.windows(long.len()).any(|x| x == long.as_bytes())
        })
        .await;
    assert!(buttons(&msg).is_empty());
    assert!(msg.json().to_string().contains(&format!(
        "https://rolegate.example.com/api/access-requests/{long}"
    )));
    let r = interact(
        &w,
        SIGNING_SECRET,
        now(&w.app),
        "U0BOB",
        "approve",
        &long,
        "2.1",
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (403, "chat_approval_not_allowed"),
        "{:?}",
        r.body
    );
    assert_eq!(state_of(&w, &long).await["state"], "pending");
    // Nothing a secret: the webhook URL's path never shows in what admins can read.
    let dead = w
        .app
        .get("/api/notifications/dead-letters", &w.app.admin_token)
        .await;
    assert_eq!(dead.status, 200);
    assert!(!String::from_utf8_lossy(&dead.raw).contains("secret"));
}

async fn failing_receiver_dead_letters(engine: Engine) {
    let w = world(engine, "max_attempts = 2\nbackoff_base_ms = 60000").await;
    w.hook.fail_next(2);
    request(&w, 1800, false).await;
    w.hook.wait_for("/hook", |r| r.status == 500).await;
    // Not retried before the backoff has passed on the (test) clock.
    assert_eq!(w.hook.at("/hook").len(), 1);
    w.app.clock.advance_ms(60_000);
    w.hook
        .wait_for("/hook", |_| w.hook.at("/hook").len() == 2)
        .await;
    let mut dead = Value::Null;
    for _ in 0..200 {
        let r = w
            .app
            .get("/api/notifications/dead-letters", &w.app.admin_token)
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        if !r.body["items"].as_array().unwrap().is_empty() {
            dead = r.body["items"][0].clone();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(dead["sink"], "webhook", "{dead:?}");
    assert_eq!(dead["attempts"], 2);
    assert_eq!(dead["last_error"], "HTTP 500");
    assert_eq!(dead["event"], "access.requested");
    // Operators may not see or retry them.
    let r = w.app.get("/api/notifications/dead-letters", &w.alice).await;
    assert_eq!(r.status, 403);
    let id = dead["id"].as_str().unwrap();
    let r = w
        .app
        .post(
            &format!("/api/notifications/dead-letters/{id}/retry"),
            &w.app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    w.hook
        .wait_for("/hook", |r| {
            r.status == 200 && r.json()["event"] == "access.requested"
        })
        .await;
    let r = w
        .app
        .get("/api/notifications/dead-letters", &w.app.admin_token)
        .await;
    assert!(r.body["items"].as_array().unwrap().is_empty());
    let r = w
        .app
        .post(
            &format!("/api/notifications/dead-letters/{id}/retry"),
            &w.app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 404);
    assert!(
        w.app
            .audit_events()
            .await
            .iter()
            .any(|e| e.action == "notify.dead_letter.retry")
    );
}

async fn alerts_carry_the_login_alert_fields(engine: Engine) {
    let w = world(engine, "").await;
    // An allowlist miss: the org allows one block; alice asks from another.
    let r = w
        .app
        .send(
            w.app
                .client
                .put(w.app.url("/api/orgs/acme/network"))
                .bearer_auth(&w.app.admin_token)
                .json(&json!({"allowed_cidrs": ["203.0.113.0/24"]})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = w
        .app
        .send(
            w.app
                .client
                .post(w.app.url("/api/credentials"))
                .bearer_auth(&w.alice)
                .header("x-forwarded-for", "198.51.100.9")
                .json(&json!({"org_name": "acme"})),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (403, "source_ip_not_allowed"),
        "{:?}",
        r.body
    );
    let miss = w
        .hook
        .wait_for("/hook", |r| r.json()["event"] == "network.blocked")
        .await
        .json();
    assert_eq!(miss["user"], "user:alice");
    assert_eq!(miss["org"], "acme");
    assert_eq!(miss["source_ip"], "198.51.100.9");
    assert_eq!(miss["status"], "blocked");
    assert!(
        miss["action_taken"]
            .as_str()
            .unwrap()
            .contains("source_ip_not_allowed")
    );
    assert!(miss["time"].as_str().unwrap().ends_with('Z'));
    let slack = w
        .slack
        .wait_for("/services/T0/B0/secret", |r| {
            r.json().to_string().contains("198.51.100.9")
        })
        .await;
    assert!(
        slack.json()["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("Blocked")
    );

    // Break-glass: loud, with the same fields.
    let id = request(&w, 1800, true).await;
    let bg = w
        .hook
        .wait_for("/hook", |r| r.json()["event"] == "access.break_glass")
        .await
        .json();
    assert_eq!(bg["severity"], "critical");
    assert_eq!(bg["user"], "user:alice");
    assert_eq!(bg["org"], "acme");
    assert_eq!(bg["environment"], "operator");
    assert_eq!(bg["source_ip"], "127.0.0.1");
    assert_eq!(bg["status"], "active");
    assert!(bg["link"].as_str().unwrap().ends_with(&id));
    assert!(!bg["time"].as_str().unwrap().is_empty());
}

both_engines!(
    approve_from_slack,
    failing_receiver_dead_letters,
    alerts_carry_the_login_alert_fields
);
