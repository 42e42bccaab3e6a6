//! Onboarding against real parts: moto (server mode) plays the provider (123456789012) and a
//! separate customer account (111122223333), the template's own Lambda code runs under
//! python3, and rolegate verifies the signed callback and assumes the role.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Value, json};

use crate::support::{
    AppOptions, Engine, Resp, TestApp, aws_cli, customer_credentials, moto_toml, moto_url,
    spawn_with, venv_bin,
};

pub(crate) const CUSTOMER: &str = "111122223333";
const BUCKET: &str = "rolegate-templates";

pub(crate) fn onboarding_toml(require_enforcement: bool, extra: &str) -> String {
    static BUCKET_READY: OnceLock<()> = OnceLock::new();
    BUCKET_READY.get_or_init(|| {
        let out = aws_cli(&["s3api", "create-bucket", "--bucket", BUCKET], None);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    // moto's CloudFormation reads a template URL path-style only when the host says
    // `localhost` (else it takes the bucket from the host name), so S3 is addressed by that
    // loopback name here. Real S3 URLs are unaffected.
    let aws = moto_toml().replace("127.0.0.1", "localhost");
    format!(
        "{aws}[onboarding]\nprovider_account_id = \"123456789012\"\nprovider_principal_arn = \"arn:aws:iam::123456789012:user/moto\"\ntemplate_bucket = \"{BUCKET}\"\ns3_path_style = true\nverify_delay_ms = 10\nrequire_external_id_enforcement = {require_enforcement}\n{extra}"
    )
}

pub(crate) async fn onboarding_app(
    engine: Engine,
    require: bool,
    manual_clock: bool,
    extra: &str,
) -> TestApp {
    spawn_with(
        engine,
        AppOptions {
            toml: onboarding_toml(require, extra),
            manual_clock,
            ..Default::default()
        },
    )
    .await
}

pub(crate) fn sign(secret: &str, ts: &str, nonce: &str, body: &[u8]) -> String {
    let mut msg = format!("{ts}|{nonce}|").into_bytes();
    msg.extend_from_slice(body);
    rolegate_crypto::hmac_sha256_hex(secret.as_bytes(), &msg)
}

pub(crate) fn notice(org: &str, account: &str, event: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "event": event, "org_name": org, "account_id": account, "region": "us-east-1", "partition": "aws",
        "role_arn": format!("arn:aws:iam::{account}:role/rolegate-{org}"),
        "stack_id": format!("arn:aws:cloudformation:us-east-1:{account}:stack/rolegate-{org}/5f0c7a10-1111-2222-3333-444455556666"),
    }))
    .unwrap()
}

pub(crate) async fn post_callback(
    app: &TestApp,
    ts: &str,
    nonce: &str,
    sig: &str,
    body: Vec<u8>,
) -> Resp {
    app.send(
        app.client
            .post(app.url("/api/integrations/validate"))
            .header("content-type", "application/json")
            .header("x-sig-timestamp", ts)
            .header("x-sig-nonce", nonce)
            .header("x-sig-signature", sig)
            .body(body),
    )
    .await
}

/// A correctly signed callback at the app's current time.
pub(crate) async fn signed(app: &TestApp, secret: &str, body: Vec<u8>) -> Resp {
    let ts = (app.clock_now_ms().await / 1000).to_string();
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let sig = sign(secret, &ts, &nonce, &body);
    post_callback(app, &ts, &nonce, &sig, body).await
}

/// Registers `name` as `token` and brings it to `validated` through a correctly signed
/// callback from the customer account (the app must run with enforcement checking off, as
/// moto does not enforce the ExternalId). Returns the org's API key.
pub(crate) async fn validated_org(app: &TestApp, token: &str, name: &str) -> String {
    let r = app.register(token, name).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let api_key = r.body["api_key"].as_str().unwrap().to_owned();
    let secret = app.callback_secret(name).await;
    let r = signed(app, &secret, notice(name, CUSTOMER, "created")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "validated", "{:?}", r.body);
    api_key
}

impl TestApp {
    pub(crate) async fn clock_now_ms(&self) -> i64 {
        use rolegate_core::clock::Clock as _;
        self.clock.now_ms()
    }

