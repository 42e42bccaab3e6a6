//! The hot paths under load keep their guarantees: a SIGKILL during a burst of cache hits
//! loses no acknowledged audit event, and a disabled token or a rotated API key stops
//! working at once, on every replica, while requests keep coming.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::onboarding::{CUSTOMER, notice, onboarding_toml, sign, validated_org};
use crate::process::{BIN, start_with_args};
use crate::support::{AppOptions, Engine, TestApp, spawn_with, store_spec};

/// Rate limits out of the way: these tests measure revocation and durability, not limits.
const NO_LIMITS: &str = "[rate_limits]\n\
    auth_failures_per_ip = { burst = 1000000, period_secs = 1 }\n\
    credentials_per_principal = { burst = 1000000, period_secs = 1 }\n\
    credentials_per_org = { burst = 1000000, period_secs = 1 }\n";

/// Every engine, each test on its own store.
macro_rules! every_engine {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 4)] async fn $name() { super::$name($crate::support::Engine::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 4)] async fn $name() { super::$name($crate::support::Engine::Postgres).await } )*
        }
        mod redis {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 4)] async fn $name() { super::$name($crate::support::Engine::Redis).await } )*
        }
    };
}

/// A vault over `store`, as `rolegate audit verify` would open it.
async fn vault(store: &str, data_dir: &std::path::Path, key: &str) -> rolegate_core::vault::Vault {
    let store = rolegate_store::connect(store, data_dir).await.unwrap();
    let key = rolegate_crypto::MasterKey::from_base64(key).unwrap();
    rolegate_core::vault::Vault::new(
        store,
        Arc::new(rolegate_crypto::Keyring::new(&[key]).unwrap()),
    )
}

