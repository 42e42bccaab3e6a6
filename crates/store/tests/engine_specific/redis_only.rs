//! Redis-only checks: key namespacing, index upkeep, URL handling and secret hygiene.

use std::time::Duration;

use rolegate_core::ports::{KvStore, RateLimit, StoreError, Txn};
use rolegate_store::{RedisStore, connect};

use crate::support::{redis_url, unique_prefix};

async fn raw() -> ::redis::aio::MultiplexedConnection {
    let client = ::redis::Client::open(redis_url()).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}

async fn raw_keys(pattern: &str) -> Vec<String> {
    let mut conn = raw().await;
    let mut keys: Vec<String> = ::redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.sort();
    keys
}

#[tokio::test]
async fn every_key_lives_under_the_prefix() {
    let (pa, pb) = (unique_prefix("ns-a"), unique_prefix("ns-b"));
    let a = RedisStore::connect(&redis_url(), &pa).await.unwrap();
    let b = RedisStore::connect(&redis_url(), &pb).await.unwrap();
    assert_eq!(a.prefix(), pa);
    assert!(
        a.commit(Txn::new().put("k", b"a".to_vec()).put("x/y", vec![]))
            .await
            .unwrap()
    );
    a.rate_step(
        "k",
        0,
        RateLimit {
            burst: 2,
            period: Duration::from_secs(3600),
        },
    )
    .await
    .unwrap();
    a.ping().await.unwrap();
    assert_eq!(
        b.get("k").await.unwrap(),
        None,
        "other prefixes are invisible"
    );
    assert!(b.list("", None, 10).await.unwrap().items.is_empty());
    let keys: Vec<String> = a
        .list("", None, 10)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, ["k", "x/y"], "listing strips the prefix");
    let written = raw_keys(&format!("{pa}*")).await;
    assert!(written.contains(&format!("{pa}k")));
    assert!(written.contains(&format!("{pa}x/y")));
    assert_eq!(
        written.len(),
        5,
        "value keys, index, bucket and ping key: {written:?}"
    );
    let all = raw_keys("*").await;
    let ours = format!("t{}-", std::process::id());
    assert!(
        all.iter()
            .all(|k| k.starts_with(&ours) || k.starts_with("url")),
        "stray keys: {all:?}"
    );
}

#[tokio::test]
async fn expired_entries_leave_the_index() {
    let prefix = unique_prefix("idx");
    let s = RedisStore::connect(&redis_url(), &prefix).await.unwrap();
    assert!(
        s.commit(
            Txn::new()
                .put_ttl("e/a", vec![1], Duration::from_millis(50))
                .put("e/b", vec![2])
        )
        .await
        .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(s.list("e/", None, 10).await.unwrap().items.len(), 1);
    let mut conn = raw().await;
    let members: Vec<String> = ::redis::cmd("ZRANGE")
        .arg(format!("{prefix} idx"))
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(members, ["e/b"]);
}

#[tokio::test]
async fn connect_with_prefix_query_param() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("url{}:", std::process::id());
    let s = connect(&format!("{}?prefix={prefix}", redis_url()), dir.path())
        .await
        .unwrap();
    assert_eq!(s.engine(), "redis");
    assert!(
        s.commit(Txn::new().put("via-url", b"1".to_vec()))
            .await
            .unwrap()
    );
    let mut conn = raw().await;
    let v: Option<Vec<u8>> = ::redis::cmd("GET")
        .arg(format!("{prefix}via-url"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(v, Some(b"1".to_vec()));
    assert!(s.commit(Txn::new().delete("via-url")).await.unwrap());
}

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn errors_never_reveal_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    let live = redis_url().replace("redis://", "redis://:s3cr%21tpw@");
    for url in [format!("redis://user:s3cr%21tpw@127.0.0.1:{port}/0"), live] {
        let err = RedisStore::connect(&url, "p:").await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        let msg = err.to_string();
        assert!(!msg.contains("s3cr") && !msg.contains("tpw"), "{msg}");
        let err = connect(&url, dir.path()).await.unwrap_err().to_string();
        assert!(!err.contains("s3cr") && !err.contains("tpw"), "{err}");
    }
    let err = connect("ftp://user:s3cr3tpw@host/", dir.path())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("ftp") && !err.contains("s3cr"), "{err}");
}

async fn index_len(prefix: &str) -> usize {
    let mut conn = raw().await;
    ::redis::cmd("ZCARD")
        .arg(format!("{prefix} idx"))
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn listing_resumes_past_many_expired_entries() {
    let prefix = unique_prefix("many-dead");
    let s = RedisStore::connect(&redis_url(), &prefix).await.unwrap();
    let mut txn = Txn::new();
    for i in 0..2500 {
        txn = txn.put_ttl(format!("d/{i:05}"), vec![], Duration::from_millis(50));
    }
    assert!(s.commit(txn.put("d/zz", b"live".to_vec())).await.unwrap());
    tokio::time::sleep(Duration::from_millis(120)).await;
    let (mut items, mut after, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let page = s.list("d/", after.as_deref(), 10).await.unwrap();
        pages += 1;
        items.extend(page.items);
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(items, vec![("d/zz".to_owned(), b"live".to_vec())]);
    assert!(
        pages >= 2,
        "a bounded script call cannot examine 2500 entries at once"
    );
    assert_eq!(index_len(&prefix).await, 1);
}

#[tokio::test]
async fn background_sweep_trims_the_index() {
    let prefix = unique_prefix("sweep");
    let s = RedisStore::connect(&redis_url(), &prefix).await.unwrap();
    let mut txn = Txn::new();
    for i in 0..20 {
        txn = txn.put_ttl(format!("s/{i}"), vec![], Duration::from_millis(50));
    }
    assert!(s.commit(txn).await.unwrap());
    tokio::time::sleep(Duration::from_millis(120)).await;
    for i in 0..1100u32 {
        assert!(
            s.commit(Txn::new().put("other", i.to_le_bytes().to_vec()))
                .await
                .unwrap()
        );
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while index_len(&prefix).await != 1 {
        assert!(std::time::Instant::now() < deadline, "sweep did not run");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
