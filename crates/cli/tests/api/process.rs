//! Tests that run the real `rolegate` binary as a separate process.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::json;

use crate::support::{Engine, store_spec};

pub const BIN: &str = env!("CARGO_BIN_EXE_rolegate");

pub struct Server {
    pub child: Child,
    pub base: String,
}

/// Starts `rolegate serve` on a free port and waits for its "listening" line.
pub fn start(data_dir: &std::path::Path, store: &str, key: &str) -> Server {
    let mut child = Command::new(BIN)
        .args([
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--store",
            store,
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .env("ROLEGATE_MASTER_KEY", key)
        .env("ROLEGATE_LOG_LEVEL", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("server exited before listening")
            .unwrap();
        if let Some(rest) = line.strip_prefix("rolegate listening on ") {
            break rest.trim().to_owned();
        }
    };
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server { child, base }
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
        Engine::Redis => store_spec(engine),
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