    pub(crate) async fn callback_secret(&self, org: &str) -> String {
        let rec = self
            .vault()
            .await
            .get::<rolegate_core::orgs::OrgRecord>(&format!("org/{org}"))
            .await
            .unwrap()
            .unwrap();
        rec.value.callback_secret.expose().to_owned()
    }
}

async fn every_bad_callback_gets_its_code(engine: Engine) {
    let app = onboarding_app(engine, true, true, "").await;
    assert_eq!(app.register(&app.admin_token, "cb-org").await.status, 201);
    let secret = app.callback_secret("cb-org").await;
    let body = notice("cb-org", CUSTOMER, "created");
    let now = (app.clock_now_ms().await / 1000).to_string();
    let nonce = "0123456789abcdef0123456789abcdef";
    // Missing headers.
    let r = app
        .send(
            app.client
                .post(app.url("/api/integrations/validate"))
                .header("content-type", "application/json")
                .body(body.clone()),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (401, "invalid_signature"),
        "{:?}",
        r.body
    );
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("X-Sig-Signature")
    );
    let r = post_callback(&app, &now, nonce, "", body.clone()).await;
    assert_eq!((r.status, r.code()), (401, "invalid_signature"));
    // Skewed timestamp, both ways.
    for skew in [-301, 301] {
        let ts = (app.clock_now_ms().await / 1000 + skew).to_string();
        let r = post_callback(
            &app,
            &ts,
            nonce,
            &sign(&secret, &ts, nonce, &body),
            body.clone(),
        )
        .await;
        assert_eq!(
            (r.status, r.code()),
            (401, "stale_timestamp"),
            "skew {skew}"
        );
    }
    // Wrong secret, and an unknown org: the same answer.
    let wrong = post_callback(
        &app,
        &now,
        nonce,
        &sign("rgc_wrong", &now, nonce, &body),
        body.clone(),
    )
    .await;
    let ghost_body = notice("ghost-org", CUSTOMER, "created");
    let ghost = post_callback(
        &app,
        &now,
        nonce,
        &sign(&secret, &now, nonce, &ghost_body),
        ghost_body,
    )
    .await;
    assert_eq!((wrong.status, wrong.code()), (401, "invalid_signature"));
    assert_eq!((ghost.status, ghost.code()), (401, "invalid_signature"));
    assert_eq!(
        wrong.body["error"]["message"],
        ghost.body["error"]["message"]
    );
    // The API key is not the callback secret.
    let api_key = app
        .post("/api/orgs/cb-org/api-key", &app.admin_token, json!({}))
        .await
        .body["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = post_callback(
        &app,
        &now,
        nonce,
        &sign(&api_key, &now, nonce, &body),
        body.clone(),
    )
    .await;
    assert_eq!(r.code(), "invalid_signature");
    // A malformed body, correctly signed: the schema is checked after the signature.
    let bad =
        serde_json::to_vec(&json!({"org_name": "cb-org", "event": "created", "account_id": "12"}))
            .unwrap();
    let r = signed(&app, &secret, bad).await;
    assert_eq!((r.status, r.code()), (400, "invalid_field"), "{:?}", r.body);
    let bad = notice("cb-org", CUSTOMER, "exploded");
    let r = signed(&app, &secret, bad).await;
    assert_eq!(
        (r.status, r.body["error"]["field"].as_str()),
        (400, Some("event"))
    );
    // A good callback, then its nonce replayed at once and after 301 s with a valid timestamp.
    let ts = (app.clock_now_ms().await / 1000).to_string();
    let sig = sign(&secret, &ts, nonce, &body);
    let ok = post_callback(&app, &ts, nonce, &sig, body.clone()).await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    let again = post_callback(&app, &ts, nonce, &sig, body.clone()).await;
    assert_eq!((again.status, again.code()), (401, "nonce_reused"));
    app.clock.advance_ms(301_000);
    let ts2 = (app.clock_now_ms().await / 1000).to_string();
    let later = post_callback(
        &app,
        &ts2,
        nonce,
        &sign(&secret, &ts2, nonce, &body),
        body.clone(),
    )
    .await;
    assert_eq!((later.status, later.code()), (401, "nonce_reused"));
    // Rejections are audited, with no secret.
    let events = app.audit_events().await;
    assert!(
        events
            .iter()
            .any(|e| e.action == "onboarding.callback.rejected"
                && e.code.as_deref() == Some("nonce_reused"))
    );
    assert!(!serde_json::to_string(&events).unwrap().contains(&secret));
}

