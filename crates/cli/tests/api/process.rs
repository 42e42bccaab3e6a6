//! Tests that run the real `rolegate` binary as a separate process.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;

use serde_json::json;

use crate::support::{Engine, store_spec};

pub const BIN: &str = env!("CARGO_BIN_EXE_rolegate");

pub struct Server {
    pub child: Child,
    pub base: String,
    stdout: Option<JoinHandle<Vec<String>>>,
    stderr: Option<JoinHandle<Vec<String>>>,
}

/// Starts `rolegate serve` on a free port (log level warn) and waits until it listens.
pub fn start(data_dir: &std::path::Path, store: &str, key: &str) -> Server {
    start_with(data_dir, store, key, &[])
}

/// [`start`] with extra environment variables (they win over the defaults here). The
/// "listening" line is read from stderr; every stdout line (the logs) is kept for [`Server::stop`].
pub fn start_with(
    data_dir: &std::path::Path,
    store: &str,
    key: &str,
    env: &[(&str, &str)],
) -> Server {
    start_with_args(data_dir, store, key, env, &[])
}

/// [`start_with`] with extra arguments after `serve` (`--config FILE`).
pub fn start_with_args(
    data_dir: &std::path::Path,
    store: &str,
    key: &str,
    env: &[(&str, &str)],
    args: &[&str],
) -> Server {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--store",
        store,
        "serve",
        "--listen",
        "127.0.0.1:0",
    ])
    .args(args)
    .env("ROLEGATE_LOG_LEVEL", "warn")
    .env_remove("RUST_LOG")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    // An empty key means "none configured": serve generates one in the data dir.
    if key.is_empty() {
        cmd.env_remove("ROLEGATE_MASTER_KEY");
    } else {
        cmd.env("ROLEGATE_MASTER_KEY", key);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    // Keep draining both pipes so the server never blocks on a full one.
    let stdout = child.stdout.take().unwrap();
    let stdout = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect()
    });
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let base = loop {
        let Some(line) = lines.next() else {
            panic!("server exited before listening; stderr: {seen:?}");
        };
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("rolegate listening on ") {
            break rest.trim().to_owned();
        }
        seen.push(line);
    };
    let stderr = std::thread::spawn(move || {
        seen.extend(lines.map_while(Result::ok));
        seen
    });
    Server {
        child,
        base,
        stdout: Some(stdout),
        stderr: Some(stderr),
    }
}

impl Server {
    /// Stops the server gracefully (SIGTERM) and returns its stdout and stderr lines.
    pub fn stop(mut self) -> (Vec<String>, Vec<String>) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.child.wait().unwrap();
        let out = self.stdout.take().unwrap().join().unwrap();
        let err = self.stderr.take().unwrap().join().unwrap();
        (out, err)
    }
}

fn admin(data_dir: &std::path::Path) -> String {
    std::fs::read_to_string(data_dir.join("admin.token"))
        .unwrap()
        .trim()
        .to_owned()
}

async fn an_acknowledged_write_survives_sigkill(engine: Engine) {
    let tmp = tempfile::tempdir().unwrap();
    let store = match engine {
        Engine::Sqlite => "sqlite".to_owned(),
        Engine::Postgres | Engine::Redis => store_spec(engine),
    };
    let key = rolegate_crypto::MasterKey::generate().to_base64();
    let mut server = start(tmp.path(), &store, &key);
    let token = admin(tmp.path());
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/api/orgs", server.base))
        .bearer_auth(&token)
        .header("idempotency-key", "durable")
        .json(&json!({"org_name": "durable-org"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // SIGKILL right after the acknowledgement: no graceful shutdown, no flush.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let mut again = start(tmp.path(), &store, &key);
    let g = client
        .get(format!("{}/api/orgs/durable-org", again.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(g.status(), 200);
    again.child.kill().unwrap();
    let _ = again.child.wait();
}

crate::both_engines!(an_acknowledged_write_survives_sigkill);

/// With no key configured, the first start creates `master.key` (0600) and says where, and
/// writes the first admin's token and says where; a restart reuses both.
#[tokio::test]
async fn a_first_start_generates_the_master_key_and_the_admin_token() {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path(), "sqlite", "");
    let key_path = tmp.path().join("master.key");
    let mode = std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let token = admin(tmp.path());
    let (out, err) = server.stop();
    let key_path = key_path.display().to_string();
    assert!(
        out.iter()
            .any(|l| l.contains("generated") && l.contains(&key_path)),
        "the log names the generated key's path: {out:?}"
    );
    let token_path = tmp.path().join("admin.token").display().to_string();
    assert!(
        err.iter().any(|l| l.contains(&token_path)),
        "stderr names the admin token's file: {err:?}"
    );
    assert!(
        !out.iter().chain(&err).any(|l| l.contains(&token)),
        "the token itself is never printed"
    );
    let again = start(tmp.path(), "sqlite", "");
    let r = reqwest::Client::new()
        .get(format!("{}/api/users", again.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the same key opens the same store");
    drop(again.stop());
}

#[test]
fn an_invalid_setting_stops_startup_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["--data-dir", tmp.path().to_str().unwrap(), "serve"])
        .env("ROLEGATE_LISTEN", "not-an-address")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`listen`"), "{err}");
    let out = Command::new(BIN)
        .args(["--data-dir", tmp.path().to_str().unwrap(), "serve"])
        .env("ROLEGATE_MASTER_KEY", "c2hvcnQ=")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`master_key`") && err.contains("32 bytes"),
        "{err}"
    );
    let cfg = tmp.path().join("bad.toml");
    std::fs::write(&cfg, "store = \"mysql://x\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["--config", cfg.to_str().unwrap(), "serve"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("`store`"));
}

#[test]
fn keygen_and_version_and_offline_admin_token() {
    let out = Command::new(BIN).arg("keygen").output().unwrap();
    let key = String::from_utf8(out.stdout).unwrap();
    assert!(rolegate_crypto::MasterKey::from_base64(key.trim()).is_ok());
    let out = Command::new(BIN).arg("version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("rolegate "));
    // `admin token` works offline against the store, and the token works once served.
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args([
            "--data-dir",
            tmp.path().to_str().unwrap(),
            "admin",
            "token",
            "--user-id",
            "root-2",
        ])
        .env("ROLEGATE_MASTER_KEY", key.trim())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("rgt_"));
    let mut server = start(tmp.path(), "sqlite", key.trim());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let status = rt.block_on(async {
        reqwest::Client::new()
            .get(format!("{}/api/users", server.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 200);
    server.child.kill().unwrap();
    let _ = server.child.wait();
}
