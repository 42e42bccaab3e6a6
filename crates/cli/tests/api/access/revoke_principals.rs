//! `revoke_sessions` for principals (issue 12 §3): disabling an operator denies, in the
//! customer role of each org where it obtained credentials, the sessions issued to its
//! SourceIdentity before the disable, and nothing in an org it never used; rotating an API
//! key denies `apikey.<old key id>` in its org. Read back from moto (account
//! 111122223333) with GetRolePolicy; the cleanup removes both once the test clock passes
//! the longest session's end.

use serde_json::{Value, json};

use super::revoke::{customer_iam, events, eventually, revocations};
use super::{ACCESS_TOML, people};
use crate::both_engines;
use crate::credentials::issue;
use crate::jobs::unique;
use crate::onboarding::{onboarding_app, validated_org};
use crate::support::{Engine, TestApp};

/// Every value the SourceIdentity statements of `doc` name, sorted.
fn identities(doc: &Value) -> Vec<String> {
    let mut out: Vec<String> = doc["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| {
            s["Condition"]["StringEquals"]["aws:SourceIdentity"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

fn create_role(role: &str) {
    customer_iam(&[
        "create-role",
        "--role-name",
        role,
        "--assume-role-policy-document",
        r#"{"Version":"2012-10-17","Statement":[]}"#,
    ])
    .unwrap();
}

async fn queued(app: &TestApp, org: &str) -> usize {
    app.vault()
        .await
        .store()
        .list(&format!("access/revq/{org}/"), None, 10)
        .await
        .unwrap()
        .items
        .len()
}

async fn key_id(app: &TestApp, org: &str) -> String {
    app.vault()
        .await
        .get::<rolegate_core::orgs::OrgRecord>(&format!("org/{org}"))
        .await
        .unwrap()
        .unwrap()
        .value
        .api_key_id
}

async fn a_disabled_operator_and_a_rotated_key_lose_their_sessions(engine: Engine) {
    let toml = ACCESS_TOML.replace(
        "sweep_interval_ms = 100\n",
        "sweep_interval_ms = 100\nrevoke_sessions = true\n",
    );
    let app = onboarding_app(engine, false, true, &toml).await;
    let p = people(&app).await;
    let (used, untouched) = (unique("ru"), unique("rn"));
    let key = validated_org(&app, &p.alice, &used).await;
    validated_org(&app, &p.alice, &untouched).await;
    let (role, other_role) = (format!("rolegate-{used}"), format!("rolegate-{untouched}"));
    create_role(&role);
    create_role(&other_role);

    // Alice and the org's key get credentials in one org; in the other alice only looks.
    let r = issue(&app, &p.alice, json!({"org_name": used})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = issue(&app, &key, json!({"org_name": used})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = app.get(&format!("/api/orgs/{untouched}"), &p.alice).await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    let disabled_at = app.clock_now_ms().await / 1000;
    let r = app.delete("/api/users/alice", &app.admin_token).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let doc = eventually("the operator's deny", || {
        revocations(&role)
            .ok()
            .filter(|d| !identities(d).is_empty())
    })
    .await;
    assert_eq!(identities(&doc), vec!["alice".to_owned()], "{doc}");
    let st = &doc["Statement"][0];
    assert_eq!(
        (&st["Effect"], &st["Action"], &st["Resource"]),
        (&json!("Deny"), &json!("*"), &json!("*"))
    );
    let before = st["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
        .as_str()
        .unwrap();
    let before =
        time::OffsetDateTime::parse(before, &time::format_description::well_known::Rfc3339)
            .unwrap()
            .unix_timestamp();
    assert!(
        (disabled_at..=disabled_at + 60).contains(&before),
        "sessions issued before the disable (rounded up to the minute): {before} vs {disabled_at}"
    );

    // Once the lookup settles (by the test clock), the untouched org still has nothing.
    app.clock.advance_ms(121_000);
    let mut settled = None;
    for _ in 0..200 {
        settled = app
            .audit_events()
            .await
            .into_iter()
            .find(|e| e.action == "access.revocation_scope" && e.details["settled"] == true);
        if settled.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let settled = settled.expect("the scope lookup settles");
    assert_eq!(settled.details["queued"], json!([used]), "{settled:?}");
    assert_eq!(settled.target.as_deref(), Some("alice"));
    assert!(
        revocations(&other_role).is_err(),
        "no deny where alice never went"
    );
    assert_eq!(queued(&app, &untouched).await, 0);
    assert!(
        events(&app, "access.revocation_write", &untouched)
            .await
            .is_empty()
    );

    // Rotating the key denies the old key's sessions, in its org.
    let old = key_id(&app, &used).await;
    let r = app
        .post(
            &format!("/api/orgs/{used}/api-key"),
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let want = vec!["alice".to_owned(), format!("apikey.{old}")];
    let doc = eventually("the key's deny", || {
        revocations(&role).ok().filter(|d| identities(d) == want)
    })
    .await;
    assert!(
        doc["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["Sid"].as_str().unwrap().starts_with("RgS")),
        "{doc}"
    );
    assert!(revocations(&other_role).is_err());

    // Past the longest session (at most 12 hours) plus the margin, the cleanup deletes it.
    app.clock.advance_ms(13 * 3_600_000);
    eventually("the cleanup", || revocations(&role).err()).await;
}

both_engines!(a_disabled_operator_and_a_rotated_key_lose_their_sessions);
