use std::time::Duration;

use super::{customer_key_pairs, jobs_app, keypair_body, unique};
use crate::onboarding::onboarding_toml;
use crate::process::{Server, start_with_args};
use crate::support::Engine;

/// The real binary on the test app's store, with `[jobs]` settings `jobs`.
fn serve(app: &crate::support::TestApp, dir: &std::path::Path, jobs: &str) -> Server {
    let config = dir.join(format!("rolegate-{}.toml", uuid::Uuid::new_v4().simple()));
    std::fs::write(
        &config,
        onboarding_toml(
            false,
            &format!("[jobs]\npoll_ms = 50\nlease_secs = 2\n{jobs}"),
        ),
    )
    .unwrap();
    start_with_args(
        &app.data_dir,
        &app.store,
        &app.master_key,
        &[],
        &["--config", config.to_str().unwrap()],
    )
}

async fn get(client: &reqwest::Client, base: &str, token: &str, path: &str) -> serde_json::Value {
    client
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn a_job_killed_mid_step_resumes_after_a_restart_and_makes_one_key_pair(engine: Engine) {
    // The in-process app validates the org and runs no jobs; the binary runs them.
    let (app, _) = jobs_app(engine, "workers = 0\n", "crash-org").await;
    let dir = tempfile::tempdir().unwrap();
    let mut first = serve(&app, dir.path(), "test_step_delay_ms = 60000\n");
    let client = reqwest::Client::new();
    let name = unique("crash");
    let r = client
        .post(format!("{}/api/orgs/crash-org/jobs", first.base))
        .bearer_auth(&app.admin_token)
        .header("idempotency-key", "crash")
        .json(&keypair_body(&name))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Wait until the key pair exists in AWS while the step is held open, then SIGKILL.
    for _ in 0..300 {
        if !customer_key_pairs(&name).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        customer_key_pairs(&name).len(),
        1,
        "the first run made the key pair"
    );
    let job = get(
        &client,
        &first.base,
        &app.admin_token,
        &format!("/api/jobs/{id}"),
    )
    .await;
    assert_eq!(job["state"], "running", "{job}");
    assert_eq!(job["steps"][1]["state"], "running", "{job}");
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let old_id = customer_key_pairs(&name)[0]["KeyPairId"].clone();

    let mut second = serve(&app, dir.path(), "");
    let mut job = serde_json::Value::Null;
    for _ in 0..400 {
        job = get(
            &client,
            &second.base,
            &app.admin_token,
            &format!("/api/jobs/{id}"),
        )
        .await;
        if job["state"] != "running" && job["state"] != "queued" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["attempts"], 2, "{job}");
    let pairs = customer_key_pairs(&name);
    assert_eq!(pairs.len(), 1, "exactly one key pair: {pairs:?}");
    assert_ne!(
        pairs[0]["KeyPairId"], old_id,
        "the lost key was replaced, its private key being gone"
    );
    // The secret handed out is the replacement's.
    let s = client
        .get(format!("{}/api/jobs/{id}/secret", second.base))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(s.status(), 200);
    second.child.kill().unwrap();
    let _ = second.child.wait();
}

async fn a_stack_job_killed_mid_step_resumes_after_a_restart_and_makes_one_stack(engine: Engine) {
    let (app, _) = jobs_app(engine, "workers = 0\n", "crash-stk").await;
    let dir = tempfile::tempdir().unwrap();
    let mut first = serve(&app, dir.path(), "test_step_delay_ms = 60000\n");
    let client = reqwest::Client::new();
    let name = unique("crash");
    let stack = format!("rolegate-crash-stk-{name}");
    let r = client
        .post(format!("{}/api/orgs/crash-stk/jobs", first.base))
        .bearer_auth(&app.admin_token)
        .header("idempotency-key", "crash-stack")
        .json(
            &serde_json::json!({"kind": "stack.apply", "access_level": "operator",
            "spec": {"blueprint": "vpc", "name": name}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let stacks = || {
        super::customer_aws(&["cloudformation", "describe-stacks"])["Stacks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["StackName"] == stack.as_str() && s["StackStatus"] != "DELETE_COMPLETE")
            .cloned()
            .collect::<Vec<_>>()
    };
    // Wait until the stack exists while the submit step is held open, then SIGKILL.
    for _ in 0..300 {
        if !stacks().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stacks().len(), 1, "the first run created the stack");
    let job = get(
        &client,
        &first.base,
        &app.admin_token,
        &format!("/api/jobs/{id}"),
    )
    .await;
    assert_eq!(job["state"], "running", "{job}");
    assert_eq!(job["steps"][1]["state"], "running", "{job}");
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let stack_id = stacks()[0]["StackId"].clone();

    let mut second = serve(&app, dir.path(), "");
    let mut job = serde_json::Value::Null;
    for _ in 0..400 {
        job = get(
            &client,
            &second.base,
            &app.admin_token,
            &format!("/api/jobs/{id}"),
        )
        .await;
        if job["state"] != "running" && job["state"] != "queued" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["attempts"], 2, "{job}");
    assert_eq!(job["result"]["operation"], "create", "{job}");
    let now = stacks();
    assert_eq!(now.len(), 1, "exactly one stack: {now:?}");
    assert_eq!(
        now[0]["StackId"], stack_id,
        "the resumed job recognised its own stack"
    );
    second.child.kill().unwrap();
    let _ = second.child.wait();
}

crate::both_engines!(
    a_job_killed_mid_step_resumes_after_a_restart_and_makes_one_key_pair,
    a_stack_job_killed_mid_step_resumes_after_a_restart_and_makes_one_stack,
);
