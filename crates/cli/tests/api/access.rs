//! Just-in-time access (issue 12) against the running server: a level that needs approval
//! is usable only through an active grant, the grant bounds every credential (moto), and
//! self-approval, approvers outside the rule, concurrent approvals, quorum, break-glass,
//! revocation and expiry by the injected clock behave as documented.

use std::time::Duration;

use serde_json::{Value, json};

/// The customer's access history and `customer_approval` (issue 12 §6).
mod customer;
/// Customer approvers reached by email, against a real SMTP server.
mod email;
/// IP allowlists and `bind_source_ip`.
mod network;
/// Break-glass review.
mod review;
/// `revoke_sessions` and jobs that stop with their grant.
mod revoke;
/// `revoke_sessions` for a disabled operator and a rotated API key.
mod revoke_principals;

use crate::both_engines;
use crate::credentials::issue;
use crate::onboarding::{onboarding_app, validated_org};
use crate::support::{AppOptions, Engine, TestApp, spawn_with};

/// `operator` needs one approval from `group:sre` (two on `quorum-org`); `readonly` none.
const ACCESS_TOML: &str = r#"
[access]
sweep_interval_ms = 100
[access.groups]
sre = ["bob", "carol"]
[credentials.access_levels.readonly]
policy_arns = ["arn:aws:iam::aws:policy/ReadOnlyAccess"]
[credentials.access_levels.operator]
max_duration_secs = 3600
[credentials.access_levels.operator.approval]
requires_approval = true
approvers = ["group:sre"]
reason_required = true
break_glass = true
max_duration_secs = 14400
request_ttl_secs = 600
[credentials.access_levels.operator.approval.orgs.quorum-org]
min_approvals = 2
"#;

struct People {
    alice: String,
    bob: String,
    carol: String,
    dave: String,
}

async fn people(app: &TestApp) -> People {
    People {
        alice: app.create_user("alice", "operator").await,
        bob: app.create_user("bob", "operator").await,
        carol: app.create_user("carol", "operator").await,
        dave: app.create_user("dave", "operator").await,
    }
}

