use rolegate_core::ports::Txn;
use serde_json::json;

use crate::support::{AppOptions, Engine, TestApp, spawn_app, spawn_with};

/// Every byte the engine holds: the SQLite files, every PostgreSQL row's key and value, or
/// every Redis key name and value.
pub(crate) async fn raw_store_bytes(app: &TestApp) -> Vec<u8> {
    match app.engine {
        Engine::Sqlite => {
            let mut all = Vec::new();
            for entry in std::fs::read_dir(&app.data_dir).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().to_string();
                if name.starts_with("rolegate.db") {
                    all.extend(std::fs::read(&path).unwrap());
                }
            }
            assert!(!all.is_empty(), "the SQLite file exists");
            all
        }
        Engine::Postgres => {
            let (_, schema) = app.store.split_once("search_path%3D").unwrap();
            let rows = crate::support::pg::shared_cluster().psql(&format!(
                "SET search_path = {schema}; SELECT key || '|' || encode(value, 'hex') FROM rolegate_kv"
            ));
            let mut all = Vec::new();
            for line in rows.lines() {
                let (key, hex) = line.split_once('|').unwrap();
                all.extend(key.as_bytes());
                all.extend(
                    (0..hex.len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()),
                );
            }
            assert!(rows.lines().count() > 3);
            all
        }
        Engine::Redis => {
            let (url, prefix) = app.store.split_once("/?prefix=").unwrap();
            let client = ::redis::Client::open(url).unwrap();
            let mut con = client.get_multiplexed_async_connection().await.unwrap();
            let keys: Vec<Vec<u8>> = ::redis::cmd("KEYS")
                .arg(format!("{prefix}*"))
                .query_async(&mut con)
                .await
                .unwrap();
            assert!(keys.len() > 3);
            let mut all = Vec::new();
            for k in keys {
                all.extend(&k);
                let kind: String = ::redis::cmd("TYPE")
                    .arg(&k)
                    .query_async(&mut con)
                    .await
                    .unwrap();
                let vals: Vec<Vec<u8>> = match kind.as_str() {
                    "string" => vec![
                        ::redis::cmd("GET")
                            .arg(&k)
                            .query_async(&mut con)
                            .await
                            .unwrap(),
                    ],
                    "zset" => ::redis::cmd("ZRANGE")
                        .arg(&k)
                        .arg(0)
                        .arg(-1)
                        .query_async(&mut con)
                        .await
                        .unwrap(),
                    "hash" => ::redis::cmd("HGETALL")
                        .arg(&k)
                        .query_async(&mut con)
                        .await
                        .unwrap(),
                    // Listed, then gone before TYPE (a TTL or a job's purge): nothing to scan.
                    "none" => vec![],
                    other => panic!("unexpected redis type {other}"),
                };
                for v in vals {
                    all.extend(v);
                }
            }
            all
        }
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

async fn no_secret_appears_in_the_raw_store(engine: Engine) {
    let app = spawn_app(engine).await;
    let op = app.create_user("scanner", "operator").await;
    let r = app.register(&op, "scan-org").await;
    let api_key = r.body["api_key"].as_str().unwrap().to_owned();
    let external_id = r.body["external_id"].as_str().unwrap().to_owned();
    let rot = app.post("/api/orgs/scan-org/api-key", &op, json!({})).await;
    let api_key2 = rot.body["api_key"].as_str().unwrap().to_owned();
    // The callback secret is only in the sealed record: read it through the vault.
    let vault = app.vault().await;
    let rec = vault
        .get::<rolegate_core::orgs::OrgRecord>("org/scan-org")
        .await
        .unwrap()
        .unwrap()
        .value;
    let raw = raw_store_bytes(&app).await;
    // The scan must be able to fail: plain org names are stored in key names.
    assert!(contains(&raw, "scan-org"));
    for secret in [
        &app.admin_token,
        &op,
        &api_key,
        &api_key2,
        &external_id,
        &rec.callback_secret.expose().to_owned(),
    ] {
        assert!(secret.len() > 20);
        assert!(!contains(&raw, secret), "a secret is stored in plaintext");
        // Nor a long fragment of it.
        assert!(
            !contains(&raw, &secret[4..28]),
            "a secret fragment is stored in plaintext"
        );
    }
}

async fn a_ciphertext_copied_to_another_record_fails_to_open(engine: Engine) {
    let app = spawn_app(engine).await;
    assert_eq!(app.register(&app.admin_token, "aad-one").await.status, 201);
    assert_eq!(app.register(&app.admin_token, "aad-two").await.status, 201);
    let vault = app.vault().await;
    let store = vault.store();
    let one = store.get("org/aad-one").await.unwrap().unwrap();
    assert!(
        store
            .commit(Txn::new().put("org/aad-two", one))
            .await
            .unwrap()
    );
    let err = vault
        .get::<rolegate_core::orgs::OrgRecord>("org/aad-two")
        .await
        .unwrap_err();
    assert!(
        matches!(err, rolegate_core::Error::Corrupt { .. }),
        "{err:?}"
    );
    // Through the API: an internal error with no detail, never the other org's data.
    let r = app.get("/api/orgs/aad-two", &app.admin_token).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.code(), "internal");
    assert!(!String::from_utf8(r.raw).unwrap().contains("aad-one"));
}

