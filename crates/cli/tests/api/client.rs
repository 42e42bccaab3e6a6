//! The real `rolegate creds` / `rolegate console` binary against the real server, read by
//! real AWS clients: the venv's AWS CLI and boto3, pointed at moto. Every process runs with
//! a temporary HOME and explicit AWS_* files, never the machine's own.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::Value;

use crate::onboarding::{CUSTOMER, onboarding_app, validated_org};
use crate::process::BIN;
use crate::support::{Engine, TestApp, moto_url, venv_bin};

/// A validated org, its API key in a 0600 client config file, and a temporary HOME.
pub(crate) struct Setup {
    pub(crate) app: TestApp,
    pub(crate) org: String,
    pub(crate) api_key: String,
    pub(crate) home: tempfile::TempDir,
}

pub(crate) async fn setup(org: &str) -> Setup {
    let app = onboarding_app(Engine::Sqlite, false, false, "").await;
    let api_key = validated_org(&app, &app.admin_token, org).await;
    let home = tempfile::tempdir().unwrap();
    let s = Setup {
        app,
        org: org.to_owned(),
        api_key,
        home,
    };
    s.write_private(
        "rolegate.toml",
        &format!("server = \"{}\"\napi_key = \"{}\"\n", s.app.base, s.api_key),
    );
    s
}

impl Setup {
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    pub(crate) fn write_private(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    }

    /// The org role's assumed-role ARN prefix (the session name follows).
    pub(crate) fn role_arn_prefix(&self) -> String {
        format!(
            "arn:aws:sts::{CUSTOMER}:assumed-role/rolegate-{}/",
            self.org
        )
    }

    /// `rolegate creds --org ORG --config-file …` followed by `args`, as a shell command line.
    fn creds_command(&self, args: &str) -> String {
        format!(
            "{BIN} creds --org {} --config-file {} {args}",
            self.org,
            self.path("rolegate.toml").display()
        )
    }

