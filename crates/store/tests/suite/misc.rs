//! Races between concurrent tasks, argument validation and the health probe.

use std::sync::Arc;
use std::time::Duration;

use rolegate_core::ports::{KvStore, StoreError, Txn};

use super::kv::put;
use super::rate::{base_now, slow};

pub async fn concurrent_create_exactly_one(s: Arc<dyn KvStore>) {
    let tasks: Vec<_> = (0..50u8)
        .map(|i| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                (
                    i,
                    s.commit(Txn::new().absent("org/x").put("org/x", vec![i]))
                        .await
                        .unwrap(),
                )
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        let (i, won) = t.await.unwrap();
        if won {
            winners.push(i);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one creator wins");
    assert_eq!(s.get("org/x").await.unwrap(), Some(vec![winners[0]]));
}

pub async fn concurrent_cas_counter(s: Arc<dyn KvStore>) {
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let s = Arc::clone(&s);
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
    assert_eq!(s.get("ctr").await.unwrap(), Some(b"320".to_vec()));
}

pub async fn concurrent_rate_burst(s: Arc<dyn KvStore>) {
    let (now, limit) = (base_now(), slow(10));
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let s = Arc::clone(&s);
            tokio::spawn(async move { s.rate_step("rl/c", now, limit).await.unwrap().allowed })
        })
        .collect();
    let mut allowed = 0;
    for t in tasks {
        allowed += usize::from(t.await.unwrap());
    }
    assert_eq!(allowed, 10);
}

fn assert_invalid<T: std::fmt::Debug>(r: Result<T, StoreError>, what: &str) {
    assert!(
        matches!(r, Err(StoreError::Invalid(_))),
        "{what}: expected Invalid, got {r:?}"
    );
}

pub async fn invalid_inputs(s: Arc<dyn KvStore>) {
    let long = "k".repeat(513);
    for bad in [
        "",
        "a b",
        "a\nb",
        "a\tb",
        "a\u{0}b",
        "\u{7f}",
        "é",
        long.as_str(),
    ] {
        assert_invalid(s.get(bad).await, &format!("get {bad:?}"));
        assert_invalid(s.commit(put(bad, b"v")).await, &format!("put {bad:?}"));
        assert_invalid(
            s.commit(Txn::new().absent(bad).put("ok", b"v".to_vec()))
                .await,
            "condition key",
        );
        assert_invalid(s.commit(Txn::new().delete(bad)).await, "delete key");
        assert_invalid(s.rate_step(bad, 0, slow(1)).await, "rate key");
    }
    assert_invalid(s.list("a b", None, 10).await, "list prefix");
    assert_invalid(s.list("a/", Some("x y"), 10).await, "list cursor");
    assert_invalid(s.commit(Txn::new()).await, "empty txn");
    assert_invalid(
        s.commit(Txn::new().absent("ok")).await,
        "txn without writes",
    );
    assert_invalid(
        s.commit(Txn::new().put_ttl("ok", vec![], Duration::ZERO))
            .await,
        "zero ttl",
    );
    assert_eq!(
        s.get("ok").await.unwrap(),
        None,
        "invalid txns write nothing"
    );
    let max = "k".repeat(512);
    assert!(
        s.commit(put(&max, b"v")).await.unwrap(),
        "512-byte keys are fine"
    );
    assert_eq!(s.get(&max).await.unwrap(), Some(b"v".to_vec()));
}

pub async fn ping_works(s: Arc<dyn KvStore>) {
    for _ in 0..3 {
        s.ping().await.unwrap();
    }
    assert!(
        s.list("", None, 10).await.unwrap().items.is_empty(),
        "ping leaves no visible keys"
    );
    let engine = s.engine();
    assert!(
        !engine.is_empty() && engine.bytes().all(|b| b.is_ascii_lowercase()),
        "the engine names itself in one lowercase word: {engine:?}"
    );
}
