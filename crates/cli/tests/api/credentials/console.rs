//! Console sign-in. The AWS federation endpoint (signin.aws.amazon.com) cannot be reached
//! here, so this test runs **a stand-in federation server**: it checks that
//! `getSigninToken` carries a `Session` of exactly `sessionId`, `sessionKey` and
//! `sessionToken`, records it, and hands back a token. The stand-in is what it is: a
//! check of rolegate's side of the protocol, not of AWS.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::Query;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::creds_app;
use crate::onboarding::validated_org;
use crate::support::{Engine, TestApp};

type Seen = Arc<Mutex<Vec<Value>>>;

/// The stand-in: `/federation` answers getSigninToken; `/broken` always fails.
async fn stand_in_federation() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route(
            "/federation",
            axum::routing::get(move |Query(q): Query<HashMap<String, String>>| {
                let record = record.clone();
                async move {
                    if q.get("Action").map(String::as_str) != Some("getSigninToken") {
                        return (
                            StatusCode::BAD_REQUEST,
                            "Action must be getSigninToken".to_owned(),
                        );
                    }
                    let Some(session) = q
                        .get("Session")
                        .and_then(|s| serde_json::from_str::<Value>(s).ok())
                    else {
                        return (StatusCode::BAD_REQUEST, "Session must be JSON".to_owned());
                    };
                    let mut keys: Vec<&String> = session
                        .as_object()
                        .map(|o| o.keys().collect())
                        .unwrap_or_default();
                    keys.sort();
                    if keys != ["sessionId", "sessionKey", "sessionToken"] {
                        return (
                            StatusCode::BAD_REQUEST,
                            format!("Session keys were {keys:?}"),
                        );
                    }
                    record.lock().unwrap().push(session);
                    (
                        StatusCode::OK,
                        json!({"SigninToken": "stand-in-token"}).to_string(),
                    )
                }
            }),
        )
        .route(
            "/broken",
            axum::routing::get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), seen)
}

async fn console_app(engine: Engine, base: &str, path: &str) -> TestApp {
    creds_app(
        engine,
        &format!("[console]\nfederation_url = \"{base}{path}\"\nissuer = \"https://provider.example/rolegate\"\n"),
    )
    .await
}

async fn console_urls_come_from_the_federation_endpoint(engine: Engine) {
    let (base, seen) = stand_in_federation().await;
    let app = console_app(engine, &base, "/federation").await;
    let key = validated_org(&app, &app.admin_token, "con-org").await;
    let r = app
        .post(
            "/api/credentials/console",
            &key,
            json!({"org_name": "con-org", "reason": "look at alarms"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let url = r.body["url"].as_str().unwrap();
    assert_eq!(
        url,
        format!(
            "{base}/federation?Action=login&Issuer=https%3A%2F%2Fprovider.example%2Frolegate&Destination=https%3A%2F%2Fconsole.aws.amazon.com%2F&SigninToken=stand-in-token"
        )
    );
    assert_eq!(r.body["access_level"], "readonly");
    assert!(r.body["expires_at"].as_str().unwrap().ends_with('Z'));
    // The session handed to the endpoint is the credential issued to this caller.
    let creds = app
        .post("/api/credentials", &key, json!({"org_name": "con-org"}))
        .await;
    assert_eq!(creds.body["cached"], true);
    let session = seen.lock().unwrap()[0].clone();
    assert_eq!(session["sessionId"], creds.body["access_key_id"]);
    assert_eq!(session["sessionKey"], creds.body["secret_access_key"]);
    assert_eq!(session["sessionToken"], creds.body["session_token"]);
    // A destination on the console is passed on; anything else is refused before issuing.
    let deep = "https://us-east-1.console.aws.amazon.com/ec2/home?region=us-east-1";
    let r = app
        .post(
            "/api/credentials/console",
            &key,
            json!({"org_name": "con-org", "destination": deep}),
        )
        .await;
    assert!(r.body["url"].as_str().unwrap().contains("Destination=https%3A%2F%2Fus-east-1.console.aws.amazon.com%2Fec2%2Fhome%3Fregion%3Dus-east-1"), "{:?}", r.body);
    for bad in [
        "https://evil.example/",
        "http://console.aws.amazon.com/",
        "javascript:alert(1)",
    ] {
        let r = app
            .post(
                "/api/credentials/console",
                &key,
                json!({"org_name": "con-org", "destination": bad}),
            )
            .await;
        assert_eq!(
            (r.status, r.code(), r.body["error"]["field"].as_str()),
            (400, "invalid_field", Some("destination")),
            "{bad}"
        );
    }
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "refused destinations never reached the endpoint"
    );
    // Audited without the URL or the session.
    let events = app.audit_events().await;
    let console: Vec<_> = events
        .iter()
        .filter(|e| e.action == "credentials.console")
        .collect();
    assert_eq!(console.len(), 2);
    let text = serde_json::to_string(&events).unwrap();
    assert!(
        !text.contains("stand-in-token")
            && !text.contains(creds.body["session_token"].as_str().unwrap())
    );
}

async fn a_failing_federation_endpoint_is_a_502(engine: Engine) {
    let (base, _) = stand_in_federation().await;
    let app = console_app(engine, &base, "/broken").await;
    let key = validated_org(&app, &app.admin_token, "brk-org").await;
    let r = app
        .post(
            "/api/credentials/console",
            &key,
            json!({"org_name": "brk-org"}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (502, "console_federation_failed"),
        "{:?}",
        r.body
    );
    let failed = app
        .audit_events()
        .await
        .into_iter()
        .find(|e| e.action == "credentials.console")
        .unwrap();
    assert_eq!(failed.code.as_deref(), Some("console_federation_failed"));
}

crate::both_engines!(
    console_urls_come_from_the_federation_endpoint,
    a_failing_federation_endpoint_is_a_502,
);
