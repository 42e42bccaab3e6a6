use serde_json::json;

use crate::support::{Engine, spawn_app};

async fn same_key_same_body_replays_byte_for_byte(engine: Engine) {
    let app = spawn_app(engine).await;
    let send = |body: serde_json::Value| {
        app.client
            .post(app.url("/api/orgs"))
            .bearer_auth(&app.admin_token)
            .header("idempotency-key", "same")
            .json(&body)
    };
    let first = app.send(send(json!({"org_name": "idem-org"}))).await;
    assert_eq!(first.status, 201);
    assert!(first.header("idempotent-replayed").is_none());
    let again = app.send(send(json!({"org_name": "idem-org"}))).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.raw, first.raw, "replayed byte for byte");
    assert_eq!(again.header("location"), first.header("location"));
    // Exactly one org and one audit event.
    let creates = app
        .audit_events()
        .await
        .into_iter()
        .filter(|e| e.action == "org.create")
        .count();
    assert_eq!(creates, 1);
    // Different body, same key: 422.
    let other = app.send(send(json!({"org_name": "other-org"}))).await;
    assert_eq!(
        (other.status, other.code()),
        (422, "idempotency_key_reused")
    );
}

/// A 4xx is a final answer too: its replay is the original error, code and field included.
async fn errors_replay_byte_for_byte(engine: Engine) {
    let app = spawn_app(engine).await;
    assert_eq!(
        app.register(&app.admin_token, "taken-org").await.status,
        201
    );
    for (key, body, status, code) in [
        ("dup", json!({"org_name": "taken-org"}), 409, "org_exists"),
        ("bad", json!({"org_name": "9bad"}), 400, "invalid_field"),
    ] {
        let send = || {
            app.client
                .post(app.url("/api/orgs"))
                .bearer_auth(&app.admin_token)
                .header("idempotency-key", key)
                .json(&body)
        };
        let first = app.send(send()).await;
        assert_eq!(
            (first.status, first.code()),
            (status, code),
            "{:?}",
            first.body
        );
        let again = app.send(send()).await;
        assert_eq!(again.header("idempotent-replayed"), Some("true"));
        assert_eq!(
            (again.status, again.code()),
            (status, code),
            "{:?}",
            again.body
        );
        assert_eq!(again.raw, first.raw, "replayed byte for byte");
        if code == "invalid_field" {
            assert_eq!(again.body["error"]["field"], "org_name");
        }
    }
}

async fn keys_are_scoped_to_the_principal(engine: Engine) {
    let app = spawn_app(engine).await;
    let op = app.create_user("scoped", "operator").await;
    let req = |tok: &str, name: &str| {
        app.client
            .post(app.url("/api/orgs"))
            .bearer_auth(tok)
            .header("idempotency-key", "shared-key")
            .json(&json!({"org_name": name}))
    };
    let a = app.send(req(&app.admin_token, "scope-a")).await;
    let b = app.send(req(&op, "scope-b")).await;
    assert_eq!((a.status, b.status), (201, 201));
    assert!(b.header("idempotent-replayed").is_none());
}

/// The scope is principal + method + path: one key on two paths is two requests.
async fn keys_are_scoped_to_the_path(engine: Engine) {
    let app = spawn_app(engine).await;
    let send = |path: &str| {
        app.client
            .post(app.url(path))
            .bearer_auth(&app.admin_token)
            .header("idempotency-key", "path-key")
            .json(&json!({"org_name": "path-org"}))
    };
    let first = app.send(send("/api/register")).await;
    assert_eq!(first.status, 201);
    let second = app.send(send("/api/orgs")).await;
    assert!(
        second.header("idempotent-replayed").is_none(),
        "not a replay"
    );
    assert_eq!(
        (second.status, second.code()),
        (409, "org_exists"),
        "it really ran"
    );
}

