//! `GET /metrics` and the logs. Every app has its own registry (ADR 0005), so the counts
//! asserted here are this test's own, whatever runs beside it.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::process::{self, Server};
use crate::support::{AppOptions, Engine, TestApp, spawn_app, spawn_with};

/// The body of `/metrics`, fetched with the admin's token.
pub(crate) async fn scrape(app: &TestApp) -> String {
    let r = app.get("/metrics", &app.admin_token).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let ct = r.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    String::from_utf8(r.raw).unwrap()
}

/// Parses one exposition line into (name, labels, value).
fn parse_line(line: &str) -> Option<(&str, BTreeMap<String, String>, f64)> {
    if line.starts_with('#') || line.is_empty() {
        return None;
    }
    let (series, value) = line.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    let Some((name, rest)) = series.split_once('{') else {
        return Some((series, BTreeMap::new(), value));
    };
    let body = rest.strip_suffix('}')?;
    let labels = body
        .split("\",")
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once("=\"")?;
            Some((k.to_owned(), v.trim_end_matches('"').to_owned()))
        })
        .collect();
    Some((name, labels, value))
}

/// The value of the series `name` with exactly `labels`, 0 when it has no sample yet.
pub(crate) fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    text.lines()
        .filter_map(parse_line)
        .find(|(n, l, _)| *n == name && *l == want)
        .map_or(0.0, |(_, _, v)| v)
}

fn engine_label(engine: Engine) -> &'static str {
    match engine {
        Engine::Sqlite => "sqlite",
        Engine::Postgres => "postgres",
        Engine::Redis => "redis",
    }
}

async fn requests_are_counted_under_their_route_template(engine: Engine) {
    let app = spawn_app(engine).await;
    let r = app.register(&app.admin_token, "metrics-org").await;
    assert_eq!(r.status, 201);
    let key = r.body["api_key"].as_str().unwrap().to_owned();
    let ok = [
        ("method", "GET"),
        ("route", "/api/orgs/{org}"),
        ("status", "200"),
    ];
    let before = scrape(&app).await;
    for _ in 0..3 {
        assert_eq!(
            app.get("/api/orgs/metrics-org", &app.admin_token)
                .await
                .status,
            200
        );
    }
    let by_key = app
        .send(
            app.client
                .get(app.url("/api/orgs/metrics-org"))
                .header("x-api-key", &key),
        )
        .await;
    assert_eq!(by_key.status, 200);
    assert_eq!(
        app.get("/api/orgs/no-such-org", &app.admin_token)
            .await
            .status,
        404
    );
    assert_eq!(
        app.get("/api/nowhere/at/all", &app.admin_token)
            .await
            .status,
        404
    );
    let after = scrape(&app).await;

    let name = "rolegate_http_requests_total";
    assert_eq!(
        sample(&after, name, &ok) - sample(&before, name, &ok),
        4.0,
        "{after}"
    );
    let missing = [
        ("method", "GET"),
        ("route", "/api/orgs/{org}"),
        ("status", "404"),
    ];
    assert_eq!(sample(&after, name, &missing), 1.0);
    let unmatched = [("method", "GET"), ("route", "unmatched"), ("status", "404")];
    assert_eq!(sample(&after, name, &unmatched), 1.0);
    let created = [
        ("method", "POST"),
        ("route", "/api/orgs"),
        ("status", "201"),
    ];
    assert_eq!(sample(&after, name, &created), 1.0);
    // The scrape itself is a request like any other.
    let scraped = [("method", "GET"), ("route", "/metrics"), ("status", "200")];
    assert!(sample(&after, name, &scraped) >= 1.0);
    let timed = sample(
        &after,
        "rolegate_http_request_duration_seconds_count",
        &[("method", "GET"), ("route", "/api/orgs/{org}")],
    );
    assert_eq!(timed, 5.0);
    // Raw paths never become labels: they are unbounded and may name customers.
    assert!(!after.contains("metrics-org"), "{after}");
    assert!(!after.contains("no-such-org"));
    assert!(!after.contains("/api/nowhere"));
}

