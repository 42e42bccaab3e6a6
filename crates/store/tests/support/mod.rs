//! Test harness for the conformance suite: a temporary SQLite file per test; one private
//! PostgreSQL cluster per test binary with a schema per test (see `pg.rs`); and one private
//! `redis-server` per test binary with a unique key prefix per test. Never a pre-existing
//! server.

/// The private PostgreSQL cluster (shared with the API tests, which include it by path).
pub mod pg;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rolegate_core::ports::KvStore;
use rolegate_store::{PostgresStore, RedisStore, SqliteStore};
use tempfile::TempDir;

/// A store under test plus whatever must live as long as it.
pub struct Fixture {
    pub store: Arc<dyn KvStore>,
    pub _dir: Option<TempDir>,
}

pub fn sqlite_fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("db").join("test.db")).expect("open sqlite");
    Fixture {
        store: Arc::new(store),
        _dir: Some(dir),
    }
}

/// A unique key prefix for one test on the shared server.
pub fn unique_prefix(test: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "t{}-{}:{test}:",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub async fn postgres_fixture(test: &str) -> Fixture {
    let store = PostgresStore::connect(&pg::pg_url(test))
        .await
        .expect("connect to the test PostgreSQL");
    Fixture {
        store: Arc::new(store),
        _dir: None,
    }
}

pub async fn redis_fixture(test: &str) -> Fixture {
    let store = RedisStore::connect(&redis_url(), &unique_prefix(test))
        .await
        .expect("connect to test redis");
    Fixture {
        store: Arc::new(store),
        _dir: None,
    }
}

/// The URL of this test binary's private redis-server, starting it on first use.
/// Panics (failing the test) when redis-server is not installed.
pub fn redis_url() -> String {
    format!("redis://127.0.0.1:{}/0", server().port)
}

struct Server {
    port: u16,
    // The watchdog shell: it runs redis-server and kills it once this process is gone, so the
    // server never outlives the tests even though statics are not dropped at exit.
    _watchdog: Mutex<Child>,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
    match SERVER.get_or_init(start_server) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

const WATCHDOG: &str = r#"
"$1" --port "$2" --bind 127.0.0.1 --save '' --appendonly no --daemonize no --loglevel warning >/dev/null 2>&1 &
r=$!
while kill -0 "$3" 2>/dev/null && kill -0 "$r" 2>/dev/null; do sleep 0.2; done
kill "$r" 2>/dev/null
wait "$r" 2>/dev/null
"#;

fn start_server() -> Result<Server, String> {
    let bin = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned());
    let found = Command::new(&bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !matches!(found, Ok(s) if s.success()) {
        return Err(format!(
            "the Redis conformance tests need `{bin}` (install redis-server, or set REDIS_SERVER to its path)"
        ));
    }
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
        l.local_addr().map_err(|e| e.to_string())?.port()
    };
    if port == 6379 {
        return Err("refusing to use the default Redis port".into());
    }
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG)
        .arg("sh")
        .arg(&bin)
        .arg(port.to_string())
        .arg(std::process::id().to_string())
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot spawn redis-server watchdog: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if answers_ping(port) {
            return Ok(Server {
                port,
                _watchdog: Mutex::new(child),
            });
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "redis-server on port {port} exited early: {status}"
            ));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(format!(
                "redis-server on port {port} did not answer PING within 10s"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn answers_ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}
