//! `rolegate exec`, `rolegate creds serve`, `rolegate profiles generate`, `completions` and
//! `man`, driven as a user would, with the venv's real AWS CLI and boto3 against moto.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncBufReadExt as _;

use crate::client::{Setup, arn_of, assert_clean, mode, mtime, setup};
use crate::onboarding::CUSTOMER;
use crate::process::BIN;
use crate::support::{moto_url, venv_bin};

impl Setup {
    /// `rolegate exec --org ORG --config-file … EXTRA -- COMMAND…`, stdin closed.
    fn exec(&self, extra: &[&str], command: &[&str]) -> tokio::process::Command {
        let mut cmd = self.command(BIN);
        cmd.args(["exec", "--org", &self.org, "--config-file"])
            .arg(self.path("rolegate.toml"))
            .args(extra)
            .arg("--")
            .args(command)
            .stdin(Stdio::null());
        cmd
    }
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn wait_for_file(path: &Path) -> String {
    for _ in 0..600 {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.ends_with('\n')
        {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} never appeared", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exec_runs_the_aws_cli_in_the_customer_account_and_nowhere_else() {
    let s = setup("cli-exec-org").await;
    let aws = venv_bin("aws");
    let aws = aws.to_str().unwrap();
    // A profile that does not exist and wrong keys: both must be replaced, or the AWS CLI
    // fails or acts as someone else.
    let mut cmd = s.exec(
        &[],
        &[aws, "sts", "get-caller-identity", "--output", "json"],
    );
    cmd.env("AWS_PROFILE", "no-such-profile")
        .env("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG0")
        .env("AWS_SECRET_ACCESS_KEY", "wrong");
    let out = cmd.output().await.unwrap();
    let arn = arn_of(out.clone());
    assert!(arn.starts_with(&s.role_arn_prefix()), "{arn}");
    assert!(arn.contains(CUSTOMER), "{arn}");
    assert_clean(&out.stderr, &[&s.api_key]);

    // What the command sees, and what it does not: rolegate's own key stays behind.
    let script = "printf '%s|%s|%s|%s|%s|%s' \"$ROLEGATE_EXEC_ORG\" \"${AWS_PROFILE-unset}\" \
                  \"${ROLEGATE_API_KEY-unset}\" \"${AWS_REGION-unset}\" \
                  \"${AWS_CREDENTIAL_EXPIRATION-unset}\" \"${AWS_SESSION_TOKEN:+set}\"";
    let mut cmd = s.exec(&[], &["sh", "-c", script]);
    cmd.env("AWS_PROFILE", "x")
        .env("ROLEGATE_API_KEY", &s.api_key);
    let out = cmd.output().await.unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let seen = String::from_utf8(out.stdout).unwrap();
    let parts: Vec<&str> = seen.split('|').collect();
    assert_eq!(
        parts[..4],
        [s.org.as_str(), "unset", "unset", "us-east-1"],
        "{seen}"
    );
    assert!(parts[4].ends_with('Z'), "{seen}");
    assert_eq!(parts[5], "set", "{seen}");
    // The secrets were never in rolegate's arguments: the child's argv is the command's.
    assert_clean(&out.stderr, &[&s.api_key]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exec_returns_the_status_and_refuses_to_nest() {
    let s = setup("cli-exst-org").await;
    for server_mode in [false, true] {
        let extra: &[&str] = if server_mode { &["--server-mode"] } else { &[] };
        let out = s
            .exec(extra, &["sh", "-c", "exit 7"])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
        let out = s.exec(extra, &["sh", "-c", "true"]).output().await.unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let out = s.exec(extra, &["/no/such/command"]).output().await.unwrap();
        assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("/no/such/command"),
            "{}",
            stderr(&out)
        );
    }
    // Killed by a signal: a shell reports 128 + N; in server mode rolegate does the same.
    use std::os::unix::process::ExitStatusExt as _;
    let out = s
        .exec(&[], &["sh", "-c", "kill -KILL $$"])
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.signal(),
        Some(9),
        "exec replaced rolegate: {:?}",
        out.status
    );
    let out = s
        .exec(&["--server-mode"], &["sh", "-c", "kill -KILL $$"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));

    // Inside another `rolegate exec`: refused, before any request, unless --force.
    let mut cmd = s.exec(&[], &["sh", "-c", "echo ran"]);
    cmd.env("ROLEGATE_EXEC_ORG", "outer-org");
    let out = cmd.output().await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "the command ran");
    let err = stderr(&out);
    assert!(
        err.contains("\"outer-org\"") && err.contains("--force"),
        "{err}"
    );
    let mut cmd = s.exec(
        &["--force"],
        &["sh", "-c", "printf %s \"$ROLEGATE_EXEC_ORG\""],
    );
    cmd.env("ROLEGATE_EXEC_ORG", "outer-org");
    let out = cmd.output().await.unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), s.org);
}

