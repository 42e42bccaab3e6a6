//! Three rolegate replicas on one shared store: PostgreSQL, and the same tests on Redis.
//! Each replica is a full `Application` with its own connection pool, caches and metrics;
//! they share only the store and the master key.

use std::sync::Arc;

use serde_json::json;

use crate::credentials::issue;
use crate::metrics::{sample, scrape};
use crate::onboarding::{onboarding_toml, validated_org};
use crate::process::BIN;
use crate::support::{AppOptions, Engine, Resp, TestApp, spawn_with};

/// Generates `postgres` and `redis` variants: the engines made for replicas.
macro_rules! shared_engines {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 4)] async fn $name() { super::$name($crate::support::Engine::Postgres).await } )*
        }
        mod redis {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 4)] async fn $name() { super::$name($crate::support::Engine::Redis).await } )*
        }
    };
}

/// Three replicas with the same settings (`toml`) on one fresh store.
async fn three(engine: Engine, toml: &str) -> Arc<Vec<TestApp>> {
    let first = spawn_with(
        engine,
        AppOptions {
            toml: toml.to_owned(),
            ..Default::default()
        },
    )
    .await;
    let mut apps = vec![];
    for _ in 0..2 {
        let mut replica = spawn_with(
            engine,
            AppOptions {
                store: Some(first.store.clone()),
                master_key: Some(first.master_key.clone()),
                toml: toml.to_owned(),
                ..Default::default()
            },
        )
        .await;
        // Only the first start bootstraps an admin; the others share its user.
        assert!(replica.admin_token.is_empty());
        replica.admin_token = first.admin_token.clone();
        apps.push(replica);
    }
    apps.insert(0, first);
    Arc::new(apps)
}

