//! Ordered prefix listing: order, isolation, cursors, page limits.

use std::sync::Arc;

use rolegate_core::ports::{KvStore, Txn};

use super::kv::put;

pub async fn list_order_and_prefix_isolation(s: Arc<dyn KvStore>) {
    for k in ["a/z", "ab", "a/b", "a", "a/a/x", "a/B", "b/a", "a.", "a/~"] {
        assert!(s.commit(put(k, k.as_bytes())).await.unwrap());
    }
    let page = s.list("a/", None, 100).await.unwrap();
    let keys: Vec<&str> = page.items.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        ["a/B", "a/a/x", "a/b", "a/z", "a/~"],
        "ascending byte order, prefix only"
    );
    assert!(page.items.iter().all(|(k, v)| k.as_bytes() == v.as_slice()));
    assert_eq!(page.next, None);
    let all: Vec<String> = s
        .list("", None, 100)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted);
    assert_eq!(all.len(), 9);
    assert!(s.list("zzz", None, 10).await.unwrap().items.is_empty());
    let after = s.list("a/", Some("a/b"), 100).await.unwrap();
    let keys: Vec<&str> = after.items.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["a/z", "a/~"], "strictly after the cursor");
    assert!(s.list("a/", Some("b"), 100).await.unwrap().items.is_empty());
    let keys: Vec<String> = s
        .list("a/", Some("0"), 2)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        keys,
        ["a/B", "a/a/x"],
        "a cursor before the prefix starts at the prefix"
    );
    let keys = |page: rolegate_core::ports::Page| -> Vec<String> {
        page.items.into_iter().map(|(k, _)| k).collect()
    };
    assert_eq!(
        keys(s.list("a/", Some("a/"), 100).await.unwrap()).len(),
        5,
        "a cursor equal to the prefix excludes only that key"
    );
    assert_eq!(
        keys(s.list("", Some("a/z"), 100).await.unwrap()),
        ["a/~", "ab", "b/a"],
        "a cursor with the empty prefix"
    );
}

pub async fn list_paging(s: Arc<dyn KvStore>) {
    let mut txn = Txn::new();
    for i in 0..23 {
        txn = txn.put(format!("pg/{i:03}"), vec![i]);
    }
    assert!(
        s.commit(txn.put("pg0", vec![]).put("pf/x", vec![]))
            .await
            .unwrap()
    );
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = s.list("pg/", after.as_deref(), 5).await.unwrap();
        assert!(page.items.len() <= 5);
        pages += 1;
        seen.extend(page.items.into_iter().map(|(k, v)| (k, v[0])));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(pages, 5);
    let expected: Vec<(String, u8)> = (0..23).map(|i| (format!("pg/{i:03}"), i)).collect();
    assert_eq!(seen, expected);
    // An exact multiple of the limit ends without an empty trailing page.
    let page = s.list("pg/", Some("pg/017"), 5).await.unwrap();
    assert_eq!(page.items.len(), 5);
    assert_eq!(page.next, None);
}

pub async fn list_limit_zero_and_cap(s: Arc<dyn KvStore>) {
    let mut txn = Txn::new();
    for i in 0..1005 {
        txn = txn.put(format!("cap/{i:05}"), b"v".to_vec());
    }
    assert!(s.commit(txn).await.unwrap());
    let zero = s.list("cap/", None, 0).await.unwrap();
    assert!(zero.items.is_empty());
    assert_eq!(zero.next, None);
    let page = s.list("cap/", None, 5000).await.unwrap();
    assert_eq!(page.items.len(), 1000, "limit is capped at 1000");
    assert_eq!(page.next.as_deref(), Some("cap/00999"));
    let rest = s.list("cap/", page.next.as_deref(), 5000).await.unwrap();
    assert_eq!(rest.items.len(), 5);
    assert_eq!(rest.next, None);
}
