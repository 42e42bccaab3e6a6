use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt as _;

use super::webdriver::Browser;
use super::{events, shot};
use crate::support::{AppOptions, Engine, TestApp, free_port, spawn_with};

/// oauth2-mock-server (npm) on a free port, with the control endpoint of `idp.mjs`.
struct Idp {
    issuer: String,
    control: String,
    _child: tokio::process::Child,
}

fn npm_prefix() -> String {
    let prefix = std::env::var("ROLEGATE_NPM")
        .unwrap_or_else(|_| format!("{}/.cache/rolegate-npm", std::env::var("HOME").unwrap()));
    assert!(
        std::path::Path::new(&prefix)
            .join("node_modules/oauth2-mock-server")
            .exists(),
        "oauth2-mock-server is missing from {prefix}: run ./scripts/test, which installs it with npm"
    );
    prefix
}

impl Idp {
    async fn start() -> Self {
        let (port, control) = (free_port(), free_port());
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/portal/idp.mjs");
        let mut child = tokio::process::Command::new("node")
            .arg(script)
            .env("PORT", port.to_string())
            .env("CONTROL_PORT", control.to_string())
            .env("NPM_PREFIX", npm_prefix())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the mock IdP did not start in 20 s")
            .unwrap();
        assert_eq!(ready.as_deref(), Some("ready"));
        Self {
            issuer: format!("http://127.0.0.1:{port}"),
            control: format!("http://127.0.0.1:{control}"),
            _child: child,
        }
    }

    async fn tell(&self, op: &str, body: Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/{op}", self.control))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
}

async fn oidc_app(engine: Engine, idp: &Idp) -> TestApp {
    let port = free_port();
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "test-client-secret\n").unwrap();
    let (_, path) = secret.keep().unwrap();
    let toml = format!(
        "[oidc]\nissuer = \"{}\"\nclient_id = \"rolegate-test\"\nclient_secret_file = \"{}\"\n\
         redirect_url = \"http://127.0.0.1:{port}/auth/oidc/callback\"\ndisplay_name = \"Test IdP\"\n\
         allowed_domains = [\"example.com\"]\njwks_refetch_cooldown_secs = 0\n\
         [oidc.role_map]\n\"eng\" = \"operator\"\n\"sre-admins\" = \"admin\"\n",
        idp.issuer,
        path.display()
    );
    spawn_with(
        engine,
        AppOptions {
            listen: Some(format!("127.0.0.1:{port}")),
            toml,
            ..Default::default()
        },
    )
    .await
}

/// Clicks "Sign in with Test IdP" from the login page.
async fn sso(b: &Browser, app: &TestApp) {
    b.goto(&app.url("/login")).await;
    b.click("#sso").await;
}

async fn refused(b: &Browser, why: &str) {
    b.wait_text("#error-code", "unauthorized", 10).await;
    let msg = b.text("#error-message").await;
    assert!(msg.contains(why), "{msg}");
}

async fn sign_in_through_the_identity_provider(engine: Engine) {
    let idp = Idp::start().await;
    let app = oidc_app(engine, &idp).await;
    let b = Browser::start().await;
    idp.tell(
        "claims",
        json!({"email": "erin@example.com", "groups": ["eng"]}),
    )
    .await;

    // First login provisions an operator from the groups claim.
    b.goto(&app.url("/login")).await;
    b.find("#sso").await;
    shot(&b, "login-sso").await;
    sso(&b, &app).await;
    b.wait_path("/").await;
    b.find("#register-heading").await;
    let user = app
        .get("/api/users/erin@example.com", &app.admin_token)
        .await;
    assert_eq!(user.status, 200, "{:?}", user.body);
    assert_eq!(user.body["role"], "operator");
    assert_eq!(user.body["disabled"], false);
    let logins = events(&app, "session.login").await;
    assert_eq!(logins.last().unwrap()["details"]["method"], "oidc");
    b.click("form.logout button").await;
    b.wait_path("/login").await;

    // A token for another audience, a replayed nonce, a forged state: each refused.
    idp.tell("next", json!({"aud": "someone-else"})).await;
    sso(&b, &app).await;
    refused(&b, "ID token").await;
    idp.tell("replay-nonce", json!({})).await;
    sso(&b, &app).await;
    refused(&b, "ID token").await;
    b.goto(&app.url("/auth/oidc/callback?code=abc&state=forged"))
        .await;
    refused(&b, "state").await;
    // Another email domain.
    idp.tell("next", json!({"email": "mallory@elsewhere.example"}))
        .await;
    sso(&b, &app).await;
    refused(&b, "domain").await;
    let failed = events(&app, "auth.failed").await;
    let reasons: Vec<&str> = failed
        .iter()
        .filter(|e| e["details"]["credential"] == "oidc")
        .filter_map(|e| e["details"]["reason"].as_str())
        .collect();
    // The first failure from a source in a minute is written at once; the rest of that
    // minute are counted into one event when it ends (audit::failures).
    assert_eq!(reasons.first(), Some(&"id_token"), "{failed:?}");

    // The IdP rotates its signing key: the keys are fetched again, login still works.
    idp.tell("rotate", json!({})).await;
    sso(&b, &app).await;
    b.wait_path("/").await;
    b.find("#register-heading").await;
    b.click("form.logout button").await;
    b.wait_path("/login").await;

    // The groups no longer map to a role: refused, and the operator is disabled.
    idp.tell(
        "claims",
        json!({"email": "erin@example.com", "groups": ["sales"]}),
    )
    .await;
    sso(&b, &app).await;
    refused(&b, "not an operator").await;
    let user = app
        .get("/api/users/erin@example.com", &app.admin_token)
        .await;
    assert_eq!(user.body["disabled"], true, "{:?}", user.body);
    b.quit().await;
}

mod sqlite {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sign_in_through_the_identity_provider() {
        super::sign_in_through_the_identity_provider(Engine::Sqlite).await;
    }
}

mod postgres {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sign_in_through_the_identity_provider() {
        super::sign_in_through_the_identity_provider(Engine::Postgres).await;
    }
}
