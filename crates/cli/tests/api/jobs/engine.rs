use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::{Value, json};

use super::{create_job, customer_key_pairs, jobs_app, keypair_body, unique, wait_job};
use crate::credentials::errors::replica_at;
use crate::support::{Engine, moto_url};

async fn two_jobs_on_one_target_run_one_after_the_other(engine: Engine) {
    // Each AWS step holds for a while, so that overlapping runs would be seen.
    let (app, _) = jobs_app(engine, "test_step_delay_ms = 600\n", "lock-org").await;
    let name = unique("lock");
    let a = create_job(&app, &app.admin_token, "lock-org", "a", keypair_body(&name)).await;
    let del = json!({"kind": "keypair.delete", "spec": {"name": name}, "access_level": "operator"});
    let b = create_job(&app, &app.admin_token, "lock-org", "b", del).await;
    let other = create_job(
        &app,
        &app.admin_token,
        "lock-org",
        "c",
        keypair_body(&unique("free")),
    )
    .await;
    let (a, b, other) = (
        a.body["id"].as_str().unwrap().to_owned(),
        b.body["id"].as_str().unwrap().to_owned(),
        other.body["id"].as_str().unwrap().to_owned(),
    );
    let mut saw_b_waiting = false;
    let mut saw_other_alongside = false;
    loop {
        let ja = app
            .get(&format!("/api/jobs/{a}"), &app.admin_token)
            .await
            .body;
        let jb = app
            .get(&format!("/api/jobs/{b}"), &app.admin_token)
            .await
            .body;
        let jo = app
            .get(&format!("/api/jobs/{other}"), &app.admin_token)
            .await
            .body;
        if ja["state"] == "running" {
            assert_eq!(jb["state"], "queued", "b runs only once a has ended: {jb}");
            saw_b_waiting = true;
            saw_other_alongside |= jo["state"] == "running";
        }
        if jb["state"] == "succeeded" || jb["state"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    assert!(saw_b_waiting, "a was seen running");
    assert!(saw_other_alongside, "another target is not held up");
    let (ja, jb) = (
        wait_job(&app, &app.admin_token, &a).await,
        wait_job(&app, &app.admin_token, &b).await,
    );
    assert_eq!(
        (ja["state"].as_str(), jb["state"].as_str()),
        (Some("succeeded"), Some("succeeded")),
        "{ja} {jb}"
    );
    assert_eq!(
        jb["result"]["existed"], true,
        "the delete ran after the create: {jb}"
    );
    assert!(jb["started_at"].as_str() >= ja["finished_at"].as_str());
    assert!(customer_key_pairs(&name).is_empty());
}

async fn the_event_stream_delivers_every_step(engine: Engine) {
    let (app, _) = jobs_app(engine, "test_step_delay_ms = 400\n", "sse-org").await;
    let r = create_job(
        &app,
        &app.admin_token,
        "sse-org",
        "s",
        keypair_body(&unique("sse")),
    )
    .await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    let res = app
        .client
        .get(app.url(&format!("/api/jobs/{id}/events")))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    // The stream ends by itself when the job ends.
    let text = tokio::time::timeout(Duration::from_secs(30), res.text())
        .await
        .unwrap()
        .unwrap();
    let mut events: Vec<(String, Value)> = Vec::new();
    for block in text.split("\n\n") {
        let (mut name, mut data) = (String::new(), String::new());
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                name = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim());
            }
        }
        if !name.is_empty() {
            events.push((name, serde_json::from_str(&data).unwrap()));
        }
    }
    for step in ["assume_role", "create_key_pair"] {
        for state in ["running", "succeeded"] {
            assert!(
                events
                    .iter()
                    .any(|(n, v)| n == "step" && v["name"] == step && v["state"] == state),
                "{step} {state} in {events:?}"
            );
        }
    }
    assert!(
        events
            .iter()
            .any(|(n, v)| n == "progress" && v["progress"] == 50),
        "{events:?}"
    );
    let (last, job) = events.last().unwrap();
    assert_eq!(last, "end");
    assert_eq!(job["state"], "succeeded");
}

/// A stand-in for the customer's EC2 endpoint where the role may not create key pairs:
/// everything goes to moto except `CreateKeyPair`, which gets the error EC2 sends.
async fn ec2_denying_create_key_pair() -> String {
    let xml = r#"<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not authorized to perform this operation.</Message></Error></Errors><RequestID>denied-1</RequestID></Response>"#;
    aws_denying("Action=CreateKeyPair", "denied-1", xml).await
}

/// A stand-in for the customer's AWS endpoint: every request goes to moto except those
/// whose body contains `marker`, which get a 403 with `xml` and the request id `rid`.
pub(super) async fn aws_denying(
    marker: &'static str,
    rid: &'static str,
    xml: &'static str,
) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = Arc::new(reqwest::Client::new());
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let client = client.clone();
            async move {
                if String::from_utf8_lossy(&body).contains(marker) {
                    return (
                        StatusCode::FORBIDDEN,
                        [("content-type", "text/xml"), ("x-amzn-requestid", rid)],
                        xml.to_owned().into_bytes(),
                    );
                }
                let url = format!(
                    "{}{}",
                    moto_url(),
                    uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
                );
                let mut req = client.request(method, url).body(body);
                for (k, v) in &headers {
                    if k != "host" {
                        req = req.header(k, v);
                    }
                }
                let res = req.send().await.unwrap();
                let status = StatusCode::from_u16(res.status().as_u16()).unwrap();
                let res_rid = res
                    .headers()
                    .get("x-amzn-requestid")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let ct = res
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("text/xml")
                    .to_owned();
                let bytes = res.bytes().await.unwrap().to_vec();
                let rid = res_rid.unwrap_or_default();
                (
                    status,
                    [
                        ("content-type", Box::leak(ct.into_boxed_str()) as &str),
                        ("x-amzn-requestid", Box::leak(rid.into_boxed_str()) as &str),
                    ],
                    bytes,
                )
            }
        },
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

async fn a_role_that_may_not_create_key_pairs_fails_the_job_at_its_step(engine: Engine) {
    // The app validates the org against moto and runs no jobs; a replica whose AWS endpoint
    // is the stand-in runs them.
    let (app, _) = jobs_app(engine, "workers = 0\n", "deny-org").await;
    let url = ec2_denying_create_key_pair().await;
    let _replica = replica_at(&app, engine, &url, "[jobs]\npoll_ms = 50\n").await;
    let name = unique("deny");
    let r = create_job(&app, &app.admin_token, "deny-org", "d", keypair_body(&name)).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let job = wait_job(&app, &app.admin_token, r.body["id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "failed", "{job}");
    let e = &job["error"];
    assert_eq!(e["code"], "aws_access_denied", "{job}");
    assert_eq!(e["step"], "create_key_pair");
    assert_eq!(e["aws_code"], "UnauthorizedOperation");
    assert_eq!(job["steps"][0]["state"], "succeeded");
    assert_eq!(job["steps"][1]["state"], "failed");
    assert_eq!(job["steps"][1]["aws_request_id"], "denied-1");
    assert!(customer_key_pairs(&name).is_empty());
    let events = app.audit_events().await;
    assert!(
        events
            .iter()
            .any(|e| e.action == "job.failed" && e.code.as_deref() == Some("aws_access_denied"))
    );
}

crate::both_engines!(
    two_jobs_on_one_target_run_one_after_the_other,
    the_event_stream_delivers_every_step,
    a_role_that_may_not_create_key_pairs_fails_the_job_at_its_step,
);
