//! The security review's defects (issue 10) at the edge: timeouts, readiness, `/metrics`
//! authentication, `X-Forwarded-For`, idempotency under disconnects, file permissions,
//! Redis persistence, TLS and the client's redirects.

/// The data directory is 0700 and its files 0600.
mod files;
/// Every `X-Forwarded-For` line is read.
mod forwarded;
/// A client that hangs up mid-registration can still replay its answer.
mod idempotency;
/// `/metrics` shares the failed-authentication limit and audit.
mod metrics_auth;
/// `GET /api/ready` pings the store at most once a second.
mod ready;
/// The client does not follow redirects to another origin.
mod redirect;
/// Redis persistence is checked at start-up.
mod redis;
/// Header-read, body-read and handler timeouts.
mod timeouts;
/// The native TLS listener.
mod tls;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Holds SQLite's write lock on `db` (from another process, as a second writer would) until
/// dropped: every rolegate write waits behind it (up to its 5 s busy timeout).
pub struct WriteLock(Child);

impl WriteLock {
    pub fn hold(db: &Path) -> Self {
        let script = "import sqlite3, sys\n\
                      c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)\n\
                      c.execute('BEGIN IMMEDIATE')\n\
                      print('locked', flush=True)\n\
                      sys.stdin.read()\n";
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "locked");
        Self(child)
    }
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

/// Waits until `f` holds, for at most `secs`.
pub async fn eventually(secs: u64, mut f: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The master key of apps made by [`build`].
pub static MASTER_KEY: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| rolegate_crypto::MasterKey::generate().to_base64());

/// Builds (binds, does not serve) an app on `data_dir` with `store` and the given config.
pub async fn build(
    data_dir: &Path,
    store: &str,
    toml: &str,
) -> anyhow::Result<rolegate_server::Application> {
    let file: rolegate_server::RawSettings = toml::from_str(toml)?;
    let raw = rolegate_server::RawSettings {
        listen: Some("127.0.0.1:0".into()),
        data_dir: Some(data_dir.to_path_buf()),
        store: Some(store.to_owned()),
        master_key: Some(MASTER_KEY.clone()),
        ..rolegate_server::RawSettings::default()
    };
    let settings = file.overlay(raw).validate()?;
    rolegate_server::Application::build(settings).await
}
