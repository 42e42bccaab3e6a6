use serde_json::{Value, json};

use crate::support::{Engine, TestApp, spawn_app};

async fn bootstrap_admin_token_works_and_file_is_private(engine: Engine) {
    let app = spawn_app(engine).await;
    assert!(app.admin_token.starts_with("rgt_"));
    assert!(app.admin_token.len() >= 4 + 43, "at least 256 bits");
    let meta = std::fs::metadata(app.data_dir.join("admin.token")).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let r = app.get("/api/users", &app.admin_token).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["users"][0]["user_id"], "admin");
    assert_eq!(r.body["users"][0]["role"], "admin");
    assert!(!String::from_utf8(r.raw).unwrap().contains("digest"));
}

async fn create_returns_token_once_and_lists_without_it(engine: Engine) {
    let app = spawn_app(engine).await;
    let r = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({"user_id": "carol", "role": "operator", "metadata": {"team": "sre"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let token = r.body["token"].as_str().unwrap().to_owned();
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.body["metadata"]["team"], "sre");
    let dup = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({"user_id": "carol", "role": "operator"}),
        )
        .await;
    assert_eq!((dup.status, dup.code()), (409, "user_exists"));
    let list = app.get("/api/users", &app.admin_token).await;
    assert!(!String::from_utf8(list.raw).unwrap().contains(&token));
    // An operator sees only itself.
    let own = app.get("/api/users", &token).await;
    assert_eq!(own.body["users"].as_array().unwrap().len(), 1);
    assert_eq!(app.get("/api/users/admin", &token).await.status, 403);
    let bad = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({"user_id": "x", "role": "operator"}),
        )
        .await;
    assert_eq!(
        (bad.status, bad.body["error"]["field"].as_str()),
        (400, Some("user_id"))
    );
    let bad = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({"user_id": "dave", "metadata": [1]}),
        )
        .await;
    assert_eq!(
        (bad.status, bad.body["error"]["field"].as_str()),
        (400, Some("metadata"))
    );
}

async fn disabled_operator_token_stops_at_once_on_every_replica(engine: Engine) {
    let app = spawn_app(engine).await;
    let token = app.create_user("erin", "operator").await;
    // A second replica on the same store: the same Redis, or the same SQLite file.
    let replica = crate::support::spawn_with(
        engine,
        crate::support::AppOptions {
            store: Some(app.store.clone()),
            master_key: Some(app.master_key.clone()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(replica.get("/api/orgs", &token).await.status, 200);
    assert_eq!(app.get("/api/orgs", &token).await.status, 200);
    let d = app.delete("/api/users/erin", &app.admin_token).await;
    assert_eq!(d.status, 200);
    assert_eq!(d.body["disabled"], true);
    assert_eq!(app.get("/api/orgs", &token).await.status, 401);
    assert_eq!(replica.get("/api/orgs", &token).await.status, 401);
    let me = app.delete("/api/users/admin", &app.admin_token).await;
    assert_eq!((me.status, me.code()), (409, "cannot_disable_self"));
    assert_eq!(
        app.delete("/api/users/nobody", &app.admin_token)
            .await
            .status,
        404
    );
}

async fn token_rotation_kills_the_old_token(engine: Engine) {
    let app = spawn_app(engine).await;
    let old = app.create_user("frank", "operator").await;
    let r = app.post("/api/users/frank/token", &old, json!({})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let new = r.body["token"].as_str().unwrap();
    assert_eq!(app.get("/api/orgs", &old).await.status, 401);
    assert_eq!(app.get("/api/orgs", new).await.status, 200);
    // An operator cannot rotate someone else's token; an admin can.
    assert_eq!(
        app.post("/api/users/admin/token", new, json!({}))
            .await
            .status,
        403
    );
    assert_eq!(
        app.post("/api/users/frank/token", &app.admin_token, json!({}))
            .await
            .status,
        200
    );
    assert_eq!(app.get("/api/orgs", new).await.status, 401);
}

async fn put(app: &TestApp, path: &str, token: &str, body: Value) -> crate::support::Resp {
    app.send(app.client.put(app.url(path)).bearer_auth(token).json(&body))
        .await
}

/// `PUT /api/users/{id}/role`: admins only, audited, never one's own role; the new role
/// holds at once for the operator's token; `rolegate user role` calls it.
async fn an_admin_changes_roles_through_the_api_and_the_cli(engine: Engine) {
    let app = spawn_app(engine).await;
    let gina = app.create_user("gina", "operator").await;
    let role = |r: &str| json!({ "role": r });
    // An operator may not; nor may anyone name a role that does not exist.
    let r = put(&app, "/api/users/gina/role", &gina, role("admin")).await;
    assert_eq!((r.status, r.code()), (403, "forbidden"), "{:?}", r.body);
    let r = put(&app, "/api/users/gina/role", &app.admin_token, role("root")).await;
    assert_eq!((r.status, r.code()), (400, "invalid_field"), "{:?}", r.body);
    assert_eq!(r.body["error"]["field"], "role");
    let r = put(&app, "/api/users/gina/role", &app.admin_token, json!({})).await;
    assert_eq!((r.status, r.code()), (400, "invalid_field"), "{:?}", r.body);
    let r = put(
        &app,
        "/api/users/nobody/role",
        &app.admin_token,
        role("admin"),
    )
    .await;
    assert_eq!(r.status, 404, "{:?}", r.body);
    // The last admin cannot demote itself (an admin never changes its own role).
    let r = put(
        &app,
        "/api/users/admin/role",
        &app.admin_token,
        role("operator"),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (409, "cannot_disable_self"),
        "{:?}",
        r.body
    );
    // Promoted: gina's token is an admin's at once.
    assert_eq!(app.get("/api/users/admin", &gina).await.status, 403);
    let r = put(
        &app,
        "/api/users/gina/role",
        &app.admin_token,
        role("admin"),
    )
    .await;
    assert_eq!(
        (r.status, r.body["role"].as_str()),
        (200, Some("admin")),
        "{:?}",
        r.body
    );
    assert_eq!(app.get("/api/users/admin", &gina).await.status, 200);
    let ev: Vec<_> = app
        .audit_events()
        .await
        .into_iter()
        .filter(|e| e.action == "user.role.set")
        .collect();
    assert!(
        ev.iter()
            .any(|e| serde_json::to_value(e.outcome).unwrap() == "success"
                && e.target.as_deref() == Some("gina")),
        "{ev:?}"
    );
    // The CLI: back to operator.
    let out = tokio::process::Command::new(crate::process::BIN)
        .env_clear()
        .env("HOME", tempfile::tempdir().unwrap().path())
        .env("ROLEGATE_SERVER", &app.base)
        .env("ROLEGATE_TOKEN", &app.admin_token)
        .args(["user", "role", "gina", "operator"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["role"], "operator", "{shown}");
    assert_eq!(app.get("/api/users/admin", &gina).await.status, 403);
}

crate::both_engines!(
    an_admin_changes_roles_through_the_api_and_the_cli,
    bootstrap_admin_token_works_and_file_is_private,
    create_returns_token_once_and_lists_without_it,
    disabled_operator_token_stops_at_once_on_every_replica,
    token_rotation_kills_the_old_token,
);
