//! Jobs against moto, as the customer account 111122223333: key pairs made with a session
//! narrowed to the job, handed out once, idempotent, refused and audited; stacks from
//! blueprints and the inventory; the engine's locks, events and crash safety are in the
//! submodules.

use std::time::Duration;

use serde_json::{Value, json};

use crate::onboarding::{CUSTOMER, onboarding_app, validated_org};
use crate::support::{Engine, Resp, TestApp, aws_cli, customer_credentials};

/// `rolegate keypair create` and `rolegate jobs …`; cancelling.
mod cli;
/// SIGKILL mid-step, restart, resume.
mod crash;
/// One job at a time per target, the SSE stream, a role that may not create key pairs.
mod engine;
/// The key pair kinds end to end.
mod keypairs;
/// Stacks from blueprints and the inventory, end to end; their locking, a role without
/// CloudFormation, and refusals (crash safety is in `crash`).
mod stacks;

/// An app whose org `name` is validated through moto, and its API key.
pub(crate) async fn jobs_app(engine: Engine, extra: &str, name: &str) -> (TestApp, String) {
    let app = onboarding_app(
        engine,
        false,
        false,
        &format!("[jobs]\npoll_ms = 50\n{extra}"),
    )
    .await;
    let key = validated_org(&app, &app.admin_token, name).await;
    (app, key)
}

/// `POST /api/orgs/{org}/jobs` with an Idempotency-Key.
pub(crate) async fn create_job(
    app: &TestApp,
    token: &str,
    org: &str,
    idem: &str,
    body: Value,
) -> Resp {
    app.send(
        app.client
            .post(app.url(&format!("/api/orgs/{org}/jobs")))
            .bearer_auth(token)
            .header("idempotency-key", idem)
            .json(&body),
    )
    .await
}

/// Waits until the job has ended and returns it.
pub(crate) async fn wait_job(app: &TestApp, token: &str, id: &str) -> Value {
    for _ in 0..600 {
        let r = app.get(&format!("/api/jobs/{id}"), token).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        if ["succeeded", "failed", "cancelled"].contains(&r.body["state"].as_str().unwrap()) {
            return r.body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {id} did not end");
}

/// The key pairs called `name` in `account` (moto, as that account).
pub(crate) fn key_pairs(account: Option<&str>, name: &str) -> Vec<Value> {
    let creds = account.map(customer_credentials);
    let out = aws_cli(
        &[
            "ec2",
            "describe-key-pairs",
            "--filters",
            &format!("Name=key-name,Values={name}"),
            "--output",
            "json",
        ],
        creds
            .as_ref()
            .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str())),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["KeyPairs"].as_array().unwrap().clone()
}

/// `aws …` as the customer, parsed.
pub(crate) fn customer_aws(args: &[&str]) -> Value {
    let (a, b, c) = customer_credentials(CUSTOMER);
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    let out = aws_cli(&all, Some((&a, &b, &c)));
    assert!(
        out.status.success(),
        "aws {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// The customer's key pairs called `name`.
pub(crate) fn customer_key_pairs(name: &str) -> Vec<Value> {
    key_pairs(Some(CUSTOMER), name)
}

/// A unique key pair name (moto is shared by every test of this binary).
pub(crate) fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

pub(crate) fn keypair_body(name: &str) -> Value {
    json!({"kind": "keypair.create", "spec": {"name": name, "type": "ed25519"}, "access_level": "operator", "reason": "test"})
}
