//! Single-key and transactional semantics: conditions, atomicity, deletes, TTLs.

use std::sync::Arc;
use std::time::Duration;

use rolegate_core::ports::{KvStore, Txn};

pub fn put(key: &str, value: &[u8]) -> Txn {
    Txn::new().put(key, value.to_vec())
}

pub async fn get_absent(s: Arc<dyn KvStore>) {
    assert_eq!(s.get("nothing/here").await.unwrap(), None);
}

pub async fn put_get_binary(s: Arc<dyn KvStore>) {
    let value = vec![0x00, 0xff, 0xfe, b'a', 0x00, 0x80, 0xc3, 0x28, b'\r', b'\n'];
    assert!(s.commit(put("bin/1", &value)).await.unwrap());
    assert_eq!(s.get("bin/1").await.unwrap(), Some(value.clone()));
    assert!(s.commit(put("bin/empty", b"")).await.unwrap());
    assert_eq!(s.get("bin/empty").await.unwrap(), Some(Vec::new()));
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    assert!(s.commit(put("bin/big", &big)).await.unwrap());
    assert_eq!(s.get("bin/big").await.unwrap(), Some(big));
}

pub async fn create_if_absent(s: Arc<dyn KvStore>) {
    assert!(
        s.commit(Txn::new().absent("org/a").put("org/a", b"first".to_vec()))
            .await
            .unwrap()
    );
    assert!(
        !s.commit(Txn::new().absent("org/a").put("org/a", b"second".to_vec()))
            .await
            .unwrap()
    );
    assert_eq!(s.get("org/a").await.unwrap(), Some(b"first".to_vec()));
}

pub async fn present_condition(s: Arc<dyn KvStore>) {
    assert!(
        !s.commit(Txn::new().present("p/a").put("p/b", b"x".to_vec()))
            .await
            .unwrap()
    );
    assert_eq!(s.get("p/b").await.unwrap(), None);
    assert!(s.commit(put("p/a", b"")).await.unwrap());
    assert!(
        s.commit(Txn::new().present("p/a").put("p/b", b"x".to_vec()))
            .await
            .unwrap()
    );
    assert_eq!(s.get("p/b").await.unwrap(), Some(b"x".to_vec()));
}

pub async fn compare_and_swap(s: Arc<dyn KvStore>) {
    assert!(
        !s.commit(
            Txn::new()
                .equals("c/k", b"v1".to_vec())
                .put("c/k", b"v2".to_vec())
        )
        .await
        .unwrap()
    );
    assert_eq!(
        s.get("c/k").await.unwrap(),
        None,
        "Equals on an absent key fails"
    );
    assert!(s.commit(put("c/k", b"v1")).await.unwrap());
    assert!(
        s.commit(
            Txn::new()
                .equals("c/k", b"v1".to_vec())
                .put("c/k", b"v2".to_vec())
        )
        .await
        .unwrap()
    );
    assert_eq!(s.get("c/k").await.unwrap(), Some(b"v2".to_vec()));
    assert!(
        !s.commit(
            Txn::new()
                .equals("c/k", b"v1".to_vec())
                .put("c/k", b"v3".to_vec())
        )
        .await
        .unwrap()
    );
    assert!(
        !s.commit(
            Txn::new()
                .equals("c/k", b"v".to_vec())
                .put("c/k", b"v3".to_vec())
        )
        .await
        .unwrap()
    );
    assert_eq!(s.get("c/k").await.unwrap(), Some(b"v2".to_vec()));
}

pub async fn multi_key_all_or_nothing(s: Arc<dyn KvStore>) {
    assert!(
        s.commit(put("m/a", b"1").put("m/b", b"1".to_vec()))
            .await
            .unwrap()
    );
    let txn = Txn::new()
        .equals("m/a", b"1".to_vec())
        .absent("m/c")
        .equals("m/b", b"wrong".to_vec())
        .put("m/a", b"2".to_vec())
        .delete("m/b")
        .put("m/c", b"2".to_vec());
    assert!(!s.commit(txn.clone()).await.unwrap());
    assert_eq!(s.get("m/a").await.unwrap(), Some(b"1".to_vec()));
    assert_eq!(s.get("m/b").await.unwrap(), Some(b"1".to_vec()));
    assert_eq!(s.get("m/c").await.unwrap(), None);
    assert_eq!(s.list("m/", None, 10).await.unwrap().items.len(), 2);
    let mut ok = txn;
    ok.conditions[2] = rolegate_core::ports::Condition::Equals("m/b".into(), b"1".to_vec());
    assert!(s.commit(ok).await.unwrap());
    assert_eq!(s.get("m/a").await.unwrap(), Some(b"2".to_vec()));
    assert_eq!(s.get("m/b").await.unwrap(), None);
    assert_eq!(s.get("m/c").await.unwrap(), Some(b"2".to_vec()));
}

