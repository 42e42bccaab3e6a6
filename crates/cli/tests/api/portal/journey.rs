use std::time::{Duration, Instant};

use serde_json::json;

use super::webdriver::Browser;
use super::{events, shot, sign_in};
use crate::onboarding::e2e::{query_param, run_lambda};
use crate::onboarding::{CUSTOMER, onboarding_app};
use crate::support::{Engine, TestApp};

/// Where the Lambda sends its cfn-response: accepted and dropped (no stack waits on it).
async fn cfn_response_sink() -> String {
    let app = axum::Router::new().route(
        "/cfn",
        axum::routing::put(|| async { axum::http::StatusCode::OK }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/cfn", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// The template's own Lambda code reports the stack, with what the page's "Launch stack"
/// link hands the customer.
async fn customer_deploys(app: &TestApp, org: &str, launch_url: &str) {
    let secret = query_param(launch_url, "param_CallbackSecret");
    assert_eq!(query_param(launch_url, "param_OrgName"), org);
    let stack_id = format!(
        "arn:aws:cloudformation:us-east-1:{CUSTOMER}:stack/rolegate-{org}/{}",
        uuid::Uuid::new_v4()
    );
    let event = json!({
        "RequestType": "Create",
        "ResponseURL": cfn_response_sink().await,
        "StackId": stack_id,
        "RequestId": uuid::Uuid::new_v4().to_string(),
        "LogicalResourceId": "RolegateCallback",
        "ResourceType": "Custom::RolegateCallback",
        "ResourceProperties": {
            "ServiceToken": format!("arn:aws:lambda:us-east-1:{CUSTOMER}:function:rolegate-callback"),
            "OrgName": org,
            "CallbackUrl": app.url("/api/integrations/validate"),
            "CallbackSecret": secret,
            "RoleArn": format!("arn:aws:iam::{CUSTOMER}:role/rolegate-{org}"),
        },
    });
    let out = run_lambda(&event).await;
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every network request the browser made went to the app itself (the browser's own
/// `chrome://` pages and `data:` URLs are no network).
pub(super) async fn nothing_left_loopback(b: &Browser, app: &TestApp) {
    let urls = b.requested_urls().await;
    let network: Vec<&String> = urls
        .iter()
        .filter(|u| !u.starts_with("chrome") && !u.starts_with("data:") && !u.starts_with("about:"))
        .collect();
    assert!(
        network.len() > 10,
        "the performance log is nearly empty: {urls:?}"
    );
    for url in network {
        assert!(url.starts_with(&app.base), "the browser requested {url}");
    }
}

async fn an_operator_onboards_an_org_and_copies_credentials(engine: Engine) {
    // moto does not enforce the ExternalId, so the trust check must not require it here.
    let app = onboarding_app(engine, false, false, "").await;
    let token = app.create_user("alice", "operator").await;
    let org = format!("web-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let b = Browser::start().await;

    // Anonymous: the login page.
    b.goto(&app.url("/")).await;
    b.wait_path("/login").await;
    b.find("label[for=token]").await;
    shot(&b, "login").await;
    sign_in(&b, &app, &token).await;
    shot(&b, "home-empty").await;

    // Register: the API key once.
    b.type_into("#org_name", &org).await;
    b.click("form[action='/orgs'] button").await;
    let key = b.text("#secret-value").await;
    assert!(key.starts_with("rgk_"), "{key}");
    shot(&b, "api-key-once").await;
    b.click("#continue").await;

    // The org page: pending, with the onboarding links.
    b.wait_path(&format!("/orgs/{org}")).await;
    assert_eq!(b.text("#org-status").await, "pending");
    let launch = b.attr("#launch-stack", "href").await;
    assert!(launch.contains("#/stacks/quickcreate?"), "{launch}");
    assert!(
        b.text("#cli-command")
            .await
            .contains("aws cloudformation create-stack")
    );
    assert!(!b.attr("#template-link", "href").await.is_empty());
    shot(&b, "org-pending").await;
    assert!(
        !b.source().await.contains(&key),
        "the API key is shown once only"
    );

    // The customer's stack calls back; the page turns validated by itself.
    customer_deploys(&app, &org, &launch).await;
    b.wait_text("#org-status", "validated", 30).await;
    assert_eq!(b.text("#bound-account").await, CUSTOMER);
    shot(&b, "org-validated").await;

    // Credentials: the three forms, and the copy button really copies.
    b.click("#get-credentials").await;
    b.wait_path("/credentials").await;
    shot(&b, "credentials-form").await;
    b.click("#get").await;
    let env = b.text("#env").await;
    assert!(env.starts_with("export AWS_ACCESS_KEY_ID=ASIA"), "{env}");
    assert!(env.contains("export AWS_SESSION_TOKEN="), "{env}");
    assert!(b.text("#profile").await.starts_with(&format!("[rg-{org}-")));
    assert!(b.text("#expiry").await.contains("expire at"));
    b.cdp(
        "Browser.grantPermissions",
        json!({"origin": app.base, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]}),
    )
    .await;
    b.click("#copy-env").await;
    b.wait_text("#copy-env", "Copied", 5).await;
    let copied = b.execute("return navigator.clipboard.readText();").await;
    assert_eq!(copied.as_str(), Some(env.as_str()));
    shot(&b, "credentials").await;
    assert_eq!(events(&app, "credentials.issue").await.len(), 1);

    // A key pair: live steps, the .pem once, then "already retrieved".
    b.goto(&app.url(&format!("/orgs/{org}/jobs"))).await;
    // moto's customer account is shared by the whole test binary: a name of its own.
    let key_name = format!("deploy-{}", &org[4..]);
    b.type_into("#name", &key_name).await;
    b.click("#create-keypair").await;
    b.wait_path("/jobs/").await;
    b.wait_text("#job-state", "succeeded", 60).await;
    shot(&b, "job").await;
    b.click("#download-key").await;
    let pem = b.downloads.join(format!("{key_name}.pem"));
    let started = Instant::now();
    while !pem.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no deploy.pem downloaded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = std::fs::read_to_string(&pem).unwrap();
    assert!(text.contains("PRIVATE KEY"), "{text}");
    let job_url = b.url().await;
    b.goto(&job_url).await;
    b.find("#secret-retrieved").await;

    // The audit page shows this operator's org.
    b.goto(&app.url(&format!("/audit?org={org}"))).await;
    b.find("#events").await;
    shot(&b, "audit").await;

    nothing_left_loopback(&b, &app).await;
    b.quit().await;
}

async fn an_admin_manages_operators_and_verifies_the_chain(engine: Engine) {
    let app = crate::support::spawn_app(engine).await;
    let b = Browser::start().await;
    sign_in(&b, &app, &app.admin_token).await;
    b.click("nav a[href='/operators']").await;
    b.type_into("#user_id", "carol").await;
    b.click("#create-operator").await;
    let token = b.text("#secret-value").await;
    assert!(token.starts_with("rgt_"), "{token}");
    b.click("#continue").await;
    b.wait_path("/operators").await;
    shot(&b, "operators").await;
    // The token shown works on the API.
    assert_eq!(app.get("/api/users/carol", &token).await.status, 200);
    b.goto(&app.url("/audit")).await;
    b.click("#verify").await;
    assert!(b.text("#verify-result").await.starts_with("Intact"));
    b.goto(&app.url("/audit/events/1")).await;
    b.find("#event-details").await;
    shot(&b, "audit-event").await;
    nothing_left_loopback(&b, &app).await;
    b.quit().await;
}

mod sqlite {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn an_operator_onboards_an_org_and_copies_credentials() {
        super::an_operator_onboards_an_org_and_copies_credentials(Engine::Sqlite).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn an_admin_manages_operators_and_verifies_the_chain() {
        super::an_admin_manages_operators_and_verifies_the_chain(Engine::Sqlite).await;
    }
}

mod postgres {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn an_operator_onboards_an_org_and_copies_credentials() {
        super::an_operator_onboards_an_org_and_copies_credentials(Engine::Postgres).await;
    }
}
