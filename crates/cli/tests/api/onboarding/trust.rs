//! The trust-policy verdicts moto cannot produce (it never enforces a trust policy), and
//! the exact shape of every AssumeRole rolegate sends. STS here is **a stand-in inside this
//! test**: it answers AssumeRole in the STS query protocol, like a role whose trust policy
//! requires the ExternalId (`Enforcing`) or refuses everyone (`Denying`), and records each
//! request's form fields. The real SDK builds the calls and parses the answers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Form;
use axum::http::StatusCode;
use serde_json::json;

use super::{CUSTOMER, notice, signed};
use crate::support::{AppOptions, Engine, TestApp, spawn_with};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Enforcing,
    Denying,
}

type Calls = Arc<Mutex<Vec<HashMap<String, String>>>>;

fn denied() -> (StatusCode, String) {
    (
        StatusCode::FORBIDDEN,
        r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not authorized to perform sts:AssumeRole</Message></Error><RequestId>1</RequestId></ErrorResponse>"#.to_owned(),
    )
}

async fn stand_in_sts(role: Role, external_id: Arc<Mutex<String>>) -> (String, Calls) {
    let calls: Calls = Arc::default();
    let seen = calls.clone();
    // S3's PutObject (the onboarding template, path-style) is accepted and forgotten, so
    // `POST /api/integrate` can publish; everything else is STS.
    let s3_put = axum::routing::put(|| async { (StatusCode::OK, [("etag", "\"0\"")], "") });
    let app = axum::Router::new().route("/{*path}", s3_put).fallback(move |Form(f): Form<HashMap<String, String>>| {
        let seen = seen.clone();
        let external_id = external_id.clone();
        async move {
            if f.get("Action").map(String::as_str) == Some("GetCallerIdentity") {
                // rolegate asking who it is (to pin customer roles to itself).
                return (
                    StatusCode::OK,
                    "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult><Arn>arn:aws:sts::123456789012:assumed-role/rolegate-broker/i-0abc</Arn><UserId>AROASTANDIN:i-0abc</UserId><Account>123456789012</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>3</RequestId></ResponseMetadata></GetCallerIdentityResponse>".to_owned(),
                );
            }
            seen.lock().unwrap().push(f.clone());
            let wanted = external_id.lock().unwrap().clone();
            if role == Role::Denying || f.get("ExternalId") != Some(&wanted) {
                return denied();
            }
            let session = f.get("RoleSessionName").cloned().unwrap_or_default();
            let role_name = f["RoleArn"].rsplit('/').next().unwrap_or_default().to_owned();
            let expires = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
            let expires = expires
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap();
            (
                StatusCode::OK,
                format!(
                    r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials><AccessKeyId>ASIASTANDIN{n:09}</AccessKeyId><SecretAccessKey>stand-in-secret-{n}</SecretAccessKey><SessionToken>stand-in-token-{n}</SessionToken><Expiration>{expires}</Expiration></Credentials><AssumedRoleUser><AssumedRoleId>AROASTANDIN:{session}</AssumedRoleId><Arn>arn:aws:sts::{CUSTOMER}:assumed-role/{role_name}/{session}</Arn></AssumedRoleUser><SourceIdentity>{si}</SourceIdentity></AssumeRoleResult><ResponseMetadata><RequestId>2</RequestId></ResponseMetadata></AssumeRoleResponse>"#,
                    n = seen.lock().unwrap().len(),
                    si = f.get("SourceIdentity").cloned().unwrap_or_default(),
                ),
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), calls)
}

async fn app_against(engine: Engine, role: Role) -> (TestApp, Calls, Arc<Mutex<String>>) {
    let external_id = Arc::new(Mutex::new(String::new()));
    let (url, calls) = stand_in_sts(role, external_id.clone()).await;
    let toml = format!(
        "[aws]\nregion = \"us-east-1\"\nendpoint_url = \"{url}\"\naccess_key_id = \"testing\"\nsecret_access_key = \"testing\"\nmax_attempts = 1\n\
         [onboarding]\nprovider_account_id = \"123456789012\"\ntemplate_bucket = \"stand-in\"\ns3_path_style = true\nverify_attempts = 1\nverify_delay_ms = 10\nrequire_external_id_enforcement = true\n"
    );
    let app = spawn_with(
        engine,
        AppOptions {
            toml,
            ..Default::default()
        },
    )
    .await;
    (app, calls, external_id)
}

async fn an_enforcing_role_validates_and_every_assume_role_is_attributable(engine: Engine) {
    let (app, calls, external_id) = app_against(engine, Role::Enforcing).await;
    let reg = app.register(&app.admin_token, "strict-org").await;
    assert_eq!(reg.status, 201);
    *external_id.lock().unwrap() = reg.body["external_id"].as_str().unwrap().to_owned();
    let secret = app.callback_secret("strict-org").await;
    let r = signed(&app, &secret, notice("strict-org", CUSTOMER, "created")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "validated");
    assert_eq!(r.body["trust_check"], "external_id_enforced");
    {
        let calls = calls.lock().unwrap();
        assert_eq!(calls.len(), 2, "once with the ExternalId, once without");
        assert_eq!(
            calls[0].get("ExternalId"),
            Some(&*external_id.lock().unwrap())
        );
        assert!(!calls[1].contains_key("ExternalId"));
    }
    // The vended credential's AssumeRole: bound role, ExternalId, attribution, policy.
    let key = reg.body["api_key"].as_str().unwrap();
    let c = app
        .post(
            "/api/credentials",
            key,
            json!({"org_name": "strict-org", "reason": "rotate #7", "duration_seconds": 1800}),
        )
        .await;
    assert_eq!(c.status, 200, "{:?}", c.body);
    assert!(
        c.body["access_key_id"]
            .as_str()
            .unwrap()
            .starts_with("ASIASTANDIN")
    );
    let call = calls.lock().unwrap().last().cloned().unwrap();
    let f = |k: &str| call.get(k).cloned().unwrap_or_default();
    assert_eq!(f("Action"), "AssumeRole");
    assert_eq!(
        f("RoleArn"),
        format!("arn:aws:iam::{CUSTOMER}:role/rolegate-strict-org")
    );
    assert_eq!(f("ExternalId"), *external_id.lock().unwrap());
    assert_eq!(
        f("RoleSessionName"),
        c.body["session_name"].as_str().unwrap()
    );
    assert_eq!(
        f("SourceIdentity"),
        c.body["source_identity"].as_str().unwrap()
    );
    assert_eq!(f("DurationSeconds"), "1800");
    assert_eq!(
        f("PolicyArns.member.1.arn"),
        "arn:aws:iam::aws:policy/ReadOnlyAccess"
    );
    let tags: HashMap<String, String> = (1..=3)
        .map(|i| {
            (
                f(&format!("Tags.member.{i}.Key")),
                f(&format!("Tags.member.{i}.Value")),
            )
        })
        .collect();
    assert_eq!(tags["rolegate:org"], "strict-org");
    assert_eq!(
        tags["rolegate:principal"],
        format!("apikey:{}", reg.body["api_key_id"].as_str().unwrap())
    );
    assert_eq!(tags["rolegate:reason"], "rotate _7");
}

async fn a_role_that_refuses_everyone_fails_onboarding(engine: Engine) {
    let (app, _calls, _) = app_against(engine, Role::Denying).await;
    assert_eq!(app.register(&app.admin_token, "deny-org").await.status, 201);
    let secret = app.callback_secret("deny-org").await;
    let r = signed(&app, &secret, notice("deny-org", CUSTOMER, "created")).await;
    assert_eq!(
        (r.status, r.code()),
        (424, "role_not_assumable"),
        "{:?}",
        r.body
    );
    let org = app.get("/api/orgs/deny-org", &app.admin_token).await;
    assert_eq!(org.body["status"], "failed");
    assert!(
        org.body["status_message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    let c = app
        .post(
            "/api/credentials",
            &app.admin_token,
            json!({"org_name": "deny-org"}),
        )
        .await;
    assert_eq!((c.status, c.code()), (412, "org_not_validated"));
    assert_eq!(c.body["error"]["details"]["status"], "failed");

    // The failed create rolls back, and the rollback's `deleted` comes from the very stack
    // that bound: the org was never onboarded, so it is not offboarded (issue 10, defect 1).
    let r = signed(&app, &secret, notice("deny-org", CUSTOMER, "deleted")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "failed", "{:?}", r.body);
    let org = app.get("/api/orgs/deny-org", &app.admin_token).await;
    assert_eq!(org.body["status"], "failed");
    assert_eq!(org.body["role_arn"], serde_json::Value::Null);
    // The customer can try again: new links, and the API key still works.
    let r = app
        .post(
            "/api/integrate",
            &app.admin_token,
            json!({"org_name": "deny-org"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let rotated = app
        .post("/api/orgs/deny-org/api-key", &app.admin_token, json!({}))
        .await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.body);
    // The rolled-back stack's secret died with it.
    let r = signed(&app, &secret, notice("deny-org", CUSTOMER, "created")).await;
    assert_eq!((r.status, r.code()), (401, "invalid_signature"));
    let events = app.audit_events().await;
    assert!(!events.iter().any(|e| e.action == "org.offboard"));
}

/// A binding reset kills the callback secrets (issue 10, defect 3): a `created` signed with
/// the old secret is refused, so the old stack can neither rebind nor offboard the org.
async fn a_binding_reset_kills_the_old_callback_secret(engine: Engine) {
    let (app, _calls, external_id) = app_against(engine, Role::Enforcing).await;
    let reg = app.register(&app.admin_token, "reset-org").await;
    *external_id.lock().unwrap() = reg.body["external_id"].as_str().unwrap().to_owned();
    let secret = app.callback_secret("reset-org").await;
    let r = signed(&app, &secret, notice("reset-org", CUSTOMER, "created")).await;
    assert_eq!(r.body["status"], "validated", "{:?}", r.body);
    let r = app
        .post(
            "/api/orgs/reset-org/binding/reset",
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    for event in ["created", "deleted"] {
        let r = signed(&app, &secret, notice("reset-org", CUSTOMER, event)).await;
        assert_eq!((r.status, r.code()), (401, "invalid_signature"), "{event}");
    }
    assert_eq!(
        app.get("/api/orgs/reset-org", &app.admin_token).await.body["status"],
        "pending"
    );
    // New links bring a new secret, which binds.
    let r = app
        .get("/api/orgs/reset-org/onboarding", &app.admin_token)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // Not configured, the pinned principal is who rolegate is according to STS: the role of
    // its session, never the provider's whole account (issue 10, defect 4).
    let cmd = r.body["aws_cli_command"].as_str().unwrap();
    assert!(
        cmd.contains(r#"{"ParameterKey":"ProviderPrincipalArn","ParameterValue":"arn:aws:iam::123456789012:role/rolegate-broker"}"#),
        "{cmd}"
    );
    let fresh = app.callback_secret("reset-org").await;
    assert_ne!(fresh, secret);
    let r = signed(&app, &fresh, notice("reset-org", CUSTOMER, "created")).await;
    assert_eq!(r.body["status"], "validated", "{:?}", r.body);
}

crate::both_engines!(
    an_enforcing_role_validates_and_every_assume_role_is_attributable,
    a_role_that_refuses_everyone_fails_onboarding,
    a_binding_reset_kills_the_old_callback_secret,
);
