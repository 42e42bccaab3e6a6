//! STS failures, each mapped to its own code. moto cannot deny, throttle or reject a
//! policy, so the org is validated against moto and then served by a replica whose STS
//! endpoint is **a stand-in inside this test**: a small HTTP server that answers every
//! call with the error document real STS sends (query protocol XML). The SDK's own
//! parsing and rolegate's mapping are what is under test. Network failure uses an
//! endpoint that refuses connections.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::json;

use super::{creds_app, issue};
use crate::onboarding::{onboarding_toml, validated_org};
use crate::support::{AppOptions, Engine, TestApp, free_port, spawn_with};

/// A stand-in STS that answers every request with `(status, code)`.
pub(crate) async fn fake_sts(status: u16, code: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body = Arc::new(format!(
        r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>{code}</Code><Message>stand-in says {code}</Message></Error><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"#
    ));
    let app = axum::Router::new().fallback(move || {
        let body = body.clone();
        async move {
            (
                StatusCode::from_u16(status).unwrap(),
                [("content-type", "text/xml")],
                (*body).clone(),
            )
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// A replica of `app`'s store whose AWS calls go to `endpoint`, with `extra` config.
pub(crate) async fn replica_at(
    app: &TestApp,
    engine: Engine,
    endpoint: &str,
    extra: &str,
) -> TestApp {
    let toml = onboarding_toml(false, extra).replace(
        &crate::support::moto_url().replace("127.0.0.1", "localhost"),
        endpoint,
    );
    assert!(toml.contains(endpoint), "{toml}");
    spawn_with(
        engine,
        AppOptions {
            store: Some(app.store.clone()),
            master_key: Some(app.master_key.clone()),
            toml,
            ..Default::default()
        },
    )
    .await
}

async fn sts_errors_map_to_specific_codes(engine: Engine) {
    let app = creds_app(engine, "").await;
    let key = validated_org(&app, &app.admin_token, "err-org").await;
    for (status, sts_code, want_status, want_code) in [
        (403, "AccessDenied", 403, "assume_role_denied"),
        (400, "Throttling", 503, "sts_throttled"),
        (400, "PackedPolicyTooLarge", 400, "session_policy_too_large"),
        (403, "ExpiredToken", 503, "provider_credentials_unavailable"),
        (
            403,
            "InvalidClientTokenId",
            503,
            "provider_credentials_unavailable",
        ),
    ] {
        let url = fake_sts(status, sts_code).await;
        let replica = replica_at(&app, engine, &url, "").await;
        let r = issue(
            &replica,
            &key,
            json!({"org_name": "err-org", "force_refresh": true}),
        )
        .await;
        assert_eq!(
            (r.status, r.code()),
            (want_status, want_code),
            "{sts_code}: {:?}",
            r.body
        );
        let message = r.body["error"]["message"].as_str().unwrap();
        match want_code {
            "assume_role_denied" => {
                assert!(message.contains("ExternalId"), "a hint: {message}");
            }
            "sts_throttled" => assert!(r.header("retry-after").is_some()),
            "provider_credentials_unavailable" => {
                assert!(
                    !message.contains("stand-in"),
                    "detail stays in the log: {message}"
                );
            }
            _ => {}
        }
    }
    // A refused connection, after the SDK's bounded retries.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let replica = replica_at(&app, engine, &closed, "").await;
    let r = issue(
        &replica,
        &key,
        json!({"org_name": "err-org", "force_refresh": true}),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (502, "sts_unavailable"),
        "{:?}",
        r.body
    );
    // Transient: the client is told when to retry (issue 17's STS-away scenario).
    assert_eq!(r.header("retry-after"), Some("5"));
    // Each failure is audited with its code.
    let codes: Vec<String> = app
        .audit_events()
        .await
        .into_iter()
        .filter(|e| e.action == "credentials.issue")
        .filter_map(|e| e.code)
        .collect();
    for c in [
        "assume_role_denied",
        "sts_throttled",
        "session_policy_too_large",
        "sts_unavailable",
    ] {
        assert!(codes.iter().any(|x| x == c), "{c} not audited: {codes:?}");
    }
    // None of it touched the cache.
    assert!(
        app.vault()
            .await
            .store()
            .list("credlock/", None, 10)
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

crate::both_engines!(sts_errors_map_to_specific_codes);
