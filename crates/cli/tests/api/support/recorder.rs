//! A stand-in for a third-party HTTP receiver (Slack's incoming webhook and `response_url`,
//! a customer's webhook): a local axum server on a free port that records every request it
//! gets and answers 200, or 500 while told to fail.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// What the recorder answered.
    pub status: u16,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Debug, Default)]
struct Inner {
    got: Mutex<Vec<Received>>,
    /// Answer 500 to this many more requests.
    fail: AtomicU32,
}

/// A running recorder.
#[derive(Debug, Clone)]
pub struct Recorder {
    pub base: String,
    inner: Arc<Inner>,
}

async fn record(
    State(inner): State<Arc<Inner>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let fail = inner
        .fail
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| f.checked_sub(1))
        .is_ok();
    let status = if fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    inner.got.lock().unwrap().push(Received {
        path: uri.path().to_owned(),
        headers,
        body: body.to_vec(),
        status: status.as_u16(),
    });
    status
}

impl Recorder {
    /// Starts a recorder on a free port.
    pub async fn start() -> Self {
        let inner = Arc::new(Inner::default());
        let app = axum::Router::new()
            .fallback(record)
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { base, inner }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Answer 500 to the next `n` requests.
    pub fn fail_next(&self, n: u32) {
        self.inner.fail.store(n, Ordering::SeqCst);
    }

    /// Everything received at `path` so far.
    pub fn at(&self, path: &str) -> Vec<Received> {
        self.inner
            .got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Waits (up to 20 s) until `path` has received a request that `pred` accepts.
    pub async fn wait_for(&self, path: &str, pred: impl Fn(&Received) -> bool) -> Received {
        for _ in 0..400 {
            if let Some(r) = self.at(path).into_iter().find(|r| pred(r)) {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{path} never received the expected request; got {:#?}",
            self.at(path)
        );
    }
}
