use serde_json::json;

use crate::support::{Engine, spawn_app};

fn assert_error_shape(r: &crate::support::Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "body: {:?}", r.body);
    assert_eq!(r.code(), code, "body: {:?}", r.body);
    let rid = r
        .header("x-request-id")
        .expect("every response has x-request-id");
    assert_eq!(
        r.body["error"]["request_id"], rid,
        "error carries the request id"
    );
    assert!(
        r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

async fn malformed_json_is_invalid_json(engine: Engine) {
    let app = spawn_app(engine).await;
    let r = app
        .send(
            app.client
                .post(app.url("/api/orgs"))
                .bearer_auth(&app.admin_token)
                .header("idempotency-key", "k")
                .header("content-type", "application/json")
                .body("{\"org_name\": "),
        )
        .await;
    assert_error_shape(&r, 400, "invalid_json");
}

async fn failed_field_check_names_the_field(engine: Engine) {
    let app = spawn_app(engine).await;
    for (body, field) in [
        (json!({"org_name": "x"}), "org_name"),
        (json!({"org_name": "1abc"}), "org_name"),
        (json!({"org_name": "abc-"}), "org_name"),
        (json!({"org_name": "ab_c"}), "org_name"),
        (json!({}), "org_name"),
        (json!({"org_name": 5}), "org_name"),
        (
            json!({"org_name": "good-name", "account_id": "12"}),
            "account_id",
        ),
        (json!({"org_name": "good-name", "bogus": 1}), "bogus"),
    ] {
        let key = uuid::Uuid::new_v4().to_string();
        let r = app
            .send(
                app.client
                    .post(app.url("/api/orgs"))
                    .bearer_auth(&app.admin_token)
                    .header("idempotency-key", key)
                    .json(&body),
            )
            .await;
        assert_error_shape(&r, 400, "invalid_field");
        assert_eq!(r.body["error"]["field"], field, "{body}: {:?}", r.body);
    }
    let r = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({"user_id": "bob", "role": "root"}),
        )
        .await;
    assert_error_shape(&r, 400, "invalid_field");
    assert_eq!(r.body["error"]["field"], "role");
}

async fn missing_or_bad_credentials_are_401_with_www_authenticate(engine: Engine) {
    let app = spawn_app(engine).await;
    let r = app.send(app.client.get(app.url("/api/orgs"))).await;
    assert_error_shape(&r, 401, "unauthorized");
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    let r = app.get("/api/orgs", "rgt_not-a-real-token").await;
    assert_error_shape(&r, 401, "unauthorized");
    assert!(r.header("www-authenticate").is_some());
    let r = app
        .send(
            app.client
                .get(app.url("/api/orgs"))
                .header("authorization", "Basic Zm9vOmJhcg=="),
        )
        .await;
    assert_error_shape(&r, 401, "unauthorized");
    let r = app
        .send(
            app.client
                .get(app.url("/api/orgs"))
                .header("x-api-key", "rgk_nope"),
        )
        .await;
    assert_error_shape(&r, 401, "unauthorized");
}

async fn wrong_scope_is_403(engine: Engine) {
    let app = spawn_app(engine).await;
    let op = app.create_user("ops1", "operator").await;
    let r = app
        .post("/api/users", &op, json!({"user_id": "x1", "role": "admin"}))
        .await;
    assert_error_shape(&r, 403, "forbidden");
}

async fn unknown_route_is_json_404(engine: Engine) {
    let app = spawn_app(engine).await;
    let r = app.get("/api/nope", &app.admin_token).await;
    assert_error_shape(&r, 404, "not_found");
    let r = app.send(app.client.get(app.url("/nothing/here"))).await;
    assert_error_shape(&r, 404, "not_found");
}

async fn wrong_method_is_405_with_allow(engine: Engine) {
    let app = spawn_app(engine).await;
    let r = app
        .send(
            app.client
                .put(app.url("/api/orgs"))
                .bearer_auth(&app.admin_token),
        )
        .await;
    assert_error_shape(&r, 405, "method_not_allowed");
    let allow = r.header("allow").unwrap();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    let r = app.send(app.client.post(app.url("/api/health"))).await;
    assert_error_shape(&r, 405, "method_not_allowed");
    assert!(r.header("allow").unwrap().contains("GET"));
}

