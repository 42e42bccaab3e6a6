use std::time::Duration;

use serde_json::json;

use super::{WriteLock, eventually};
use crate::support::{Engine, spawn_app};

/// A client that hangs up while its registration is in progress has still registered the
/// org; its retry with the same key gets the original answer, one-time API key included.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_registration_finishes_after_the_client_hangs_up() {
    let app = spawn_app(Engine::Sqlite).await;
    let key = uuid::Uuid::new_v4().to_string();
    let send = || {
        app.client
            .post(app.url("/api/orgs"))
            .bearer_auth(&app.admin_token)
            .header("idempotency-key", &key)
            .json(&json!({"org_name": "hangup-org"}))
    };
    // The store's writer is busy: the request waits, and the client gives up after 300 ms.
    let lock = WriteLock::hold(&app.data_dir.join("rolegate.db"));
    let gave_up = send().timeout(Duration::from_millis(300)).send().await;
    assert!(gave_up.is_err(), "the request should still be waiting");
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(lock);
    let mut last = None;
    let replayed = eventually(10, async || {
        let r = app.send(send()).await;
        let done = r.status == 201;
        last = Some((
            r.status,
            r.body.clone(),
            r.header("idempotent-replayed").map(str::to_owned),
        ));
        done
    })
    .await;
    let (status, body, replay) = last.unwrap();
    assert!(replayed, "never answered 201: {status} {body}");
    assert_eq!(replay.as_deref(), Some("true"), "{body}");
    assert!(
        body["api_key"]
            .as_str()
            .is_some_and(|k| k.starts_with("rgk_")),
        "{body}"
    );
}
