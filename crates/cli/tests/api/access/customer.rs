//! Done-when 6 (issue 12 §6): the customer's access history (its own org only, with IP,
//! grant, SourceIdentity and reason; an NDJSON export that resumes from a cursor without
//! gaps or repeats; the CLI), and `customer_approval`: approvers only the org's key names,
//! a signed delivery to a stand-in webhook (retried with backoff on the test clock), the
//! single-use link (GET shows, POST decides, reuse refused, expiry refused, a deny denies),
//! a signed callback, and no way for the provider's staff to see a link.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::{creds, decide, people, request};
use crate::both_engines;
use crate::credentials::issue;
use crate::onboarding::{onboarding_app, validated_org};
use crate::support::{Engine, Resp, TestApp};

/// `operator` needs one approval from `group:sre`, and on `cust-org` the customer's too.
const CUSTOMER_TOML: &str = r#"
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
approvers = ["group:sre", "admins"]
reason_required = true
break_glass = true
max_duration_secs = 14400
request_ttl_secs = 600
[credentials.access_levels.operator.approval.orgs.cust-org]
customer_approval = true
"#;

/// What the stand-in customer webhook received: (signature verified, body).
type Seen = Arc<Mutex<Vec<(bool, Value)>>>;

/// A stand-in customer approval system on a free port: records each POST, checks its
/// `X-Rolegate-Signature` with the secret it is given once known, and answers 500 to the
/// first delivery (so the retry is exercised), 200 after.
async fn customer_webhook() -> (String, Arc<Mutex<Option<String>>>, Seen) {
    let secret: Arc<Mutex<Option<String>>> = Arc::default();
    let seen: Seen = Arc::default();
    let (s, r) = (secret.clone(), seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let (s, r) = (s.clone(), r.clone());
            async move {
                let sig = headers
                    .get(rolegate_crypto::webhook::SIGNATURE_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let key = s.lock().unwrap().clone().unwrap_or_default();
                let ts: i64 = sig
                    .split(',')
                    .find_map(|p| p.strip_prefix("t="))
                    .and_then(|t| t.parse().ok())
                    .unwrap_or_default();
                // Checked at the signed time: the server runs on a test clock.
                let ok = rolegate_crypto::webhook::verify(key.as_bytes(), &sig, &body, ts).is_ok();
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let mut seen = r.lock().unwrap();
                seen.push((ok, v));
                if seen.len() == 1 {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), secret, seen)
}

/// Waits (polling, at most 15 s) until the stand-in has received `n` deliveries.
async fn received(seen: &Seen, n: usize) -> Vec<(bool, Value)> {
    for _ in 0..150 {
        if seen.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = seen.lock().unwrap().clone();
    assert!(got.len() >= n, "only {} deliveries", got.len());
    got
}

async fn link(app: &TestApp, method: &str, url: &str) -> Resp {
    let req = match method {
        "GET" => app.client.get(url),
        _ => app.client.post(url),
    };
    app.send(req).await
}

async fn set_approvers(app: &TestApp, who: &str, urls: &[&str]) -> Resp {
    app.send(
        app.client
            .put(app.url("/api/orgs/cust-org/customer-approvers"))
            .bearer_auth(who)
            .json(&json!({ "webhooks": urls })),
    )
    .await
}

/// The links of the delivery for request `id`, once it has landed.
async fn links_for(seen: &Seen, id: &str) -> (String, String) {
    for _ in 0..150 {
        let got = seen.lock().unwrap().clone();
        let found = got
            .iter()
            .rev()
            .find(|(_, v)| v["request"]["id"] == id)
            .map(|(ok, v)| {
                assert!(ok, "the delivery is signed with the approver's secret");
                (
                    v["approve_url"].as_str().unwrap().to_owned(),
                    v["deny_url"].as_str().unwrap().to_owned(),
                )
            });
        if let Some(f) = found {
            return f;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no delivery for {id}");
}

/// The org's key sees its own history (IP, grant, SourceIdentity, reason), another org's
/// is refused, no secret appears, and the export resumes without gaps or repeats.
async fn the_org_key_sees_its_own_history_and_exports_it(engine: Engine) {
    let app = onboarding_app(engine, false, true, CUSTOMER_TOML).await;
    let p = people(&app).await;
    let key = validated_org(&app, &p.alice, "hist-org").await;
    let other = app.register(&p.alice, "hist-other").await;
    assert_eq!(other.status, 201);
    let other_key = other.body["api_key"].as_str().unwrap().to_owned();
    // Dave gets a grant, credentials under it; the key gets readonly credentials.
    let req = request(&app, &p.dave, "hist-org", 3600).await;
    let id = req["id"].as_str().unwrap();
    assert_eq!(decide(&app, &p.bob, id, "approve").await.status, 200);
    // The sweeper writes the grant's activation; wait for it so the log holds still.
    for _ in 0..100 {
        if app
            .audit_events()
            .await
            .iter()
            .any(|e| e.action == "access.grant.activate")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let c = app
        .send(
            app.client
                .post(app.url("/api/credentials"))
                .bearer_auth(&p.dave)
                .header("x-forwarded-for", "203.0.113.9")
                .json(&json!({"org_name": "hist-org", "access_level": "operator", "reason": "INC-123 disk"})),
        )
        .await;
    assert_eq!(c.status, 200, "{:?}", c.body);
    let secret = c.body["secret_access_key"].as_str().unwrap().to_owned();
    let ro = issue(&app, &key, json!({"org_name": "hist-org"})).await;
    assert_eq!(ro.status, 200, "{:?}", ro.body);

    let h = app.get("/api/orgs/hist-org/access-history", &key).await;
    assert_eq!(h.status, 200, "{:?}", h.body);
    let text = String::from_utf8_lossy(&h.raw).to_string();
    for s in [
        secret.as_str(),
        key.as_str(),
        ro.body["secret_access_key"].as_str().unwrap(),
    ] {
        assert!(!text.contains(s), "a secret in the history");
    }
    let rows = h.body["entries"].as_array().unwrap();
    let mine = rows
        .iter()
        .find(|r| r["action"] == "credentials.issue" && r["grant_id"] == id)
        .expect("Dave's issuance under the grant");
    assert_eq!(mine["actor"], "user:dave");
    assert_eq!(mine["access_level"], "operator");
    assert_eq!(mine["reason"], "INC-123 disk");
    assert!(
        mine["source_identity"].as_str().unwrap().contains("dave"),
        "{mine}"
    );
    assert!(mine["source_ip"].as_str().is_some(), "{mine}");
    let asked = rows
        .iter()
        .find(|r| r["action"] == "access.request")
        .unwrap();
    assert_eq!(asked["reason"], "INC-123");
    assert_eq!(asked["grant_id"], id);
    assert!(
        rows.iter()
            .any(|r| r["action"] == "access.approve" && r["actor"] == "user:bob")
    );
    // Filters: one action.
    let only = app
        .get(
            "/api/orgs/hist-org/access-history?action=access.approve",
            &key,
        )
        .await;
    assert_eq!(only.body["entries"].as_array().unwrap().len(), 1);
    // Another org's key: 403 on this org; this key on the other org: 403.
    let r = app
        .get("/api/orgs/hist-org/access-history", &other_key)
        .await;
    assert_eq!((r.status, r.code()), (403, "forbidden"), "{:?}", r.body);
    let r = app.get("/api/orgs/hist-other/access-history", &key).await;
    assert_eq!((r.status, r.code()), (403, "forbidden"), "{:?}", r.body);
    assert!(
        app.get("/api/orgs/hist-other/access-history", &other_key)
            .await
            .body["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["action"] != "credentials.issue"),
        "no other org's rows"
    );
    let r = app
        .get("/api/orgs/hist-org/access-history?action=org.read", &key)
        .await;
    assert_eq!((r.status, r.code()), (400, "invalid_field"));

    // Export two lines at a time, resuming from the cursor: the same rows as the page.
    let all: Vec<u64> = rows.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    let mut got = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/api/orgs/hist-org/access-history/export?limit=2&after={a}"),
            None => "/api/orgs/hist-org/access-history/export?limit=2".to_owned(),
        };
        let r = app.get(&path, &key).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
        for line in String::from_utf8_lossy(&r.raw).lines() {
            got.push(
                serde_json::from_str::<Value>(line).unwrap()["seq"]
                    .as_u64()
                    .unwrap(),
            );
        }
        after = r.header("rolegate-cursor").map(str::to_owned);
        if r.header("rolegate-more") != Some("true") {
            break;
        }
    }
    assert_eq!(got, all, "no gaps, no repeats");
    // Later events come after the cursor, and only they.
    let more = issue(
        &app,
        &key,
        json!({"org_name": "hist-org", "force_refresh": true}),
    )
    .await;
    assert_eq!(more.status, 200);
    let r = app
        .get(
            &format!(
                "/api/orgs/hist-org/access-history/export?after={}",
                after.clone().unwrap()
            ),
            &key,
        )
        .await;
    let lines: Vec<Value> = String::from_utf8_lossy(&r.raw)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["action"], "credentials.issue");
    assert!(lines[0]["seq"].as_u64().unwrap() > *all.last().unwrap());

    // The CLI writes the same lines to stdout and the cursor to stderr.
    let out = cli_key(&app, &key, &["access-history", "--org", "hist-org"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = String::from_utf8_lossy(&out.stdout).lines().count();
    assert_eq!(n, all.len() + 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--after"));
}

/// Runs the `rolegate` client with the org's API key.
async fn cli_key(app: &TestApp, key: &str, args: &[&str]) -> std::process::Output {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(crate::process::BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") || k.starts_with("ROLEGATE_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("HOME", home.path())
        .env("ROLEGATE_SERVER", &app.base)
        .env("ROLEGATE_API_KEY", key)
        .args(args);
    cmd.output().await.unwrap()
}

/// The customer approves through the signed link: the grant activates; a reused link is
/// refused; the provider's staff never see the link and cannot name approvers.
async fn customer_approval_through_the_signed_link(engine: Engine) {
    let app = onboarding_app(engine, false, true, CUSTOMER_TOML).await;
    let p = people(&app).await;
    let key = validated_org(&app, &p.alice, "cust-org").await;
    // No customer approvers yet: the level cannot be requested (fail closed).
    let r = app
        .post(
            "/api/access-requests",
            &p.dave,
            json!({"org_name": "cust-org", "access_level": "operator", "duration_secs": 3600, "reason": "INC-9"}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (412, "no_customer_approvers"),
        "{:?}",
        r.body
    );
    let (hook, hook_secret, seen) = customer_webhook().await;
    // The provider's admin and the org's owner cannot name approvers; the org's key can.
    for who in [&app.admin_token, &p.alice] {
        let r = set_approvers(&app, who, &[&hook]).await;
        assert_eq!((r.status, r.code()), (403, "forbidden"), "{:?}", r.body);
    }
    let r = set_approvers(&app, &key, &["http://198.51.100.1/x"]).await;
    assert_eq!((r.status, r.code()), (400, "invalid_field"));
    let r = set_approvers(&app, &key, &[&hook]).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let approver = r.body["approvers"][0]["id"].as_str().unwrap().to_owned();
    *hook_secret.lock().unwrap() = Some(
        r.body["approvers"][0]["signing_secret"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    let listed = app
        .get("/api/orgs/cust-org/customer-approvers", &app.admin_token)
        .await;
    assert_eq!(listed.body["approvers"][0]["url"], hook.as_str());
    assert!(listed.body["approvers"][0].get("signing_secret").is_none());

    let req = request(&app, &p.dave, "cust-org", 3600).await;
    let id = req["id"].as_str().unwrap().to_owned();
    assert_eq!(req["customer"]["approvers"][0], approver.as_str());
    // The first delivery fails (500); the retry waits for its backoff on the test clock.
    let first = received(&seen, 1).await;
    assert!(first[0].0, "signed with the approver's secret");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(seen.lock().unwrap().len(), 1, "no retry before the backoff");
    app.clock.advance_ms(11_000);
    let (approve, deny) = links_for(&seen, &id).await;
    assert!(approve.starts_with(&app.base), "{approve}");
    assert_eq!(received(&seen, 2).await.len(), 2);
    let token = approve.split("token=").nth(1).unwrap().to_owned();

    // The provider's quorum alone does not grant.
    let r = decide(&app, &p.bob, &id, "approve").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["state"], "pending");
    let c = creds(&app, &p.dave, "cust-org", false).await;
    assert_eq!(c.status, 403, "{:?}", c.body);
    // The provider's staff never see the link: not in the request, the audit log, the
    // history, nor any event in the store.
    for path in [
        format!("/api/access-requests/{id}"),
        "/api/audit?org=cust-org".to_owned(),
        "/api/orgs/cust-org/access-history".to_owned(),
        "/api/access-requests".to_owned(),
    ] {
        let r = app.get(&path, &app.admin_token).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(!String::from_utf8_lossy(&r.raw).contains(&token), "{path}");
    }
    let events = serde_json::to_string(
        &app.audit_events()
            .await
            .iter()
            .map(|e| &e.details)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(!events.contains(&token));

    // GET shows and decides nothing (link scanners prefetch).
    let shown = link(&app, "GET", &approve).await;
    assert_eq!(shown.status, 200, "{:?}", shown.body);
    assert_eq!(shown.body["decision"], "approve");
    assert_eq!(shown.body["request"]["id"], id.as_str());
    assert_eq!(shown.body["request"]["reason"], "INC-123");
    assert_eq!(link(&app, "GET", &approve).await.status, 200);
    // POST decides: the grant is active and credentials flow under it.
    let done = link(&app, "POST", &approve).await;
    assert_eq!(done.status, 200, "{:?}", done.body);
    assert_eq!(done.body["request"]["state"], "active");
    assert_eq!(done.body["request"]["customer_decision"], "approved");
    let c = creds(&app, &p.dave, "cust-org", false).await;
    assert_eq!(c.status, 200, "{:?}", c.body);
    assert_eq!(c.body["grant_id"], id.as_str());
    // Reuse, and the sibling link, are refused.
    for u in [&approve, &deny] {
        for m in ["POST", "GET"] {
            let r = link(&app, m, u).await;
            assert_eq!(
                (r.status, r.code()),
                (409, "approval_link_used"),
                "{m} {:?}",
                r.body
            );
        }
    }
    let r = link(
        &app,
        "POST",
        &format!(
            "{}/api/customer-approvals?token=rga_{}",
            app.base,
            "A".repeat(43)
        ),
    )
    .await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    // The customer sees who decided, from its own history.
    let h = app
        .get(
            "/api/orgs/cust-org/access-history?action=access.customer_decision",
            &key,
        )
        .await;
    let row = &h.body["entries"][0];
    assert_eq!(row["actor"], format!("customer:{approver}"));
    assert_eq!(row["grant_id"], id.as_str());
    assert_eq!(row["detail"], "approve");
}

/// A customer deny denies; an expired link is refused (test clock); a signed callback must
/// verify; an admin may only clear the approvers, and then requests are refused.
async fn customer_deny_expiry_callback_and_clear(engine: Engine) {
    let app = onboarding_app(engine, false, true, CUSTOMER_TOML).await;
    let p = people(&app).await;
    let key = validated_org(&app, &p.alice, "cust-org").await;
    let (hook, hook_secret, seen) = customer_webhook().await;
    let r = set_approvers(&app, &key, &[&hook]).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let signing = r.body["approvers"][0]["signing_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    *hook_secret.lock().unwrap() = Some(signing.clone());
    let nudge = |app: &TestApp| app.clock.advance_ms(11_000);

    // Deny.
    let id = request(&app, &p.dave, "cust-org", 3600).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    received(&seen, 1).await;
    nudge(&app);
    let (_, deny) = links_for(&seen, &id).await;
    let r = link(&app, "POST", &deny).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["request"]["state"], "denied");
    let r = decide(&app, &p.bob, &id, "approve").await;
    assert_eq!((r.status, r.code()), (409, "invalid_transition"));

    // A signed callback: a bad signature is refused, a good one decides.
    let id = request(&app, &p.dave, "cust-org", 3600).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (approve, _) = links_for(&seen, &id).await;
    let bad = app
        .send(
            app.client
                .post(&approve)
                .header("x-rolegate-signature", "t=1,v1=00"),
        )
        .await;
    assert_eq!(bad.status, 401, "{:?}", bad.body);
    let now = app.clock_now_ms().await / 1000;
    let sig = rolegate_crypto::webhook::sign(signing.as_bytes(), now, b"");
    let good = app
        .send(
            app.client
                .post(&approve)
                .header("x-rolegate-signature", sig),
        )
        .await;
    assert_eq!(good.status, 200, "{:?}", good.body);
    assert_eq!(
        good.body["request"]["state"], "pending",
        "the provider has not approved yet"
    );
    let r = decide(&app, &p.bob, &id, "approve").await;
    assert_eq!(r.body["state"], "active", "{:?}", r.body);

    // Expiry: past the request's TTL (600 s) the link is refused.
    let id = request(&app, &p.dave, "cust-org", 3600).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (approve, _) = links_for(&seen, &id).await;
    app.clock.advance_ms(601_000);
    for m in ["GET", "POST"] {
        let r = link(&app, m, &approve).await;
        assert_eq!(
            (r.status, r.code()),
            (410, "approval_link_expired"),
            "{m} {:?}",
            r.body
        );
    }

    // An admin may clear (audited); then the level refuses requests until the key names
    // approvers again.
    let r = app
        .delete("/api/orgs/cust-org/customer-approvers", &app.admin_token)
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert!(
        app.audit_events()
            .await
            .iter()
            .any(|e| e.action == "org.customer_approvers.clear" && e.actor.starts_with("user:"))
    );
    let r = app
        .post(
            "/api/access-requests",
            &p.dave,
            json!({"org_name": "cust-org", "access_level": "operator", "duration_secs": 3600, "reason": "INC-9"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (412, "no_customer_approvers"));
    // Break-glass cannot skip the customer.
    let r = app
        .post(
            "/api/access-requests",
            &p.dave,
            json!({"org_name": "cust-org", "access_level": "operator", "duration_secs": 3600, "reason": "INC-9", "break_glass": true}),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "break_glass_not_allowed"));
}

both_engines!(
    the_org_key_sees_its_own_history_and_exports_it,
    customer_approval_through_the_signed_link,
    customer_deny_expiry_callback_and_clear,
);
