//! `POST /api/validate`: GetCallerIdentity on submitted credentials.

use serde_json::json;

use super::errors::{fake_sts, replica_at};
use super::{creds_app, issue};
use crate::onboarding::{CUSTOMER, validated_org};
use crate::support::{Engine, customer_credentials};

async fn credentials_are_checked_against_the_org(engine: Engine) {
    let limits = "[rate_limits]\nvalidate_per_principal = { burst = 6, period_secs = 60 }\n";
    let app = creds_app(engine, limits).await;
    let key = validated_org(&app, &app.admin_token, "val-org").await;
    let c = issue(&app, &key, json!({"org_name": "val-org"})).await.body;
    let body = json!({
        "org_name": "val-org",
        "access_key_id": c["access_key_id"],
        "secret_access_key": c["secret_access_key"],
        "session_token": c["session_token"],
    });
    let r = app.post("/api/validate", &key, body.clone()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["valid"], true);
    assert_eq!(r.body["matches_org"], true);
    assert_eq!(r.body["account"], CUSTOMER);
    assert_eq!(r.body["arn"], c["assumed_role_arn"]);
    // Valid credentials of some other role in the same account do not match the org.
    let (id, secret, token) = customer_credentials(CUSTOMER);
    let other = json!({"org_name": "val-org", "access_key_id": id, "secret_access_key": secret, "session_token": token});
    let r = app.post("/api/validate", &key, other).await;
    assert_eq!(
        (r.body["valid"].as_bool(), r.body["matches_org"].as_bool()),
        (Some(true), Some(false)),
        "{:?}",
        r.body
    );
    // Bad input names its field.
    let bad = json!({"org_name": "val-org", "access_key_id": "short", "secret_access_key": "x"});
    let r = app.post("/api/validate", &key, bad).await;
    assert_eq!(
        (r.status, r.code(), r.body["error"]["field"].as_str()),
        (400, "invalid_field", Some("access_key_id"))
    );
    // Credentials STS refuses are an answer, not an error (a stand-in STS says so here:
    // moto accepts any key).
    let refusing = replica_at(
        &app,
        engine,
        &fake_sts(403, "InvalidClientTokenId").await,
        limits,
    )
    .await;
    let r = refusing.post("/api/validate", &key, body.clone()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        (r.body["valid"].as_bool(), r.body["matches_org"].as_bool()),
        (Some(false), Some(false))
    );
    assert!(
        r.body["reason"]
            .as_str()
            .unwrap()
            .contains("InvalidClientTokenId"),
        "{:?}",
        r.body
    );
    // The submitted secrets are never audited.
    let text = serde_json::to_string(&app.audit_events().await).unwrap();
    assert!(!text.contains(c["secret_access_key"].as_str().unwrap()));
    assert!(!text.contains(c["session_token"].as_str().unwrap()));
    // The endpoint is rate-limited per principal (the 4 calls above, on this app and
    // its replica, spent 4 of 6; on SQLite the buckets are each process's own (ADR 0016),
    // so this app spent 3).
    let left = if engine == Engine::Sqlite { 3 } else { 2 };
    let mut statuses = Vec::new();
    for _ in 0..=left {
        statuses.push(app.post("/api/validate", &key, body.clone()).await.status);
    }
    let mut expected = vec![200; left];
    expected.push(429);
    assert_eq!(statuses, expected);
}

crate::both_engines!(credentials_are_checked_against_the_org);