async fn store_calls_are_timed_under_their_engine(engine: Engine) {
    let app = spawn_app(engine).await;
    assert_eq!(
        app.register(&app.admin_token, "store-org").await.status,
        201
    );
    assert_eq!(
        app.get("/api/orgs/store-org", &app.admin_token)
            .await
            .status,
        200
    );
    let text = scrape(&app).await;
    let label = engine_label(engine);
    let count = "rolegate_store_operation_duration_seconds_count";
    for op in ["get", "commit"] {
        assert!(
            sample(&text, count, &[("engine", label), ("op", op)]) >= 1.0,
            "no {op} timings for {label}: {text}"
        );
    }
    let series: Vec<_> = text
        .lines()
        .filter_map(parse_line)
        .filter(|(n, _, _)| n.starts_with("rolegate_store_"))
        .collect();
    assert!(!series.is_empty());
    assert!(
        series.iter().all(|(_, l, _)| l["engine"] == label),
        "{text}"
    );
    // A healthy store has failed nothing.
    assert!(!text.contains("rolegate_store_errors_total{"), "{text}");
}

async fn rate_limit_rejections_are_counted_per_limit(engine: Engine) {
    let app = spawn_with(
        engine,
        AppOptions {
            toml: "[rate_limits]\nauth_failures_per_ip = { burst = 3, period_secs = 60 }\n".into(),
            manual_clock: true,
            ..Default::default()
        },
    )
    .await;
    let limit = [("limit", "auth_failures_per_ip")];
    let name = "rolegate_rate_limit_rejections_total";
    assert_eq!(sample(&scrape(&app).await, name, &limit), 0.0);
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let r = app
            .send(
                app.client
                    .get(app.url("/api/orgs"))
                    .header("x-api-key", "rgk_guess"),
            )
            .await;
        statuses.push(r.status);
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
    let text = scrape(&app).await;
    assert_eq!(sample(&text, name, &limit), 2.0, "{text}");
    let refused = [("method", "GET"), ("route", "/api/orgs"), ("status", "429")];
    assert_eq!(sample(&text, "rolegate_http_requests_total", &refused), 2.0);
}

async fn disabled_metrics_are_not_found(engine: Engine) {
    let app = spawn_with(
        engine,
        AppOptions {
            toml: "metrics_enabled = false\n".into(),
            ..Default::default()
        },
    )
    .await;
    let r = app.send(app.client.get(app.url("/metrics"))).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.code(), "not_found");
    // Not hidden behind authentication either: simply not there.
    assert_eq!(app.get("/metrics", &app.admin_token).await.status, 404);
    assert_eq!(app.get("/api/health", "").await.status, 200);
}

/// Metrics need the scrape token or an admin: counts of requests and failures tell an
/// outsider more than they should.
async fn metrics_need_the_scrape_token_or_an_admin(engine: Engine) {
    let token = "m".repeat(40);
    let app = spawn_with(
        engine,
        AppOptions {
            toml: format!("metrics_token = \"{token}\"\n"),
            ..Default::default()
        },
    )
    .await;
    let anonymous = app.send(app.client.get(app.url("/metrics"))).await;
    assert_eq!((anonymous.status, anonymous.code()), (401, "unauthorized"));
    assert!(anonymous.header("www-authenticate").is_some());
    assert_eq!(app.get("/metrics", &"m".repeat(39)).await.status, 401);
    let op = app.create_user("watcher", "operator").await;
    assert_eq!(
        app.get("/metrics", &op).await.status,
        401,
        "operators are not admins"
    );
    let r = app.get("/metrics", &token).await;
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.raw).contains("rolegate_http_requests_total"));
    assert_eq!(app.get("/metrics", &app.admin_token).await.status, 200);
}

