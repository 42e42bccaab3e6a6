use serde_json::json;

use crate::support::{Engine, spawn_app};

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

crate::both_engines!(
    bootstrap_admin_token_works_and_file_is_private,
    create_returns_token_once_and_lists_without_it,
    disabled_operator_token_stops_at_once_on_every_replica,
    token_rotation_kills_the_old_token,
);
