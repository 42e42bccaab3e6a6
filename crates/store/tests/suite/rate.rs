//! GCRA rate limiting with injected time.

use std::sync::Arc;
use std::time::Duration;

use rolegate_core::ports::{
    KvStore, RateDecision, RateLimit, StoreError, Txn, first_refused, gcra, gcra_all,
};

/// A limit whose refill interval is so long that the real-time expiry of the stored TAT never
/// matters during a test: time is injected through `now_ms` only.
pub fn slow(burst: u32) -> RateLimit {
    RateLimit {
        burst,
        period: Duration::from_secs(3600 * u64::from(burst)),
    }
}

pub fn base_now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

pub async fn rate_burst_then_deny(s: Arc<dyn KvStore>) {
    let (now, limit) = (base_now(), slow(3));
    for expected in [2, 1, 0] {
        let d = s.rate_step("rl/a", now, limit).await.unwrap();
        assert!(d.allowed);
        assert_eq!((d.limit, d.remaining, d.retry_after_ms), (3, expected, 0));
    }
    let d = s.rate_step("rl/a", now, limit).await.unwrap();
    assert!(!d.allowed);
    assert_eq!(d.remaining, 0);
    assert_eq!(d.retry_after_ms, 3_600_000);
    assert_eq!(d.reset_after_ms, 3 * 3_600_000);
}

pub async fn rate_refills_with_injected_time(s: Arc<dyn KvStore>) {
    let (now, limit) = (base_now(), slow(2));
    assert!(s.rate_step("rl/r", now, limit).await.unwrap().allowed);
    assert!(s.rate_step("rl/r", now, limit).await.unwrap().allowed);
    let denied = s.rate_step("rl/r", now + 1_000, limit).await.unwrap();
    assert!(!denied.allowed);
    assert_eq!(denied.retry_after_ms, 3_600_000 - 1_000);
    let d = s.rate_step("rl/r", now + 3_600_000, limit).await.unwrap();
    assert!(d.allowed, "one interval later one request is refilled");
    assert_eq!(d.remaining, 0);
    assert!(
        !s.rate_step("rl/r", now + 3_600_000, limit)
            .await
            .unwrap()
            .allowed
    );
    let full = s
        .rate_step("rl/r", now + 100 * 3_600_000, limit)
        .await
        .unwrap();
    assert_eq!(
        (full.allowed, full.remaining),
        (true, 1),
        "a long pause refills the whole burst"
    );
}

pub async fn rate_keys_independent(s: Arc<dyn KvStore>) {
    let (now, limit) = (base_now(), slow(1));
    assert!(s.rate_step("rl/x", now, limit).await.unwrap().allowed);
    assert!(!s.rate_step("rl/x", now, limit).await.unwrap().allowed);
    assert!(s.rate_step("rl/y", now, limit).await.unwrap().allowed);
    assert!(s.rate_step("rl/x/y", now, limit).await.unwrap().allowed);
}

pub async fn rate_matches_gcra(s: Arc<dyn KvStore>) {
    let base = base_now();
    let limits = [
        slow(5),
        RateLimit {
            burst: 7,
            period: Duration::from_secs(86_400),
        },
        RateLimit {
            burst: 3,
            period: Duration::from_secs(40_000),
        },
    ];
    let offsets: [i64; 16] = [
        0, 0, 0, 1, 2, 0, 500, 3_000_000, 3_000_000, 13_333_333, 20_000_000, 20_000_001,
        20_000_001, 90_000_000, 90_000_001, 90_000_001,
    ];
    for (i, limit) in limits.into_iter().enumerate() {
        let key = format!("rl/g{i}");
        let mut tat = None;
        for off in offsets {
            let now = base + off;
            let (want, new_tat): (RateDecision, _) = gcra(now, tat, limit);
            tat = new_tat.or(tat);
            let got = s.rate_step(&key, now, limit).await.unwrap();
            assert_eq!(got, want, "limit {limit:?} at offset {off}");
        }
    }
}

pub async fn rate_and_kv_namespaces_are_separate(s: Arc<dyn KvStore>) {
    let limit = slow(1);
    assert!(
        s.rate_step("shared", base_now(), limit)
            .await
            .unwrap()
            .allowed
    );
    assert_eq!(s.get("shared").await.unwrap(), None);
    assert!(s.list("", None, 10).await.unwrap().items.is_empty());
    assert!(
        s.commit(Txn::new().absent("shared").put("shared", b"v".to_vec()))
            .await
            .unwrap()
    );
    assert!(
        !s.rate_step("shared", base_now(), limit)
            .await
            .unwrap()
            .allowed
    );
}

/// ADR 0022: several buckets stepped at once are all charged when every one allows.
pub async fn rate_steps_all_allowed_charges_all(s: Arc<dyn KvStore>) {
    let now = base_now();
    let (caller, org) = (slow(2), slow(3));
    let d = s
        .rate_steps(&[("rl/m/p", caller), ("rl/m/o", org)], now)
        .await
        .unwrap();
    assert_eq!(first_refused(&d), None);
    assert_eq!(
        d.iter().map(|d| d.remaining).collect::<Vec<_>>(),
        [1, 2],
        "{d:?}"
    );
    // Both were charged: the next single steps see one step taken on each.
    assert_eq!(
        s.rate_step("rl/m/p", now, caller).await.unwrap().remaining,
        0
    );
    assert_eq!(s.rate_step("rl/m/o", now, org).await.unwrap().remaining, 1);
}

