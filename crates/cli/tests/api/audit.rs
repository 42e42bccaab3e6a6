use std::process::Command;
use std::sync::Arc;

use rolegate_core::audit::{self, ChainBreak};
use rolegate_core::ports::Txn;
use serde_json::json;

use crate::support::{AppOptions, Engine, spawn_app, spawn_with};

async fn state_changes_are_chained_and_verify(engine: Engine) {
    let app = spawn_app(engine).await;
    let op = app.create_user("auditor", "operator").await;
    assert_eq!(app.register(&op, "chain-org").await.status, 201);
    let _ = app
        .post("/api/orgs/chain-org/api-key", &op, json!({}))
        .await;
    let _ = app.delete("/api/orgs/chain-org", &op).await;
    let events = app.audit_events().await;
    let actions: Vec<_> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "user.create",
            "user.create",
            "org.create",
            "org.api_key.rotate",
            "org.offboard"
        ]
    );
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1);
        assert_eq!(e.hash, e.compute_hash());
        assert!(!e.request_id.is_empty());
        if i > 0 {
            assert_eq!(e.prev, events[i - 1].hash);
        }
    }
    assert_eq!(events[2].actor, "user:auditor");
    assert_eq!(events[2].source_ip.as_deref(), Some("127.0.0.1"));
    let report = audit::verify(&app.vault().await).await.unwrap();
    assert!(report.breaks.is_empty(), "{:?}", report.breaks);
    assert_eq!(report.events, 5);
}

async fn failed_logins_are_audited_without_the_secret(engine: Engine) {
    let app = spawn_app(engine).await;
    let bogus = "rgt_ThisIsAWrongTokenThatMustNeverBeLogged0000000";
    assert_eq!(app.get("/api/orgs", bogus).await.status, 401);
    let events = app.audit_events().await;
    let failed: Vec<_> = events
        .iter()
        .filter(|e| e.action == "auth.failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].outcome, audit::Outcome::Failure);
    assert_eq!(failed[0].source_ip.as_deref(), Some("127.0.0.1"));
    assert!(
        !serde_json::to_string(&events)
            .unwrap()
            .contains("ThisIsAWrongToken")
    );
}

async fn failed_attempts_count_against_the_attacker_not_the_victim(engine: Engine) {
    let app = spawn_with(
        engine,
        AppOptions {
            toml: "[rate_limits]\nauth_failures_per_ip = { burst = 3, period_secs = 60 }\n".into(),
            manual_clock: true,
            ..Default::default()
        },
    )
    .await;
    let r = app.register(&app.admin_token, "victim-org").await;
    let key = r.body["api_key"].as_str().unwrap().to_owned();
    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..5 {
            v.push(
                app.send(
                    app.client
                        .get(app.url("/api/orgs/victim-org"))
                        .header("x-api-key", "rgk_guess"),
                )
                .await
                .status,
            );
        }
        v
    };
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
    let limited = app
        .send(
            app.client
                .get(app.url("/api/orgs/victim-org"))
                .header("x-api-key", "rgk_guess"),
        )
        .await;
    assert_eq!(limited.code(), "rate_limited");
    assert!(limited.header("retry-after").is_some());
    assert_eq!(limited.header("ratelimit-limit"), Some("3"));
    assert_eq!(limited.header("ratelimit-remaining"), Some("0"));
    assert!(limited.header("ratelimit-reset").is_some());
    // The victim's real key still works, from the same address even.
    assert_eq!(
        app.send(
            app.client
                .get(app.url("/api/orgs/victim-org"))
                .header("x-api-key", &key)
        )
        .await
        .status,
        200
    );
    // After the window (injected clock, no sleeping) the attacker gets 401 again.
    app.clock.advance_ms(61_000);
    assert_eq!(
        app.send(
            app.client
                .get(app.url("/api/orgs/victim-org"))
                .header("x-api-key", "rgk_guess")
        )
        .await
        .status,
        401
    );
}