pub async fn writes_apply_in_order(s: Arc<dyn KvStore>) {
    assert!(s.commit(put("o/a", b"1").delete("o/a")).await.unwrap());
    assert_eq!(s.get("o/a").await.unwrap(), None);
    assert!(
        s.commit(
            Txn::new()
                .delete("o/a")
                .put("o/a", b"2".to_vec())
                .put("o/a", b"3".to_vec())
        )
        .await
        .unwrap()
    );
    assert_eq!(s.get("o/a").await.unwrap(), Some(b"3".to_vec()));
    let keys: Vec<String> = s
        .list("o/", None, 10)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, ["o/a"]);
}

pub async fn delete_removes(s: Arc<dyn KvStore>) {
    assert!(s.commit(put("d/a", b"x")).await.unwrap());
    assert!(s.commit(Txn::new().delete("d/a")).await.unwrap());
    assert_eq!(s.get("d/a").await.unwrap(), None);
    assert!(s.list("d/", None, 10).await.unwrap().items.is_empty());
    assert!(
        s.commit(Txn::new().delete("d/a")).await.unwrap(),
        "deleting an absent key is fine"
    );
    assert!(
        s.commit(Txn::new().absent("d/a").put("d/a", b"y".to_vec()))
            .await
            .unwrap()
    );
}

pub async fn ttl_expires_everywhere(s: Arc<dyn KvStore>) {
    let ttl = Duration::from_millis(300);
    assert!(
        s.commit(Txn::new().put_ttl("t/a", b"x".to_vec(), ttl))
            .await
            .unwrap()
    );
    assert!(s.commit(put("t/b", b"keep")).await.unwrap());
    assert_eq!(s.get("t/a").await.unwrap(), Some(b"x".to_vec()));
    assert!(
        !s.commit(Txn::new().absent("t/a").put("t/a", b"y".to_vec()))
            .await
            .unwrap()
    );
    assert_eq!(s.list("t/", None, 10).await.unwrap().items.len(), 2);
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(s.get("t/a").await.unwrap(), None);
    assert!(
        !s.commit(Txn::new().present("t/a").put("t/c", b"z".to_vec()))
            .await
            .unwrap()
    );
    assert!(
        !s.commit(
            Txn::new()
                .equals("t/a", b"x".to_vec())
                .put("t/c", b"z".to_vec())
        )
        .await
        .unwrap()
    );
    let page = s.list("t/", None, 10).await.unwrap();
    assert_eq!(page.items, vec![("t/b".to_owned(), b"keep".to_vec())]);
    assert_eq!(page.next, None);
    assert!(
        s.commit(Txn::new().absent("t/a").put("t/a", b"y".to_vec()))
            .await
            .unwrap()
    );
    assert_eq!(s.get("t/a").await.unwrap(), Some(b"y".to_vec()));
}

pub async fn put_without_ttl_clears_ttl(s: Arc<dyn KvStore>) {
    let ttl = Duration::from_millis(300);
    assert!(
        s.commit(Txn::new().put_ttl("n/a", b"1".to_vec(), ttl))
            .await
            .unwrap()
    );
    assert!(s.commit(put("n/a", b"2")).await.unwrap());
    // And the other way round: a TTL put replaces a permanent value's lifetime.
    assert!(s.commit(put("n/b", b"1")).await.unwrap());
    assert!(
        s.commit(Txn::new().put_ttl("n/b", b"2".to_vec(), ttl))
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(s.get("n/a").await.unwrap(), Some(b"2".to_vec()));
    assert_eq!(s.get("n/b").await.unwrap(), None);
}
