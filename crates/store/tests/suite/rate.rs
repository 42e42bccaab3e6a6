//! GCRA rate limiting with injected time.

use std::sync::Arc;
use std::time::Duration;

use rolegate_core::ports::{KvStore, RateDecision, RateLimit, Txn, gcra};

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
