use serde_json::json;

use crate::support::{Engine, spawn_app};

async fn registration_returns_secrets_once(engine: Engine) {
    let app = spawn_app(engine).await;
    let r = app.register(&app.admin_token, "Acme-Corp").await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["org_name"], "acme-corp");
    assert_eq!(r.body["status"], "pending");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let ext = r.body["external_id"].as_str().unwrap();
    assert_eq!(ext.len(), 48);
    assert!(ext.chars().all(|c| c.is_ascii_alphanumeric()));
    let key = r.body["api_key"].as_str().unwrap();
    assert!(key.starts_with("rgk_") && key.len() >= 4 + 43);
    assert!(r.body.get("callback_secret").is_none());
    assert!(
        time::OffsetDateTime::parse(
            r.body["created_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339
        )
        .is_ok()
    );
    // Later reads show no secret but the ExternalId; lookups are case-insensitive.
    let g = app.get("/api/orgs/ACME-CORP", &app.admin_token).await;
    assert_eq!(g.status, 200);
    assert_eq!(g.body["external_id"], ext);
    let text = String::from_utf8(g.raw.clone()).unwrap();
    assert!(
        !text.contains(key) && !text.contains("rgc_") && !text.contains("api_key\""),
        "{text}"
    );
    // The prototype's path is the same handler.
    let r2 = app
        .send(
            app.client
                .post(app.url("/api/register"))
                .bearer_auth(&app.admin_token)
                .header("idempotency-key", "r2")
                .json(&json!({"org_name": "acme-corp"})),
        )
        .await;
    assert_eq!(r2.status, 409);
    assert_eq!(r2.code(), "org_exists");
    let list = app.get("/api/orgs", &app.admin_token).await;
    assert_eq!(list.body["orgs"].as_array().unwrap().len(), 1);
}

async fn fifty_concurrent_registrations_yield_one_201(engine: Engine) {
    let app = std::sync::Arc::new(spawn_app(engine).await);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.register(&app.admin_token, "race-org").await.status
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        49,
        "{statuses:?}"
    );
    // Exactly one creation was audited.
    let creates = app
        .audit_events()
        .await
        .into_iter()
        .filter(|e| e.action == "org.create")
        .count();
    assert_eq!(creates, 1);
}

