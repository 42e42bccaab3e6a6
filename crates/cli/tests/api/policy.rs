//! The one policy at the edge: access-level grants (who may use which level), audited
//! refusals, and a route's declared action refusing a kind of caller before its handler.

use serde_json::json;

use crate::both_engines;
use crate::credentials::{creds_app, issue};
use crate::metrics::{sample, scrape};
use crate::onboarding::validated_org;
use crate::support::{Engine, TestApp};

async fn sts_calls(app: &TestApp) -> f64 {
    sample(
        &scrape(app).await,
        "rolegate_sts_calls_total",
        &[("outcome", "ok")],
    )
}

/// The last audit event with this action and org.
async fn last_event(
    app: &TestApp,
    action: &str,
    org: &str,
) -> Option<rolegate_core::audit::AuditEvent> {
    app.audit_events()
        .await
        .into_iter()
        .rev()
        .find(|e| e.action == action && e.org.as_deref() == Some(org))
}

async fn an_api_key_gets_only_the_default_level(engine: Engine) {
    let app = creds_app(engine, "").await;
    let alice = app.create_user("alice", "operator").await;
    let key = validated_org(&app, &alice, "lvl-a").await;
    let before = sts_calls(&app).await;
    let r = issue(
        &app,
        &key,
        json!({"org_name": "lvl-a", "access_level": "operator"}),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (403, "access_level_not_allowed"),
        "{:?}",
        r.body
    );
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("operator"), "{message}");
    assert_eq!(
        sts_calls(&app).await,
        before,
        "a refused level makes no STS call"
    );
    let ev = last_event(&app, "credentials.issue", "lvl-a")
        .await
        .expect("the refusal is audited");
    assert_eq!(ev.code.as_deref(), Some("access_level_not_allowed"));
    assert_eq!(ev.outcome, rolegate_core::model::Outcome::Failure);
    assert_eq!(ev.details["access_level"], "operator");
    assert!(ev.actor.starts_with("apikey:"), "{}", ev.actor);

    // The default level still works for the key, and the owner gets every level.
    let r = issue(&app, &key, json!({"org_name": "lvl-a"})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["access_level"], "readonly");
    let r = issue(
        &app,
        &alice,
        json!({"org_name": "lvl-a", "access_level": "operator"}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["access_level"], "operator");
    // So does an admin.
    let root = app.create_user("root", "admin").await;
    let r = issue(
        &app,
        &root,
        json!({"org_name": "lvl-a", "access_level": "operator"}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // The org lists, for each caller, the levels it may use.
    let r = app.get("/api/orgs/lvl-a", &key).await;
    assert_eq!(r.body["access_levels"], json!(["readonly"]), "{:?}", r.body);
    let r = app.get("/api/orgs/lvl-a", &alice).await;
    assert_eq!(r.body["access_levels"], json!(["operator", "readonly"]));
}

async fn a_level_can_be_granted_to_api_keys(engine: Engine) {
    let extra = r#"
[credentials]
default_access_level = "readonly"
[credentials.access_levels.readonly]
policy_arns = ["arn:aws:iam::aws:policy/ReadOnlyAccess"]
[credentials.access_levels.deploy]
policy_arns = ["arn:aws:iam::aws:policy/PowerUserAccess"]
allow = ["api_keys"]
"#;
    let app = creds_app(engine, extra).await;
    let alice = app.create_user("alice", "operator").await;
    let key = validated_org(&app, &alice, "lvl-b").await;
    let r = issue(
        &app,
        &key,
        json!({"org_name": "lvl-b", "access_level": "deploy"}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // `allow` names API keys only: the owner is not among them.
    let r = issue(
        &app,
        &alice,
        json!({"org_name": "lvl-b", "access_level": "deploy"}),
    )
    .await;
    assert_eq!((r.status, r.code()), (403, "access_level_not_allowed"));
}

async fn probing_another_org_leaves_an_audited_refusal(engine: Engine) {
    let app = creds_app(engine, "").await;
    let alice = app.create_user("alice", "operator").await;
    let bob = app.create_user("bob", "operator").await;
    let key_a = validated_org(&app, &alice, "probe-a").await;
    validated_org(&app, &bob, "probe-b").await;
    for (path, body) in [
        ("/api/credentials", json!({"org_name": "probe-b"})),
        ("/api/credentials/console", json!({"org_name": "probe-b"})),
    ] {
        let r = app.post(path, &key_a, body).await;
        assert_eq!((r.status, r.code()), (403, "forbidden"), "{path}");
    }
    let r = app.get("/api/orgs/probe-b", &key_a).await;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    for action in ["credentials.issue", "credentials.console", "org.read"] {
        let ev = last_event(&app, action, "probe-b")
            .await
            .unwrap_or_else(|| panic!("no audited refusal for {action}"));
        assert_eq!(ev.code.as_deref(), Some("forbidden"), "{action}");
        assert!(ev.actor.starts_with("apikey:"), "{action}: {}", ev.actor);
    }
}

async fn a_declared_action_refuses_a_kind_of_caller_before_the_handler(engine: Engine) {
    let app = creds_app(engine, "").await;
    let alice = app.create_user("alice", "operator").await;
    let key = validated_org(&app, &alice, "kind-a").await;
    // API keys never create operators or read the audit log, whatever the body says.
    let r = app
        .post(
            "/api/users",
            &key,
            json!({"user_id": "mallory", "role": "admin"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    let r = app.get("/api/audit", &key).await;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    let events = app.audit_events().await;
    let refused = events
        .iter()
        .rev()
        .find(|e| e.action == "user.create")
        .expect("the refusal is audited");
    assert_eq!(refused.code.as_deref(), Some("forbidden"));
    assert!(refused.actor.starts_with("apikey:"));
    assert!(
        !events.iter().any(|e| e.target.as_deref() == Some("mallory")
            && e.outcome == rolegate_core::model::Outcome::Success)
    );
}

both_engines!(
    an_api_key_gets_only_the_default_level,
    a_level_can_be_granted_to_api_keys,
    probing_another_org_leaves_an_audited_refusal,
    a_declared_action_refuses_a_kind_of_caller_before_the_handler,
);
