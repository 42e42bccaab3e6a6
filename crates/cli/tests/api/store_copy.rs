//! `rolegate store copy`: the documented path from one node to replicas (stop, copy from
//! SQLite to PostgreSQL, start the replicas on PostgreSQL).

use std::process::Command;

use crate::process::BIN;
use crate::support::{AppOptions, Engine, spawn_with};

fn copy(
    data_dir: &std::path::Path,
    key: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (bool, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["--data-dir", data_dir.to_str().unwrap(), "store", "copy"])
        .args(args)
        .env("ROLEGATE_MASTER_KEY", key)
        .env_remove("ROLEGATE_COPY_FROM")
        .env_remove("ROLEGATE_COPY_TO")
        .env_remove("ROLEGATE_STORE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_to_postgres_then_replicas_serve_the_same_data() {
    let one = crate::support::spawn_app(Engine::Sqlite).await;
    let reg = one.register(&one.admin_token, "moving-org").await;
    assert_eq!(reg.status, 201);
    let api_key = reg.body["api_key"].as_str().unwrap().to_owned();
    let operator = one.create_user("mover", "operator").await;
    let before = one.audit_events().await.len();
    let source = one.store.clone();
    let target = crate::support::store_spec(Engine::Postgres);
    let (_, schema) = target.split_once("search_path%3D").unwrap();

    // The source URL from a file, the target from the environment: neither in the arguments.
    let files = tempfile::tempdir().unwrap();
    let from_file = files.path().join("from");
    std::fs::write(&from_file, format!("{source}\n")).unwrap();
    let (ok, out) = copy(
        &one.data_dir,
        &one.master_key,
        &["--from-file", from_file.to_str().unwrap()],
        // The file wins over the variable (which a wrapper script may have left set).
        &[
            ("ROLEGATE_COPY_TO", &target),
            ("ROLEGATE_COPY_FROM", "bogus://x"),
        ],
    );
    assert!(ok, "{out}");
    let records: usize = out
        .split_once("copied ")
        .and_then(|(_, r)| r.split_once(' '))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    let events = one.audit_events().await.len();
    assert!(events >= before && records > events, "{out}");
    assert!(
        !out.contains("(0 with a TTL"),
        "idempotency records carry TTLs: {out}"
    );
    assert!(
        out.contains(&format!(
            "audit chain on the target intact: {events} events"
        )),
        "{out}"
    );
    let cluster = crate::support::pg::shared_cluster();
    let sql = |q: &str| cluster.psql(&format!("SET search_path = {schema}; {q}"));
    assert_eq!(sql("SELECT count(*) FROM rolegate_kv"), records.to_string());
    assert_ne!(
        sql("SELECT count(*) FROM rolegate_kv WHERE expires_at IS NOT NULL"),
        "0",
        "TTLs are carried over"
    );

    // A second copy refuses the non-empty target, unless --force.
    let (ok, out) = copy(
        &one.data_dir,
        &one.master_key,
        &["--from", &source, "--to", &target],
        &[],
    );
    assert!(
        !ok && out.contains("not empty") && out.contains("--force"),
        "{out}"
    );
    let (ok, out) = copy(
        &one.data_dir,
        &one.master_key,
        &["--from", &source, "--to", &target, "--force"],
        &[],
    );
    assert!(ok, "{out}");
    let (ok, out) = copy(&one.data_dir, &one.master_key, &["--from", &source], &[]);
    assert!(
        !ok && out.contains("--to-file"),
        "a missing target is a clear error: {out}"
    );

    // Replicas on PostgreSQL with the same master key serve what the single node had.
    for _ in 0..2 {
        let replica = spawn_with(
            Engine::Postgres,
            AppOptions {
                store: Some(target.clone()),
                master_key: Some(one.master_key.clone()),
                ..Default::default()
            },
        )
        .await;
        let org = replica.get("/api/orgs/moving-org", &api_key).await;
        assert_eq!(org.status, 200, "{:?}", org.body);
        assert_eq!(replica.get("/api/orgs", &operator).await.status, 200);
        assert_eq!(replica.get("/api/orgs", &one.admin_token).await.status, 200);
    }
}

#[tokio::test]
async fn a_copy_without_the_master_key_fails_before_writing() {
    let one = crate::support::spawn_app(Engine::Sqlite).await;
    assert_eq!(one.register(&one.admin_token, "kept").await.status, 201);
    let target = crate::support::store_spec(Engine::Postgres);
    let (_, schema) = target.split_once("search_path%3D").unwrap();
    let empty = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    let out = cmd
        .args([
            "--data-dir",
            empty.path().to_str().unwrap(),
            "store",
            "copy",
        ])
        .args(["--from", &one.store, "--to", &target])
        .env_remove("ROLEGATE_MASTER_KEY")
        .env_remove("ROLEGATE_MASTER_KEY_FILE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let tables = crate::support::pg::shared_cluster().psql(&format!(
        "SELECT count(*) FROM pg_tables WHERE schemaname = '{schema}'"
    ));
    assert_eq!(tables, "0", "nothing was touched on the target");
}
