//! `POST /api/credentials` against moto: attribution, the sealed cache, single-flight,
//! eviction, scoping and input checks. Orgs are validated through a signed callback from
//! the customer account 111122223333 (moto plays it), so every credential is a real moto
//! AssumeRole session in that account.

use serde_json::{Value, json};

use crate::metrics::{sample, scrape};
use crate::onboarding::{CUSTOMER, notice, onboarding_app, signed, validated_org};
use crate::support::{AppOptions, Engine, Resp, TestApp, aws_cli, spawn_with};

/// The caller's and the org's budgets, stepped together (ADR 0022).
mod budgets;
/// Console sign-in against a stand-in federation endpoint.
mod console;
/// STS failures mapped to their codes, through a stand-in STS and a refused endpoint.
pub(crate) mod errors;
/// The security review's credential defects: revocation races, replay, budgets, echo.
mod revocation;
/// `POST /api/validate`.
mod validate;

pub(crate) async fn creds_app(engine: Engine, extra: &str) -> TestApp {
    onboarding_app(engine, false, false, extra).await
}

pub(crate) async fn issue(app: &TestApp, key: &str, body: Value) -> Resp {
    app.post("/api/credentials", key, body).await
}

/// What moto says the credentials are.
fn caller_arn(r: &Resp) -> String {
    let b = &r.body;
    let out = aws_cli(
        &["sts", "get-caller-identity", "--output", "json"],
        Some((
            b["access_key_id"].as_str().unwrap(),
            b["secret_access_key"].as_str().unwrap(),
            b["session_token"].as_str().unwrap(),
        )),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["Arn"].as_str().unwrap().to_owned()
}

async fn sts_calls(app: &TestApp) -> f64 {
    sample(
        &scrape(app).await,
        "rolegate_sts_calls_total",
        &[("outcome", "ok")],
    )
}

async fn cache_keys(app: &TestApp, org: &str) -> usize {
    let vault = app.vault().await;
    vault
        .store()
        .list(&format!("cred/{org}/"), None, 100)
        .await
        .unwrap()
        .items
        .len()
}

async fn issues_attributable_cached_credentials(engine: Engine) {
    let app = creds_app(engine, "").await;
    let key = validated_org(&app, &app.admin_token, "cred-org").await;
    let r = issue(
        &app,
        &key,
        json!({"org_name": "cred-org", "reason": "deploy #42"}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let b = &r.body;
    for f in [
        "access_key_id",
        "secret_access_key",
        "session_token",
        "assumed_role_arn",
    ] {
        assert!(b[f].as_str().is_some_and(|s| !s.is_empty()), "{f}: {b}");
    }
    assert_eq!(b["cached"], false);
    assert_eq!(b["access_level"], "readonly");
    assert_eq!(b["region"], "us-east-1");
    let expiration = b["expiration"].as_str().unwrap();
    assert!(expiration.ends_with('Z'), "{expiration}");
    let session = b["session_name"].as_str().unwrap();
    let key_id = app.get("/api/orgs/cred-org", &key).await.body["api_key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(b["source_identity"], format!("apikey.{key_id}"));
    assert!(
        session.starts_with(&format!("cred-org.apikey.{key_id}.")),
        "{session}"
    );
    assert!(session.len() <= 64);
    let arn = format!("arn:aws:sts::{CUSTOMER}:assumed-role/rolegate-cred-org/{session}");
    assert_eq!(b["assumed_role_arn"], arn);
    assert_eq!(
        caller_arn(&r),
        arn,
        "moto knows them as a session of the bound role"
    );

    // The same caller gets the same credentials from the cache...
    let again = issue(&app, &key, json!({"org_name": "cred-org"})).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["cached"], true);
    assert_eq!(again.body["access_key_id"], b["access_key_id"]);
    // ...another principal never does: attribution would break.
    let admin = issue(&app, &app.admin_token, json!({"org_name": "cred-org"})).await;
    assert_eq!(admin.status, 200, "{:?}", admin.body);
    assert_eq!(admin.body["cached"], false);
    assert_ne!(admin.body["access_key_id"], b["access_key_id"]);
    assert_eq!(admin.body["source_identity"], "admin");
    // Another access level or duration is another cache entry (the owner may use every
    // level; the org's API key only the default one).
    let op = issue(
        &app,
        &app.admin_token,
        json!({"org_name": "cred-org", "access_level": "operator", "duration_seconds": 900}),
    )
    .await;
    assert_eq!(
        (op.status, op.body["cached"].as_bool()),
        (200, Some(false)),
        "{:?}",
        op.body
    );
    assert_eq!(op.body["access_level"], "operator");
    // force_refresh bypasses the cache.
    let forced = issue(
        &app,
        &key,
        json!({"org_name": "cred-org", "force_refresh": true}),
    )
    .await;
    assert_eq!(forced.body["cached"], false);
    assert_ne!(forced.body["access_key_id"], b["access_key_id"]);
    let after = issue(&app, &key, json!({"org_name": "cred-org"})).await;
    assert_eq!(
        after.body["access_key_id"], forced.body["access_key_id"],
        "the refresh replaced the entry"
    );

    // A replica on the same store (or this one after a restart) serves the sealed entry.
    let replica = spawn_with(
        engine,
        AppOptions {
            store: Some(app.store.clone()),
            master_key: Some(app.master_key.clone()),
            toml: crate::onboarding::onboarding_toml(false, ""),
            ..Default::default()
        },
    )
    .await;
    let shared = issue(&replica, &key, json!({"org_name": "cred-org"})).await;
    assert_eq!(shared.status, 200, "{:?}", shared.body);
    assert_eq!(shared.body["cached"], true);
    assert_eq!(shared.body["access_key_id"], forced.body["access_key_id"]);

    // Every issuance is audited, fresh or cached, and no secret reaches the log.
    let events: Vec<_> = app
        .audit_events()
        .await
        .into_iter()
        .filter(|e| e.action == "credentials.issue")
        .collect();
    assert!(events.len() >= 7, "{}", events.len());
    let first = &events[0];
    assert_eq!(first.org.as_deref(), Some("cred-org"));
    assert_eq!(first.actor, format!("apikey:{key_id}"));
    assert_eq!(first.details["session_name"], session);
    assert_eq!(first.details["source_identity"], b["source_identity"]);
    assert_eq!(first.details["expiration"], expiration);
    assert_eq!(first.details["cached"], false);
    assert_eq!(first.details["access_level"], "readonly");
    assert_eq!(first.details["reason"], "deploy #42");
    assert!(events.iter().any(|e| e.details["cached"] == true));
    let text = serde_json::to_string(&events).unwrap();
    for secret in [
        &b["secret_access_key"],
        &b["session_token"],
        &forced.body["secret_access_key"],
    ] {
        assert!(
            !text.contains(secret.as_str().unwrap()),
            "a secret is in the audit log"
        );
    }
    // And the store holds them sealed only.
    let raw = crate::sealing::raw_store_bytes(&app).await;
    for secret in [
        &b["secret_access_key"],
        &b["session_token"],
        &admin.body["session_token"],
    ] {
        let s = secret.as_str().unwrap().as_bytes();
        assert!(
            !raw.windows(s.len()).any(|w| w == s),
            "a cached credential is in plaintext"
        );
    }
}

async fn sixty_four_cold_requests_make_one_sts_call(engine: Engine) {
    let app = creds_app(
        engine,
        "[rate_limits]\ncredentials_per_principal = { burst = 1000, period_secs = 60 }\n",
    )
    .await;
    let key = validated_org(&app, &app.admin_token, "flight-org").await;
    let before = sts_calls(&app).await;
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let client = app.client.clone();
        let url = app.url("/api/credentials");
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(key)
                .json(&json!({"org_name": "flight-org"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    let mut fresh = 0;
    for t in tasks {
        let b = t.await.unwrap();
        ids.insert(b["access_key_id"].as_str().unwrap().to_owned());
        fresh += usize::from(b["cached"] == false);
    }
    assert_eq!(
        sts_calls(&app).await - before,
        1.0,
        "exactly one AssumeRole"
    );
    assert_eq!(ids.len(), 1, "everyone got the one credential");
    assert_eq!(fresh, 1, "one was minted, 63 came from the cache");
    let text = scrape(&app).await;
    assert_eq!(
        sample(
            &text,
            "rolegate_credential_cache_total",
            &[("result", "hit")]
        ),
        63.0
    );
    assert_eq!(
        sample(
            &text,
            "rolegate_credential_cache_total",
            &[("result", "miss")]
        ),
        1.0
    );
}

async fn changes_to_the_org_evict_its_credentials(engine: Engine) {
    let app = creds_app(engine, "").await;
    let key = validated_org(&app, &app.admin_token, "evict-org").await;
    assert_eq!(
        issue(&app, &key, json!({"org_name": "evict-org"}))
            .await
            .status,
        200
    );
    assert_eq!(cache_keys(&app, "evict-org").await, 1);
    // Rotating the API key drops the cache at once.
    let rotated = app
        .post("/api/orgs/evict-org/api-key", &app.admin_token, json!({}))
        .await;
    assert_eq!(rotated.status, 200);
    assert_eq!(cache_keys(&app, "evict-org").await, 0);
    let key = rotated.body["api_key"].as_str().unwrap().to_owned();
    assert_eq!(
        issue(&app, &key, json!({"org_name": "evict-org"}))
            .await
            .body["cached"],
        false
    );
    // So does a binding reset, after which the org is not validated any more.
    let reset = app
        .post(
            "/api/orgs/evict-org/binding/reset",
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(reset.status, 200, "{:?}", reset.body);
    assert_eq!(cache_keys(&app, "evict-org").await, 0);
    let r = issue(&app, &key, json!({"org_name": "evict-org"})).await;
    assert_eq!((r.status, r.code()), (412, "org_not_validated"));
    // And offboarding.
    let key = validated_org(&app, &app.admin_token, "gone-org").await;
    assert_eq!(
        issue(&app, &app.admin_token, json!({"org_name": "gone-org"}))
            .await
            .status,
        200
    );
    assert_eq!(cache_keys(&app, "gone-org").await, 1);
    assert_eq!(
        app.delete("/api/orgs/gone-org", &app.admin_token)
            .await
            .status,
        200
    );
    assert_eq!(cache_keys(&app, "gone-org").await, 0);
    let r = issue(&app, &app.admin_token, json!({"org_name": "gone-org"})).await;
    assert_eq!(
        (r.status, r.code()),
        (412, "org_not_validated"),
        "offboarded orgs get nothing"
    );
    assert_eq!(r.body["error"]["details"]["status"], "offboarded");
    assert_eq!(
        issue(&app, &key, json!({"org_name": "gone-org"}))
            .await
            .status,
        401
    );
}

async fn only_the_org_and_its_owners_get_credentials(engine: Engine) {
    let app = creds_app(engine, "").await;
    let alice = app.create_user("alice", "operator").await;
    let bob = app.create_user("bob", "operator").await;
    let key_a = validated_org(&app, &alice, "org-a").await;
    let key_b = validated_org(&app, &bob, "org-b").await;
    let r = issue(&app, &key_a, json!({"org_name": "org-b"})).await;
    assert_eq!(
        (r.status, r.code()),
        (403, "forbidden"),
        "org A's key, org B's credentials"
    );
    let r = issue(&app, &alice, json!({"org_name": "org-b"})).await;
    assert_eq!((r.status, r.code()), (403, "forbidden"), "not alice's org");
    let r = issue(&app, &alice, json!({"org_name": "org-a"})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["source_identity"], "alice");
    assert!(
        r.body["session_name"]
            .as_str()
            .unwrap()
            .starts_with("org-a.alice.")
    );
    assert_eq!(
        issue(&app, &key_b, json!({"org_name": "org-b"}))
            .await
            .status,
        200
    );
    let r = app
        .send(
            app.client
                .post(app.url("/api/credentials"))
                .json(&json!({"org_name": "org-a"})),
        )
        .await;
    assert_eq!((r.status, r.code()), (401, "unauthorized"));
    // The 403s were not issuances, and leave no credentials behind.
    assert_eq!(cache_keys(&app, "org-b").await, 1);
}

async fn bad_requests_get_their_codes(engine: Engine) {
    let app = creds_app(
        engine,
        "[rate_limits]\ncredentials_per_principal = { burst = 5, period_secs = 60 }\n",
    )
    .await;
    let key = validated_org(&app, &app.admin_token, "bad-org").await;
    for (body, field) in [
        (json!({}), "org_name"),
        (json!({"org_name": "Not An Org"}), "org_name"),
        (
            json!({"org_name": "bad-org", "access_level": "root"}),
            "access_level",
        ),
        (
            json!({"org_name": "bad-org", "duration_seconds": 899}),
            "duration_seconds",
        ),
        (
            json!({"org_name": "bad-org", "duration_seconds": 3601}),
            "duration_seconds",
        ),
        (
            json!({"org_name": "bad-org", "reason": "r".repeat(257)}),
            "reason",
        ),
        (
            json!({"org_name": "bad-org", "reason": "two\nlines"}),
            "reason",
        ),
    ] {
        let r = issue(&app, &key, body.clone()).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "invalid_field"),
            "{body}: {:?}",
            r.body
        );
        assert_eq!(r.body["error"]["field"], field, "{body}");
    }
    let r = issue(
        &app,
        &key,
        json!({"org_name": "bad-org", "account_id": "444455556666"}),
    )
    .await;
    assert_eq!(
        r.status, 400,
        "no field can choose the account: {:?}",
        r.body
    );
    let r = issue(
        &app,
        &key,
        json!({"org_name": "bad-org", "duration_seconds": "long"}),
    )
    .await;
    assert_eq!(r.status, 400);
    // A pending org: 412 with its status and where to onboard, and no secret.
    let pending = app.register(&app.admin_token, "new-org").await;
    let r = issue(&app, &app.admin_token, json!({"org_name": "new-org"})).await;
    assert_eq!((r.status, r.code()), (412, "org_not_validated"));
    assert_eq!(r.body["error"]["details"]["status"], "pending");
    assert_eq!(
        r.body["error"]["details"]["onboarding"],
        "/api/orgs/new-org/onboarding"
    );
    let text = String::from_utf8_lossy(&r.raw);
    assert!(!text.contains(pending.body["external_id"].as_str().unwrap()));
    assert!(!text.contains(pending.body["api_key"].as_str().unwrap()));
    // The failure is audited with its code.
    let failed = app
        .audit_events()
        .await
        .into_iter()
        .find(|e| e.action == "credentials.issue" && e.org.as_deref() == Some("new-org"))
        .unwrap();
    assert_eq!(failed.code.as_deref(), Some("org_not_validated"));
    // The per-principal limit: 429 with the headers. Requests that reached the service
    // (the access level and the two durations above) spent 3 of the 5.
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..3 {
        let r = issue(&app, &key, json!({"org_name": "bad-org"})).await;
        statuses.push(r.status);
        last = Some(r);
    }
    assert_eq!(statuses, [200, 200, 429]);
    let r = last.unwrap();
    assert_eq!(r.code(), "rate_limited");
    for h in [
        "retry-after",
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
    ] {
        assert!(r.header(h).is_some(), "{h}");
    }
    assert_eq!(r.header("ratelimit-limit"), Some("5"));
    // Another principal of the same org still gets through.
    assert_eq!(
        issue(&app, &app.admin_token, json!({"org_name": "bad-org"}))
            .await
            .status,
        200
    );
}

/// The stack reports the role's MaxSessionDuration, and no request may ask for more.
async fn durations_stop_at_the_roles_max_session_duration(engine: Engine) {
    let app = creds_app(
        engine,
        "[credentials.access_levels.readonly]\nmax_duration_secs = 7200\n",
    )
    .await;
    assert_eq!(app.register(&app.admin_token, "msd-org").await.status, 201);
    let secret = app.callback_secret("msd-org").await;
    let mut body: Value = serde_json::from_slice(&notice("msd-org", CUSTOMER, "created")).unwrap();
    body["max_session_duration"] = json!(100);
    let r = signed(&app, &secret, serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(
        (r.status, r.body["error"]["field"].as_str()),
        (400, Some("max_session_duration"))
    );
    body["max_session_duration"] = json!(3600);
    let r = signed(&app, &secret, serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(r.body["status"], "validated", "{:?}", r.body);
    let org = app.get("/api/orgs/msd-org", &app.admin_token).await;
    assert_eq!(org.body["max_session_duration"], 3600);
    let r = issue(
        &app,
        &app.admin_token,
        json!({"org_name": "msd-org", "duration_seconds": 5000}),
    )
    .await;
    assert_eq!(
        (r.status, r.body["error"]["field"].as_str()),
        (400, Some("duration_seconds"))
    );
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("MaxSessionDuration"),
        "{:?}",
        r.body
    );
    let r = issue(
        &app,
        &app.admin_token,
        json!({"org_name": "msd-org", "duration_seconds": 3600}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

crate::both_engines!(
    durations_stop_at_the_roles_max_session_duration,
    issues_attributable_cached_credentials,
    sixty_four_cold_requests_make_one_sts_call,
    changes_to_the_org_evict_its_credentials,
    only_the_org_and_its_owners_get_credentials,
    bad_requests_get_their_codes,
);