async fn request(app: &TestApp, token: &str, org: &str, secs: i64) -> Value {
    let r = app
        .post(
            "/api/access-requests",
            token,
            json!({"org_name": org, "access_level": "operator", "duration_secs": secs, "reason": "INC-123"}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert!(
        r.header("location")
            .is_some_and(|l| l.ends_with(r.body["id"].as_str().unwrap()))
    );
    r.body
}

async fn decide(app: &TestApp, token: &str, id: &str, what: &str) -> crate::support::Resp {
    app.post(
        &format!("/api/access-requests/{id}/{what}"),
        token,
        json!({"comment": "looked at it"}),
    )
    .await
}

async fn creds(app: &TestApp, token: &str, org: &str, force: bool) -> crate::support::Resp {
    issue(
        app,
        token,
        json!({"org_name": org, "access_level": "operator", "force_refresh": force}),
    )
    .await
}

/// Runs the `rolegate` client as the operator with `token`.
async fn cli(app: &TestApp, token: &str, args: &[&str]) -> std::process::Output {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(crate::process::BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") || k.starts_with("ROLEGATE_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("HOME", home.path())
        .env("ROLEGATE_SERVER", &app.base)
        .env("ROLEGATE_TOKEN", token)
        .args(args);
    cmd.output().await.unwrap()
}

fn unix(rfc: &str) -> i64 {
    time::OffsetDateTime::parse(rfc, &time::format_description::well_known::Rfc3339)
        .unwrap()
        .unix_timestamp()
}

/// Done-when 1 and 4 (first half): approve, get credentials bounded by the grant, the
/// 900 s edge, expiry by the test clock, and revoke-now across replicas with the cache
/// purged.
async fn grants_bound_credentials_and_revoke_stops_them(engine: Engine) {
    let app = onboarding_app(engine, false, true, ACCESS_TOML).await;
    let p = people(&app).await;
    validated_org(&app, &p.alice, "jit-org").await;
    // Even the org's owner needs a grant for `operator` now; `readonly` is as before.
    let r = creds(&app, &p.alice, "jit-org", false).await;
    assert_eq!(
        (r.status, r.code()),
        (403, "grant_required"),
        "{:?}",
        r.body
    );
    let ro = issue(&app, &p.alice, json!({"org_name": "jit-org"})).await;
    assert_eq!(ro.status, 200, "{:?}", ro.body);
    // Revoke now: an operator who does not own the org gets in through a grant, its
    // credentials are cached, a replica shares the store.
    let req = request(&app, &p.dave, "jit-org", 3600).await;
    let id2 = req["id"].as_str().unwrap();
    assert_eq!(decide(&app, &p.carol, id2, "approve").await.status, 200);
    let c = creds(&app, &p.dave, "jit-org", false).await;
    assert_eq!(c.status, 200, "{:?}", c.body);
    let again = creds(&app, &p.dave, "jit-org", false).await;
    assert_eq!(again.body["cached"], true);
    let replica = spawn_with(
        engine,
        AppOptions {
            store: Some(app.store.clone()),
            master_key: Some(app.master_key.clone()),
            toml: crate::onboarding::onboarding_toml(false, ACCESS_TOML),
            ..Default::default()
        },
    )
    .await;
    // The holder may not revoke its own grant (TEAM#398); an approver may.
    let r = decide(&app, &p.dave, id2, "revoke").await;
    assert_eq!((r.status, r.code()), (403, "self_approval"), "{:?}", r.body);
    let r = decide(&app, &p.bob, id2, "revoke").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["state"], "revoked");
    assert_eq!(r.body["decided_by"], "bob");
    // Dave does not own the org: without the grant he is any other operator.
    for a in [&app, &replica] {
        let r = creds(a, &p.dave, "jit-org", false).await;
        assert_eq!((r.status, r.code()), (403, "forbidden"), "{:?}", r.body);
    }
    let vault = app.vault().await;
    let cached = vault
        .store()
        .list("cred/jit-org/", None, 100)
        .await
        .unwrap()
        .items;
    assert!(
        cached.is_empty(),
        "the org's cached credentials are dropped"
    );
    let r = decide(&app, &p.bob, id2, "revoke").await;
    assert_eq!((r.status, r.code()), (409, "invalid_transition"));
    // A second grant bounds what is issued under it.
    let req = request(&app, &p.dave, "jit-org", 5400).await;
    assert_eq!(req["state"], "pending");
    let id = req["id"].as_str().unwrap();
    let ok = decide(&app, &p.bob, id, "approve").await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    assert_eq!(ok.body["state"], "active");
    assert_eq!(ok.body["approvals"][0]["by"], "bob");
    let grant_end = unix(ok.body["grant_ends_at"].as_str().unwrap());

    let c = creds(&app, &p.dave, "jit-org", false).await;
    assert_eq!(c.status, 200, "{:?}", c.body);
    assert_eq!(c.body["grant_id"], id);
    assert_eq!(
        unix(c.body["grant_expires_at"].as_str().unwrap()),
        grant_end
    );
    assert!(unix(c.body["expiration"].as_str().unwrap()) <= grant_end);
    // `rolegate creds` uses the grant by itself and says how long it has left (stderr).
    let out = cli(
        &app,
        &p.dave,
        &[
            "creds",
            "--org",
            "jit-org",
            "--access-level",
            "operator",
            "--format",
            "env",
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains(&format!("issued under grant {id}")), "{said}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("AWS_SESSION_TOKEN"));
    // 4,000 s later 1,400 s are left: the session lasts exactly that (the level allows
    // 3,600), so it cannot outlive the grant.
    app.clock.advance_ms(4_000_000);
    let c = creds(&app, &p.dave, "jit-org", true).await;
    assert_eq!(c.status, 200, "{:?}", c.body);
    let issued: Vec<_> = app
        .audit_events()
        .await
        .into_iter()
        .filter(|e| e.action == "credentials.issue" && e.details["grant_id"] == id)
        .collect();
    assert_eq!(issued.last().unwrap().details["duration_seconds"], 1400);
    // Past the 900 s edge: grant_ending, no STS call; past the end nothing admits Dave (he does not own the org).
    app.clock.advance_ms(600_000);
    let r = creds(&app, &p.dave, "jit-org", false).await;
    assert_eq!((r.status, r.code()), (403, "grant_ending"), "{:?}", r.body);
    app.clock.advance_ms(800_000);
    let r = creds(&app, &p.dave, "jit-org", false).await;
    assert_eq!((r.status, r.code()), (403, "forbidden"), "{:?}", r.body);
    let shown = app
        .get(&format!("/api/access-requests/{id}"), &p.dave)
        .await;
    assert_eq!(shown.body["state"], "expired");
}

/// Done-when 2 and 3: self-approval, approvers outside the rule, concurrent approvals
/// (one transition), a quorum (both count), break-glass, listing, expiry of a pending
/// request by the sweeper.
async fn approvals_refusals_quorum_and_break_glass(engine: Engine) {
    let app = spawn_with(
        engine,
        AppOptions {
            toml: ACCESS_TOML.to_owned(),
            manual_clock: true,
            ..Default::default()
        },
    )
    .await;
    let p = people(&app).await;
    for org in ["jit-org", "quorum-org"] {
        assert_eq!(app.register(&p.alice, org).await.status, 201);
    }
    let req = request(&app, &p.alice, "jit-org", 3600).await;
    let id = req["id"].as_str().unwrap();
    let r = decide(&app, &p.alice, id, "approve").await;
    assert_eq!((r.status, r.code()), (403, "self_approval"), "{:?}", r.body);
    for outsider in [&p.dave, &app.admin_token] {
        let r = decide(&app, outsider, id, "approve").await;
        assert_eq!(
            (r.status, r.code()),
            (403, "not_an_approver"),
            "{:?}",
            r.body
        );
    }
    let r = decide(&app, &p.bob, id, "cancel").await;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    // Two approvers at once: exactly one transition.
    let (a, b) = tokio::join!(
        decide(&app, &p.bob, id, "approve"),
        decide(&app, &p.carol, id, "approve")
    );
    let mut statuses = [a.status, b.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{:?} {:?}", a.body, b.body);
    let shown = app
        .get(&format!("/api/access-requests/{id}"), &p.alice)
        .await;
    assert_eq!(shown.body["state"], "active");
    assert_eq!(shown.body["approvals"].as_array().unwrap().len(), 1);
    // Under a quorum of two, both count.
    let q = request(&app, &p.alice, "quorum-org", 3600).await;
    let qid = q["id"].as_str().unwrap();
    assert_eq!(q["min_approvals"], 2);
    let (a, b) = tokio::join!(
        decide(&app, &p.bob, qid, "approve"),
        decide(&app, &p.carol, qid, "approve")
    );
    assert_eq!(
        (a.status, b.status),
        (200, 200),
        "{:?} {:?}",
        a.body,
        b.body
    );
    let shown = app
        .get(&format!("/api/access-requests/{qid}"), &p.alice)
        .await;
    assert_eq!(shown.body["state"], "active", "{:?}", shown.body);
    assert_eq!(shown.body["approvals"].as_array().unwrap().len(), 2);
    // Every transition is audited, the refusals too.
    let events = app.audit_events().await;
    let approvals = |target: &str| {
        events
            .iter()
            .filter(|e| e.action == "access.approve" && e.target.as_deref() == Some(target))
            .map(|e| e.outcome)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        approvals(id)
            .iter()
            .filter(|o| **o == rolegate_core::model::Outcome::Success)
            .count(),
        1
    );
    assert!(approvals(id).len() >= 4, "self, dave, admin refused too");
    assert_eq!(approvals(qid).len(), 2);

    // Bad input names the field.
    for (body, field) in [
        (
            json!({"org_name": "jit-org", "access_level": "operator", "duration_secs": 3600}),
            "reason",
        ),
        (
            json!({"org_name": "jit-org", "access_level": "operator", "duration_secs": 99_999, "reason": "x"}),
            "duration_secs",
        ),
        (
            json!({"org_name": "jit-org", "access_level": "readonly", "duration_secs": 3600, "reason": "x"}),
            "access_level",
        ),
        (
            json!({"org_name": "jit-org", "access_level": "operator", "duration_secs": 3600, "reason": "x", "starts_at": "tomorrow"}),
            "starts_at",
        ),
    ] {
        let r = app.post("/api/access-requests", &p.alice, body).await;
        assert_eq!(
            (r.status, r.body["error"]["field"].as_str()),
            (400, Some(field)),
            "{:?}",
            r.body
        );
    }
    // Break-glass: at once, reason required, flagged and loudly audited.
    let r = app
        .post(
            "/api/access-requests",
            &p.dave,
            json!({"org_name": "jit-org", "access_level": "operator", "duration_secs": 1800, "break_glass": true}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["error"]["field"].as_str()),
        (400, Some("reason"))
    );
    let r = app
        .post(
            "/api/access-requests",
            &p.dave,
            json!({"org_name": "jit-org", "access_level": "operator", "duration_secs": 1800, "break_glass": true, "reason": "prod down"}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["state"], "active");
    assert_eq!(r.body["review_required"], true);
    assert!(
        app.audit_events()
            .await
            .iter()
            .any(|e| e.action == "access.break_glass" && e.actor == "user:dave")
    );
    // Listing: mine, grants, what others may see.
    let mine = app.get("/api/access-requests?mine=true", &p.dave).await;
    assert_eq!(mine.body["requests"].as_array().unwrap().len(), 1);
    let active = app
        .get("/api/access-grants?active=true", &app.admin_token)
        .await;
    assert_eq!(
        active.body["requests"].as_array().unwrap().len(),
        3,
        "{:?}",
        active.body
    );
    let bobs = app.get("/api/access-requests?org=quorum-org", &p.bob).await;
    assert_eq!(bobs.body["requests"].as_array().unwrap().len(), 1);
    let r = app.get("/api/access-requests?state=bogus", &p.bob).await;
    assert_eq!(r.status, 400);
    // API keys hold no grants.
    let key = app.register(&p.alice, "keyed-org").await.body["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .post(
            "/api/access-requests",
            &key,
            json!({"org_name": "keyed-org", "access_level": "operator", "duration_secs": 900}),
        )
        .await;
    assert_eq!(r.status, 403);

    // The CLI: request, approve, list.
    let out = cli(
        &app,
        &p.alice,
        &[
            "request",
            "--org",
            "jit-org",
            "--level",
            "operator",
            "--duration",
            "30m",
            "--reason",
            "INC-9",
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let filed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (filed["state"].as_str(), filed["duration_secs"].as_u64()),
        (Some("pending"), Some(1800))
    );
    let cid = filed["id"].as_str().unwrap();
    let out = cli(&app, &p.alice, &["approve", cid]).await;
    assert!(!out.status.success(), "self-approval fails");
    assert!(String::from_utf8_lossy(&out.stderr).contains("self_approval"));
    let out = cli(&app, &p.bob, &["approve", cid, "--comment", "ok"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mine = cli(&app, &p.alice, &["requests", "--mine", "--state", "active"]).await;
    let listed: Value = serde_json::from_slice(&mine.stdout).unwrap();
    assert!(
        listed["requests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == cid),
        "{listed}"
    );
    // Jobs obey grants too: the owner without one cannot start a job at `operator`.
    let r = app
        .send(
            app.client
                .post(app.url("/api/orgs/keyed-org/jobs"))
                .bearer_auth(&p.alice)
                .header("idempotency-key", uuid::Uuid::new_v4().to_string())
                .json(&json!({"kind": "keypair.delete", "spec": {"name": "k"}, "access_level": "operator"})),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (403, "grant_required"),
        "{:?}",
        r.body
    );

    // A pending request expires after request_ttl (600 s) by the injected clock: at once
    // in every answer, and the sweeper writes the transition.
    let stale = request(&app, &p.alice, "jit-org", 3600).await;
    let sid = stale["id"].as_str().unwrap();
    app.clock.advance_ms(601_000);
    let r = decide(&app, &p.bob, sid, "approve").await;
    assert_eq!((r.status, r.code()), (409, "invalid_transition"));
    let mut swept = false;
    for _ in 0..100 {
        swept = app
            .audit_events()
            .await
            .iter()
            .any(|e| e.action == "access.request.expire" && e.target.as_deref() == Some(sid));
        if swept {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(swept, "the sweeper wrote the expiry");
}

both_engines!(
    grants_bound_credentials_and_revoke_stops_them,
    approvals_refusals_quorum_and_break_glass,
);