async fn binding_is_first_verified_account_until_reset(engine: Engine) {
    let app = onboarding_app(engine, false, false, "").await;
    assert_eq!(app.register(&app.admin_token, "bind-org").await.status, 201);
    let secret = app.callback_secret("bind-org").await;
    let r = signed(&app, &secret, notice("bind-org", CUSTOMER, "created")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.body["status"], "validated",
        "enforcement checking is off here"
    );
    let org = app.get("/api/orgs/bind-org", &app.admin_token).await;
    assert_eq!(org.body["account_id"], CUSTOMER);
    assert_eq!(
        org.body["role_arn"],
        format!("arn:aws:iam::{CUSTOMER}:role/rolegate-bind-org")
    );
    assert_eq!(org.body["trust_check"], "external_id_not_enforced");
    assert!(org.body["last_callback_at"].is_string());
    // Another account cannot take it over...
    let r = signed(&app, &secret, notice("bind-org", "444455556666", "created")).await;
    assert_eq!((r.status, r.code()), (409, "account_mismatch"));
    // ...until an operator resets the binding (audited).
    let op = app.create_user("binder", "operator").await;
    assert_eq!(
        app.post("/api/orgs/bind-org/binding/reset", &op, json!({}))
            .await
            .status,
        403,
        "not the owner"
    );
    let reset = app
        .post(
            "/api/orgs/bind-org/binding/reset",
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(reset.status, 200, "{:?}", reset.body);
    assert_eq!(reset.body["status"], "pending");
    // The reset killed the old stack's secret; new links bring the one the new stack uses.
    let r = signed(&app, &secret, notice("bind-org", "444455556666", "created")).await;
    assert_eq!((r.status, r.code()), (401, "invalid_signature"));
    let links = app
        .post(
            "/api/integrate",
            &app.admin_token,
            json!({"org_name": "bind-org"}),
        )
        .await;
    assert_eq!(links.status, 200, "{:?}", links.body);
    let secret = app.callback_secret("bind-org").await;
    let r = signed(&app, &secret, notice("bind-org", "444455556666", "created")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["account_id"], "444455556666");
    // Registration can pin the expected account.
    let pinned = app
        .send(
            app.client
                .post(app.url("/api/orgs"))
                .bearer_auth(&app.admin_token)
                .header("idempotency-key", "pin")
                .json(&json!({"org_name": "pin-org", "account_id": "999988887777"})),
        )
        .await;
    assert_eq!(pinned.status, 201);
    let pin_secret = app.callback_secret("pin-org").await;
    let r = signed(&app, &pin_secret, notice("pin-org", CUSTOMER, "created")).await;
    assert_eq!((r.status, r.code()), (409, "account_mismatch"));
    // Deletion offboards.
    let key = app
        .post("/api/orgs/bind-org/api-key", &app.admin_token, json!({}))
        .await
        .body["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = signed(&app, &secret, notice("bind-org", "444455556666", "deleted")).await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (200, Some("offboarded"))
    );
    assert_eq!(
        app.get("/api/orgs/bind-org", &key).await.status,
        401,
        "an offboarded org's key is dead"
    );
    let actions: Vec<String> = app
        .audit_events()
        .await
        .into_iter()
        .filter(|e| e.org.as_deref() == Some("bind-org"))
        .map(|e| e.action)
        .collect();
    for a in [
        "org.callback_received",
        "org.status_changed",
        "org.binding_reset",
        "org.offboard",
    ] {
        assert!(
            actions.iter().any(|x| x == a),
            "{a} missing from {actions:?}"
        );
    }
}

async fn unenforced_external_id_leaves_the_org_unsafe(engine: Engine) {
    let app = onboarding_app(engine, true, false, "").await;
    assert_eq!(
        app.register(&app.admin_token, "unsafe-org").await.status,
        201
    );
    let secret = app.callback_secret("unsafe-org").await;
    let r = signed(&app, &secret, notice("unsafe-org", CUSTOMER, "created")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // moto does not enforce trust policies, so this path is real here.
    assert_eq!(r.body["status"], "unsafe_trust");
    assert_eq!(r.body["trust_check"], "external_id_not_enforced");
    assert!(r.body["message"].as_str().unwrap().contains("ExternalId"));
}

async fn callback_secrets_expire_and_are_replaced(engine: Engine) {
    let app = onboarding_app(engine, false, true, "").await;
    assert_eq!(app.register(&app.admin_token, "exp-org").await.status, 201);
    let first = app.callback_secret("exp-org").await;
    // integrate issues a new secret and the old one stops working.
    let links = app
        .post(
            "/api/integrate",
            &app.admin_token,
            json!({"org_name": "exp-org"}),
        )
        .await;
    assert_eq!(links.status, 200, "{:?}", links.body);
    let second = app.callback_secret("exp-org").await;
    assert_ne!(first, second);
    assert!(
        links.body["console_url"]
            .as_str()
            .unwrap()
            .contains(&rolegate_core::onboarding::links::url_encode(&second))
    );
    let r = signed(&app, &first, notice("exp-org", CUSTOMER, "created")).await;
    assert_eq!(r.code(), "invalid_signature");
    // Looking at the links (GET) reuses the current secret: it never breaks a stack.
    let viewed = app
        .get("/api/orgs/exp-org/onboarding", &app.admin_token)
        .await;
    assert_eq!(viewed.status, 200, "{:?}", viewed.body);
    assert_eq!(app.callback_secret("exp-org").await, second);
    // (The presigned template URL inside may differ: it is signed anew, to the second.)
    assert!(
        viewed.body["console_url"]
            .as_str()
            .unwrap()
            .contains(&rolegate_core::onboarding::links::url_encode(&second))
    );
    // Unused for more than 7 days: dead.
    app.clock.advance_ms(8 * 24 * 3600 * 1000);
    let r = signed(&app, &second, notice("exp-org", CUSTOMER, "created")).await;
    assert_eq!(r.code(), "invalid_signature");
}

/// A stack deleted before it bound (a failed create rolling back) or another stack than the
/// bound one leaves the org as it is; only the bound stack's deletion offboards.
async fn only_the_bound_stack_deletion_offboards(engine: Engine) {
    let app = onboarding_app(engine, false, false, "").await;
    assert_eq!(app.register(&app.admin_token, "roll-org").await.status, 201);
    let secret = app.callback_secret("roll-org").await;
    let r = signed(&app, &secret, notice("roll-org", CUSTOMER, "deleted")).await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (200, Some("pending")),
        "{:?}",
        r.body
    );
    let r = signed(&app, &secret, notice("roll-org", CUSTOMER, "created")).await;
    assert_eq!(
        r.body["status"], "validated",
        "the customer could try again"
    );
    let mut other: Value =
        serde_json::from_slice(&notice("roll-org", CUSTOMER, "deleted")).unwrap();
    other["stack_id"] = json!(format!(
        "arn:aws:cloudformation:us-east-1:{CUSTOMER}:stack/second-try/00000000-1111-2222-3333-444455556666"
    ));
    let r = signed(&app, &secret, serde_json::to_vec(&other).unwrap()).await;
    assert_eq!(
        r.body["status"], "validated",
        "another stack's deletion changes nothing"
    );
    let r = signed(&app, &secret, notice("roll-org", CUSTOMER, "deleted")).await;
    assert_eq!(r.body["status"], "offboarded");
    let noted = app
        .audit_events()
        .await
        .into_iter()
        .filter(|e| e.action == "onboarding.stack_deleted")
        .count();
    assert_eq!(noted, 2);
}

/// A callback secret signs for its own org only.
async fn a_secret_signs_for_its_org_only(engine: Engine) {
    let app = onboarding_app(engine, false, false, "").await;
    assert_eq!(app.register(&app.admin_token, "own-org").await.status, 201);
    assert_eq!(
        app.register(&app.admin_token, "other-org").await.status,
        201
    );
    let own = app.callback_secret("own-org").await;
    let r = signed(&app, &own, notice("other-org", CUSTOMER, "created")).await;
    assert_eq!((r.status, r.code()), (401, "invalid_signature"));
    let org = app.get("/api/orgs/other-org", &app.admin_token).await;
    assert_eq!(org.body["status"], "pending", "nothing was bound");
}

/// New links for a bound org must not orphan the live stack: its secret keeps verifying
/// (so its Delete still offboards) until a callback uses the new one.
async fn new_links_do_not_orphan_a_live_stack(engine: Engine) {
    let app = onboarding_app(engine, false, false, "").await;
    validated_org(&app, &app.admin_token, "live-org").await;
    let live = app.callback_secret("live-org").await;
    let links = app
        .post(
            "/api/integrate",
            &app.admin_token,
            json!({"org_name": "live-org"}),
        )
        .await;
    assert_eq!(links.status, 200, "{:?}", links.body);
    let fresh = app.callback_secret("live-org").await;
    assert_ne!(fresh, live);
    let r = signed(&app, &live, notice("live-org", CUSTOMER, "updated")).await;
    assert_eq!(
        r.status, 200,
        "the live stack's update still verifies: {:?}",
        r.body
    );
    // Once the new secret is used, the old one retires.
    let r = signed(&app, &fresh, notice("live-org", CUSTOMER, "updated")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = signed(&app, &live, notice("live-org", CUSTOMER, "deleted")).await;
    assert_eq!(r.code(), "invalid_signature");
    // A stack deployed with the retired secret's successor can still be deleted.
    let r = signed(&app, &fresh, notice("live-org", CUSTOMER, "deleted")).await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (200, Some("offboarded"))
    );
}

async fn callbacks_are_rate_limited_per_ip(engine: Engine) {
    let extra = "[rate_limits]\ncallback_per_ip = { burst = 3, period_secs = 60 }\n";
    let app = onboarding_app(engine, false, true, extra).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let body = notice("rl-org", CUSTOMER, "created");
        statuses.push(post_callback(&app, "1", "0123456789abcdef0123", "00", body).await);
    }
    assert_eq!(
        statuses.iter().map(|r| r.status).collect::<Vec<_>>(),
        [401, 401, 401, 429]
    );
    assert_eq!(statuses[3].code(), "rate_limited");
    assert!(statuses[3].header("retry-after").is_some());
}