/// Sends `count` requests built by `build(replica, i)` at once, request `i` to replica
/// `i % 3`, and returns the responses in order.
async fn spread<F>(apps: &Arc<Vec<TestApp>>, count: usize, build: F) -> Vec<Resp>
where
    F: Fn(&TestApp, usize) -> reqwest::RequestBuilder,
{
    let requests: Vec<_> = (0..count)
        .map(|i| build(&apps[i % apps.len()], i))
        .collect();
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|req| {
            tokio::spawn(async move { crate::support::into_resp(req.send().await.unwrap()).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

async fn fifty_registrations_of_one_name_make_one_org(engine: Engine) {
    let apps = three(engine, "").await;
    let results = spread(&apps, 50, |app, i| {
        app.client
            .post(app.url("/api/orgs"))
            .bearer_auth(&app.admin_token)
            .header("idempotency-key", format!("reg-{i}"))
            .json(&json!({"org_name": "contended"}))
    })
    .await;
    let created: Vec<_> = results.iter().filter(|r| r.status == 201).collect();
    assert_eq!(created.len(), 1, "exactly one registration wins");
    for r in &results {
        assert!(
            r.status == 201 || (r.status == 409 && r.code() == "org_exists"),
            "{} {:?}",
            r.status,
            r.body
        );
    }
    let key = created[0].body["api_key"].as_str().unwrap();
    for app in apps.iter() {
        let me = app.get("/api/orgs/contended", key).await;
        assert_eq!(
            me.status, 200,
            "every replica sees the winner: {:?}",
            me.body
        );
    }
    let creates = apps[1]
        .audit_events()
        .await
        .into_iter()
        .filter(|e| e.action == "org.create")
        .count();
    assert_eq!(creates, 1);
}

async fn one_idempotency_key_on_all_replicas_runs_once(engine: Engine) {
    let apps = three(engine, "").await;
    let results = spread(&apps, 12, |app, _| {
        app.client
            .post(app.url("/api/orgs"))
            .bearer_auth(&app.admin_token)
            .header("idempotency-key", "everywhere")
            .json(&json!({"org_name": "idem-org"}))
    })
    .await;
    let fresh = results
        .iter()
        .filter(|r| r.status == 201 && r.header("idempotent-replayed").is_none())
        .count();
    assert_eq!(fresh, 1, "the body ran once");
    for r in &results {
        assert!(
            r.status == 201 || (r.status == 409 && r.code() == "idempotency_in_progress"),
            "{} {:?}",
            r.status,
            r.body
        );
    }
    // Once settled, every replica replays the same bytes.
    let first = results.iter().find(|r| r.status == 201).unwrap();
    for app in apps.iter() {
        let again = app
            .send(
                app.client
                    .post(app.url("/api/orgs"))
                    .bearer_auth(&app.admin_token)
                    .header("idempotency-key", "everywhere")
                    .json(&json!({"org_name": "idem-org"})),
            )
            .await;
        assert_eq!(again.status, 201);
        assert_eq!(again.header("idempotent-replayed"), Some("true"));
        assert_eq!(again.raw, first.raw);
    }
    let creates = apps[2]
        .audit_events()
        .await
        .into_iter()
        .filter(|e| e.action == "org.create")
        .count();
    assert_eq!(creates, 1);
}

async fn sixty_four_cold_credential_requests_make_one_sts_call(engine: Engine) {
    let toml = onboarding_toml(
        false,
        "[rate_limits]\ncredentials_per_principal = { burst = 1000, period_secs = 60 }\n",
    );
    let apps = three(engine, &toml).await;
    let key = validated_org(&apps[0], &apps[0].admin_token, "flight").await;
    let mut before = 0.0;
    for app in apps.iter() {
        before += sts_ok(app).await;
    }
    let results = spread(&apps, 64, |app, _| {
        app.client
            .post(app.url("/api/credentials"))
            .bearer_auth(&key)
            .json(&json!({"org_name": "flight"}))
    })
    .await;
    let mut after = 0.0;
    for app in apps.iter() {
        after += sts_ok(app).await;
    }
    assert_eq!(after - before, 1.0, "one AssumeRole across all replicas");
    let mut ids = std::collections::BTreeSet::new();
    for r in &results {
        assert_eq!(r.status, 200, "{:?}", r.body);
        ids.insert(r.body["access_key_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "everyone got the one credential");
    let minted = results.iter().filter(|r| r.body["cached"] == false).count();
    assert_eq!(minted, 1);
    // A fourth request on any replica is a cache hit.
    let again = issue(&apps[2], &key, json!({"org_name": "flight"})).await;
    assert_eq!(again.body["cached"], true);
}

async fn sts_ok(app: &TestApp) -> f64 {
    sample(
        &scrape(app).await,
        "rolegate_sts_calls_total",
        &[("outcome", "ok")],
    )
}

async fn a_disabled_operator_is_refused_by_every_replica(engine: Engine) {
    let apps = three(engine, "").await;
    let token = apps[0].create_user("olive", "operator").await;
    for app in apps.iter() {
        assert_eq!(app.get("/api/orgs", &token).await.status, 200);
    }
    let d = apps[1]
        .delete("/api/users/olive", &apps[1].admin_token)
        .await;
    assert_eq!(d.status, 200, "{:?}", d.body);
    for app in apps.iter() {
        let r = app.get("/api/orgs", &token).await;
        assert_eq!(r.status, 401, "the next request on {} is refused", app.base);
    }
}

async fn concurrent_audited_writes_keep_the_chain_intact(engine: Engine) {
    let apps = three(engine, "").await;
    let results = spread(&apps, 30, |app, i| {
        if i % 2 == 0 {
            app.client
                .post(app.url("/api/orgs"))
                .bearer_auth(&app.admin_token)
                .header("idempotency-key", format!("chain-{i}"))
                .json(&json!({"org_name": format!("chain-{i}")}))
        } else {
            app.client
                .post(app.url("/api/users"))
                .bearer_auth(&app.admin_token)
                .json(&json!({"user_id": format!("op-{i}"), "role": "operator"}))
        }
    })
    .await;
    for r in &results {
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    let events = apps[0].audit_events().await;
    let writes = events
        .iter()
        .filter(|e| e.action == "org.create" || e.action == "user.create")
        .count();
    assert!(writes >= 30, "{writes} audited writes");
    let out = std::process::Command::new(BIN)
        .args(["--data-dir", apps[0].data_dir.to_str().unwrap()])
        .args(["audit", "verify"])
        .env("ROLEGATE_STORE", &apps[0].store)
        .env("ROLEGATE_MASTER_KEY", &apps[0].master_key)
        .env_remove("ROLEGATE_STORE_FILE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verified: usize = stdout
        .trim()
        .strip_prefix("audit chain intact: ")
        .and_then(|r| r.strip_suffix(" events"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected output: {stdout}"));
    assert!(verified >= events.len(), "{verified} < {}", events.len());
}

/// ADR 0017: a replica that has served a key and a token from its lookup cache refuses them
/// on the very next request once another replica has rotated them, and accepts the new ones.
async fn a_rotated_key_or_token_stops_on_every_replica_at_once(engine: Engine) {
    let apps = three(engine, "").await;
    let admin = apps[0].admin_token.clone();
    let r = apps[0].register(&admin, "rotated").await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let old_key = r.body["api_key"].as_str().unwrap().to_owned();
    let old_token = apps[0].create_user("rita", "operator").await;
    for _ in 0..3 {
        for app in apps.iter() {
            assert_eq!(app.get("/api/orgs/rotated", &old_key).await.status, 200);
            assert_eq!(app.get("/api/users/rita", &old_token).await.status, 200);
        }
    }
    let r = apps[1]
        .post("/api/orgs/rotated/api-key", &admin, json!({}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let new_key = r.body["api_key"].as_str().unwrap().to_owned();
    let r = apps[1]
        .post("/api/users/rita/token", &admin, json!({}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let new_token = r.body["token"].as_str().unwrap().to_owned();
    for app in apps.iter() {
        let r = app.get("/api/orgs/rotated", &old_key).await;
        assert_eq!(r.status, 401, "the old key on {}: {:?}", app.base, r.body);
        let r = app.get("/api/users/rita", &old_token).await;
        assert_eq!(r.status, 401, "the old token on {}: {:?}", app.base, r.body);
        assert_eq!(app.get("/api/orgs/rotated", &new_key).await.status, 200);
        assert_eq!(app.get("/api/users/rita", &new_token).await.status, 200);
    }
}

/// ADR 0018: a replica that has served an org record from its lookup cache shows the next
/// request what another replica wrote (an offboarding), and refuses the org's key.
async fn an_org_written_on_one_replica_is_read_by_the_next_request_on_another(engine: Engine) {
    let apps = three(engine, "").await;
    let admin = apps[0].admin_token.clone();
    let r = apps[0].register(&admin, "leaving").await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let key = r.body["api_key"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        for app in apps.iter() {
            let r = app.get("/api/orgs/leaving", &key).await;
            assert_eq!(r.status, 200);
            assert_eq!(r.body["status"], "pending");
        }
    }
    let r = apps[2].delete("/api/orgs/leaving", &admin).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    for app in apps.iter() {
        let r = app.get("/api/orgs/leaving", &admin).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body["status"], "offboarded", "on {}", app.base);
        assert_eq!(app.get("/api/orgs/leaving", &key).await.status, 401);
    }
}

shared_engines!(
    fifty_registrations_of_one_name_make_one_org,
    one_idempotency_key_on_all_replicas_runs_once,
    sixty_four_cold_credential_requests_make_one_sts_call,
    a_disabled_operator_is_refused_by_every_replica,
    concurrent_audited_writes_keep_the_chain_intact,
    a_rotated_key_or_token_stops_on_every_replica_at_once,
    an_org_written_on_one_replica_is_read_by_the_next_request_on_another,
);
