//! Revocation beyond issuance (issue 12 §3): with `revoke_sessions` the customer role's
//! `rolegate-revocations` policy denies the revoked grant's sessions issued before the
//! revocation (moto, account 111122223333: what rolegate *wrote*, read back with
//! GetRolePolicy, since moto ignores conditions in denies), a second revocation merges, an
//! IAM failure keeps the revocation and is retried, and the cleanup removes the policy once
//! the test clock passes the last affected session's expiry. Jobs under a revoked grant
//! end `grant_ended`.

use std::time::Duration;

use serde_json::{Value, json};

use super::{ACCESS_TOML, creds, decide, people, request};
use crate::both_engines;
use crate::jobs::{create_job, unique, wait_job};
use crate::onboarding::{CUSTOMER, onboarding_app, validated_org};
use crate::support::{Engine, TestApp, aws_cli, customer_credentials};

/// `aws iam …` as the customer: the parsed output, or the error text.
pub(super) fn customer_iam(args: &[&str]) -> Result<Value, String> {
    let (a, b, c) = customer_credentials(CUSTOMER);
    let mut all = vec!["iam"];
    all.extend(args);
    all.extend(["--output", "json"]);
    let out = aws_cli(&all, Some((&a, &b, &c)));
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap_or(Value::Null))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

pub(super) fn revocations(role: &str) -> Result<Value, String> {
    customer_iam(&[
        "get-role-policy",
        "--role-name",
        role,
        "--policy-name",
        "rolegate-revocations",
    ])
    .map(|v| v["PolicyDocument"].clone())
}

/// Polls (real time: the sweeper runs every 100 ms) until `done` holds.
pub(super) async fn eventually<T>(what: &str, mut done: impl FnMut() -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(v) = done() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen");
}

pub(super) async fn events(
    app: &TestApp,
    action: &str,
    org: &str,
) -> Vec<rolegate_core::audit::AuditEvent> {
    app.audit_events()
        .await
        .into_iter()
        .filter(|e| e.action == action && e.org.as_deref() == Some(org))
        .collect()
}

