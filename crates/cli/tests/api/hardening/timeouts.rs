use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::WriteLock;
use crate::support::{AppOptions, Engine, spawn_app, spawn_with};

/// Splits a raw HTTP/1.1 response into its status code and JSON body.
fn parse(raw: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(raw);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// A client sending its headers one byte per second gets a 408 in the error shape once the
/// default header-read timeout (10 s) has passed, not a connection held forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn headers_sent_one_byte_per_second_get_a_408() {
    let app = spawn_app(Engine::Sqlite).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let trickle = tokio::spawn(async move {
        for b in b"GET /api/health HTTP/1.1\r\nHost: rolegate\r\nUser-Agent: slowloris\r\n\r\n" {
            if write.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let start = Instant::now();
    let mut raw = Vec::new();
    let read_all = tokio::time::timeout(Duration::from_secs(20), read.read_to_end(&mut raw)).await;
    trickle.abort();
    assert!(
        read_all.is_ok(),
        "no answer within 20 s: the connection is held open"
    );
    let (status, body) = parse(&raw);
    assert_eq!(status, 408, "{}", String::from_utf8_lossy(&raw));
    assert_eq!(body["error"]["code"], "request_timeout");
    assert!(
        body["error"]["request_id"]
            .as_str()
            .is_some_and(|r| !r.is_empty())
    );
    let elapsed = start.elapsed();
    assert!(
        (Duration::from_secs(9)..Duration::from_secs(15)).contains(&elapsed),
        "{elapsed:?}"
    );
}

/// A body that trickles in is cut off at `body_read_timeout_secs` with a 408.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_body_gets_a_408() {
    let app = spawn_with(
        Engine::Sqlite,
        AppOptions {
            toml: "body_read_timeout_secs = 1\n".into(),
            ..AppOptions::default()
        },
    )
    .await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/orgs HTTP/1.1\r\nHost: rolegate\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\nIdempotency-Key: k1\r\n\r\n{{\"org",
        app.admin_token
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let res = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw)).await;
    assert!(res.is_ok(), "no answer to a stalled body");
    let (status, body) = parse(&raw);
    assert_eq!(status, 408, "{}", String::from_utf8_lossy(&raw));
    assert_eq!(body["error"]["code"], "request_timeout");
}

/// A handler that cannot finish (the store's writer is locked) answers 503 at
/// `request_timeout_secs`, in the error shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stuck_handler_answers_503() {
    let app = spawn_with(
        Engine::Sqlite,
        AppOptions {
            toml: "request_timeout_secs = 1\n".into(),
            ..AppOptions::default()
        },
    )
    .await;
    let lock = WriteLock::hold(&app.data_dir.join("rolegate.db"));
    let start = Instant::now();
    let r = app
        .send(
            app.client
                .post(app.url("/api/users"))
                .bearer_auth(&app.admin_token)
                .json(&json!({"user_id": "slow", "role": "operator"})),
        )
        .await;
    drop(lock);
    assert_eq!(r.status, 503, "{:?}", r.body);
    assert_eq!(r.code(), "handler_timeout");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
}
