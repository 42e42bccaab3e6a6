//! PostgreSQL-only checks: migrations under concurrent start-up, the listing index, the
//! expiry sweeper, the write probe of `ping`, replicas sharing one database, URL handling and
//! secret hygiene.

use std::sync::Arc;
use std::time::Duration;

use rolegate_core::ports::{KvStore, StoreError, Txn};
use rolegate_store::{PostgresStore, connect};

use crate::support::pg::{shared_cluster, unique_schema};

/// A fresh schema and its URL.
fn schema(test: &str) -> (String, String) {
    let cluster = shared_cluster();
    let name = unique_schema(test);
    cluster.create_schema(&name);
    let url = cluster.url(&name);
    (name, url)
}

fn sql(schema: &str, statement: &str) -> String {
    shared_cluster().psql(&format!("SET search_path = {schema}; {statement}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_starting_together_migrate_once() {
    let (name, url) = schema("migrate");
    let starts: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PostgresStore::connect(&url).await })
        })
        .collect();
    for s in starts {
        let store = s.await.unwrap().expect("every replica starts");
        assert_eq!(store.engine(), "postgres");
    }
    assert_eq!(
        sql(
            &name,
            "SELECT string_agg(version::text, ',' ORDER BY version) FROM rolegate_migrations"
        ),
        "1,2"
    );
    assert_eq!(
        sql(
            &name,
            "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables \
             WHERE schemaname = current_schema()"
        ),
        "rolegate_kv,rolegate_migrations,rolegate_ratelimit"
    );
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let (name, url) = schema("newer");
    drop(PostgresStore::connect(&url).await.unwrap());
    sql(
        &name,
        "INSERT INTO rolegate_migrations (version) VALUES (999)",
    );
    let err = PostgresStore::connect(&url).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("999") && m.contains("upgrade rolegate")),
        "{err:?}"
    );
}

#[tokio::test]
async fn listing_is_an_index_range_scan() {
    let (name, url) = schema("index");
    let s = PostgresStore::connect(&url).await.unwrap();
    let mut txn = Txn::new();
    for i in 0..3000 {
        txn = txn.put(format!("p{}/{i:05}", i % 3), vec![0; 16]);
    }
    assert!(s.commit(txn).await.unwrap());
    let plan = sql(
        &name,
        "ANALYZE rolegate_kv; EXPLAIN SELECT key, value FROM rolegate_kv \
         WHERE key >= 'p1/' AND key < 'p10' ORDER BY key LIMIT 11",
    );
    assert!(
        plan.contains("Index Scan using rolegate_kv_pkey"),
        "a prefix page must be one range of the bytewise primary key:\n{plan}"
    );
    assert!(!plan.contains("Sort"), "the index gives the order:\n{plan}");
}