/// Every value the grant-tag statements of `doc` name.
fn revoked_grants(doc: &Value) -> Vec<String> {
    doc["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| {
            s["Condition"]["StringEquals"]["aws:PrincipalTag/rolegate:grant"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

async fn revoke_sessions_writes_merges_retries_and_cleans_up(engine: Engine) {
    let toml = ACCESS_TOML.replace(
        "sweep_interval_ms = 100\n",
        "sweep_interval_ms = 100\nrevoke_sessions = true\n",
    );
    let app = onboarding_app(engine, false, true, &toml).await;
    let p = people(&app).await;
    let org = unique("rv");
    let role = format!("rolegate-{org}");
    validated_org(&app, &p.alice, &org).await;

    // The role does not exist yet in moto: the write fails, the revocation stands.
    let g1 = request(&app, &p.dave, &org, 3600).await;
    let g1 = g1["id"].as_str().unwrap().to_owned();
    assert_eq!(decide(&app, &p.bob, &g1, "approve").await.status, 200);
    assert_eq!(creds(&app, &p.dave, &org, false).await.status, 200);
    let revoked_at = app.clock_now_ms().await / 1000;
    let r = decide(&app, &p.bob, &g1, "revoke").await;
    assert_eq!((r.status, r.body["state"].as_str()), (200, Some("revoked")));
    let r = creds(&app, &p.dave, &org, false).await;
    assert_eq!(r.status, 403, "issuance stopped at once: {:?}", r.body);
    let mut failed = Vec::new();
    for _ in 0..200 {
        failed = events(&app, "access.revocation_write", &org).await;
        if !failed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let f = failed.first().expect("the failed write is audited");
    assert_ne!(f.outcome, rolegate_core::model::Outcome::Success, "{f:?}");
    assert_eq!(f.details["attempts"], 1, "{f:?}");
    let queued = app
        .vault()
        .await
        .store()
        .list(&format!("access/revq/{org}/"), None, 10)
        .await
        .unwrap()
        .items;
    assert_eq!(queued.len(), 1, "the revocation stays queued");
    assert!(revocations(&role).is_err());

    // The role appears; past the backoff (by the test clock) the retry writes the deny.
    customer_iam(&[
        "create-role",
        "--role-name",
        &role,
        "--assume-role-policy-document",
        r#"{"Version":"2012-10-17","Statement":[]}"#,
    ])
    .unwrap();
    app.clock.advance_ms(61_000);
    let doc = eventually("the retried write", || revocations(&role).ok()).await;
    let st = &doc["Statement"][0];
    assert_eq!(st["Effect"], "Deny");
    assert_eq!(st["Action"], "*");
    assert_eq!(st["Resource"], "*");
    assert_eq!(
        st["Condition"]["StringEquals"]["aws:PrincipalTag/rolegate:grant"],
        json!([g1])
    );
    let before = st["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
        .as_str()
        .unwrap();
    let before =
        time::OffsetDateTime::parse(before, &time::format_description::well_known::Rfc3339)
            .unwrap()
            .unix_timestamp();
    assert!(
        (revoked_at..=revoked_at + 60).contains(&before),
        "sessions issued before the revocation (rounded up to the minute): {before} vs {revoked_at}"
    );
    assert_eq!(
        app.vault()
            .await
            .store()
            .list(&format!("access/revq/{org}/"), None, 10)
            .await
            .unwrap()
            .items
            .len(),
        0
    );

    // A second revocation merges into the same policy.
    let g2 = request(&app, &p.dave, &org, 1800).await;
    let g2 = g2["id"].as_str().unwrap().to_owned();
    assert_eq!(decide(&app, &p.carol, &g2, "approve").await.status, 200);
    assert_eq!(decide(&app, &p.carol, &g2, "revoke").await.status, 200);
    let doc = eventually("the merge", || {
        revocations(&role)
            .ok()
            .filter(|d| revoked_grants(d).contains(&g2))
    })
    .await;
    let mut both = revoked_grants(&doc);
    both.sort();
    let mut want = vec![g1.clone(), g2.clone()];
    want.sort();
    assert_eq!(both, want, "{doc}");

    // Past the last affected session's expiry (grant end, + margin) the cleanup deletes it.
    app.clock.advance_ms(4_200_000);
    eventually("the cleanup", || revocations(&role).err()).await;
    let writes = events(&app, "access.revocation_write", &org).await;
    assert!(
        writes.iter().any(|e| e.details["deleted"] == true),
        "{writes:?}"
    );
}

/// A stack job under a grant, held after its submit, ends `grant_ended` when the grant is
/// revoked meanwhile.
async fn a_running_job_stops_when_its_grant_is_revoked(engine: Engine) {
    let app = onboarding_app(
        engine,
        false,
        false,
        &format!("[jobs]\npoll_ms = 50\ntest_step_delay_ms = 2500\n{ACCESS_TOML}"),
    )
    .await;
    let p = people(&app).await;
    let org = unique("jg");
    validated_org(&app, &p.alice, &org).await;
    let g = request(&app, &p.dave, &org, 3600).await;
    let g = g["id"].as_str().unwrap().to_owned();
    assert_eq!(decide(&app, &p.bob, &g, "approve").await.status, 200);
    let body = json!({"kind": "stack.apply", "access_level": "operator", "reason": "test",
        "spec": {"blueprint": "vpc", "name": unique("net"), "parameters": {}}});
    let r = create_job(&app, &p.dave, &org, "k1", body).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    // Wait for the submit (held by the test delay), then revoke.
    for _ in 0..200 {
        let j = app
            .get(&format!("/api/jobs/{id}"), &app.admin_token)
            .await
            .body;
        if j["result"]["operation"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(decide(&app, &p.bob, &g, "revoke").await.status, 200);
    let job = wait_job(&app, &app.admin_token, &id).await;
    assert_eq!(job["state"], "cancelled", "{job}");
    assert_eq!(job["error"]["code"], "grant_ended", "{job}");
    assert_eq!(job["grant_id"], g.as_str(), "{job}");
    assert!(
        job["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["state"] != "running" && s["state"] != "pending"),
        "{job}"
    );
    let ended = events(&app, "job.grant_ended", &org).await;
    assert_eq!(ended.len(), 1, "audited once");
}

both_engines!(
    revoke_sessions_writes_merges_retries_and_cleans_up,
    a_running_job_stops_when_its_grant_is_revoked,
);
