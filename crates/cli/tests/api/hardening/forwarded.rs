use crate::support::{AppOptions, Engine, spawn_with};

/// With `trust_forwarded_for`, a proxy that adds its own `X-Forwarded-For` line (rather
/// than extending the client's) must still decide the source address: the last hop of all
/// lines, not the first line the client wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_forwarded_for_line_is_read() {
    let app = spawn_with(
        Engine::Sqlite,
        AppOptions {
            toml: "trust_forwarded_for = true\n".into(),
            ..AppOptions::default()
        },
    )
    .await;
    let r = app
        .send(
            app.client
                .get(app.url("/api/orgs"))
                .bearer_auth("rgt_wrong")
                .header("x-forwarded-for", "198.51.100.66")
                .header("x-forwarded-for", "192.0.2.1, 203.0.113.9"),
        )
        .await;
    assert_eq!(r.status, 401);
    let events = app.audit_events().await;
    let failed = events.iter().find(|e| e.action == "auth.failed").unwrap();
    assert_eq!(failed.source_ip.as_deref(), Some("203.0.113.9"));
}
