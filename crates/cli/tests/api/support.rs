use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rolegate_core::clock::{Clock, ManualClock, SystemClock};
use rolegate_server::config::RawSettings;
use serde_json::{Value, json};

/// The private PostgreSQL cluster of the store crate's tests: one per test binary, a schema
/// per app, reaped by a watchdog. Never the machine's own server.
#[path = "../../../store/tests/support/pg.rs"]
pub mod pg;
/// A stand-in HTTP receiver (Slack, webhooks) that records what it gets.
pub mod recorder;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
    Redis,
}

/// Generates `sqlite`, `postgres` and `redis` variants of async tests taking an `Engine`.
#[macro_export]
macro_rules! both_engines {
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

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One private redis-server per test binary, on a free port. A shell watchdog kills it when
/// this test process exits. Never the machine's own Redis.
pub fn redis_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let port = free_port();
        let pid = std::process::id();
        // rolegate refuses a Redis without the append-only file (issue 10, defect 23). Its
        // directory is a fresh one, removed by the watchdog with the server.
        let dir = tempfile::Builder::new().prefix("rolegate-redis-").tempdir().unwrap().keep();
        let dir = dir.display();
        let script = format!(
            "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly yes --appendfsync everysec --dir '{dir}' --daemonize no --loglevel warning & R=$!; \
             while kill -0 {pid} 2>/dev/null && kill -0 $R 2>/dev/null; do sleep 1; done; kill $R 2>/dev/null; wait $R; rm -rf '{dir}'"
        );
        // The watchdog outlives this call by design; it reaps redis-server itself.
        #[allow(clippy::zombie_processes)]
        let _watchdog = Command::new("bash").arg("-c").arg(script).stdout(Stdio::null()).stderr(Stdio::null()).spawn()
            .expect("bash must exist to start redis-server");
        for _ in 0..100 {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                use std::io::{Read, Write};
                let _ = s.write_all(b"PING\r\n");
                let mut buf = [0u8; 7];
                if s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n" {
                    return format!("redis://127.0.0.1:{port}");
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not start on port {port}: is it installed? (scripts/test installs it)");
    })
}

/// The Python venv that `scripts/test` creates (moto, cfn-lint, the AWS CLI, boto3).
pub fn venv_bin(tool: &str) -> PathBuf {
    let venv = std::env::var("ROLEGATE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/rolegate-venv")
        });
    let path = venv.join("bin").join(tool);
    assert!(
        path.exists(),
        "{} is missing: run ./scripts/test, which installs the test venv",
        path.display()
    );
    path
}

/// moto's request recorder is one per server, and the server is shared by the whole test
/// binary: a test that records holds this from start-recording to reset-recording.
pub static MOTO_RECORDER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One private `moto_server` per test binary, on a free port, reaped by a watchdog when
/// this process exits. moto's default account (123456789012) plays the provider.
pub fn moto_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let port = free_port();
        let pid = std::process::id();
        let moto = venv_bin("moto_server");
        // moto's request recorder (used by the jobs tests) writes to a file of its own,
        // removed with the server, never into the working tree.
        let recording = std::env::temp_dir().join(format!("rolegate-moto-recording-{pid}-{port}"));
        let script = format!(
            "MOTO_RECORDER_FILEPATH='{rec}' '{}' -H 127.0.0.1 -p {port} >/dev/null 2>&1 & M=$!; \
             while kill -0 {pid} 2>/dev/null && kill -0 $M 2>/dev/null; do sleep 1; done; kill $M 2>/dev/null; rm -f '{rec}'",
            moto.display(),
            rec = recording.display()
        );
        // The watchdog outlives this call by design; it reaps moto_server itself.
        #[allow(clippy::zombie_processes)]
        let _watchdog = Command::new("bash").arg("-c").arg(script).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return url;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("moto_server did not start on port {port}");
    })
}

/// Config that points rolegate's AWS calls at moto as the provider account.
pub fn moto_toml() -> String {
    format!(
        "[aws]\nregion = \"us-east-1\"\nendpoint_url = \"{}\"\naccess_key_id = \"testing\"\nsecret_access_key = \"testing\"\nmax_attempts = 1\n",
        moto_url()
    )
}

/// Runs the venv's AWS CLI against moto with the given credentials (provider by default).
pub fn aws_cli(args: &[&str], creds: Option<(&str, &str, &str)>) -> std::process::Output {
    let (id, secret, token) = creds.unwrap_or(("testing", "testing", ""));
    let mut cmd = Command::new(venv_bin("aws"));
    cmd.args(args)
        .env("AWS_ENDPOINT_URL", moto_url())
        .env("AWS_ACCESS_KEY_ID", id)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE");
    if token.is_empty() {
        cmd.env_remove("AWS_SESSION_TOKEN");
    } else {
        cmd.env("AWS_SESSION_TOKEN", token);
    }
    cmd.output().unwrap()
}

