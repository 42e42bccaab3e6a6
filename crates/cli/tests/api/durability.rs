//! Durability on PostgreSQL, with the real binary: SIGKILL of rolegate after acknowledged
//! writes, and PostgreSQL's own crash (`pg_ctl stop -m immediate`) under load. A ledger
//! keeps every write rolegate acknowledged; all of it must be there afterwards.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::process::start;
use crate::support::pg::{PgCluster, pg_url};

fn admin(data_dir: &std::path::Path) -> String {
    std::fs::read_to_string(data_dir.join("admin.token"))
        .unwrap()
        .trim()
        .to_owned()
}

/// Registers `name`; `Some(status, code)` when rolegate answered.
async fn register(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    name: &str,
) -> Option<(u16, String)> {
    let r = client
        .post(format!("{base}/api/orgs"))
        .bearer_auth(token)
        .header("idempotency-key", name)
        .json(&json!({"org_name": name}))
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .ok()?;
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    Some((
        status,
        body["error"]["code"].as_str().unwrap_or("").to_owned(),
    ))
}

/// Every name in `ledger` is an org on the server at `base`.
async fn assert_all_present(client: &reqwest::Client, base: &str, token: &str, ledger: &[String]) {
    for name in ledger {
        let r = client
            .get(format!("{base}/api/orgs/{name}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "acknowledged org {name} was lost");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_after_acknowledged_writes_loses_none() {
    let tmp = tempfile::tempdir().unwrap();
    let store = pg_url("sigkill");
    let key = rolegate_crypto::MasterKey::generate().to_base64();
    let mut server = start(tmp.path(), &store, &key);
    let token = admin(tmp.path());
    let client = reqwest::Client::new();
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let (client, base, token) = (client.clone(), server.base.clone(), token.clone());
            tokio::spawn(async move {
                let name = format!("killed-{i}");
                let r = register(&client, &base, &token, &name).await;
                (r.map(|(s, _)| s) == Some(201)).then_some(name)
            })
        })
        .collect();
    let mut ledger = Vec::new();
    for t in tasks {
        ledger.extend(t.await.unwrap());
    }
    assert_eq!(ledger.len(), 40);
    // SIGKILL right after the last acknowledgement: no graceful shutdown, no flush.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let mut again = start(tmp.path(), &store, &key);
    assert_all_present(&client, &again.base, &token, &ledger).await;
    again.child.kill().unwrap();
    let _ = again.child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_crash_under_load_loses_no_acknowledged_write() {
    // A cluster of its own (with fsync on), since this test crashes it.
    let cluster = PgCluster::start(true).unwrap();
    cluster.create_schema("crash");
    let store = cluster.url("crash");
    let tmp = tempfile::tempdir().unwrap();
    let key = rolegate_crypto::MasterKey::generate().to_base64();
    let server = start(tmp.path(), &store, &key);
    let token = admin(tmp.path());
    let client = reqwest::Client::new();

    let ledger = Arc::new(Mutex::new(Vec::<String>::new()));
    let refusals = Arc::new(Mutex::new(BTreeSet::<(u16, String)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (client, base, token) = (client.clone(), server.base.clone(), token.clone());
            let (ledger, refusals, stop, next) = (
                Arc::clone(&ledger),
                Arc::clone(&refusals),
                Arc::clone(&stop),
                Arc::clone(&next),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let name = format!("load-{}", next.fetch_add(1, Ordering::Relaxed));
                    match register(&client, &base, &token, &name).await {
                        Some((201, _)) => ledger.lock().unwrap().push(name),
                        Some(other) => {
                            refusals.lock().unwrap().insert(other);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        None => {}
                    }
                }
            })
        })
        .collect();

    let acked = |n: usize| {
        let ledger = Arc::clone(&ledger);
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            while ledger.lock().unwrap().len() < n {
                assert!(Instant::now() < deadline, "no progress");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    acked(30).await;
    cluster.crash();
    let at_crash = ledger.lock().unwrap().len();

    // While the database is down, rolegate answers 503 store_unavailable (once the last
    // readiness result, kept for up to a second, has aged out).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let ready = client
        .get(format!("{}/api/ready", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["error"]["code"], "store_unavailable");
    let down = register(&client, &server.base, &token, "while-down").await;
    assert_eq!(down, Some((503, "store_unavailable".to_owned())));

    // It recovers without a restart.
    cluster.restart();
    acked(at_crash + 30).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let refusals = refusals.lock().unwrap().clone();
    assert!(
        refusals.iter().all(|(s, _)| *s == 503),
        "only 503s while the database was down: {refusals:?}"
    );
    assert!(
        refusals.contains(&(503, "store_unavailable".to_owned())),
        "{refusals:?}"
    );
    // Readiness is checked at most once a second, so it may report the outage a moment longer.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ready = client
            .get(format!("{}/api/ready", server.base))
            .send()
            .await
            .unwrap();
        if ready.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still not ready: {}",
            ready.status()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let ledger = ledger.lock().unwrap().clone();
    assert_all_present(&client, &server.base, &token, &ledger).await;
    // And straight from the database, not through any cache of rolegate's.
    let rows: usize = cluster
        .psql(
            "SET search_path = crash; SELECT count(*) FROM rolegate_kv WHERE key LIKE 'org/load-%'",
        )
        .parse()
        .unwrap();
    assert!(
        rows >= ledger.len(),
        "{rows} rows < {} acknowledged",
        ledger.len()
    );
    let _ = server.stop();
}
