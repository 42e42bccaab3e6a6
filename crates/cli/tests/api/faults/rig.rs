//! One `rolegate serve` process under test: its data directory, store, master key and
//! config file, so that it can be SIGKILLed and started again on the same store. The base
//! URL is shared with the load client, which follows the restarted server to its new port.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::{Value, json};

use crate::onboarding::{CUSTOMER, notice, sign};
use crate::process::{Server, start_with_args};
use crate::support::{free_port, venv_bin};

/// Settings for the fault scenarios: STS at `moto`, onboarding callbacks accepted from
/// moto's customer account (which does not enforce the ExternalId), rate limits out of the
/// way of the load (they are not under test here), then `extra`.
pub fn config(moto: &str, aws_extra: &str, extra: &str) -> String {
    let open = "{ burst = 1000000, period_secs = 1 }";
    format!(
        "{extra}\n[aws]\nregion = \"us-east-1\"\nendpoint_url = \"{moto}\"\naccess_key_id = \"testing\"\n\
         secret_access_key = \"testing\"\n{aws_extra}\n\
         [onboarding]\nprovider_account_id = \"123456789012\"\n\
         provider_principal_arn = \"arn:aws:iam::123456789012:user/moto\"\nverify_delay_ms = 10\n\
         require_external_id_enforcement = false\n\
         [rate_limits]\ncallback_per_ip = {open}\ncallback_per_org = {open}\n\
         credentials_per_principal = {open}\ncredentials_per_org = {open}\n"
    )
}

pub struct Rig {
    pub tmp: tempfile::TempDir,
    pub store: String,
    pub key: String,
    config: PathBuf,
    pub server: Option<Server>,
    /// The current base URL, read by the load client before each request.
    pub base: Arc<RwLock<String>>,
    pub token: String,
    pub client: reqwest::Client,
}