    /// A process with HOME here, no inherited AWS or rolegate settings, AWS pointed at moto.
    pub(crate) fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(program);
        for (k, _) in std::env::vars() {
            if k.starts_with("AWS_") || k.starts_with("ROLEGATE_") || k.starts_with("XDG_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("HOME", self.home.path())
            .env("AWS_ENDPOINT_URL", moto_url())
            .env("AWS_CONFIG_FILE", self.path("aws-config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", self.path("aws-credentials"))
            .env("AWS_EC2_METADATA_DISABLED", "true");
        cmd
    }

    async fn rolegate(&self, args: &[&str]) -> std::process::Output {
        let config = self.path("rolegate.toml");
        let mut cmd = self.command(BIN);
        cmd.args(["creds", "--org", &self.org, "--config-file"])
            .arg(&config)
            .args(args);
        cmd.output().await.unwrap()
    }

    /// The AWS CLI's view of who `profile` is.
    pub(crate) async fn aws_whoami(&self, profile: Option<&str>) -> String {
        let mut cmd = self.command(venv_bin("aws"));
        cmd.args(["sts", "get-caller-identity", "--output", "json"]);
        if let Some(p) = profile {
            cmd.args(["--profile", p]);
        }
        arn_of(cmd.output().await.unwrap())
    }

    /// An AWS config profile whose credentials come from `rolegate creds`.
    fn credential_process_profile(&self, profile: &str) {
        let line = self.creds_command("--format credential-process");
        self.write_private(
            "aws-config",
            &format!("[profile {profile}]\ncredential_process = {line}\nregion = us-east-1\n"),
        );
    }

    fn cache_files(&self) -> Vec<PathBuf> {
        let dir = self.path(".cache/rolegate");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        files.sort();
        files
    }

    async fn issuances(&self) -> usize {
        self.app
            .audit_events()
            .await
            .iter()
            .filter(|e| e.action == "credentials.issue" && e.org.as_deref() == Some(&self.org))
            .count()
    }
}

pub(crate) fn arn_of(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["Arn"].as_str().unwrap().to_owned()
}

pub(crate) fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

pub(crate) fn mtime(p: &Path) -> SystemTime {
    std::fs::metadata(p).unwrap().modified().unwrap()
}

/// Asserts that `stderr` holds none of `secrets`.
pub(crate) fn assert_clean(stderr: &[u8], secrets: &[&str]) {
    let text = String::from_utf8_lossy(stderr);
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        assert!(!text.contains(s), "stderr leaks a secret: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_aws_cli_uses_credential_process_and_the_local_cache() {
    let s = setup("cli-aws-org").await;
    s.credential_process_profile("rg");
    let arn = s.aws_whoami(Some("rg")).await;
    assert!(arn.starts_with(&s.role_arn_prefix()), "{arn}");
    // One private cache file, holding the credentials the AWS CLI used.
    let files = s.cache_files();
    assert_eq!(files.len(), 1, "{files:?}");
    let file = &files[0];
    assert_eq!(mode(file), 0o600);
    assert_eq!(mode(file.parent().unwrap()), 0o700);
    let name = file.file_name().unwrap().to_str().unwrap();
    assert!(
        !name.contains(&s.api_key) && !name.contains(&s.org),
        "{name}"
    );
    let cached: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    assert_eq!(cached["credentials"]["assumed_role_arn"], arn.as_str());
    let issued = s.issuances().await;
    assert_eq!(issued, 1);
    // The second command is served from the cache: the server is not asked again.
    let (before, content) = (mtime(file), std::fs::read(file).unwrap());
    assert_eq!(s.aws_whoami(Some("rg")).await, arn);
    assert_eq!(mtime(file), before);
    assert_eq!(std::fs::read(file).unwrap(), content);
    assert_eq!(
        s.issuances().await,
        issued,
        "the second run reached the server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn boto3_uses_credential_process() {
    let s = setup("cli-boto-org").await;
    s.credential_process_profile("rg");
    let script = "import boto3, json, sys\n\
                  session = boto3.Session(profile_name=sys.argv[1])\n\
                  print(json.dumps(session.client('sts').get_caller_identity()))\n";
    let mut cmd = s.command(venv_bin("python"));
    cmd.args(["-c", script, "rg"]);
    let arn = arn_of(cmd.output().await.unwrap());
    assert!(arn.starts_with(&s.role_arn_prefix()), "{arn}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn env_exports_work_in_a_shell() {
    let s = setup("cli-env-org").await;
    let out = s.rolegate(&["--format", "env"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exports = String::from_utf8(out.stdout).unwrap();
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_CREDENTIAL_EXPIRATION",
        "AWS_REGION",
    ] {
        assert!(exports.contains(&format!("export {var}='")), "{exports}");
    }
    // The shell evaluates the command's output; the AWS CLI gets nothing else.
    let script = format!(
        "set -e; eval \"$({})\"; exec '{}' sts get-caller-identity --output json",
        s.creds_command("--format env"),
        venv_bin("aws").display()
    );
    let mut cmd = s.command("bash");
    cmd.args(["-c", &script]);
    let arn = arn_of(cmd.output().await.unwrap());
    assert!(arn.starts_with(&s.role_arn_prefix()), "{arn}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aws_profile_updates_one_section_of_the_credentials_file() {
    let s = setup("cli-prof-org").await;
    let other = "# managed by hand\n[other]\naws_access_key_id = AKIAKEEPME\naws_secret_access_key = keep/me\n\n";
    let creds_file = s.write_private("aws-credentials", other);
    // The region lives in the config file; the credentials file has only credentials.
    s.write_private("aws-config", "[profile rgp]\nregion = us-east-1\n");
    std::fs::set_permissions(&creds_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = s.rolegate(&["--format", "aws-profile", "rgp"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&creds_file).unwrap();
    assert!(text.starts_with(other), "{text}");
    assert!(
        text[other.len()..].starts_with("[rgp]\naws_access_key_id = "),
        "{text}"
    );
    assert_eq!(mode(&creds_file), 0o600);
    let arn = s.aws_whoami(Some("rgp")).await;
    assert!(arn.starts_with(&s.role_arn_prefix()), "{arn}");
    // Again, the other spelling: the section is updated in place, not added twice.
    let out = s
        .rolegate(&[
            "--format",
            "aws-profile",
            "--profile",
            "rgp",
            "--force-refresh",
        ])
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = std::fs::read_to_string(&creds_file).unwrap();
    assert!(again.starts_with(other), "{again}");
    assert_eq!(again.matches("[rgp]").count(), 1, "{again}");
    assert_eq!(again.lines().count(), text.lines().count());
    assert_ne!(again, text, "--force-refresh issues new credentials");
    assert!(
        s.aws_whoami(Some("rgp"))
            .await
            .starts_with(&s.role_arn_prefix())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failures_name_the_code_and_never_the_key() {
    let s = setup("cli-err-org").await;
    // An unknown API key, from the environment this time.
    let wrong = "rgk_thisisnotarealkey0123456789abcdefghijkl";
    let mut cmd = s.command(BIN);
    cmd.args(["creds", "--org", &s.org, "--format", "credential-process"])
        .args(["--server", &s.app.base])
        .env("ROLEGATE_API_KEY", wrong);
    let out = cmd.output().await.unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("rolegate: unauthorized: "), "{stderr}");
    assert!(stderr.contains("(request "), "{stderr}");
    assert_clean(&out.stderr, &[wrong, &s.api_key]);
    // A real key for another org: forbidden, and the key still not shown.
    let mut cmd = s.command(BIN);
    cmd.args(["creds", "--org", "someone-else", "--config-file"])
        .arg(s.path("rolegate.toml"));
    let out = cmd.output().await.unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("rolegate: forbidden: "), "{stderr}");
    assert_clean(&out.stderr, &[&s.api_key]);
    // A config file with the key inline that others can read is refused before any call.
    let loose = s.write_private("loose.toml", &format!("api_key = \"{}\"\n", s.api_key));
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut cmd = s.command(BIN);
    cmd.args([
        "creds",
        "--org",
        &s.org,
        "--server",
        &s.app.base,
        "--config-file",
    ])
    .arg(&loose);
    let out = cmd.output().await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"));
    assert_clean(&out.stderr, &[&s.api_key]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_successful_credential_process_run_keeps_stderr_clean() {
    let s = setup("cli-quiet-org").await;
    let out = s.rolegate(&["--format", "credential-process"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Version"], 1);
    assert!(v["Expiration"].as_str().unwrap().ends_with('Z'));
    let secrets = [
        v["AccessKeyId"].as_str().unwrap(),
        v["SecretAccessKey"].as_str().unwrap(),
        v["SessionToken"].as_str().unwrap(),
        &s.api_key,
    ];
    assert_clean(&out.stderr, &secrets);
    // From the cache too.
    let again = s.rolegate(&["--format", "credential-process"]).await;
    assert!(again.status.success());
    assert_eq!(again.stdout, out.stdout);
    assert_clean(&again.stderr, &secrets);
}

/// A stand-in for signin.aws.amazon.com, which cannot be reached from here: any
/// getSigninToken gets a fixed token.
async fn stand_in_federation() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/federation",
        axum::routing::get(|| async { r#"{"SigninToken": "stand-in-token"}"# }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/federation")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn console_prints_only_the_sign_in_url() {
    let federation = stand_in_federation().await;
    let toml = format!(
        "[console]\nfederation_url = \"{federation}\"\nissuer = \"https://provider.example/rolegate\"\n"
    );
    let app = onboarding_app(Engine::Sqlite, false, false, &toml).await;
    validated_org(&app, &app.admin_token, "cli-con-org").await;
    let home = tempfile::tempdir().unwrap();
    // An operator token from the environment, sent as a bearer token.
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(["console", "--org", "cli-con-org", "--server", &app.base])
        .args(["--destination", "https://console.aws.amazon.com/s3/"])
        .env("HOME", home.path())
        .env_remove("ROLEGATE_API_KEY")
        .env_remove("ROLEGATE_CLIENT_CONFIG")
        .env("ROLEGATE_TOKEN", &app.admin_token);
    let out = cmd.output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let url = stdout.trim_end();
    assert!(
        url.starts_with(&format!("{federation}?Action=login&")),
        "{url}"
    );
    assert!(url.ends_with("&SigninToken=stand-in-token"), "{url}");
    assert!(
        url.contains("Destination=https%3A%2F%2Fconsole.aws.amazon.com%2Fs3%2F"),
        "{url}"
    );
    assert_clean(&out.stderr, &[&app.admin_token, "stand-in-token"]);
}