/// A key whose first request is still running: 409 idempotency_in_progress, Retry-After.
async fn a_key_in_flight_is_409(engine: Engine) {
    let app = spawn_app(engine).await;
    let body = serde_json::to_vec(&json!({"org_name": "flight-org"})).unwrap();
    let idem = rolegate_core::idempotency::Idempotency::new(
        app.vault().await,
        std::time::Duration::from_secs(60),
    );
    let scope = rolegate_core::idempotency::Idempotency::scope_key(
        "user:admin",
        "POST",
        "/api/orgs",
        "in-flight",
    );
    let fp = rolegate_core::idempotency::fingerprint(&body);
    // Another request (say, on another replica) has claimed the key and not finished.
    assert!(matches!(
        idem.claim(&scope, &fp).await.unwrap(),
        rolegate_core::idempotency::Claim::Proceed(_)
    ));
    let r = app
        .send(
            app.client
                .post(app.url("/api/orgs"))
                .bearer_auth(&app.admin_token)
                .header("idempotency-key", "in-flight")
                .header("content-type", "application/json")
                .body(body),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (409, "idempotency_in_progress"),
        "{:?}",
        r.body
    );
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(
        app.get("/api/orgs/flight-org", &app.admin_token)
            .await
            .status,
        404,
        "nothing ran"
    );
}

async fn missing_key_is_400_where_required(engine: Engine) {
    let app = spawn_app(engine).await;
    let r = app
        .post("/api/orgs", &app.admin_token, json!({"org_name": "no-key"}))
        .await;
    assert_eq!((r.status, r.code()), (400, "idempotency_key_required"));
    let r = app
        .post(
            "/api/register",
            &app.admin_token,
            json!({"org_name": "no-key"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "idempotency_key_required"));
    // Optional elsewhere.
    let r = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({"user_id": "nokey", "role": "operator"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let bad = app
        .send(
            app.client
                .post(app.url("/api/orgs"))
                .bearer_auth(&app.admin_token)
                .header("idempotency-key", "a".repeat(300))
                .json(&json!({"org_name": "no-key"})),
        )
        .await;
    assert_eq!((bad.status, bad.code()), (400, "invalid_field"));
}

async fn concurrent_requests_with_one_key_execute_once(engine: Engine) {
    let app = std::sync::Arc::new(spawn_app(engine).await);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.send(
                app.client
                    .post(app.url("/api/orgs"))
                    .bearer_auth(&app.admin_token)
                    .header("idempotency-key", "conc")
                    .json(&json!({"org_name": "conc-org"})),
            )
            .await
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let fresh = results
        .iter()
        .filter(|r| r.status == 201 && r.header("idempotent-replayed").is_none())
        .count();
    assert_eq!(fresh, 1, "exactly one request executed");
    for r in &results {
        assert!(
            (r.status == 201) || (r.status == 409 && r.code() == "idempotency_in_progress"),
            "{} {:?}",
            r.status,
            r.body
        );
    }
    let creates = app
        .audit_events()
        .await
        .into_iter()
        .filter(|e| e.action == "org.create")
        .count();
    assert_eq!(creates, 1);
}

async fn a_5xx_releases_the_key(engine: Engine) {
    let app = spawn_app(engine).await;
    // Break the audit head so the audited action fails with 503, then repair it.
    let vault = app.vault().await;
    let store = vault.store().clone();
    let head = store
        .get(rolegate_core::audit::HEAD_KEY)
        .await
        .unwrap()
        .unwrap();
    let garbage =
        rolegate_core::ports::Txn::new().put(rolegate_core::audit::HEAD_KEY, b"garbage".to_vec());
    assert!(store.commit(garbage).await.unwrap());
    let req = || {
        app.client
            .post(app.url("/api/orgs"))
            .bearer_auth(&app.admin_token)
            .header("idempotency-key", "retry-me")
            .json(&json!({"org_name": "retry-org"}))
    };
    // The admin token lookup does not need the head; org creation does.
    let failed = app.send(req()).await;
    assert_eq!(
        (failed.status, failed.code()),
        (503, "audit_unavailable"),
        "{:?}",
        failed.body
    );
    assert_eq!(
        app.get("/api/orgs/retry-org", &app.admin_token)
            .await
            .status,
        404,
        "no effect"
    );
    assert!(
        store
            .commit(rolegate_core::ports::Txn::new().put(rolegate_core::audit::HEAD_KEY, head))
            .await
            .unwrap()
    );
    let ok = app.send(req()).await;
    assert_eq!(ok.status, 201, "{:?}", ok.body);
    assert!(ok.header("idempotent-replayed").is_none());
}

crate::both_engines!(
    same_key_same_body_replays_byte_for_byte,
    errors_replay_byte_for_byte,
    keys_are_scoped_to_the_principal,
    keys_are_scoped_to_the_path,
    a_key_in_flight_is_409,
    missing_key_is_400_where_required,
    concurrent_requests_with_one_key_execute_once,
    a_5xx_releases_the_key,
);