async fn body_over_64k_is_413(engine: Engine) {
    let app = spawn_app(engine).await;
    let big = format!("{{\"org_name\": \"{}\"}}", "a".repeat(70 * 1024));
    let r = app
        .send(
            app.client
                .post(app.url("/api/orgs"))
                .bearer_auth(&app.admin_token)
                .header("idempotency-key", "big")
                .header("content-type", "application/json")
                .body(big.clone()),
        )
        .await;
    assert_error_shape(&r, 413, "payload_too_large");
    let r = app
        .send(
            app.client
                .post(app.url("/api/users"))
                .bearer_auth(&app.admin_token)
                .header("content-type", "application/json")
                .body(big),
        )
        .await;
    assert_error_shape(&r, 413, "payload_too_large");
}

async fn wrong_content_type_is_415(engine: Engine) {
    let app = spawn_app(engine).await;
    let r = app
        .send(
            app.client
                .post(app.url("/api/orgs"))
                .bearer_auth(&app.admin_token)
                .header("idempotency-key", "ct")
                .header("content-type", "text/plain")
                .body("{\"org_name\":\"acme\"}"),
        )
        .await;
    assert_error_shape(&r, 415, "unsupported_media_type");
}

async fn success_responses_carry_request_id(engine: Engine) {
    let app = spawn_app(engine).await;
    let r = app.send(app.client.get(app.url("/api/health"))).await;
    assert_eq!(r.status, 200);
    assert!(r.header("x-request-id").is_some());
    let r = app.send(app.client.get(app.url("/api/ready"))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

/// A client's own request id is kept when it is a plain token, and replaced otherwise: it
/// ends up in logs and audit events.
async fn client_request_ids_are_kept_only_when_safe(engine: Engine) {
    let app = spawn_app(engine).await;
    let with = |id: &str| {
        app.client
            .get(app.url("/api/orgs/nope-org"))
            .bearer_auth(&app.admin_token)
            .header("x-request-id", id)
    };
    let r = app.send(with("trace-42.a_b")).await;
    assert_eq!(r.header("x-request-id"), Some("trace-42.a_b"));
    assert_eq!(r.body["error"]["request_id"], "trace-42.a_b");
    for bad in ["has spaces", "quote\"d", &"x".repeat(65)] {
        let r = app.send(with(bad)).await;
        let id = r.header("x-request-id").unwrap();
        assert_ne!(id, bad);
        assert_eq!(id.len(), 36, "a fresh UUID: {id}");
        assert_eq!(r.body["error"]["request_id"], id);
    }
}

/// Readiness checks the store for real: a Redis that goes away makes it 503 with a reason,
/// while liveness stays 200 and the failure is counted in `rolegate_store_errors_total`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_is_503_with_a_reason_when_the_store_is_gone() {
    let port = crate::support::free_port();
    let dir = tempfile::tempdir().unwrap();
    let mut redis = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--dir",
            &dir.path().to_string_lossy(),
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server (scripts/test installs it)");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let scrape_token = "s".repeat(32);
    let app = crate::support::spawn_with(
        Engine::Redis,
        crate::support::AppOptions {
            store: Some(format!("redis://127.0.0.1:{port}/?prefix=ready:")),
            toml: format!("metrics_token = \"{scrape_token}\"\n"),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(app.get("/api/ready", "").await.status, 200);
    redis.kill().unwrap();
    redis.wait().unwrap();
    // Readiness is checked at most once a second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = app.get("/api/ready", "").await;
    assert_error_shape(&r, 503, "store_unavailable");
    assert!(
        !r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&port.to_string()),
        "no internal detail"
    );
    assert_eq!(
        app.get("/api/health", "").await.status,
        200,
        "liveness touches no dependency"
    );
    // The scrape token needs no store, so the failure is visible where it is counted.
    let m = app.get("/metrics", &scrape_token).await;
    assert_eq!(m.status, 200);
    let text = String::from_utf8(m.raw).unwrap();
    let errors = crate::metrics::sample(
        &text,
        "rolegate_store_errors_total",
        &[("engine", "redis"), ("op", "ping")],
    );
    assert!(errors >= 1.0, "{text}");
}

crate::both_engines!(
    client_request_ids_are_kept_only_when_safe,
    malformed_json_is_invalid_json,
    failed_field_check_names_the_field,
    missing_or_bad_credentials_are_401_with_www_authenticate,
    wrong_scope_is_403,
    unknown_route_is_json_404,
    wrong_method_is_405_with_allow,
    body_over_64k_is_413,
    wrong_content_type_is_415,
    success_responses_carry_request_id,
);