async fn an_action_whose_event_cannot_be_written_has_no_effect(engine: Engine) {
    let app = spawn_app(engine).await;
    let store = app.vault().await.store().clone();
    assert!(
        store
            .commit(Txn::new().put(audit::HEAD_KEY, b"not a sealed head".to_vec()))
            .await
            .unwrap()
    );
    let r = app.register(&app.admin_token, "closed-org").await;
    assert_eq!((r.status, r.code()), (503, "audit_unavailable"));
    assert!(
        !String::from_utf8(r.raw).unwrap().contains("sealed"),
        "no internal detail"
    );
    assert!(
        store.get("org/closed-org").await.unwrap().is_none(),
        "no effect"
    );
    let r = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({"user_id": "closed", "role": "operator"}),
        )
        .await;
    assert_eq!(r.status, 503);
    assert!(store.get("user/closed").await.unwrap().is_none());
}

async fn parallel_writers_on_two_replicas_neither_fork_nor_gap(engine: Engine) {
    let a = Arc::new(spawn_app(engine).await);
    let b = Arc::new(
        spawn_with(
            engine,
            AppOptions {
                store: Some(a.store.clone()),
                master_key: Some(a.master_key.clone()),
                ..Default::default()
            },
        )
        .await,
    );
    let mut tasks = Vec::new();
    for i in 0..40 {
        let app = if i % 2 == 0 { a.clone() } else { b.clone() };
        let token = a.admin_token.clone();
        tasks.push(tokio::spawn(async move {
            app.register(&token, &format!("par-{i}")).await.status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 201);
    }
    let report = audit::verify(&a.vault().await).await.unwrap();
    assert!(report.breaks.is_empty(), "{:?}", report.breaks);
    assert_eq!(report.events, 41);
}

/// Events with no write of their own (here: failed logins) are group-committed; a burst on
/// two replicas, mixed with ordinary audited writes, still makes one gapless chain with
/// every event in it exactly once. (Each failure comes from a source of its own: repeated
/// failures from one source in a minute are aggregated, see the test after this one.)
async fn group_committed_appends_on_two_replicas_neither_fork_nor_gap(engine: Engine) {
    let toml = "trust_forwarded_for = true\n[rate_limits]\nauth_failures_per_ip = { burst = 1000, period_secs = 60 }\n";
    let a = Arc::new(
        spawn_with(
            engine,
            AppOptions {
                toml: toml.into(),
                ..Default::default()
            },
        )
        .await,
    );
    let b = Arc::new(
        spawn_with(
            engine,
            AppOptions {
                store: Some(a.store.clone()),
                master_key: Some(a.master_key.clone()),
                toml: toml.into(),
                ..Default::default()
            },
        )
        .await,
    );
    let mut tasks = Vec::new();
    for i in 0..120 {
        let app = if i % 2 == 0 { a.clone() } else { b.clone() };
        let token = a.admin_token.clone();
        tasks.push(tokio::spawn(async move {
            if i % 10 == 0 {
                app.register(&token, &format!("grp-{i}")).await.status
            } else {
                app.send(
                    app.client
                        .get(app.url("/api/orgs"))
                        .header("x-request-id", format!("burst-{i}"))
                        .header("x-forwarded-for", format!("198.51.100.{i}"))
                        .bearer_auth("rgt_wrong"),
                )
                .await
                .status
            }
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.await.unwrap(), if i % 10 == 0 { 201 } else { 401 });
    }
    let report = audit::verify(&a.vault().await).await.unwrap();
    assert!(report.breaks.is_empty(), "{:?}", report.breaks);
    assert_eq!(
        report.events, 121,
        "bootstrap + 12 registrations + 108 failed logins"
    );
    let events = a.audit_events().await;
    let mut ids: Vec<&str> = events
        .iter()
        .filter(|e| e.request_id.starts_with("burst-"))
        .map(|e| e.request_id.as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 108, "every failed login exactly once");
}

async fn verify_names_an_edited_and_a_deleted_event(engine: Engine) {
    let app = spawn_app(engine).await;
    for i in 0..5 {
        assert_eq!(
            app.register(&app.admin_token, &format!("tamper-{i}"))
                .await
                .status,
            201
        );
    }
    let vault = app.vault().await;
    // Edit event 3 (even re-sealed with the right key, the hash no longer matches)...
    let key3 = audit::event_key(3);
    let mut ev3: audit::AuditEvent = vault.get(&key3).await.unwrap().unwrap().value;
    ev3.actor = "user:someone-else".into();
    let txn = vault.put(Txn::new(), &key3, &ev3).unwrap();
    assert!(vault.commit(txn).await.unwrap());
    // ...and delete event 5.
    assert!(
        vault
            .commit(Txn::new().delete(audit::event_key(5)))
            .await
            .unwrap()
    );
    let report = audit::verify(&vault).await.unwrap();
    assert_eq!(report.breaks[0], ChainBreak::HashMismatch { seq: 3 });
    assert!(
        report.breaks.contains(&ChainBreak::Missing { seq: 5 }),
        "{:?}",
        report.breaks
    );
    if engine == Engine::Sqlite {
        // The CLI reports the same, offline against the data dir.
        let out = Command::new(crate::process::BIN)
            .args([
                "--data-dir",
                app.data_dir.to_str().unwrap(),
                "--store",
                &app.store,
                "audit",
                "verify",
            ])
            .env("ROLEGATE_MASTER_KEY", &app.master_key)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(text.contains("event 3 does not match its hash"), "{text}");
        assert!(text.contains("event 5 is missing"), "{text}");
        let out = Command::new(crate::process::BIN)
            .args([
                "--data-dir",
                app.data_dir.to_str().unwrap(),
                "--store",
                &app.store,
                "audit",
                "export",
            ])
            .env("ROLEGATE_MASTER_KEY", &app.master_key)
            .output()
            .unwrap();
        let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[0]["action"], "user.create");
    }
}

async fn the_query_filters_pages_and_scopes_to_the_caller(engine: Engine) {
    let app = spawn_app(engine).await;
    let alice = app.create_user("q-alice", "operator").await;
    let bob = app.create_user("q-bob", "operator").await;
    for name in ["qa-one", "qa-two"] {
        assert_eq!(app.register(&alice, name).await.status, 201);
    }
    assert_eq!(app.register(&bob, "qb-one").await.status, 201);
    let _ = app
        .post("/api/orgs/qa-one/api-key", &alice, json!({}))
        .await;
    // Admin: everything, paged with a cursor.
    let all = app.get("/api/audit?limit=3", &app.admin_token).await;
    assert_eq!(all.status, 200, "{:?}", all.body);
    assert_eq!(all.body["events"].as_array().unwrap().len(), 3);
    let cursor = all.body["next_cursor"].as_str().unwrap();
    let rest = app
        .get(
            &format!("/api/audit?limit=100&cursor={cursor}"),
            &app.admin_token,
        )
        .await;
    assert_eq!(rest.body["events"].as_array().unwrap().len(), 4);
    assert!(rest.body["next_cursor"].is_null());
    // Filters.
    let rot = app
        .get("/api/audit?action=org.api_key.rotate", &app.admin_token)
        .await;
    assert_eq!(rot.body["events"].as_array().unwrap().len(), 1);
    let by_bob = app
        .get("/api/audit?actor=user:q-bob", &app.admin_token)
        .await;
    assert_eq!(by_bob.body["events"][0]["org"], "qb-one");
    let future = app
        .get("/api/audit?since=2999-01-01T00:00:00Z", &app.admin_token)
        .await;
    assert_eq!(future.body["events"].as_array().unwrap().len(), 0);
    // An operator sees only its own orgs' events.
    let mine = app.get("/api/audit", &alice).await;
    let orgs: Vec<_> = mine.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["org"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(orgs, ["qa-one", "qa-two", "qa-one"]);
    let one = app.get("/api/audit?org=qa-one", &alice).await;
    assert_eq!(one.body["events"].as_array().unwrap().len(), 2);
    assert_eq!(app.get("/api/audit?org=qb-one", &alice).await.status, 403);
    // Bad input names the field; API keys may not read the log.
    for (q, field) in [
        ("since=yesterday", "since"),
        ("limit=0", "limit"),
        ("cursor=x", "cursor"),
        ("org=1x", "org_name"),
        ("bogus=1", "bogus"),
    ] {
        let r = app.get(&format!("/api/audit?{q}"), &app.admin_token).await;
        assert_eq!((r.status, r.code()), (400, "invalid_field"), "{q}");
        assert_eq!(r.body["error"]["field"], field, "{q}");
    }
    let key = app.register(&alice, "qa-three").await.body["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.get("/api/audit", &key).await.status, 403);
}

/// Behind a trusted proxy the client's address is the last X-Forwarded-For hop: rotating
/// the hops the client itself sends does not reset its failure budget.
async fn forwarded_hops_cannot_dodge_the_failure_limit(engine: Engine) {
    let app = spawn_with(
        engine,
        AppOptions {
            toml: "trust_forwarded_for = true\n[rate_limits]\nauth_failures_per_ip = { burst = 2, period_secs = 60 }\n".into(),
            manual_clock: true,
            ..Default::default()
        },
    )
    .await;
    let mut statuses = Vec::new();
    for forged in ["1.1.1.1", "2.2.2.2", "3.3.3.3"] {
        let r = app
            .send(
                app.client
                    .get(app.url("/api/orgs"))
                    .header("x-api-key", "rgk_guess")
                    .header("x-forwarded-for", format!("{forged}, 203.0.113.9")),
            )
            .await;
        statuses.push(r.status);
    }
    assert_eq!(statuses, [401, 401, 429]);
    // Another client behind the same proxy is not affected.
    let other = app
        .send(
            app.client
                .get(app.url("/api/orgs"))
                .header("x-api-key", "rgk_guess")
                .header("x-forwarded-for", "203.0.113.10"),
        )
        .await;
    assert_eq!(other.status, 401);
}

/// The binary's offline commands against `app`'s store (the CLI runs only on SQLite here:
/// the Redis harness prefixes are per app, but the binary is the same for both).
fn cli(app: &crate::support::TestApp, args: &[&str]) -> std::process::Output {
    Command::new(crate::process::BIN)
        .args([
            "--data-dir",
            app.data_dir.to_str().unwrap(),
            "--store",
            &app.store,
        ])
        .args(args)
        .env("ROLEGATE_MASTER_KEY", &app.master_key)
        .output()
        .unwrap()
}

/// Defect 11: a raw write of a key no event has (here one past u64's range) is reported by
/// its key, and verify stays bounded.
async fn verify_reports_a_forged_event_key_by_name(engine: Engine) {
    let app = spawn_app(engine).await;
    let forged = "audit/ev/99999999999999999999";
    let store = app.vault().await.store().clone();
    assert!(
        store
            .commit(Txn::new().put(forged, b"forged".to_vec()))
            .await
            .unwrap()
    );
    let report = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        audit::verify(&app.vault().await),
    )
    .await
    .expect("verify must finish")
    .unwrap();
    assert_eq!(
        report.breaks,
        vec![ChainBreak::BadKey {
            key: forged.to_owned()
        }]
    );
    assert_eq!(report.events, 1, "the bootstrap event is still walked");
    if engine == Engine::Sqlite {
        let out = cli(&app, &["audit", "verify"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(text.contains(forged), "{text}");
    }
}

/// Defect 10: a checkpoint taken with `rolegate audit checkpoint`, then the store rolled
/// back (the old head restored, the newer events deleted): plain `verify` cannot see it,
/// `verify --checkpoint` fails and names the gap, and a forged checkpoint is refused.
async fn verify_with_a_checkpoint_names_a_rollback(engine: Engine) {
    let app = spawn_app(engine).await;
    for i in 0..2 {
        assert_eq!(
            app.register(&app.admin_token, &format!("cp-{i}"))
                .await
                .status,
            201
        );
    }
    let store = app.vault().await.store().clone();
    let old_head = store.get(audit::HEAD_KEY).await.unwrap().unwrap();
    for i in 2..5 {
        assert_eq!(
            app.register(&app.admin_token, &format!("cp-{i}"))
                .await
                .status,
            201
        );
    }
    let out = cli(&app, &["audit", "checkpoint"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).unwrap();
    assert_eq!(line.lines().count(), 1, "{line}");
    let cp: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(cp["seq"], 6, "{cp}");
    for field in ["head", "time", "key_id", "mac"] {
        assert!(cp[field].is_string(), "{field} in {cp}");
    }
    let file = app.data_dir.join("checkpoint.json");
    std::fs::write(&file, &line).unwrap();
    let file_arg = file.to_str().unwrap();
    let out = cli(&app, &["audit", "verify", "--checkpoint", file_arg]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Roll the store back to the old head and delete the newer events.
    let mut txn = Txn::new().put(audit::HEAD_KEY, old_head);
    for seq in 4..=6 {
        txn = txn.delete(audit::event_key(seq));
    }
    assert!(store.commit(txn).await.unwrap());
    let out = cli(&app, &["audit", "verify"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "without a checkpoint the rollback is a consistent chain: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = cli(&app, &["audit", "verify", "--checkpoint", file_arg]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("store is behind the checkpoint: checkpoint seq 6, store head seq 3"),
        "{text}"
    );

    // A forged checkpoint (its seq edited) is refused before anything is compared.
    std::fs::write(&file, line.replace("\"seq\":6", "\"seq\":3")).unwrap();
    let out = cli(&app, &["audit", "verify", "--checkpoint", file_arg]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("not authentic"), "{err}");
}

/// The server writes a checkpoint to its log at start and on the way out (JSON, target
/// `rolegate::audit::checkpoint`), and that log is itself a `--checkpoint` file.
#[test]
fn serve_logs_checkpoints_that_verify_accepts() {
    let tmp = tempfile::tempdir().unwrap();
    let key = rolegate_crypto::MasterKey::generate().to_base64();
    let server = crate::process::start_with(
        tmp.path(),
        "sqlite",
        &key,
        &[
            (
                "ROLEGATE_LOG_LEVEL",
                "warn,rolegate::audit::checkpoint=info",
            ),
            ("ROLEGATE_LOG_FORMAT", "json"),
        ],
    );
    // Let it install its signal handler (a request is served after that) before SIGTERM.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let r = reqwest::get(format!("{}/api/health", server.base))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    });
    drop(rt);
    let (stdout, _) = server.stop();
    let checkpoints: Vec<serde_json::Value> = stdout
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["target"] == "rolegate::audit::checkpoint")
        .collect();
    assert!(checkpoints.len() >= 2, "{stdout:#?}");
    let last = checkpoints.last().unwrap();
    assert_eq!(last["seq"], 1, "the bootstrap admin's event: {last}");
    for field in ["head", "time", "key_id", "mac"] {
        assert!(last[field].is_string(), "{field} in {last}");
    }
    let log = tmp.path().join("rolegate.log");
    std::fs::write(&log, stdout.join("\n")).unwrap();
    let out = Command::new(crate::process::BIN)
        .args([
            "--data-dir",
            tmp.path().to_str().unwrap(),
            "audit",
            "verify",
        ])
        .arg("--checkpoint")
        .arg(&log)
        .env("ROLEGATE_MASTER_KEY", &key)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Defect 12: an IPv6 client holds a whole /64, so the failure limit counts per /64 (an
/// IPv4 address is its own source).
async fn ipv6_sources_in_one_64_share_the_failure_limit(engine: Engine) {
    let app = spawn_with(
        engine,
        AppOptions {
            toml: "trust_forwarded_for = true\n[rate_limits]\nauth_failures_per_ip = { burst = 2, period_secs = 60 }\n".into(),
            manual_clock: true,
            ..Default::default()
        },
    )
    .await;
    let mut statuses = Vec::new();
    for from in [
        "2001:db8:1:2::1",
        "2001:db8:1:2::2",
        "2001:db8:1:2:ffff:ffff:ffff:ffff",
        "2001:db8:1:3::1",
        "203.0.113.7",
        "203.0.113.8",
    ] {
        let r = app
            .send(
                app.client
                    .get(app.url("/api/orgs"))
                    .header("x-api-key", "rgk_guess")
                    .header("x-forwarded-for", from),
            )
            .await;
        statuses.push(r.status);
    }
    assert_eq!(statuses, [401, 401, 429, 401, 401, 401]);
}

/// Defect 12: repeated failures from one source within a minute are one aggregated event
/// with a count: the first is written at once, the rest when the minute ends.
async fn a_burst_of_failures_is_one_aggregated_event(engine: Engine) {
    let app = spawn_with(
        engine,
        AppOptions {
            toml: "[rate_limits]\nauth_failures_per_ip = { burst = 1000, period_secs = 60 }\n"
                .into(),
            manual_clock: true,
            ..Default::default()
        },
    )
    .await;
    for i in 0..50 {
        let r = app
            .send(
                app.client
                    .get(app.url("/api/orgs"))
                    .bearer_auth(if i % 2 == 0 { "rgt_wrong" } else { "rgk_wrong" }),
            )
            .await;
        assert_eq!(r.status, 401);
    }
    let failed = |events: Vec<audit::AuditEvent>| -> Vec<audit::AuditEvent> {
        events
            .into_iter()
            .filter(|e| e.action == "auth.failed")
            .collect()
    };
    assert!(failed(app.audit_events().await).len() <= 2);
    // The minute ends (injected clock); the flusher writes the rest within a few seconds.
    app.clock.advance_ms(61_000);
    let mut events = Vec::new();
    for _ in 0..100 {
        events = failed(app.audit_events().await);
        let total: u64 = events
            .iter()
            .filter_map(|e| e.details["count"].as_u64())
            .sum();
        if total >= 50 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(events.len() <= 2, "{events:#?}");
    let total: u64 = events
        .iter()
        .filter_map(|e| e.details["count"].as_u64())
        .sum();
    assert_eq!(total, 50, "{events:#?}");
    let last = events.last().unwrap();
    assert_eq!(last.details["window_secs"], 60);
    assert_eq!(last.outcome, audit::Outcome::Failure);
    assert_eq!(last.source_ip.as_deref(), Some("127.0.0.1"));
    let report = audit::verify(&app.vault().await).await.unwrap();
    assert!(report.breaks.is_empty(), "{:?}", report.breaks);
}

crate::both_engines!(
    ipv6_sources_in_one_64_share_the_failure_limit,
    a_burst_of_failures_is_one_aggregated_event,
    verify_with_a_checkpoint_names_a_rollback,
    verify_reports_a_forged_event_key_by_name,
    forwarded_hops_cannot_dodge_the_failure_limit,
    the_query_filters_pages_and_scopes_to_the_caller,
    state_changes_are_chained_and_verify,
    failed_logins_are_audited_without_the_secret,
    failed_attempts_count_against_the_attacker_not_the_victim,
    an_action_whose_event_cannot_be_written_has_no_effect,
    parallel_writers_on_two_replicas_neither_fork_nor_gap,
    group_committed_appends_on_two_replicas_neither_fork_nor_gap,
    verify_names_an_edited_and_a_deleted_event,
);
