use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{AppOptions, Engine, free_port, spawn_with};

/// A private redis-server with the given extra arguments, killed on drop.
struct Redis {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Redis {
    fn start(args: &[&str]) -> Self {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--dir", &dir.path().to_string_lossy()])
            .args(args)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/test installs it)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            url: format!("redis://127.0.0.1:{port}/?prefix=dur:"),
            _dir: dir,
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn refusal(args: &[&str]) -> String {
    let redis = Redis::start(args);
    let tmp = tempfile::tempdir().unwrap();
    match super::build(tmp.path(), &redis.url, "").await {
        Ok(_) => panic!("rolegate started on a Redis started with {args:?}"),
        Err(e) => format!("{e:#}"),
    }
}

/// Without the append-only file, with a lax fsync or an evicting policy, rolegate refuses
/// to start, and the error names each offending setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volatile_redis_is_refused_naming_each_setting() {
    let e = refusal(&["--appendonly", "no"]).await;
    assert!(e.contains("appendonly"), "{e}");
    assert!(e.contains("store_allow_volatile_redis"), "{e}");
    let e = refusal(&[
        "--appendonly",
        "yes",
        "--appendfsync",
        "no",
        "--maxmemory-policy",
        "allkeys-lru",
    ])
    .await;
    assert!(
        e.contains("appendfsync") && e.contains("maxmemory-policy"),
        "{e}"
    );
    assert!(!e.contains("appendonly is"), "{e}");
}

/// A Redis that refuses CONFIG (as managed services do) is refused too, saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_without_config_needs_the_override() {
    let e = refusal(&["--appendonly", "yes", "--rename-command", "CONFIG", ""]).await;
    assert!(e.contains("CONFIG"), "{e}");
    assert!(e.contains("store_allow_volatile_redis"), "{e}");
}

/// `store_allow_volatile_redis = true` starts anyway, and readiness says `degraded`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_override_starts_degraded() {
    let redis = Redis::start(&["--appendonly", "no"]);
    let app = spawn_with(
        Engine::Redis,
        AppOptions {
            store: Some(redis.url.clone()),
            toml: "store_allow_volatile_redis = true\n".into(),
            ..AppOptions::default()
        },
    )
    .await;
    let r = app.get("/api/ready", "").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "degraded");
    assert!(
        r.body["warnings"][0]
            .as_str()
            .unwrap()
            .contains("appendonly"),
        "{:?}",
        r.body
    );
}

/// The harness's own Redis (AOF on, everysec, noeviction) is accepted: ready, not degraded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_redis_is_ready() {
    let app = crate::support::spawn_app(Engine::Redis).await;
    let r = app.get("/api/ready", "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], "ready");
    assert!(r.body.get("warnings").is_none(), "{:?}", r.body);
}