/// The per-org budget is spent only by verified callbacks, so unsigned posts naming an org
/// cannot lock out its real stack; and an extreme timestamp is just stale.
async fn callbacks_are_rate_limited_per_org_after_the_signature(engine: Engine) {
    let extra = "[rate_limits]\ncallback_per_org = { burst = 2, period_secs = 60 }\n";
    let app = onboarding_app(engine, false, true, extra).await;
    assert_eq!(app.register(&app.admin_token, "rlo-org").await.status, 201);
    for _ in 0..5 {
        let body = notice("rlo-org", CUSTOMER, "created");
        let r = post_callback(&app, "1", "0123456789abcdef0123", "00", body).await;
        assert_eq!(r.status, 401, "forged callbacks are refused, not counted");
    }
    let r = post_callback(
        &app,
        "-9223372036854775808",
        "0123456789abcdef0123",
        &"0".repeat(64),
        notice("rlo-org", CUSTOMER, "created"),
    )
    .await;
    assert_eq!((r.status, r.code()), (401, "stale_timestamp"));
    let secret = app.callback_secret("rlo-org").await;
    let mut statuses = Vec::new();
    for event in ["created", "updated", "updated"] {
        statuses.push(signed(&app, &secret, notice("rlo-org", CUSTOMER, event)).await);
    }
    assert_eq!(
        statuses.iter().map(|r| r.status).collect::<Vec<_>>(),
        [200, 200, 429]
    );
    assert_eq!(statuses[2].code(), "rate_limited");
}

crate::both_engines!(
    callbacks_are_rate_limited_per_org_after_the_signature,
    every_bad_callback_gets_its_code,
    binding_is_first_verified_account_until_reset,
    unenforced_external_id_leaves_the_org_unsafe,
    callback_secrets_expire_and_are_replaced,
    callbacks_are_rate_limited_per_ip,
    new_links_do_not_orphan_a_live_stack,
    only_the_bound_stack_deletion_offboards,
    a_secret_signs_for_its_org_only,
);

#[test]
fn moto_plays_a_separate_customer_account() {
    let (id, secret, token) = customer_credentials(CUSTOMER);
    let out = aws_cli(
        &["sts", "get-caller-identity", "--output", "json"],
        Some((&id, &secret, &token)),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Account"], CUSTOMER);
}

/// The whole path through the real stack, the real Lambda code and moto.
pub(crate) mod e2e;
/// The trust-policy verdicts moto cannot produce, against a stand-in STS.
mod trust;