/// Credentials acting inside `account` in moto (moto does not need the role to exist).
pub fn customer_credentials(account: &str) -> (String, String, String) {
    let out = aws_cli(
        &[
            "sts",
            "assume-role",
            "--role-arn",
            &format!("arn:aws:iam::{account}:role/test-admin"),
            "--role-session-name",
            "test",
            "--output",
            "json",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = &v["Credentials"];
    (
        c["AccessKeyId"].as_str().unwrap().into(),
        c["SecretAccessKey"].as_str().unwrap().into(),
        c["SessionToken"].as_str().unwrap().into(),
    )
}

pub struct TestApp {
    pub base: String,
    pub admin_token: String,
    pub data_dir: PathBuf,
    pub _tmp: tempfile::TempDir,
    pub client: reqwest::Client,
    pub engine: Engine,
    pub store: String,
    pub master_key: String,
    pub clock: ManualClock,
}

#[derive(Default)]
pub struct AppOptions {
    /// The listen address (default `127.0.0.1:0`), for a test that must know its URL
    /// before the app starts (an OIDC redirect URL).
    pub listen: Option<String>,
    pub store: Option<String>,
    pub master_key: Option<String>,
    pub manual_clock: bool,
    pub toml: String,
}

pub fn store_spec(engine: Engine) -> String {
    match engine {
        Engine::Sqlite => "sqlite".to_owned(),
        Engine::Postgres => pg::pg_url("app"),
        Engine::Redis => format!(
            "{}/?prefix=t{}:",
            redis_url(),
            uuid::Uuid::new_v4().simple()
        ),
    }
}

pub async fn spawn_app(engine: Engine) -> TestApp {
    spawn_with(engine, AppOptions::default()).await
}

pub async fn spawn_with(engine: Engine, opts: AppOptions) -> TestApp {
    if std::env::var("TEST_LOG").is_ok() {
        rolegate_server::telemetry::init(rolegate_server::config::LogFormat::Pretty, "debug");
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = opts.store.unwrap_or_else(|| match engine {
        // An absolute path, so that a second app (a "replica" or a restart) can share it.
        Engine::Sqlite => format!("sqlite://{}", tmp.path().join("rolegate.db").display()),
        Engine::Postgres | Engine::Redis => store_spec(engine),
    });
    let master_key = opts
        .master_key
        .unwrap_or_else(|| rolegate_crypto::MasterKey::generate().to_base64());
    let file: RawSettings = toml::from_str(&opts.toml).unwrap();
    let raw = RawSettings {
        listen: Some(opts.listen.unwrap_or_else(|| "127.0.0.1:0".into())),
        data_dir: Some(tmp.path().to_path_buf()),
        store: Some(store.clone()),
        master_key: Some(master_key.clone()),
        ..RawSettings::default()
    };
    let settings = file.overlay(raw).validate().unwrap();
    let clock = ManualClock::new(SystemClock.now_ms());
    let clock_dyn: Arc<dyn Clock> = if opts.manual_clock {
        Arc::new(clock.clone())
    } else {
        Arc::new(SystemClock)
    };
    let app = rolegate_server::Application::build_with_clock(settings, clock_dyn)
        .await
        .unwrap();
    let addr = app.local_addr().unwrap();
    tokio::spawn(app.run_until_stopped());
    let admin_token = std::fs::read_to_string(tmp.path().join("admin.token"))
        .map(|t| t.trim().to_owned())
        .unwrap_or_default();
    TestApp {
        base: format!("http://{addr}"),
        admin_token,
        data_dir: tmp.path().to_path_buf(),
        _tmp: tmp,
        client: reqwest::Client::new(),
        engine,
        store,
        master_key,
        clock,
    }
}

pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub raw: Vec<u8>,
}

impl Resp {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub async fn into_resp(r: reqwest::Response) -> Resp {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let raw = r.bytes().await.unwrap().to_vec();
    let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        body,
        raw,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        into_resp(req.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.send(self.client.get(self.url(path)).bearer_auth(token))
            .await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.send(
            self.client
                .post(self.url(path))
                .bearer_auth(token)
                .json(&body),
        )
        .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Resp {
        self.send(self.client.delete(self.url(path)).bearer_auth(token))
            .await
    }

    /// Registers an org as `token`, with a fresh idempotency key.
    pub async fn register(&self, token: &str, name: &str) -> Resp {
        let key = uuid::Uuid::new_v4().to_string();
        self.send(
            self.client
                .post(self.url("/api/orgs"))
                .bearer_auth(token)
                .header("idempotency-key", key)
                .json(&json!({"org_name": name})),
        )
        .await
    }

    /// Creates an operator and returns its token.
    pub async fn create_user(&self, id: &str, role: &str) -> String {
        let r = self
            .post(
                "/api/users",
                &self.admin_token,
                json!({"user_id": id, "role": role}),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        r.body["token"].as_str().unwrap().to_owned()
    }

    /// Every event in the audit log (read straight from the store).
    pub async fn audit_events(&self) -> Vec<rolegate_core::audit::AuditEvent> {
        let vault = self.vault().await;
        vault
            .list_all::<rolegate_core::audit::AuditEvent>(rolegate_core::audit::EVENT_PREFIX)
            .await
            .unwrap()
            .into_iter()
            .map(|(_, e)| e)
            .collect()
    }

    /// A second view of the same store and keys, as a tool or another replica would have.
    pub async fn vault(&self) -> rolegate_core::vault::Vault {
        let store = rolegate_store::connect(&self.store, &self.data_dir)
            .await
            .unwrap();
        let keys = rolegate_crypto::MasterKey::from_base64(&self.master_key).unwrap();
        rolegate_core::vault::Vault::new(
            store,
            Arc::new(rolegate_crypto::Keyring::new(&[keys]).unwrap()),
        )
    }
}
