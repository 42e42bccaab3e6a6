//! `rolegate bench-seed`: the data it writes is what the service writes (sealed records that
//! the real server serves, API keys that authenticate) and the audit chain verifies.

use std::process::{Command, Output};

use crate::process::{BIN, start};
use crate::support::{Engine, store_spec};

fn rolegate(dir: &std::path::Path, store: &str, key: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["--data-dir", dir.to_str().unwrap(), "--store", store])
        .args(args)
        .env("ROLEGATE_MASTER_KEY", key)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

async fn seeded_orgs_are_served_and_the_chain_verifies(engine: Engine) {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_spec(engine);
    let key = rolegate_crypto::MasterKey::generate().to_base64();
    let token = ok(&rolegate(tmp.path(), &store, &key, &["admin", "token"]));
    let keys_file = tmp.path().join("keys.txt");
    // Uneven batches, so that the chain crosses several store transactions.
    let seed = [
        "bench-seed",
        "--orgs",
        "30",
        "--events",
        "100",
        "--batch",
        "7",
        "--keys",
        "5",
        "--keys-out",
        keys_file.to_str().unwrap(),
    ];
    let summary = ok(&rolegate(tmp.path(), &store, &key, &seed));
    assert!(
        summary.contains("30 orgs and 100 audit events"),
        "{summary}"
    );
    // 100 seeded events after the admin's user.create.
    let verified = ok(&rolegate(tmp.path(), &store, &key, &["audit", "verify"]));
    assert!(verified.contains("intact: 101 events"), "{verified}");

    // The same names again: refused, nothing written, the chain still intact.
    let again = rolegate(tmp.path(), &store, &key, &seed[..5]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let verified = ok(&rolegate(tmp.path(), &store, &key, &["audit", "verify"]));
    assert!(verified.contains("intact: 101 events"), "{verified}");

    let sample = std::fs::read_to_string(&keys_file).unwrap();
    let pairs: Vec<(&str, &str)> = sample.lines().map(|l| l.split_once(' ').unwrap()).collect();
    assert_eq!(pairs.len(), 5);
    let server = start(tmp.path(), &store, &key);
    let client = reqwest::Client::new();
    for (org, api_key) in &pairs {
        let r = client
            .get(format!("{}/api/orgs/{org}", server.base))
            .header("x-api-key", *api_key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{org}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["status"], "pending");
        assert_eq!(body["owner"], "admin");
    }
    let listed: serde_json::Value = client
        .get(format!("{}/api/orgs?limit=100", server.base))
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["orgs"].as_array().unwrap().len(), 30, "{listed}");
    let (_, err) = server.stop();
    assert!(!err.iter().any(|l| l.contains("ERROR")), "{err:?}");
}

crate::both_engines!(seeded_orgs_are_served_and_the_chain_verifies);

#[test]
fn bench_seed_is_hidden_from_help() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("serve") && !help.contains("bench-seed"),
        "{help}"
    );
}