/// A POST as `token`; with an `Idempotency-Key` only where one is accepted (not credentials).
async fn post(client: &reqwest::Client, url: String, token: &str, body: Value) -> (u16, Value) {
    let mut req = client.post(&url).bearer_auth(token).json(&body);
    if !url.ends_with("/api/credentials") {
        req = req.header("idempotency-key", uuid::Uuid::new_v4().to_string());
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

/// Registers and validates `org` on the `rolegate` process at `base` (signed callback from
/// the customer account); returns the org's API key.
async fn validated_org_on(
    base: &str,
    admin: &str,
    store: &str,
    data_dir: &std::path::Path,
    key: &str,
    org: &str,
) -> String {
    let client = reqwest::Client::new();
    let (status, body) = post(
        &client,
        format!("{base}/api/orgs"),
        admin,
        json!({"org_name": org}),
    )
    .await;
    assert_eq!(status, 201, "{body:?}");
    let api_key = body["api_key"].as_str().unwrap().to_owned();
    let rec = vault(store, data_dir, key)
        .await
        .get::<rolegate_core::orgs::OrgRecord>(&format!("org/{org}"))
        .await
        .unwrap()
        .unwrap();
    let secret = rec.value.callback_secret.expose().to_owned();
    let body = notice(org, CUSTOMER, "created");
    let ts = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs())
    .to_string();
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let sig = sign(&secret, &ts, &nonce, &body);
    let r = client
        .post(format!("{base}/api/integrations/validate"))
        .header("content-type", "application/json")
        .header("x-sig-timestamp", &ts)
        .header("x-sig-nonce", &nonce)
        .header("x-sig-signature", sig)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    api_key
}

/// The real binary, SIGKILLed in the middle of a burst of cache hits: every `200` a client
/// received has its `credentials.issue` event in the chain afterwards, and the chain is
/// intact. The events are group-committed, so this is what proves a response never leaves
/// before its batch is durable.
async fn sigkill_during_cache_hits_loses_no_acknowledged_event(engine: Engine) {
    let tmp = tempfile::tempdir().unwrap();
    let store = match engine {
        Engine::Sqlite => format!("sqlite://{}", tmp.path().join("rolegate.db").display()),
        Engine::Postgres | Engine::Redis => store_spec(engine),
    };
    let key = rolegate_crypto::MasterKey::generate().to_base64();
    let config = tmp.path().join("rolegate.toml");
    std::fs::write(&config, onboarding_toml(false, NO_LIMITS)).unwrap();
    let mut server = start_with_args(
        tmp.path(),
        &store,
        &key,
        &[],
        &["--config", config.to_str().unwrap()],
    );
    let admin = std::fs::read_to_string(tmp.path().join("admin.token"))
        .unwrap()
        .trim()
        .to_owned();
    let api_key =
        validated_org_on(&server.base, &admin, &store, tmp.path(), &key, "kill-hits").await;
    let client = reqwest::Client::new();
    let url = format!("{}/api/credentials", server.base);
    // Fill the cache; every later request is a hit.
    let (status, body) = post(
        &client,
        url.clone(),
        &api_key,
        json!({"org_name": "kill-hits"}),
    )
    .await;
    assert_eq!(status, 200, "{body:?}");

    let acked = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let (client, url, api_key, acked) = (
                client.clone(),
                url.clone(),
                api_key.clone(),
                Arc::clone(&acked),
            );
            tokio::spawn(async move {
                loop {
                    let Ok(r) = client
                        .post(&url)
                        .header("x-api-key", &api_key)
                        .json(&json!({"org_name": "kill-hits"}))
                        .send()
                        .await
                    else {
                        return;
                    };
                    let status = r.status().as_u16();
                    // Acknowledged: the whole answer was received, credentials and all.
                    let Ok(body) = r.json::<Value>().await else {
                        return;
                    };
                    assert_eq!(status, 200, "{body:?}");
                    assert_eq!(body["cached"], true);
                    acked.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.load(Ordering::SeqCst) < 300 {
        assert!(Instant::now() < deadline, "no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // SIGKILL while requests are in flight: no graceful shutdown, no flush.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    for w in workers {
        w.await.unwrap();
    }
    let acked = acked.load(Ordering::SeqCst);

    let events = vault(&store, tmp.path(), &key)
        .await
        .list_all::<rolegate_core::audit::AuditEvent>(rolegate_core::audit::EVENT_PREFIX)
        .await
        .unwrap();
    let hits = events
        .iter()
        .filter(|(_, e)| {
            e.action == "credentials.issue"
                && e.outcome == rolegate_core::audit::Outcome::Success
                && e.details["cached"] == true
        })
        .count();
    assert!(
        hits >= acked,
        "{hits} cache-hit events < {acked} acknowledged"
    );
    let out = std::process::Command::new(BIN)
        .args([
            "--data-dir",
            tmp.path().to_str().unwrap(),
            "audit",
            "verify",
        ])
        .env("ROLEGATE_STORE", &store)
        .env("ROLEGATE_MASTER_KEY", &key)
        .env_remove("ROLEGATE_STORE_FILE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One request's outcome: when it was sent, the replica, the status.
type Outcomes = Arc<Mutex<Vec<(Instant, usize, u16)>>>;

/// Sends warm credential requests with `secret` (an operator token or an API key) to every
/// replica in turn from 8 tasks until `stop`, recording each outcome.
fn hammer(
    apps: &Arc<Vec<TestApp>>,
    secret: &str,
    org: &str,
    stop: &Arc<AtomicBool>,
) -> (Outcomes, Vec<tokio::task::JoinHandle<()>>) {
    let outcomes: Outcomes = Arc::default();
    let tasks = (0..8)
        .map(|t| {
            let (apps, secret, org, stop, outcomes) = (
                Arc::clone(apps),
                secret.to_owned(),
                org.to_owned(),
                Arc::clone(stop),
                Arc::clone(&outcomes),
            );
            tokio::spawn(async move {
                let mut i = t;
                while !stop.load(Ordering::SeqCst) {
                    let replica = i % apps.len();
                    i += 1;
                    let app = &apps[replica];
                    let sent = Instant::now();
                    let r = app
                        .client
                        .post(app.url("/api/credentials"))
                        .bearer_auth(&secret)
                        .json(&json!({"org_name": org}))
                        .send()
                        .await
                        .unwrap();
                    outcomes
                        .lock()
                        .unwrap()
                        .push((sent, replica, r.status().as_u16()));
                }
            })
        })
        .collect();
    (outcomes, tasks)
}

/// Waits until `outcomes` holds `n` successes.
async fn until_served(outcomes: &Outcomes, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = outcomes
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, _, s)| *s == 200)
            .count();
        if ok >= n {
            return;
        }
        assert!(Instant::now() < deadline, "only {ok} served");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until every replica has answered a few requests sent after `revoked` (a fixed
/// pause was not enough on a loaded machine: no request had reached a replica yet).
async fn reached_after(outcomes: &Outcomes, revoked: Instant, replicas: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reached = {
            let outcomes = outcomes.lock().unwrap();
            (0..replicas).all(|replica| {
                outcomes
                    .iter()
                    .filter(|(sent, r, _)| *sent > revoked && *r == replica)
                    .count()
                    >= 3
            })
        };
        if reached {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no requests reached every replica"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Every request sent after `revoked` was refused (401, or 429 once the source's failed
/// attempts are spent), on every replica, and some were.
fn refused_after(outcomes: &Outcomes, revoked: Instant, replicas: usize, what: &str) {
    let outcomes = outcomes.lock().unwrap();
    for replica in 0..replicas {
        let after: Vec<u16> = outcomes
            .iter()
            .filter(|(sent, r, _)| *sent > revoked && *r == replica)
            .map(|(_, _, s)| *s)
            .collect();
        assert!(
            !after.is_empty(),
            "no request reached replica {replica} after the {what}"
        );
        assert!(
            after.iter().all(|s| *s == 401 || *s == 429),
            "replica {replica} answered {after:?} after the {what}"
        );
    }
}

/// One app on SQLite (one process owns the file); two replicas on one store otherwise.
async fn replicas(engine: Engine) -> Arc<Vec<TestApp>> {
    let toml = onboarding_toml(false, NO_LIMITS);
    let first = spawn_with(
        engine,
        AppOptions {
            toml: toml.clone(),
            ..Default::default()
        },
    )
    .await;
    let mut apps = vec![];
    if engine != Engine::Sqlite {
        let mut other = spawn_with(
            engine,
            AppOptions {
                store: Some(first.store.clone()),
                master_key: Some(first.master_key.clone()),
                toml,
                ..Default::default()
            },
        )
        .await;
        other.admin_token = first.admin_token.clone();
        apps.push(other);
    }
    apps.insert(0, first);
    Arc::new(apps)
}

/// Under a steady stream of cache hits, disabling the operator stops its token at once:
/// every request sent after the `DELETE` was acknowledged is 401, on every replica.
async fn a_disabled_token_stops_at_once_under_load(engine: Engine) {
    let apps = replicas(engine).await;
    let token = apps[0].create_user("busy-op", "operator").await;
    validated_org(&apps[0], &token, "busy-org").await;
    let stop = Arc::new(AtomicBool::new(false));
    let (outcomes, tasks) = hammer(&apps, &token, "busy-org", &stop);
    until_served(&outcomes, 100).await;
    let d = apps[apps.len() - 1]
        .delete("/api/users/busy-op", &apps[0].admin_token)
        .await;
    assert_eq!(d.status, 200, "{:?}", d.body);
    let revoked = Instant::now();
    reached_after(&outcomes, revoked, apps.len()).await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    refused_after(&outcomes, revoked, apps.len(), "operator was disabled");
}

/// The same for an org's API key: once the rotation is acknowledged, the old key is 401
/// everywhere, while a stream of cache hits was using it.
async fn a_rotated_api_key_stops_at_once_under_load(engine: Engine) {
    let apps = replicas(engine).await;
    let api_key = validated_org(&apps[0], &apps[0].admin_token, "rot-org").await;
    let stop = Arc::new(AtomicBool::new(false));
    let (outcomes, tasks) = hammer(&apps, &api_key, "rot-org", &stop);
    until_served(&outcomes, 100).await;
    let r = apps[apps.len() - 1]
        .post("/api/orgs/rot-org/api-key", &apps[0].admin_token, json!({}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let revoked = Instant::now();
    reached_after(&outcomes, revoked, apps.len()).await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    refused_after(&outcomes, revoked, apps.len(), "key was rotated");
}

every_engine!(
    sigkill_during_cache_hits_loses_no_acknowledged_event,
    a_disabled_token_stops_at_once_under_load,
    a_rotated_api_key_stops_at_once_under_load,
);
