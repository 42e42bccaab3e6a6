use std::os::unix::fs::PermissionsExt as _;

use serde_json::Value;

use super::{create_job, customer_key_pairs, jobs_app, keypair_body, unique, wait_job};
use crate::process::BIN;
use crate::support::{Engine, TestApp};

/// `rolegate ARGS…` against `app` as its admin, with the token in the environment.
async fn rolegate(app: &TestApp, home: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("ROLEGATE_") || k.starts_with("XDG_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("HOME", home)
        .env("ROLEGATE_SERVER", &app.base)
        .env("ROLEGATE_TOKEN", &app.admin_token)
        .args(args)
        .output()
        .await
        .unwrap()
}

async fn the_cli_creates_a_key_pair_writes_it_0600_and_waits_on_jobs(engine: Engine) {
    let (app, _) = jobs_app(engine, "", "cli-org").await;
    let home = tempfile::tempdir().unwrap();
    let name = unique("cli");
    let out_file = home.path().join("key.pem");
    let out = rolegate(
        &app,
        home.path(),
        &[
            "keypair",
            "create",
            "--org",
            "cli-org",
            "--name",
            &name,
            "--out",
            out_file.to_str().unwrap(),
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    assert!(out.stdout.is_empty(), "the key went to the file only");
    let pem = std::fs::read_to_string(&out_file).unwrap();
    assert!(pem.contains("PRIVATE KEY"));
    assert_eq!(
        std::fs::metadata(&out_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        !stderr.contains(pem.lines().nth(1).unwrap()),
        "no key on stderr"
    );
    assert!(
        stderr.contains("succeeded"),
        "progress lines off a terminal: {stderr}"
    );
    assert_eq!(customer_key_pairs(&name).len(), 1);
    // An existing file is never overwritten.
    let again = rolegate(
        &app,
        home.path(),
        &[
            "keypair",
            "create",
            "--org",
            "cli-org",
            "--name",
            &unique("cli"),
            "--out",
            out_file.to_str().unwrap(),
        ],
    )
    .await;
    assert!(!again.status.success());

    // `jobs wait` exits non-zero on a failed job (the name is taken now) and says why.
    let r = create_job(
        &app,
        &app.admin_token,
        "cli-org",
        "dup",
        keypair_body(&name),
    )
    .await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    let wait = rolegate(&app, home.path(), &["jobs", "wait", &id]).await;
    let err = String::from_utf8_lossy(&wait.stderr);
    assert!(!wait.status.success(), "{err}");
    assert!(
        err.contains("aws_error") && err.contains("InvalidKeyPair.Duplicate"),
        "{err}"
    );
    let job: Value = serde_json::from_slice(&wait.stdout).unwrap();
    assert_eq!(job["state"], "failed");
    let list = rolegate(
        &app,
        home.path(),
        &["jobs", "list", "--org", "cli-org", "--state", "failed"],
    )
    .await;
    assert!(list.status.success());
    let list: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list["jobs"].as_array().unwrap().len(), 1, "{list}");
    let bad = rolegate(&app, home.path(), &["jobs", "show", "../../api/orgs"]).await;
    assert!(!bad.status.success());
}

async fn a_job_that_has_not_called_aws_can_be_cancelled(engine: Engine) {
    // No workers here: the job stays queued.
    let (app, _) = jobs_app(engine, "workers = 0\n", "cancel-org").await;
    let r = create_job(
        &app,
        &app.admin_token,
        "cancel-org",
        "c",
        keypair_body(&unique("c")),
    )
    .await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    let c = app
        .post(
            &format!("/api/jobs/{id}/cancel"),
            &app.admin_token,
            serde_json::json!({}),
        )
        .await;
    assert_eq!(c.status, 200, "{:?}", c.body);
    assert_eq!(c.body["state"], "cancelled");
    let again = app
        .post(
            &format!("/api/jobs/{id}/cancel"),
            &app.admin_token,
            serde_json::json!({}),
        )
        .await;
    assert_eq!((again.status, again.code()), (409, "not_cancellable"));
    let job = wait_job(&app, &app.admin_token, &id).await;
    assert_eq!(job["state"], "cancelled");
    let s = app
        .get(&format!("/api/jobs/{id}/secret"), &app.admin_token)
        .await;
    assert_eq!((s.status, s.code()), (409, "job_not_finished"));
    let events = app.audit_events().await;
    assert!(events.iter().any(|e| e.action == "job.cancel"
        && e.target.as_deref() == Some(id.as_str())
        && e.code.is_none()));
}

crate::both_engines!(
    the_cli_creates_a_key_pair_writes_it_0600_and_waits_on_jobs,
    a_job_that_has_not_called_aws_can_be_cancelled,
);