impl Rig {
    /// Starts rolegate on `store` (`sqlite` for one in the data directory) with `toml`.
    pub fn start(store: &str, toml: &str) -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), store, toml)
    }

    /// [`start`](Self::start) with the data directory in `tmp`.
    pub fn start_in(tmp: tempfile::TempDir, store: &str, toml: &str) -> Self {
        let config = tmp.path().join("rolegate.toml");
        std::fs::write(&config, toml).unwrap();
        let key = rolegate_crypto::MasterKey::generate().to_base64();
        let mut rig = Self {
            tmp,
            store: store.to_owned(),
            key,
            config,
            server: None,
            base: Arc::new(RwLock::new(String::new())),
            token: String::new(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        };
        rig.restart();
        rig.token = std::fs::read_to_string(rig.data_dir().join("admin.token"))
            .unwrap()
            .trim()
            .to_owned();
        rig
    }

    pub fn data_dir(&self) -> &Path {
        self.tmp.path()
    }

    pub fn base(&self) -> String {
        self.base.read().unwrap().clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    pub fn pid(&self) -> u32 {
        self.server.as_ref().unwrap().child.id()
    }

    /// Starts the server (again) on the same data directory, store and key.
    pub fn restart(&mut self) {
        assert!(self.server.is_none(), "already running");
        let config = self.config.to_str().unwrap().to_owned();
        let server = start_with_args(
            self.tmp.path(),
            &self.store,
            &self.key,
            &[],
            &["--config", &config],
        );
        *self.base.write().unwrap() = server.base.clone();
        self.server = Some(server);
    }

    /// SIGKILL: no graceful shutdown, no flush.
    pub fn kill(&mut self) {
        if let Some(mut s) = self.server.take() {
            let _ = s.child.kill();
            let _ = s.child.wait();
        }
    }

    /// The store as a tool or another replica sees it.
    pub async fn vault(&self) -> rolegate_core::vault::Vault {
        let store = rolegate_store::connect(&self.store, self.data_dir())
            .await
            .unwrap();
        let keys = rolegate_crypto::MasterKey::from_base64(&self.key).unwrap();
        rolegate_core::vault::Vault::new(
            store,
            Arc::new(rolegate_crypto::Keyring::new(&[keys]).unwrap()),
        )
    }

    /// Registers `name` and validates it through a signed callback from moto's customer
    /// account. Returns the org's API key.
    pub async fn validated_org(&self, name: &str) -> String {
        let r = self
            .client
            .post(self.url("/api/orgs"))
            .bearer_auth(&self.token)
            .header("idempotency-key", format!("setup-{name}"))
            .json(&json!({"org_name": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let body: Value = r.json().await.unwrap();
        let api_key = body["api_key"].as_str().unwrap().to_owned();
        let rec = self
            .vault()
            .await
            .get::<rolegate_core::orgs::OrgRecord>(&format!("org/{name}"))
            .await
            .unwrap()
            .unwrap();
        let secret = rec.value.callback_secret.expose().to_owned();
        let ts = (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs())
        .to_string();
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let body = notice(name, CUSTOMER, "created");
        let r = self
            .client
            .post(self.url("/api/integrations/validate"))
            .header("content-type", "application/json")
            .header("x-sig-timestamp", &ts)
            .header("x-sig-nonce", &nonce)
            .header("x-sig-signature", sign(&secret, &ts, &nonce, &body))
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap_or_default();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "validated", "{body}");
        api_key
    }

    /// `n` validated orgs named `<prefix>-<i>`, each with one credential issuance already
    /// cached (so that the load's warm requests are cache hits from the start).
    pub async fn orgs(&self, prefix: &str, n: usize) -> Vec<super::ledger::Org> {
        let mut orgs = Vec::new();
        for i in 0..n {
            let name = format!("{prefix}-{i}");
            let key = self.validated_org(&name).await;
            let (status, code, _) = self
                .call(
                    self.client
                        .post(self.url("/api/credentials"))
                        .header("x-api-key", &key)
                        .json(&json!({"org_name": name})),
                )
                .await;
            assert_eq!(status, 200, "{code}");
            orgs.push(super::ledger::Org { name, key });
        }
        orgs
    }

    /// `(status, code, Retry-After)` of a request built on this rig's client.
    pub async fn call(&self, req: reqwest::RequestBuilder) -> (u16, String, Option<String>) {
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let retry = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body: Value = r.json().await.unwrap_or_default();
        let code = body["error"]["code"].as_str().unwrap_or("").to_owned();
        (status, code, retry)
    }

    /// What `/proc` says about the server: resident set (KiB), open descriptors, threads.
    pub fn process_stats(&self) -> ProcStats {
        ProcStats::of(self.pid())
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.kill();
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ProcStats {
    pub rss_kib: u64,
    pub fds: u64,
    pub threads: u64,
}

impl ProcStats {
    pub fn of(pid: u32) -> Self {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64);
        Self {
            rss_kib: field("VmRSS:"),
            fds,
            threads: field("Threads:"),
        }
    }
}

/// A `moto_server` of the scenario's own (the shared one must not be killed), on a fixed
/// port so that it can come back where rolegate expects it.
pub struct Moto {
    child: Option<Child>,
    pub port: u16,
}

impl Moto {
    pub fn start() -> Self {
        let mut m = Self {
            child: None,
            port: free_port(),
        };
        m.restart();
        m
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn restart(&mut self) {
        assert!(self.child.is_none());
        let child = Command::new(venv_bin("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("moto_server did not start on port {}", self.port);
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A redis-server of the scenario's own, with the append-only file, on a fixed port and
/// directory so that a restart reloads what it had acknowledged.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Redis {
    pub fn start() -> Self {
        let mut r = Self {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
        };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/?prefix=faults:", self.port)
    }

    pub fn restart(&mut self) {
        assert!(self.child.is_none());
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
            ])
            .args(["--dir", self.dir.path().to_str().unwrap()])
            .args(["--loglevel", "warning"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/test installs it)");
        self.child = Some(child);
        for _ in 0..200 {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                use std::io::{Read as _, Write as _};
                let _ = s.write_all(b"PING\r\n");
                let mut buf = [0u8; 7];
                if s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n" {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    /// SIGKILL: the append-only file has every write Redis acknowledged (in the page cache).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