/// ADR 0022: when one bucket refuses, none is charged, and the refusing one says when.
pub async fn rate_steps_one_refuses_charges_none(s: Arc<dyn KvStore>) {
    let now = base_now();
    let (caller, org) = (slow(2), slow(1));
    assert!(s.rate_step("rl/n/o", now, org).await.unwrap().allowed);
    for steps in [
        [("rl/n/p", caller), ("rl/n/o", org)],
        [("rl/n/o", org), ("rl/n/p", caller)],
    ] {
        let d = s.rate_steps(&steps, now + 1_000).await.unwrap();
        let refused = first_refused(&d).expect("the spent bucket refuses");
        assert_eq!(steps[refused].0, "rl/n/o");
        assert_eq!(d[refused].retry_after_ms, 3_600_000 - 1_000);
        assert_eq!(d[refused].remaining, 0);
        let other = 1 - refused;
        assert!(
            d[other].allowed,
            "the other step says what it would have done"
        );
    }
    // The caller's bucket was charged by neither call (a fresh bucket of 2 has 1 left
    // after one step), and the spent one is unchanged.
    let fresh = s.rate_step("rl/n/p", now, caller).await.unwrap();
    assert_eq!((fresh.allowed, fresh.remaining), (true, 1));
    let spent = s.rate_step("rl/n/o", now + 1_000, org).await.unwrap();
    assert_eq!(
        (spent.allowed, spent.retry_after_ms),
        (false, 3_600_000 - 1_000)
    );
}

/// Several buckets stepped together follow `gcra_all` exactly, over refills and refusals.
pub async fn rate_steps_match_gcra(s: Arc<dyn KvStore>) {
    let base = base_now();
    let limits = [
        slow(3),
        RateLimit {
            burst: 5,
            period: Duration::from_secs(86_400),
        },
        slow(1),
    ];
    let keys = ["rl/s/a", "rl/s/b", "rl/s/c"];
    let mut tats: [Option<i64>; 3] = [None; 3];
    let offsets: [i64; 12] = [
        0, 0, 1, 2, 3_600_000, 3_600_001, 7_200_000, 7_200_000, 9_000_000, 20_000_000, 20_000_000,
        90_000_000,
    ];
    for (n, off) in offsets.into_iter().enumerate() {
        let now = base + off;
        // Alternate the set stepped: the pair, then all three.
        let take = if n % 2 == 0 { 2 } else { 3 };
        let model: Vec<(Option<i64>, RateLimit)> =
            (0..take).map(|i| (tats[i], limits[i])).collect();
        let (want, new) = gcra_all(now, &model);
        if let Some(new) = new {
            for (i, t) in new.into_iter().enumerate() {
                tats[i] = Some(t);
            }
        }
        let steps: Vec<(&str, RateLimit)> = (0..take).map(|i| (keys[i], limits[i])).collect();
        let got = s.rate_steps(&steps, now).await.unwrap();
        assert_eq!(got, want, "step {n} at offset {off}");
    }
}

/// Many tasks stepping a pair (in both orders) and one of its buckets alone never admit
/// more than either bucket allows, and never wait on each other forever.
pub async fn concurrent_rate_steps_never_over_admit(s: Arc<dyn KvStore>) {
    let (now, a, b) = (base_now(), slow(10), slow(15));
    let tasks: Vec<_> = (0..60)
        .map(|n| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                let (pair, ok) = match n % 3 {
                    0 => (
                        true,
                        s.rate_steps(&[("rl/c/a", a), ("rl/c/b", b)], now).await,
                    ),
                    1 => (
                        true,
                        s.rate_steps(&[("rl/c/b", b), ("rl/c/a", a)], now).await,
                    ),
                    _ => (false, s.rate_steps(&[("rl/c/b", b)], now).await),
                };
                let d = ok.unwrap();
                (pair, first_refused(&d).is_none())
            })
        })
        .collect();
    let (mut pairs, mut singles) = (0_u32, 0_u32);
    for t in tasks {
        match t.await.unwrap() {
            (true, true) => pairs += 1,
            (false, true) => singles += 1,
            _ => {}
        }
    }
    assert!(pairs <= 10, "bucket a admitted {pairs} of 10");
    assert_eq!(pairs + singles, 15, "bucket b is spent exactly");
    // Bucket a was charged exactly once per admitted pair.
    let d = s.rate_step("rl/c/a", now, a).await.unwrap();
    if pairs < 10 {
        assert_eq!((d.allowed, d.remaining), (true, 10 - pairs - 1));
    } else {
        assert!(!d.allowed);
    }
}

/// Every engine refuses the same malformed steps, and charges nothing for them.
pub async fn rate_steps_invalid_inputs(s: Arc<dyn KvStore>) {
    let (now, l) = (base_now(), slow(1));
    let five = [
        ("rl/i/1", l),
        ("rl/i/2", l),
        ("rl/i/3", l),
        ("rl/i/4", l),
        ("rl/i/5", l),
    ];
    let long = "k".repeat(513);
    for (steps, what) in [
        (&[][..], "no steps"),
        (&five[..], "five steps"),
        (&[("rl/i/1", l), ("rl/i/1", l)][..], "a key twice"),
        (&[("rl/i/1", l), ("a b", l)][..], "a bad key"),
        (&[("rl/i/1", l), ("", l)][..], "an empty key"),
        (&[("rl/i/1", l), (long.as_str(), l)][..], "a long key"),
    ] {
        let r = s.rate_steps(steps, now).await;
        assert!(
            matches!(r, Err(StoreError::Invalid(_))),
            "{what}: expected Invalid, got {r:?}"
        );
    }
    let r = s.rate_steps(&[("rl/i/1", l)], i64::MAX).await;
    assert!(matches!(r, Err(StoreError::Invalid(_))), "clock: {r:?}");
    let four = &five[..4];
    assert_eq!(first_refused(&s.rate_steps(four, now).await.unwrap()), None);
    assert!(
        s.rate_step("rl/i/5", now, l).await.unwrap().allowed,
        "the refused calls charged nothing"
    );
}
