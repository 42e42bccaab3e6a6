//! SQLite-only checks: durability across reopen, connect specs, shared files, sweeping.

use std::sync::Arc;
use std::time::Duration;

use rolegate_core::ports::{KvStore, RateLimit, StoreError, Txn};
use rolegate_store::{SqliteStore, connect};

#[tokio::test]
async fn data_persists_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("rg.db");
    let limit = RateLimit {
        burst: 1,
        period: Duration::from_secs(3600),
    };
    {
        let s = SqliteStore::open(&path).unwrap();
        assert!(
            s.commit(Txn::new().put("keep/a", vec![0, 1, 2]))
                .await
                .unwrap()
        );
        assert!(
            s.commit(Txn::new().put_ttl("keep/b", b"t".to_vec(), Duration::from_secs(600)))
                .await
                .unwrap()
        );
        assert!(s.rate_step("rl", 1_000, limit).await.unwrap().allowed);
    }
    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.get("keep/a").await.unwrap(), Some(vec![0, 1, 2]));
    assert_eq!(s.get("keep/b").await.unwrap(), Some(b"t".to_vec()));
    assert_eq!(s.list("keep/", None, 10).await.unwrap().items.len(), 2);
    // Rate-limit buckets live in the serving process's memory (ADR 0016): a restart
    // starts every bucket full, and no rate-limit file is written beside the database.
    assert!(
        s.rate_step("rl", 1_000, limit).await.unwrap().allowed,
        "buckets are in memory"
    );
    assert!(!s.rate_step("rl", 1_000, limit).await.unwrap().allowed);
    assert!(!dir.path().join("nested").join("rg.db-ratelimit").exists());
}

#[tokio::test]
async fn connect_specs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for spec in ["", "sqlite"] {
        let s = connect(spec, &data).await.unwrap();
        assert_eq!(s.engine(), "sqlite");
        assert!(
            s.commit(Txn::new().put(format!("spec/{}", spec.len()), vec![1]))
                .await
                .unwrap()
        );
    }
    assert!(data.join("rolegate.db").exists());
    let abs = dir.path().join("abs").join("x.db");
    let spec = format!("sqlite://{}", abs.display());
    assert!(spec.starts_with("sqlite:///"));
    let s = connect(&spec, &data).await.unwrap();
    s.ping().await.unwrap();
    assert!(abs.exists());
    assert!(matches!(
        connect("sqlite://", &data).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(
        matches!(connect("mysql://u:pw@h/db", &data).await, Err(StoreError::Invalid(m)) if m.contains("mysql") && !m.contains("pw"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_handles_on_one_file_stay_atomic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let a: Arc<dyn KvStore> = Arc::new(SqliteStore::open(&path).unwrap());
    let b: Arc<dyn KvStore> = Arc::new(SqliteStore::open(&path).unwrap());
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let s = if i % 2 == 0 {
                Arc::clone(&a)
            } else {
                Arc::clone(&b)
            };
            tokio::spawn(async move {
                for _ in 0..10 {
                    loop {
                        let txn = match s.get("n").await.unwrap() {
                            None => Txn::new().absent("n").put("n", vec![1]),
                            Some(old) => Txn::new()
                                .equals("n", old.clone())
                                .put("n", vec![old[0] + 1]),
                        };
                        if s.commit(txn).await.unwrap() {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(a.get("n").await.unwrap(), Some(vec![80]));
}

#[tokio::test]
async fn expired_rows_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sweep.db");
    let s = SqliteStore::open(&path).unwrap();
    let mut txn = Txn::new();
    for i in 0..20 {
        txn = txn.put_ttl(format!("sw/{i}"), vec![], Duration::from_millis(50));
    }
    assert!(s.commit(txn).await.unwrap());
    tokio::time::sleep(Duration::from_millis(120)).await;
    for i in 0..300 {
        assert!(
            s.commit(Txn::new().put("other", vec![i as u8]))
                .await
                .unwrap()
        );
    }
    let raw = rusqlite::Connection::open(&path).unwrap();
    let left: i64 = raw
        .query_row("SELECT count(*) FROM kv WHERE key LIKE 'sw/%'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(left, 0);
}

const CHILD_DB: &str = "ROLEGATE_STORE_SIGKILL_DB";

/// Runs in a child process (re-executed test binary) when `CHILD_DB` is set: acknowledges
/// each commit on stdout, then waits to be killed. A no-op in a normal test run.
#[tokio::test]
async fn sigkill_child_writer() {
    let Ok(path) = std::env::var(CHILD_DB) else {
        return;
    };
    let s = SqliteStore::open(std::path::Path::new(&path)).unwrap();
    for i in 0..50u32 {
        assert!(
            s.commit(Txn::new().put(format!("ack/{i:03}"), i.to_le_bytes().to_vec()))
                .await
                .unwrap()
        );
        println!("ACK {i}");
    }
    tokio::time::sleep(Duration::from_secs(60)).await;
}

#[tokio::test]
async fn acknowledged_writes_survive_sigkill() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kill.db");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "engine_specific::sqlite_only::sigkill_child_writer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DB, &path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut acked = 0;
    for line in stdout.lines() {
        if line.unwrap().contains("ACK ") {
            acked += 1;
            if acked == 50 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(acked, 50);
    let s = SqliteStore::open(&path).unwrap();
    let page = s.list("ack/", None, 100).await.unwrap();
    assert_eq!(page.items.len(), 50, "every acknowledged commit survived");
}