/// Starts `rolegate exec` on a script that traps TERM, sends SIGTERM to rolegate, and
/// returns (rolegate's pid, the script's pid, the exit status, the marker file's text).
async fn sigterm_exec(s: &Setup, extra: &[&str]) -> (u32, u32, Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let (ready, marker) = (dir.path().join("ready"), dir.path().join("marker"));
    // The loop ends by itself after a minute, so that a failing test leaves no process.
    let script = format!(
        "trap 'echo TERM > {m}; exit 3' TERM; echo $$ > {r}; \
         i=0; while [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; exit 4",
        m = marker.display(),
        r = ready.display()
    );
    let mut cmd = s.exec(extra, &["sh", "-c", &script]);
    let mut child = cmd.kill_on_drop(true).spawn().unwrap();
    let rolegate = child.id().unwrap();
    let script_pid: u32 = wait_for_file(&ready).await.trim().parse().unwrap();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &rolegate.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("rolegate exec did not exit after SIGTERM")
        .unwrap();
    let text = std::fs::read_to_string(&marker).unwrap_or_default();
    (rolegate, script_pid, status.code(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sigterm_to_rolegate_exec_reaches_the_command() {
    let s = setup("cli-sig-org").await;
    // Static keys: rolegate became the command, so the signal is the command's own.
    let (rolegate, script, code, marker) = sigterm_exec(&s, &[]).await;
    assert_eq!(rolegate, script, "exec replaces rolegate with the command");
    assert_eq!((code, marker.as_str()), (Some(3), "TERM\n"));
    // Server mode: rolegate stays as the parent and forwards the signal.
    let (rolegate, script, code, marker) = sigterm_exec(&s, &["--server-mode"]).await;
    assert_ne!(rolegate, script, "server mode runs the command as a child");
    assert_eq!((code, marker.as_str()), (Some(3), "TERM\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exec_server_mode_gives_the_aws_cli_an_endpoint_not_keys() {
    let s = setup("cli-exsrv-org").await;
    let script = format!(
        "test -z \"$AWS_ACCESS_KEY_ID\" && test -n \"$AWS_CONTAINER_AUTHORIZATION_TOKEN\" && \
         case \"$AWS_CONTAINER_CREDENTIALS_FULL_URI\" in http://127.0.0.1:*) ;; *) exit 9;; esac && \
         exec '{}' sts get-caller-identity --output json",
        venv_bin("aws").display()
    );
    let mut cmd = s.exec(&["--server-mode"], &["sh", "-c", &script]);
    cmd.env("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG0");
    let arn = arn_of(cmd.output().await.unwrap());
    assert!(arn.starts_with(&s.role_arn_prefix()), "{arn}");
}

fn v_secret(body: &Value) -> String {
    body["SecretAccessKey"].as_str().unwrap().to_owned()
}

/// The value of `export NAME='…'` in `line`.
fn export_value(line: &str, name: &str) -> String {
    let rest = line
        .strip_prefix(&format!("export {name}='"))
        .unwrap_or_else(|| panic!("not an export of {name}: {line}"));
    rest.strip_suffix('\'').unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn boto3_reads_credentials_from_creds_serve_with_the_token_only() {
    let s = setup("cli-serve-org").await;
    let mut cmd = s.command(BIN);
    cmd.args(["creds", "serve", "--org", &s.org, "--config-file"])
        .arg(s.path("rolegate.toml"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut server = cmd.spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(server.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    let second = lines.next_line().await.unwrap().unwrap();
    let url = export_value(&first, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
    let token = export_value(&second, "AWS_CONTAINER_AUTHORIZATION_TOKEN");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    // Without the token, or with a wrong one: 401 and no credentials.
    let http = reqwest::Client::new();
    for auth in [None, Some("wrong"), Some(&token[..token.len() - 1])] {
        let mut req = http.get(&url);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{auth:?}");
        let body = r.text().await.unwrap();
        assert!(!body.contains("SecretAccessKey"), "{body}");
    }
    let r = http
        .get(&url)
        .header("authorization", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let first_body: Value = r.json().await.unwrap();
    for k in ["AccessKeyId", "SecretAccessKey", "Token", "Expiration"] {
        assert!(
            first_body[k].as_str().is_some_and(|s| !s.is_empty()),
            "{k}: {first_body}"
        );
    }

    // boto3 with nothing but the two variables (and empty HOME and config paths).
    let empty = tempfile::tempdir().unwrap();
    let script = "import boto3, json, sys\n\
                  session = boto3.Session()\n\
                  method = session.get_credentials().method\n\
                  sts = session.client('sts', endpoint_url=sys.argv[1], region_name='us-east-1')\n\
                  print(json.dumps(dict(sts.get_caller_identity(), method=method)))\n";
    let out = tokio::process::Command::new(venv_bin("python"))
        .env_clear()
        .env("HOME", empty.path())
        .env("AWS_CONFIG_FILE", empty.path().join("config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            empty.path().join("credentials"),
        )
        .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", &url)
        .env("AWS_CONTAINER_AUTHORIZATION_TOKEN", &token)
        .args(["-c", script, moto_url()])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["method"], "container-role", "{v}");
    assert_eq!(v["Account"], CUSTOMER, "{v}");
    assert!(
        v["Arn"].as_str().unwrap().starts_with(&s.role_arn_prefix()),
        "{v}"
    );

    // SIGTERM stops it cleanly; its stderr never held a secret.
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &server.id().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = tokio::time::timeout(Duration::from_secs(30), server.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let secret = v_secret(&first_body);
    assert_clean(&out.stderr, &[&token, &s.api_key, &secret]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn creds_serve_refuses_a_non_loopback_address() {
    let s = setup("cli-srvbad-org").await;
    for listen in ["0.0.0.0:0", "[::]:0"] {
        let mut cmd = s.command(BIN);
        cmd.args(["creds", "serve", "--org", &s.org, "--listen", listen]);
        cmd.arg("--config-file").arg(s.path("rolegate.toml"));
        let out = cmd.output().await.unwrap();
        assert!(!out.status.success());
        assert!(out.stdout.is_empty());
        assert!(
            stderr(&out).contains("not a loopback address"),
            "{}",
            stderr(&out)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn profiles_generate_writes_working_profiles_and_a_second_run_changes_nothing() {
    let s = setup("cli-gen-org").await;
    let mine = "# written by hand\n[profile mine]\nregion = eu-west-1\n";
    let config = s.write_private("aws-config", mine);
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o640)).unwrap();
    let generate = || {
        let mut cmd = s.command(BIN);
        cmd.args([
            "profiles",
            "generate",
            "--region",
            "us-east-1",
            "--config-file",
        ])
        .arg(s.path("rolegate.toml"));
        cmd
    };
    let out = generate().output().await.unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let profile = format!("rg-{}-readonly", s.org);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&profile),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.starts_with(&format!("{mine}\n# BEGIN rolegate profiles")),
        "{text}"
    );
    assert!(text.contains(&format!("[profile {profile}]\n")), "{text}");
    // An org API key may use the default level only.
    assert_eq!(text.matches("[profile rg-").count(), 1, "{text}");
    assert!(!text.contains(&s.api_key));
    assert_eq!(mode(&config), 0o640, "the mode is kept");

    let arn = s.aws_whoami(Some(&profile)).await;
    assert!(arn.starts_with(&s.role_arn_prefix()), "{arn}");

    // Again: same bytes, same mtime (not rewritten), and it says so.
    let (before, bytes) = (mtime(&config), std::fs::read(&config).unwrap());
    std::thread::sleep(Duration::from_millis(20));
    let out = generate().output().await.unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("up to date"));
    assert_eq!(std::fs::read(&config).unwrap(), bytes);
    assert_eq!(mtime(&config), before);

    // Hand-written lines after the section survive a rewrite too.
    let later = "\n[profile later]\nregion = ap-south-1\n";
    std::fs::write(&config, format!("{text}{later}")).unwrap();
    let mut cmd = generate();
    cmd.args(["--prefix", "acme-"]);
    let out = cmd.output().await.unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let again = std::fs::read_to_string(&config).unwrap();
    assert!(again.starts_with(mine) && again.ends_with(later), "{again}");
    assert!(again.contains(&format!("[profile acme-{}-readonly]", s.org)));
    assert!(!again.contains(&format!("[profile {profile}]")), "{again}");
    assert_eq!(again.matches("# BEGIN rolegate profiles").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operator_gets_a_profile_per_level_in_a_dry_run() {
    let s = setup("cli-genop-org").await;
    let mut cmd = s.command(BIN);
    cmd.args(["profiles", "generate", "--dry-run", "--server", &s.app.base])
        .env("ROLEGATE_TOKEN", &s.app.admin_token)
        .env("AWS_REGION", "eu-central-1");
    let out = cmd.output().await.unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    for level in ["operator", "readonly"] {
        assert!(
            text.contains(&format!(
                "[profile rg-{org}-{level}]\ncredential_process = {BIN} creds --server {base}/ --org {org} \
                 --access-level {level} --format credential-process\nregion = eu-central-1\n",
                org = s.org,
                base = s.app.base
            )),
            "{text}"
        );
    }
    assert!(!text.contains(&s.app.admin_token));
    assert!(!s.path("aws-config").exists(), "a dry run writes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn completion_scripts_and_the_man_page_are_generated() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let out = tokio::process::Command::new(BIN)
            .args(["completions", shell])
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = String::from_utf8(out.stdout).unwrap();
        for sub in ["exec", "profiles", "completions", "serve"] {
            assert!(script.contains(sub), "{shell} completes no {sub}");
        }
        let path = dir.path().join(format!("rolegate.{shell}"));
        std::fs::write(&path, &script).unwrap();
        // Parse-check with the shell itself, where installed (bash always is).
        let has_shell = std::process::Command::new(shell)
            .arg("-c")
            .arg("true")
            .output()
            .is_ok();
        if shell == "bash" || has_shell {
            let check = std::process::Command::new(shell)
                .arg("-n")
                .arg(&path)
                .output()
                .unwrap();
            assert!(check.status.success(), "{shell} -n: {}", stderr(&check));
        }
    }
    let out = tokio::process::Command::new(BIN)
        .arg("man")
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(
        page.starts_with(".ie") || page.contains(".TH rolegate"),
        "{page}"
    );
    assert!(page.contains("exec") && page.contains("profiles"));
    let out = tokio::process::Command::new(BIN)
        .args(["completions", "tcsh"])
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}