async fn rotation_keeps_old_records_readable_and_rekey_reseals(engine: Engine) {
    let old_key = rolegate_crypto::MasterKey::generate();
    let app = spawn_with(
        engine,
        AppOptions {
            master_key: Some(old_key.to_base64()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        app.register(&app.admin_token, "rekey-org").await.status,
        201
    );
    let new_key = rolegate_crypto::MasterKey::generate();
    // A restart with the new key added: old records open, new writes use the new key.
    let both = format!("{},{}", old_key.to_base64(), new_key.to_base64());
    let app2 = spawn_with(
        engine,
        AppOptions {
            store: Some(app.store.clone()),
            master_key: Some(both.clone()),
            ..Default::default()
        },
    )
    .await;
    let app2 = TestApp {
        data_dir: app.data_dir.clone(),
        ..app2
    };
    assert_eq!(
        app2.get("/api/orgs/rekey-org", &app.admin_token)
            .await
            .status,
        200
    );
    assert_eq!(
        app2.register(&app.admin_token, "rekey-new").await.status,
        201
    );
    let store = rolegate_store::connect(&app.store, &app.data_dir)
        .await
        .unwrap();
    let id_of = |raw: &[u8]| rolegate_crypto::Keyring::key_id_of(raw).unwrap();
    assert_eq!(
        id_of(&store.get("org/rekey-org").await.unwrap().unwrap()),
        old_key.id()
    );
    assert_eq!(
        id_of(&store.get("org/rekey-new").await.unwrap().unwrap()),
        new_key.id()
    );
    // Short-lived records: a used nonce and a single-flight lock (unsealed markers) and a
    // cached credential sealed under the old key.
    let markers = Txn::new()
        .put_ttl(
            "nonce/rekey-org/0123456789abcdef",
            vec![1],
            std::time::Duration::from_secs(900),
        )
        .put_ttl(
            "credlock/0123",
            Vec::new(),
            std::time::Duration::from_secs(30),
        );
    assert!(store.commit(markers).await.unwrap());
    let old_ring = rolegate_crypto::Keyring::new(std::slice::from_ref(&old_key)).unwrap();
    let old_vault = rolegate_core::vault::Vault::new(store.clone(), std::sync::Arc::new(old_ring));
    let cached = old_vault
        .put_ttl(
            Txn::new(),
            "cred/rekey-org/0123",
            &json!({"old": true}),
            std::time::Duration::from_secs(600),
        )
        .unwrap();
    assert!(old_vault.commit(cached).await.unwrap());
    // rekey re-seals everything under the newest key.
    let ring = rolegate_crypto::Keyring::new(&[old_key.clone(), new_key.clone()]).unwrap();
    let vault = rolegate_core::vault::Vault::new(store.clone(), std::sync::Arc::new(ring));
    let (resealed, total) = vault.rekey().await.unwrap();
    assert!(
        store.get("cred/rekey-org/0123").await.unwrap().is_none(),
        "a cached credential under the old key is dropped, not re-sealed without its expiry"
    );
    assert!(
        store
            .get("nonce/rekey-org/0123456789abcdef")
            .await
            .unwrap()
            .is_some()
    );
    assert!(resealed > 0 && total >= resealed);
    let mut after = None;
    loop {
        let page = store.list("", after.as_deref(), 100).await.unwrap();
        for (k, v) in &page.items {
            let rule = rolegate_core::keyspace::family_of(k).map(|f| f.rekey);
            if rule != Some(rolegate_core::keyspace::Rekey::Skip) {
                assert_eq!(id_of(v), new_key.id(), "{k} not re-sealed");
            }
        }
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    // And the new key alone now reads everything.
    let only_new = spawn_with(
        engine,
        AppOptions {
            store: Some(app.store.clone()),
            master_key: Some(new_key.to_base64()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        only_new
            .get("/api/orgs/rekey-org", &app.admin_token)
            .await
            .status,
        200
    );
}

crate::both_engines!(
    no_secret_appears_in_the_raw_store,
    a_ciphertext_copied_to_another_record_fails_to_open,
    rotation_keeps_old_records_readable_and_rekey_reseals,
);