crate::both_engines!(
    metrics_need_the_scrape_token_or_an_admin,
    requests_are_counted_under_their_route_template,
    store_calls_are_timed_under_their_engine,
    rate_limit_rejections_are_counted_per_limit,
    disabled_metrics_are_not_found,
);

/// The real binary, stdout piped (not a terminal): every line is JSON, each request's lines
/// carry its `x-request-id`, each request ends with an info "request finished" line, and no
/// token, API key or body ever appears.
#[test]
fn logs_are_json_lines_with_the_request_id_and_no_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let master_key = rolegate_crypto::MasterKey::generate().to_base64();
    let server: Server = process::start_with(
        tmp.path(),
        "sqlite",
        &master_key,
        &[
            ("ROLEGATE_LOG_LEVEL", "info"),
            ("ROLEGATE_LOG_FORMAT", "auto"),
        ],
    );
    let admin = std::fs::read_to_string(tmp.path().join("admin.token"))
        .unwrap()
        .trim()
        .to_owned();
    let wrong = "rgt_WrongTokenThatMustNeverAppearInTheLogs0000";
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (requests, secrets) = rt.block_on(async {
        let client = reqwest::Client::new();
        let url = |p: &str| format!("{}{p}", server.base);
        let mut requests: Vec<(String, u16)> = Vec::new();
        let mut note = |r: &reqwest::Response| {
            let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
            requests.push((id, r.status().as_u16()));
        };
        let r = client
            .post(url("/api/users"))
            .bearer_auth(&admin)
            .json(&json!({"user_id": "logger", "role": "operator"}))
            .send()
            .await
            .unwrap();
        note(&r);
        let op_token = r.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = client
            .post(url("/api/orgs"))
            .bearer_auth(&op_token)
            .header("idempotency-key", "log-test")
            .json(&json!({"org_name": "log-org"}))
            .send()
            .await
            .unwrap();
        note(&r);
        let api_key = r.json::<Value>().await.unwrap()["api_key"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = client
            .get(url("/api/orgs/log-org"))
            .header("x-api-key", &api_key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        note(&r);
        let r = client
            .get(url("/api/orgs/log-org"))
            .bearer_auth(&api_key)
            .send()
            .await
            .unwrap();
        note(&r);
        let r = client
            .get(url("/api/users"))
            .bearer_auth(wrong)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        note(&r);
        let r = client.get(url("/nowhere")).send().await.unwrap();
        note(&r);
        (
            requests,
            vec![
                admin.clone(),
                op_token,
                api_key,
                wrong.to_owned(),
                master_key.clone(),
            ],
        )
    });
    drop(rt);
    let (stdout, stderr) = server.stop();

    let lines: Vec<Value> = stdout
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .all(|l| l["level"].is_string() && l["message"].is_string())
    );
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "listening" && l["addr"].is_string()),
        "{stdout:#?}"
    );
    // Every line inside a request's span carries a non-empty request id.
    for l in lines.iter().filter(|l| l["span"]["name"] == "request") {
        assert!(
            l["span"]["request_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty()),
            "{l}"
        );
    }
    for (id, status) in &requests {
        let finished: Vec<_> = lines
            .iter()
            .filter(|l| {
                l["span"]["request_id"] == id.as_str() && l["message"] == "request finished"
            })
            .collect();
        assert_eq!(finished.len(), 1, "request {id}: {stdout:#?}");
        assert_eq!(finished[0]["level"], "INFO");
        assert_eq!(finished[0]["status"], *status);
        assert!(finished[0]["latency_ms"].is_number());
    }
    for secret in &secrets {
        // The random part too, in case something logged a secret without its `rgt_` prefix.
        let tail = secret.split_once('_').map_or(secret.as_str(), |(_, t)| t);
        for line in stdout.iter().chain(&stderr) {
            assert!(
                !line.contains(secret.as_str()) && !line.contains(tail),
                "a secret was logged: {line}"
            );
        }
    }
}
