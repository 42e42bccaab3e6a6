//! The whole onboarding path, as it really happens: the customer runs the `aws` command
//! rolegate handed out (through a real shell, into moto's customer account), moto creates the
//! role and waits on the custom resource, and the template's own Lambda code (run with
//! python3, since moto never runs Lambda) calls rolegate and answers CloudFormation.

use super::*;

/// Stands between the Lambda and moto: records each cfn-response and forwards it with the
/// `x-moto-account-id` header moto needs to find a stack in another account. The Lambda
/// never learns it is talking to moto.
struct Relay {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

async fn start_relay(stack_id: String) -> Relay {
    let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
    let seen = bodies.clone();
    let target = format!(
        "{}/cloudformation_us-east-1/cfnresponse?stack={}",
        moto_url(),
        stack_id
    );
    let app = axum::Router::new().route(
        "/cfn-response",
        axum::routing::put(move |body: axum::body::Bytes| {
            let (seen, target) = (seen.clone(), target.clone());
            async move {
                seen.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                let r = reqwest::Client::new()
                    .put(&target)
                    .header("x-moto-account-id", CUSTOMER)
                    .body(body.to_vec())
                    .send()
                    .await
                    .unwrap();
                axum::http::StatusCode::from_u16(r.status().as_u16()).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/cfn-response", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Relay { url, bodies }
}

fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

pub(crate) fn query_param(url: &str, name: &str) -> String {
    let key = format!("{name}=");
    let start = url
        .find(&format!("&{key}"))
        .map(|i| i + 1)
        .or_else(|| url.find(&format!("?{key}")).map(|i| i + 1))
        .unwrap();
    url_decode(url[start + key.len()..].split('&').next().unwrap())
}

fn customer_cli(args: &[&str]) -> Value {
    let (id, secret, token) = customer_credentials(CUSTOMER);
    let out = aws_cli(args, Some((&id, &secret, &token)));
    assert!(
        out.status.success(),
        "aws {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn stack(name: &str) -> Value {
    customer_cli(&[
        "cloudformation",
        "describe-stacks",
        "--stack-name",
        name,
        "--output",
        "json",
    ])["Stacks"][0]
        .clone()
}

pub(crate) async fn run_lambda(event: &Value) -> std::process::Output {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/run_lambda.py");
    let mut child = tokio::process::Command::new(venv_bin("python"))
        .arg(script)
        .env("LAMBDA_BUDGET_MS", "30000")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stdin, event.to_string().as_bytes())
        .await
        .unwrap();
    drop(stdin);
    child.wait_with_output().await.unwrap()
}

fn event(kind: &str, relay: &Relay, stack_id: &str, props: Value) -> Value {
    json!({
        "RequestType": kind,
        "ResponseURL": relay.url,
        "StackId": stack_id,
        "RequestId": uuid::Uuid::new_v4().to_string(),
        "LogicalResourceId": "RolegateCallback",
        "ResourceType": "Custom::RolegateCallback",
        "PhysicalResourceId": "rolegate-callback-e2e-org",
        "ResourceProperties": props,
    })
}

async fn a_customer_onboards_through_the_real_stack_and_lambda(engine: Engine) {
    let app = onboarding_app(engine, true, false, "").await;
    let org = format!("e2e-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    assert_eq!(app.register(&app.admin_token, &org).await.status, 201);
    let external_id = app
        .get(&format!("/api/orgs/{org}"), &app.admin_token)
        .await
        .body["external_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // 1. The links. The API key is never in them.
    let links = app
        .post("/api/integrate", &app.admin_token, json!({"org_name": org}))
        .await;
    assert_eq!(links.status, 200, "{:?}", links.body);
    assert_eq!(links.header("cache-control"), Some("no-store"));
    let text = String::from_utf8(links.raw.clone()).unwrap();
    assert!(!text.contains("rgk_"), "no API key in the onboarding links");
    let b = &links.body;
    assert_eq!(b["stack_name"], format!("rolegate-{org}"));
    assert_eq!(b["region"], "us-east-1");
    assert!(
        time::OffsetDateTime::parse(
            b["expires_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339
        )
        .is_ok()
    );
    let console = b["console_url"].as_str().unwrap();
    assert!(console.starts_with("https://us-east-1.console.aws.amazon.com/cloudformation/home?region=us-east-1#/stacks/quickcreate?"), "{console}");
    assert_eq!(query_param(console, "param_ExternalId"), external_id);
    assert_eq!(query_param(console, "param_OrgName"), org);
    assert_eq!(query_param(console, "stackName"), format!("rolegate-{org}"));
    assert_eq!(
        query_param(console, "param_ProviderAccountId"),
        "123456789012"
    );
    let secret = query_param(console, "param_CallbackSecret");
    assert!(secret.starts_with("rgc_"));
    // The same GET alias works, and reuses the secret: looking never breaks a stack.
    let again = app
        .get(&format!("/api/orgs/{org}/onboarding"), &app.admin_token)
        .await;
    assert_eq!(again.status, 200);
    let b = again.body;
    let console = b["console_url"].as_str().unwrap();
    let secret2 = query_param(console, "param_CallbackSecret");
    assert_eq!(secret, secret2);

    // 2. The template URL serves exactly the template file, from moto's S3.
    let template_url = b["template_url"].as_str().unwrap();
    assert_eq!(query_param(console, "templateURL"), template_url);
    let fetched = reqwest::get(template_url)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let file = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../cloudformation/onboarding.yaml"
    ))
    .unwrap();
    assert_eq!(fetched.to_vec(), file);

    // 3. The customer runs the CLI command through a real shell, in their own account.
    let (id, key, token) = customer_credentials(CUSTOMER);
    let path = format!(
        "{}:{}",
        venv_bin("aws").parent().unwrap().display(),
        std::env::var("PATH").unwrap()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(b["aws_cli_command"].as_str().unwrap())
        .env("PATH", path)
        .env("AWS_ENDPOINT_URL", moto_url())
        .env("AWS_ACCESS_KEY_ID", id)
        .env("AWS_SECRET_ACCESS_KEY", key)
        .env("AWS_SESSION_TOKEN", token)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = stack(&format!("rolegate-{org}"));
    let stack_id = s["StackId"].as_str().unwrap().to_owned();
    assert!(stack_id.contains(&format!(":{CUSTOMER}:")), "{stack_id}");
    assert_eq!(
        s["StackStatus"], "CREATE_IN_PROGRESS",
        "waits on the custom resource"
    );

    // 4. The role is in the customer account and trusts the provider only with the ExternalId.
    let role = customer_cli(&[
        "iam",
        "get-role",
        "--role-name",
        &format!("rolegate-{org}"),
        "--output",
        "json",
    ])["Role"]
        .clone();
    let trust = role["AssumeRolePolicyDocument"].to_string();
    assert!(
        trust.contains("sts:ExternalId") && trust.contains(&external_id),
        "{trust}"
    );
    assert!(trust.contains("123456789012"), "{trust}");
    let role_arn = role["Arn"].as_str().unwrap().to_owned();

    // 5. The Lambda, with what CloudFormation would send it.
    let relay = start_relay(stack_id.clone()).await;
    let props = json!({
        "ServiceToken": format!("arn:aws:lambda:us-east-1:{CUSTOMER}:function:rolegate-callback"),
        "OrgName": org,
        "CallbackUrl": app.url("/api/integrations/validate"),
        "CallbackSecret": secret2,
        "RoleArn": role_arn,
    });
    let out = run_lambda(&event("Create", &relay, &stack_id, props.clone())).await;
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{printed}");
    assert!(
        !printed.contains(&secret2),
        "the Lambda never prints the secret"
    );
    let answer = relay.bodies.lock().unwrap().last().cloned().unwrap();
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");
    assert_eq!(
        stack(&format!("rolegate-{org}"))["StackStatus"],
        "CREATE_COMPLETE"
    );
    let o = app
        .get(&format!("/api/orgs/{org}"), &app.admin_token)
        .await
        .body;
    assert_eq!(
        o["status"], "unsafe_trust",
        "moto does not enforce the ExternalId: {o}"
    );
    assert_eq!(o["account_id"], CUSTOMER);
    assert_eq!(o["role_arn"], role_arn);

    // 6. A wrong secret fails the resource with rolegate's code in the reason.
    let mut wrong = props.clone();
    wrong["CallbackSecret"] = json!("rgc_this-is-not-the-secret-000000000000000000");
    let out = run_lambda(&event("Update", &relay, &stack_id, wrong)).await;
    assert!(out.status.success());
    let answer = relay.bodies.lock().unwrap().last().cloned().unwrap();
    assert_eq!(answer["Status"], "FAILED", "{answer}");
    assert!(
        answer["Reason"]
            .as_str()
            .unwrap()
            .contains("invalid_signature"),
        "{answer}"
    );

    // 7. Deleting the stack offboards the org.
    let out = run_lambda(&event("Delete", &relay, &stack_id, props)).await;
    assert!(out.status.success());
    assert_eq!(
        relay.bodies.lock().unwrap().last().unwrap()["Status"],
        "SUCCESS"
    );
    let o = app
        .get(&format!("/api/orgs/{org}"), &app.admin_token)
        .await
        .body;
    assert_eq!(o["status"], "offboarded");
}

async fn integrate_needs_configuration_and_an_operator(engine: Engine) {
    let app = crate::support::spawn_app(engine).await;
    let missing = app
        .post(
            "/api/integrate",
            &app.admin_token,
            json!({"org_name": "nope-org"}),
        )
        .await;
    assert_eq!(missing.status, 404);
    let r = app.register(&app.admin_token, "unconf-org").await;
    let key = r.body["api_key"].as_str().unwrap().to_owned();
    let n = app
        .post(
            "/api/integrate",
            &app.admin_token,
            json!({"org_name": "unconf-org"}),
        )
        .await;
    assert_eq!((n.status, n.code()), (501, "not_configured"));
    assert_eq!(
        app.post("/api/integrate", &key, json!({"org_name": "unconf-org"}))
            .await
            .status,
        403
    );
    let bad = app
        .post("/api/integrate", &app.admin_token, json!({"org_name": "x"}))
        .await;
    assert_eq!((bad.status, bad.code()), (400, "invalid_field"));
}

crate::both_engines!(
    a_customer_onboards_through_the_real_stack_and_lambda,
    integrate_needs_configuration_and_an_operator
);
