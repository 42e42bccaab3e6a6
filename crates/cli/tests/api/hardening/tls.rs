use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

use super::eventually;
use crate::onboarding::{CUSTOMER, onboarding_toml, validated_org};
use crate::process::BIN;
use crate::support::{AppOptions, Engine, TestApp, moto_url, spawn_with, venv_bin};

/// A private CA and a server certificate it issued for localhost and 127.0.0.1.
struct Pki {
    ca: PathBuf,
    cert: String,
    key: String,
}

fn pki(dir: &Path, name: &str) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("rolegate test CA {name}"),
    );
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let ca_path = dir.join(format!("{name}-ca.pem"));
    std::fs::write(&ca_path, ca.pem()).unwrap();
    Pki {
        ca: ca_path,
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

/// Writes `pki`'s certificate and key where the server reads them.
fn install(pki: &Pki, cert: &Path, key: &Path) {
    std::fs::write(cert, &pki.cert).unwrap();
    std::fs::write(key, &pki.key).unwrap();
}

fn client_trusting(ca: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .tls_built_in_root_certs(false)
        .build()
        .unwrap()
}

/// An app serving TLS with `pki`, its `base` and `client` switched to https.
async fn tls_app(dir: &Path, pki: &Pki, extra: &str) -> TestApp {
    let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
    install(pki, &cert, &key);
    let toml = format!(
        "tls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n{extra}",
        cert.display(),
        key.display()
    );
    let mut app = spawn_with(
        Engine::Sqlite,
        AppOptions {
            toml,
            ..AppOptions::default()
        },
    )
    .await;
    let port = app.base.rsplit(':').next().unwrap().to_owned();
    app.base = format!("https://localhost:{port}");
    app.client = client_trusting(&pki.ca);
    app
}

/// HTTPS with a generated certificate, HSTS on every answer, and a SIGHUP that swaps the
/// certificate for new connections while an open connection keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_serves_hsts_and_reloads_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (pki(dir.path(), "one"), pki(dir.path(), "two"));
    let app = tls_app(dir.path(), &first, "").await;
    let r = app.get("/api/health", "").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=31536000")
    );
    // Plain HTTP on the TLS port gets no answer.
    let plain = app.base.replace("https://", "http://");
    assert!(reqwest::get(format!("{plain}/api/health")).await.is_err());

    install(
        &second,
        &dir.path().join("server.pem"),
        &dir.path().join("server.key"),
    );
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let url = app.url("/api/health");
    let swapped = eventually(10, async || {
        client_trusting(&second.ca).get(&url).send().await.is_ok()
    })
    .await;
    assert!(swapped, "new connections never got the new certificate");
    assert!(
        client_trusting(&first.ca).get(&url).send().await.is_err(),
        "a new connection still gets the old certificate"
    );
    // The connection opened before the reload was not dropped.
    assert_eq!(app.get("/api/health", "").await.status, 200);
}

/// The real AWS CLI gets credentials through `credential_process = rolegate creds` from a
/// server with a private CA's certificate (`--ca-file`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_aws_cli_gets_credentials_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path(), "cli");
    let app = tls_app(dir.path(), &pki, &onboarding_toml(false, "")).await;
    let api_key = validated_org(&app, &app.admin_token, "tls-org").await;
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("aws-config");
    std::fs::write(
        &config,
        format!(
            "[profile rg]\ncredential_process = {BIN} creds --org tls-org --server {} --ca-file {} --format credential-process\nregion = us-east-1\n",
            app.base,
            pki.ca.display()
        ),
    )
    .unwrap();
    let mut cmd = tokio::process::Command::new(venv_bin("aws"));
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") || k.starts_with("ROLEGATE_") || k.starts_with("SSL_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .args([
            "sts",
            "get-caller-identity",
            "--output",
            "json",
            "--profile",
            "rg",
        ])
        .env("HOME", home.path())
        .env("ROLEGATE_API_KEY", &api_key)
        .env("AWS_ENDPOINT_URL", moto_url())
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", home.path().join("none"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let arn = v["Arn"].as_str().unwrap();
    assert!(
        arn.starts_with(&format!(
            "arn:aws:sts::{CUSTOMER}:assumed-role/rolegate-tls-org/"
        )),
        "{arn}"
    );
    // Without the CA the client refuses the server's certificate, and says where it failed.
    let out = tokio::process::Command::new(BIN)
        .args(["creds", "--org", "tls-org", "--server", &app.base])
        .env("HOME", home.path())
        .env("ROLEGATE_API_KEY", &api_key)
        .env_remove("ROLEGATE_CA_FILE")
        .env_remove("SSL_CERT_FILE")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unreachable"), "{stderr}");
    assert!(!stderr.contains(&api_key), "{stderr}");
    let _ = Duration::ZERO;
}

/// Plain HTTP on a non-loopback address is refused unless `allow_plain_http = true`.
#[test]
fn plain_http_off_the_loopback_needs_allow_plain_http() {
    let raw = |toml: &str| -> rolegate_server::RawSettings { toml::from_str(toml).unwrap() };
    let e = raw("listen = \"0.0.0.0:8443\"\n").validate().unwrap_err();
    assert_eq!(e.setting, "listen");
    assert!(e.reason.contains("allow_plain_http"), "{e}");
    assert!(
        raw("listen = \"0.0.0.0:8443\"\nallow_plain_http = true\n")
            .validate()
            .is_ok()
    );
    assert!(raw("listen = \"[::1]:8443\"\n").validate().is_ok());
    let e = raw("tls_cert_file = \"/c.pem\"\n").validate().unwrap_err();
    assert_eq!(e.setting, "tls_key_file");
}