async fn api_key_for_org_a_gets_403_on_org_b(engine: Engine) {
    let app = spawn_app(engine).await;
    let a = app.register(&app.admin_token, "org-a").await;
    let b = app.register(&app.admin_token, "org-b").await;
    let key_a = a.body["api_key"].as_str().unwrap();
    let key_b = b.body["api_key"].as_str().unwrap();
    // Both header forms work for the key's own org.
    let own = app
        .send(
            app.client
                .get(app.url("/api/orgs/org-a"))
                .header("x-api-key", key_a),
        )
        .await;
    assert_eq!(own.status, 200);
    let own = app.get("/api/orgs/org-a", key_a).await;
    assert_eq!(own.status, 200);
    // And are refused on the other org, existing or not.
    let other = app
        .send(
            app.client
                .get(app.url("/api/orgs/org-b"))
                .header("x-api-key", key_a),
        )
        .await;
    assert_eq!(other.status, 403);
    assert_eq!(other.code(), "forbidden");
    let other = app.get("/api/orgs/org-b", key_a).await;
    assert_eq!(other.status, 403);
    let missing = app.get("/api/orgs/no-such-org", key_a).await;
    assert_eq!(missing.status, 403);
    let rot = app
        .send(
            app.client
                .post(app.url("/api/orgs/org-b/api-key"))
                .header("x-api-key", key_a),
        )
        .await;
    assert_eq!(rot.status, 403);
    let del = app
        .send(
            app.client
                .delete(app.url("/api/orgs/org-b"))
                .header("x-api-key", key_a),
        )
        .await;
    assert_eq!(del.status, 403);
    assert_eq!(app.get("/api/orgs/org-b", key_b).await.status, 200);
    // An API key cannot register orgs or manage users.
    assert_eq!(app.register(key_a, "org-c").await.status, 403);
    assert_eq!(app.get("/api/users", key_a).await.status, 403);
    // Listing shows only its own org.
    let list = app.get("/api/orgs", key_a).await;
    let names: Vec<_> = list.body["orgs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["org_name"].clone())
        .collect();
    assert_eq!(names, vec![json!("org-a")]);
}

async fn operators_see_only_their_own_orgs(engine: Engine) {
    let app = spawn_app(engine).await;
    let alice = app.create_user("alice", "operator").await;
    let bob = app.create_user("bob", "operator").await;
    assert_eq!(app.register(&alice, "alice-org").await.status, 201);
    assert_eq!(app.register(&bob, "bob-org").await.status, 201);
    assert_eq!(app.get("/api/orgs/bob-org", &alice).await.status, 403);
    assert_eq!(app.delete("/api/orgs/bob-org", &alice).await.status, 403);
    assert_eq!(app.get("/api/orgs/alice-org", &alice).await.status, 200);
    let list = app.get("/api/orgs", &alice).await;
    let names: Vec<_> = list.body["orgs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["org_name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, vec!["alice-org"]);
    let all = app.get("/api/orgs", &app.admin_token).await;
    assert_eq!(all.body["orgs"].as_array().unwrap().len(), 2);
    assert_eq!(
        app.get("/api/orgs/nope-org", &app.admin_token).await.status,
        404
    );
}

async fn rotating_the_api_key_kills_the_old_one(engine: Engine) {
    let app = spawn_app(engine).await;
    let r = app.register(&app.admin_token, "rot-org").await;
    let old = r.body["api_key"].as_str().unwrap().to_owned();
    let rot = app
        .post("/api/orgs/rot-org/api-key", &app.admin_token, json!({}))
        .await;
    assert_eq!(rot.status, 200, "{:?}", rot.body);
    let new = rot.body["api_key"].as_str().unwrap();
    assert_ne!(new, old);
    assert_eq!(app.get("/api/orgs/rot-org", &old).await.status, 401);
    assert_eq!(app.get("/api/orgs/rot-org", new).await.status, 200);
    let ev = app.audit_events().await;
    assert!(
        ev.iter()
            .any(|e| e.action == "org.api_key.rotate" && e.org.as_deref() == Some("rot-org"))
    );
}

async fn offboarding_keeps_a_trail_and_kills_the_key(engine: Engine) {
    let app = spawn_app(engine).await;
    let r = app.register(&app.admin_token, "gone-org").await;
    let key = r.body["api_key"].as_str().unwrap().to_owned();
    let d = app.delete("/api/orgs/gone-org", &app.admin_token).await;
    assert_eq!(d.status, 200);
    assert_eq!(d.body["status"], "offboarded");
    assert_eq!(app.get("/api/orgs/gone-org", &key).await.status, 401);
    let g = app.get("/api/orgs/gone-org", &app.admin_token).await;
    assert_eq!(g.body["status"], "offboarded");
    let rot = app
        .post("/api/orgs/gone-org/api-key", &app.admin_token, json!({}))
        .await;
    assert_eq!(rot.status, 409);
    assert_eq!(rot.code(), "org_offboarded");
    let ev = app.audit_events().await;
    assert!(
        ev.iter()
            .any(|e| e.action == "org.offboard" && e.org.as_deref() == Some("gone-org"))
    );
}

async fn org_listing_pages_with_a_cursor(engine: Engine) {
    let app = spawn_app(engine).await;
    for i in 0..5 {
        assert_eq!(
            app.register(&app.admin_token, &format!("page-{i}"))
                .await
                .status,
            201
        );
    }
    let p1 = app.get("/api/orgs?limit=2", &app.admin_token).await;
    assert_eq!(p1.body["orgs"].as_array().unwrap().len(), 2);
    let c = p1.body["next_cursor"].as_str().unwrap();
    let p2 = app
        .get(&format!("/api/orgs?limit=10&cursor={c}"), &app.admin_token)
        .await;
    assert_eq!(p2.body["orgs"].as_array().unwrap().len(), 3);
    assert!(p2.body["next_cursor"].is_null());
    let bad = app.get("/api/orgs?limit=0", &app.admin_token).await;
    assert_eq!((bad.status, bad.code()), (400, "invalid_field"));
    let bad = app.get("/api/orgs?limit=abc", &app.admin_token).await;
    assert_eq!(bad.status, 400);
}

crate::both_engines!(
    registration_returns_secrets_once,
    fifty_concurrent_registrations_yield_one_201,
    api_key_for_org_a_gets_403_on_org_b,
    operators_see_only_their_own_orgs,
    rotating_the_api_key_kills_the_old_one,
    offboarding_keeps_a_trail_and_kills_the_key,
    org_listing_pages_with_a_cursor,
);