#[tokio::test]
async fn sweeper_deletes_expired_rows_only() {
    let (name, url) = schema("sweep");
    let s = PostgresStore::connect(&url).await.unwrap();
    let mut txn = Txn::new().put("live", b"1".to_vec());
    for i in 0..25 {
        txn = txn.put_ttl(format!("dead/{i}"), vec![], Duration::from_millis(50));
    }
    assert!(s.commit(txn).await.unwrap());
    s.rate_step(
        "rl",
        0,
        rolegate_core::ports::RateLimit {
            burst: 1,
            period: Duration::from_millis(50),
        },
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(sql(&name, "SELECT count(*) FROM rolegate_kv"), "26");
    assert!(
        s.get("dead/0").await.unwrap().is_none(),
        "expired rows are ignored before the sweep"
    );
    assert_eq!(s.sweep().await.unwrap(), 26, "25 values and 1 bucket");
    assert_eq!(
        sql(&name, "SELECT string_agg(key, ',') FROM rolegate_kv"),
        "live"
    );
    assert_eq!(sql(&name, "SELECT count(*) FROM rolegate_ratelimit"), "0");
    assert_eq!(s.sweep().await.unwrap(), 0);
}

#[tokio::test]
async fn ping_checks_writability_at_most_once_a_second() {
    let (name, url) = schema("ping");
    drop(PostgresStore::connect(&url).await.unwrap());
    let role = format!("{name}_rw");
    shared_cluster().psql(&format!(
        "CREATE ROLE {role} LOGIN; GRANT USAGE ON SCHEMA {name} TO {role}; \
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {name} TO {role}"
    ));
    let as_role = url.replace("://rolegate@", &format!("://{role}@"));
    let s = PostgresStore::connect(&as_role).await.unwrap();
    s.ping().await.unwrap();
    assert!(s.commit(Txn::new().put("k", vec![1])).await.unwrap());
    sql(
        &name,
        &format!("REVOKE INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {name} FROM {role}"),
    );
    s.ping()
        .await
        .expect("a success is trusted for up to a second");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let err = s.ping().await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("read-only")),
        "{err:?}"
    );
    assert_eq!(s.get("k").await.unwrap(), Some(vec![1]), "reads still work");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_share_one_database() {
    let (_, url) = schema("replicas");
    let a: Arc<dyn KvStore> = Arc::new(PostgresStore::connect(&url).await.unwrap());
    let b: Arc<dyn KvStore> = Arc::new(PostgresStore::connect(&url).await.unwrap());
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let s = Arc::clone(if i % 2 == 0 { &a } else { &b });
            tokio::spawn(async move {
                for _ in 0..10 {
                    loop {
                        let txn = match s.get("ctr").await.unwrap() {
                            None => Txn::new().absent("ctr").put("ctr", b"1".to_vec()),
                            Some(old) => {
                                let n: u64 = std::str::from_utf8(&old).unwrap().parse().unwrap();
                                Txn::new()
                                    .equals("ctr", old)
                                    .put("ctr", (n + 1).to_string().into_bytes())
                            }
                        };
                        if s.commit(txn).await.unwrap() {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(a.get("ctr").await.unwrap(), Some(b"160".to_vec()));
    assert_eq!(b.get("ctr").await.unwrap(), Some(b"160".to_vec()));
}

#[tokio::test]
async fn connect_selects_postgres_by_scheme() {
    let (_, url) = schema("scheme");
    let dir = tempfile::tempdir().unwrap();
    for url in [url.clone(), url.replace("postgres://", "postgresql://")] {
        let s = connect(&url, dir.path()).await.unwrap();
        assert_eq!(s.engine(), "postgres");
        s.ping().await.unwrap();
    }
}

#[tokio::test]
async fn errors_never_reveal_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for url in [
        format!("postgres://u:s3cr%21tpw@127.0.0.1:{port}/db?connect_timeout=2"),
        format!("postgres://u:s3cr!tpw@127.0.0.1:{port}/db?sslmode=prefer"),
        format!("postgresql://u:s3cr!tpw@127.0.0.1:{port}/db?bogus=1"),
    ] {
        let err = connect(&url, dir.path()).await.unwrap_err();
        let msg = format!("{err} {err:?}");
        assert!(!msg.contains("s3cr") && !msg.contains("tpw"), "{msg}");
    }
    let err = PostgresStore::connect(&format!(
        "postgres://u:pw@127.0.0.1:{port}/db?connect_timeout=2"
    ))
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

/// A private CA and a server certificate for 127.0.0.1 signed by it, made with openssl.
const MAKE_CERTS: &str = r#"
set -e
cd "$1"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=rolegate-test-ca -keyout ca.key -out ca.crt 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -subj /CN=localhost -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
  -extfile ext -out server.crt 2>/dev/null
chmod 600 server.key
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_verifies_the_server_certificate() {
    use crate::support::pg::PgCluster;
    let cluster = PgCluster::start_with(false, |dir| {
        let out = std::process::Command::new("bash")
            .args(["-c", MAKE_CERTS, "certs"])
            .arg(dir)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!("openssl: {}", String::from_utf8_lossy(&out.stderr)));
        }
        Ok(format!(
            "-c ssl=on -c ssl_cert_file={0}/server.crt -c ssl_key_file={0}/server.key",
            dir.display()
        ))
    })
    .unwrap();
    cluster.create_schema("tls");
    let ca = cluster.dir().join("ca.crt");
    let base = cluster.url("tls");
    // Verified against the private CA: connects, and the connection is encrypted.
    let url = format!("{base}&sslmode=verify-full&sslrootcert={}", ca.display());
    let s = PostgresStore::connect(&url).await.unwrap();
    assert!(s.commit(Txn::new().put("over-tls", vec![7])).await.unwrap());
    assert_eq!(s.get("over-tls").await.unwrap(), Some(vec![7]));
    let encrypted = cluster.psql(
        "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
         WHERE ssl AND application_name = 'rolegate'",
    );
    assert_ne!(encrypted, "0", "rolegate's connections use TLS");
    // `require` verifies too: without the private CA (the Web PKI roots) it is refused.
    for mode in ["require", "verify-ca", "verify-full"] {
        let err = PostgresStore::connect(&format!("{base}&sslmode={mode}"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{mode}: {err:?}");
    }
    drop(s);
}
