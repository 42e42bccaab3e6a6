use crate::support::{Engine, spawn_app};

/// Wrong tokens on `/metrics` are failed authentications: audited, and limited per source
/// like everywhere else (20 per minute by default), then 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_metrics_tokens_are_limited_and_audited() {
    let app = spawn_app(Engine::Sqlite).await;
    let mut statuses = Vec::new();
    for i in 0..25 {
        let r = app.get("/metrics", &format!("rgt_guess{i:02}")).await;
        statuses.push(r.status);
    }
    assert!(statuses[..20].iter().all(|s| *s == 401), "{statuses:?}");
    assert_eq!(statuses[24], 429, "{statuses:?}");
    // Failures are aggregated per source and minute: the first is an event of its own at
    // once; the rest of the minute follow as one event with their count.
    let failed = app
        .audit_events()
        .await
        .into_iter()
        .filter(|e| e.action == "auth.failed")
        .count();
    assert!(failed >= 1, "the failed attempts are not audited");
    // The limit is shared: the same source is now refused on the API too.
    let r = app.get("/api/orgs", "rgt_another_guess").await;
    assert_eq!(r.status, 429);
}
