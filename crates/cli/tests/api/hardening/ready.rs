use crate::support::{Engine, spawn_app};

/// The `ping` operations the store has served, from the app's own metrics.
async fn pings(app: &crate::support::TestApp) -> u64 {
    let r = app.get("/metrics", &app.admin_token).await;
    assert_eq!(r.status, 200);
    let text = String::from_utf8(r.raw).unwrap();
    text.lines()
        .find(|l| {
            l.starts_with("rolegate_store_operation_duration_seconds_count")
                && l.contains("op=\"ping\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0, |n| n.parse().unwrap())
}

/// A flood of readiness probes makes at most about one durable write a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ready_writes_at_most_once_a_second() {
    let app = spawn_app(Engine::Sqlite).await;
    let start = std::time::Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (client, url) = (app.client.clone(), app.url("/api/ready"));
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                let r = client.get(&url).send().await.unwrap();
                assert_eq!(r.status(), 200);
                let body: serde_json::Value = r.json().await.unwrap();
                assert_eq!(body["status"], "ready");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let seconds = start.elapsed().as_secs() + 1;
    let pings = pings(&app).await;
    assert!(pings >= 1, "the store was never checked");
    assert!(
        pings <= seconds + 1,
        "200 probes in {seconds} s made {pings} store pings"
    );
}
