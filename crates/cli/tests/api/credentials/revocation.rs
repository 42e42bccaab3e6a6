//! The security review's credential defects (issue 10: 6, 7, 8, 9), each proved against the
//! running server: no issuance outlives a revocation that lands while STS is being called,
//! no credential answer is stored for replay, nobody spends another org's budget, and a
//! hostile `access_level` is refused without being echoed.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::json;
use tokio::sync::Notify;

use super::errors::replica_at;
use super::{creds_app, issue};
use crate::both_engines;
use crate::onboarding::{CUSTOMER, validated_org};
use crate::support::Engine;

/// A stand-in STS that signals `arrived` when an AssumeRole comes in and answers only once
/// `release` is notified, with well-formed credentials for the customer account.
async fn held_sts(arrived: Arc<Notify>, release: Arc<Notify>) -> String {
    let app = axum::Router::new().fallback(move || {
        let (arrived, release) = (arrived.clone(), release.clone());
        async move {
            arrived.notify_one();
            release.notified().await;
            let expires = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap();
            (
                StatusCode::OK,
                format!(
                    r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials><AccessKeyId>ASIAHELD000000001</AccessKeyId><SecretAccessKey>held-secret</SecretAccessKey><SessionToken>held-token</SessionToken><Expiration>{expires}</Expiration></Credentials><AssumedRoleUser><AssumedRoleId>AROAHELD:s</AssumedRoleId><Arn>arn:aws:sts::{CUSTOMER}:assumed-role/r/s</Arn></AssumedRoleUser></AssumeRoleResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></AssumeRoleResponse>"#
                ),
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// Defect 6: an offboarding that lands while STS is answering wins. The issuance's commit
/// is conditioned on the org record it was authorized against, so the minted credentials
/// are never handed out and no `credentials.issue` success follows `org.offboard`.
async fn an_issuance_in_flight_loses_to_an_offboarding(engine: Engine) {
    let app = creds_app(engine, "").await;
    let key = validated_org(&app, &app.admin_token, "race-org").await;
    let (arrived, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let url = held_sts(arrived.clone(), release.clone()).await;
    let replica = Arc::new(replica_at(&app, engine, &url, "").await);
    let r2 = replica.clone();
    let key2 = key.clone();
    let pending =
        tokio::spawn(async move { issue(&r2, &key2, json!({"org_name": "race-org"})).await });
    tokio::time::timeout(std::time::Duration::from_secs(20), arrived.notified())
        .await
        .expect("the issuance reached STS");
    let off = app.delete("/api/orgs/race-org", &app.admin_token).await;
    assert_eq!(off.status, 200, "{:?}", off.body);
    release.notify_waiters();
    release.notify_one();
    let r = pending.await.unwrap();
    assert_ne!(
        r.status, 200,
        "credentials issued after offboarding: {:?}",
        r.body
    );
    assert!(r.body.get("secret_access_key").is_none());
    let events = app.audit_events().await;
    let offboard = events
        .iter()
        .position(|e| e.action == "org.offboard")
        .expect("offboard audited");
    assert!(
        !events[offboard..]
            .iter()
            .any(|e| e.action == "credentials.issue"
                && e.outcome == rolegate_core::model::Outcome::Success),
        "a successful issuance was recorded after the offboarding"
    );
}

/// Defect 7: credential and console answers are never stored for replay.
async fn idempotency_keys_are_refused_on_credential_endpoints(engine: Engine) {
    let app = creds_app(engine, "").await;
    let key = validated_org(&app, &app.admin_token, "idem-cred").await;
    for path in ["/api/credentials", "/api/credentials/console"] {
        let r = app
            .send(
                app.client
                    .post(app.url(path))
                    .header("x-api-key", &key)
                    .header("idempotency-key", "k-1")
                    .json(&json!({"org_name": "idem-cred"})),
            )
            .await;
        assert_eq!(
            (r.status, r.code()),
            (400, "idempotency_key_not_accepted"),
            "{path}: {:?}",
            r.body
        );
    }
    let r = issue(&app, &key, json!({"org_name": "idem-cred"})).await;
    assert_eq!(r.status, 200);
    let vault = app.vault().await;
    let stored = vault.store().list("idem/", None, 100).await.unwrap();
    for (k, raw) in &stored.items {
        let text = String::from_utf8_lossy(raw);
        assert!(!text.contains("secret_access_key"), "{k}");
    }
}

/// Defect 8: only callers the policy admits for an org spend its issuance budget.
async fn another_orgs_key_cannot_spend_an_orgs_budget(engine: Engine) {
    let app = creds_app(
        engine,
        "[rate_limits]\ncredentials_per_org = { burst = 3, period_secs = 3600 }\ncredentials_per_principal = { burst = 1000, period_secs = 60 }\n",
    )
    .await;
    let victim = validated_org(&app, &app.admin_token, "budget-a").await;
    let attacker = validated_org(&app, &app.admin_token, "budget-b").await;
    for _ in 0..10 {
        let r = issue(&app, &attacker, json!({"org_name": "budget-a"})).await;
        assert_eq!((r.status, r.code()), (403, "forbidden"));
    }
    let r = issue(&app, &victim, json!({"org_name": "budget-a"})).await;
    assert_eq!(r.status, 200, "the victim's budget is intact: {:?}", r.body);
    // The budget is still a budget for the org's own callers.
    for _ in 0..2 {
        assert_eq!(
            issue(
                &app,
                &victim,
                json!({"org_name": "budget-a", "force_refresh": true})
            )
            .await
            .status,
            200
        );
    }
    let r = issue(&app, &victim, json!({"org_name": "budget-a"})).await;
    assert_eq!((r.status, r.code()), (429, "rate_limited"), "{:?}", r.body);
    assert!(r.header("retry-after").is_some());
}

/// Defect 9: a hostile `access_level` is refused by its shape, never echoed or logged.
async fn a_huge_access_level_is_refused_without_echo(engine: Engine) {
    let app = creds_app(engine, "").await;
    let key = validated_org(&app, &app.admin_token, "lvl-echo").await;
    for level in [
        "x".repeat(60 * 1024),
        "a".repeat(65),
        "read only".to_owned(),
        "READONLY".to_owned(),
        "rö".to_owned(),
    ] {
        let r = issue(
            &app,
            &key,
            json!({"org_name": "lvl-echo", "access_level": level}),
        )
        .await;
        assert_eq!((r.status, r.code()), (400, "invalid_field"), "{level:.40}");
        assert_eq!(r.body["error"]["field"], "access_level");
        let text = r.body.to_string();
        assert!(!text.contains(&level), "the value is echoed: {text:.200}");
    }
    let events = app.audit_events().await;
    let dump = serde_json::to_string(&events).unwrap();
    assert!(
        !dump.contains("xxxxxxxxxxxxxxxx"),
        "the value reached the audit log"
    );
    assert!(!dump.contains("read only"));
}

both_engines!(
    an_issuance_in_flight_loses_to_an_offboarding,
    idempotency_keys_are_refused_on_credential_endpoints,
    another_orgs_key_cannot_spend_an_orgs_budget,
    a_huge_access_level_is_refused_without_echo,
);
