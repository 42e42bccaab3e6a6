//! The storage port: a small set of atomic primitives that both engines (SQLite, Redis)
//! implement identically. Everything rolegate keeps goes through here.
//!
//! Values are opaque bytes; the sealing barrier above this port encrypts them. Keys are
//! UTF-8 strings made of printable ASCII (no spaces), at most 512 bytes.

use std::time::Duration;

use async_trait::async_trait;

/// Why a store operation failed. Conditions that do not hold are not errors: `commit`
/// returns `Ok(false)` for those.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The engine could not be reached or answered with an error.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The engine returned data that does not fit the expected shape.
    #[error("store data corrupt at {key}: {reason}")]
    Corrupt { key: String, reason: String },
    /// The caller passed an argument the engine refuses (empty key, empty txn, ...).
    #[error("invalid store request: {0}")]
    Invalid(String),
}

/// A precondition checked atomically before a transaction's writes apply.
/// Expired keys count as absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// The key must not exist.
    Absent(String),
    /// The key must exist, whatever its value.
    Present(String),
    /// The key must exist and hold exactly these bytes (compare-and-swap).
    Equals(String, Vec<u8>),
}

/// A write applied by a transaction when its conditions hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Set `key` to `value`. With `ttl`, the key expires after that long; without it the key
    /// lives until deleted (an earlier TTL is cleared).
    Put {
        key: String,
        value: Vec<u8>,
        ttl: Option<Duration>,
    },
    /// Remove `key` (no error if absent).
    Delete { key: String },
}

/// An all-or-nothing unit of work: every condition is checked and every write applied in
/// one atomic step (SQLite: one IMMEDIATE transaction; Redis: one Lua script).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    pub conditions: Vec<Condition>,
    pub writes: Vec<Write>,
}

impl Txn {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
    #[must_use]
    pub fn absent(mut self, key: impl Into<String>) -> Self {
        self.conditions.push(Condition::Absent(key.into()));
        self
    }
    #[must_use]
    pub fn present(mut self, key: impl Into<String>) -> Self {
        self.conditions.push(Condition::Present(key.into()));
        self
    }
    #[must_use]
    pub fn equals(mut self, key: impl Into<String>, raw: Vec<u8>) -> Self {
        self.conditions.push(Condition::Equals(key.into(), raw));
        self
    }
    #[must_use]
    pub fn put(mut self, key: impl Into<String>, value: Vec<u8>) -> Self {
        self.writes.push(Write::Put {
            key: key.into(),
            value,
            ttl: None,
        });
        self
    }
    #[must_use]
    pub fn put_ttl(mut self, key: impl Into<String>, value: Vec<u8>, ttl: Duration) -> Self {
        self.writes.push(Write::Put {
            key: key.into(),
            value,
            ttl: Some(ttl),
        });
        self
    }
    #[must_use]
    pub fn delete(mut self, key: impl Into<String>) -> Self {
        self.writes.push(Write::Delete { key: key.into() });
        self
    }
}

/// One page of a prefix listing, in ascending byte order of key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    pub items: Vec<(String, Vec<u8>)>,
    /// Pass back as `after` to continue; `None` when the listing is complete.
    pub next: Option<String>,
}

/// A Generic Cell Rate Algorithm limit: `burst` requests at once, refilled at one request
/// every `period / burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub burst: u32,
    pub period: Duration,
}

/// The outcome of one GCRA step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Milliseconds until the next request would be allowed (0 when allowed).
    pub retry_after_ms: u64,
    /// Milliseconds until the bucket is full again.
    pub reset_after_ms: u64,
}

/// The outcome of a commit, to be awaited (see [`KvStore::commit_queued`]).
pub type CommitFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, StoreError>> + Send + 'a>>;

/// The storage engine port. Implementations must be safe to call concurrently from many
/// tasks and, for shared engines, from many processes: every method is atomic on its own.
#[async_trait]
pub trait KvStore: Send + Sync + std::fmt::Debug + 'static {
    /// A short engine name for logs and metrics (`"sqlite"`, `"redis"`).
    fn engine(&self) -> &'static str;

    /// True when one server process at a time serves from this store (the embedded
    /// engine): what exists only to coordinate replicas, such as the credential cache's
    /// cross-replica fill lock, is then skipped, because the process's own single-flight
    /// already covers every caller. Shared engines keep the default, `false`.
    fn single_process(&self) -> bool {
        false
    }

    /// The raw bytes at `key`, or `None` when absent or expired.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Apply `txn` atomically. `Ok(true)`: every condition held and every write applied.
    /// `Ok(false)`: some condition failed and nothing was written.
    async fn commit(&self, txn: Txn) -> Result<bool, StoreError>;

    /// [`KvStore::commit`], with `txn` queued before this returns when the engine applies
    /// transactions in the order they were queued (SQLite's writer thread, ADR 0016): a
    /// caller can then queue dependent transactions (one audit event after another) without
    /// waiting for each to be durable, and they share one fsync. Only meaningful where
    /// [`KvStore::single_process`] is true; the default queues nothing until polled.
    fn commit_queued(&self, txn: Txn) -> CommitFuture<'_> {
        self.commit(txn)
    }

    /// Live keys starting with `prefix`, strictly after `after` when given, ascending,
    /// at most `limit` items.
    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError>;

    /// One GCRA step on the bucket at `key`, evaluated at `now_ms` (Unix milliseconds, from
    /// the caller's clock so tests can inject time). Atomic across processes.
    async fn rate_step(
        &self,
        key: &str,
        now_ms: i64,
        limit: RateLimit,
    ) -> Result<RateDecision, StoreError>;

    /// GCRA steps on several buckets at once, all or nothing, evaluated at `now_ms`, in one
    /// round trip on the shared engines (ADR 0022). The answer has one decision per step, in
    /// order. When every one allows, every bucket was charged; when any refuses, none was,
    /// and each decision says what its own step would have done (so the refusing ones carry
    /// the `retry_after_ms` to report: see [`first_refused`]). Atomic across processes: no
    /// bucket is charged without the others. The steps follow [`rules::rate_steps`].
    async fn rate_steps(
        &self,
        steps: &[(&str, RateLimit)],
        now_ms: i64,
    ) -> Result<Vec<RateDecision>, StoreError>;

    /// Checks that the engine is reachable and accepts writes.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// The index of the first refusing decision of a [`KvStore::rate_steps`] answer, if any
/// (then nothing was charged).
#[must_use]
pub fn first_refused(decisions: &[RateDecision]) -> Option<usize> {
    decisions.iter().position(|d| !d.allowed)
}

/// The argument rules of the port: every engine refuses exactly these requests with
/// [`StoreError::Invalid`].
pub mod rules {
    use std::time::Duration;

    use super::{Condition, RateLimit, StoreError, Txn, Write};

    /// Longest key accepted, in bytes.
    pub const MAX_KEY_LEN: usize = 512;
    /// Largest page `list` returns, whatever the caller asks for.
    pub const MAX_PAGE: usize = 1000;
    /// Timestamps and periods must stay below this so the Redis Lua arithmetic (doubles) is
    /// exact.
    const MAX_EXACT: i64 = 1 << 52;

    /// Keys are 1..=512 bytes of printable ASCII without spaces (0x21..=0x7e).
    pub fn key(key: &str) -> Result<(), StoreError> {
        if key.is_empty() {
            return Err(StoreError::Invalid("empty key".into()));
        }
        if key.len() > MAX_KEY_LEN {
            return Err(StoreError::Invalid(format!(
                "key longer than {MAX_KEY_LEN} bytes"
            )));
        }
        if !key.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(StoreError::Invalid(
                "key must be printable ASCII without whitespace or control characters".into(),
            ));
        }
        Ok(())
    }

    /// A list prefix may be empty; otherwise it follows the key rules.
    pub fn prefix(prefix: &str) -> Result<(), StoreError> {
        if prefix.is_empty() {
            Ok(())
        } else {
            key(prefix)
        }
    }

    /// Clamps a page size to `MAX_PAGE`.
    #[must_use]
    pub fn page_limit(limit: usize) -> usize {
        limit.min(MAX_PAGE)
    }

    /// Checks every key of a transaction and that it writes something.
    pub fn txn(txn: &Txn) -> Result<(), StoreError> {
        if txn.writes.is_empty() {
            return Err(StoreError::Invalid("transaction has no writes".into()));
        }
        for c in &txn.conditions {
            match c {
                Condition::Absent(k) | Condition::Present(k) | Condition::Equals(k, _) => key(k)?,
            }
        }
        for w in &txn.writes {
            match w {
                Write::Put { key: k, ttl, .. } => {
                    key(k)?;
                    if let Some(ttl) = ttl {
                        ttl_ms(*ttl)?;
                    }
                }
                Write::Delete { key: k } => key(k)?,
            }
        }
        Ok(())
    }

    /// A TTL in whole milliseconds, rounded up so a sub-millisecond TTL still expires later
    /// than "now". A zero TTL is refused: it would describe a write that never exists.
    pub fn ttl_ms(ttl: Duration) -> Result<i64, StoreError> {
        if ttl.is_zero() {
            return Err(StoreError::Invalid("ttl must be positive".into()));
        }
        let ms = ttl.as_nanos().div_ceil(1_000_000);
        match i64::try_from(ms) {
            Ok(ms) if ms < MAX_EXACT => Ok(ms),
            _ => Err(StoreError::Invalid("ttl too large".into())),
        }
    }

    /// Most buckets one [`super::KvStore::rate_steps`] call may step.
    pub const MAX_RATE_STEPS: usize = 4;

    /// Checks the steps of one [`super::KvStore::rate_steps`] call: 1 to
    /// [`MAX_RATE_STEPS`] of them, each valid for [`rate`], no key twice (a bucket charged
    /// twice in one all-or-nothing step has no single meaning).
    pub fn rate_steps(steps: &[(&str, RateLimit)], now_ms: i64) -> Result<(), StoreError> {
        if steps.is_empty() {
            return Err(StoreError::Invalid("no rate-limit steps".into()));
        }
        if steps.len() > MAX_RATE_STEPS {
            return Err(StoreError::Invalid(format!(
                "more than {MAX_RATE_STEPS} rate-limit steps at once"
            )));
        }
        for (i, (k, limit)) in steps.iter().enumerate() {
            rate(k, now_ms, *limit)?;
            if steps[..i].iter().any(|(other, _)| other == k) {
                return Err(StoreError::Invalid(
                    "the same rate-limit key twice in one step".into(),
                ));
            }
        }
        Ok(())
    }

    /// Checks a rate-limit step's inputs stay in the range every engine computes exactly.
    pub fn rate(key_: &str, now_ms: i64, limit: RateLimit) -> Result<(), StoreError> {
        key(key_)?;
        if !(-MAX_EXACT..MAX_EXACT).contains(&now_ms) {
            return Err(StoreError::Invalid("rate-limit clock out of range".into()));
        }
        if limit.period.as_millis() >= u128::from(MAX_EXACT.unsigned_abs() >> 12) {
            return Err(StoreError::Invalid("rate-limit period too large".into()));
        }
        Ok(())
    }
}

/// The GCRA arithmetic both engines share (the Redis engine repeats it in Lua).
///
/// `stored_tat` is the bucket's theoretical arrival time in Unix ms, if any. Returns the
/// decision and, when allowed, the new TAT to store (with a TTL of `new_tat - now_ms`).
#[must_use]
pub fn gcra(now_ms: i64, stored_tat: Option<i64>, limit: RateLimit) -> (RateDecision, Option<i64>) {
    let burst = i64::from(limit.burst.max(1));
    let period = i64::try_from(limit.period.as_millis())
        .unwrap_or(i64::MAX / 4)
        .max(1);
    // Emission interval: at least 1 ms so the arithmetic never divides by zero.
    let interval = (period / burst).max(1);
    let tat = stored_tat.map_or(now_ms, |t| t.max(now_ms));
    let new_tat = tat + interval;
    let allow_at = new_tat - interval * burst;
    let to_u64 = |v: i64| u64::try_from(v.max(0)).unwrap_or(0);
    if now_ms < allow_at {
        let decision = RateDecision {
            allowed: false,
            limit: limit.burst,
            remaining: 0,
            retry_after_ms: to_u64(allow_at - now_ms),
            reset_after_ms: to_u64(tat - now_ms),
        };
        return (decision, None);
    }
    let remaining = (interval * burst - (new_tat - now_ms)) / interval;
    let decision = RateDecision {
        allowed: true,
        limit: limit.burst,
        remaining: u32::try_from(remaining.max(0)).unwrap_or(0),
        retry_after_ms: 0,
        reset_after_ms: to_u64(new_tat - now_ms),
    };
    (decision, Some(new_tat))
}

/// [`gcra`] over several buckets, all or nothing: `buckets` holds each bucket's stored TAT
/// and limit. Returns one decision per bucket and, only when every one allows, the TATs to
/// store (in the same order).
#[must_use]
pub fn gcra_all(
    now_ms: i64,
    buckets: &[(Option<i64>, RateLimit)],
) -> (Vec<RateDecision>, Option<Vec<i64>>) {
    let mut decisions = Vec::with_capacity(buckets.len());
    let mut tats = Vec::with_capacity(buckets.len());
    for (stored, limit) in buckets {
        let (d, tat) = gcra(now_ms, *stored, *limit);
        decisions.push(d);
        if let Some(t) = tat {
            tats.push(t);
        }
    }
    let all = tats.len() == buckets.len();
    (decisions, all.then_some(tats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_allows_burst_then_refills() {
        let limit = RateLimit {
            burst: 3,
            period: Duration::from_secs(3),
        };
        let mut tat = None;
        for expected_remaining in [2, 1, 0] {
            let (d, t) = gcra(0, tat, limit);
            assert!(d.allowed);
            assert_eq!(d.remaining, expected_remaining);
            tat = t;
        }
        let (d, t) = gcra(0, tat, limit);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_ms, 1000);
        assert!(t.is_none());
        let (d, _) = gcra(1000, tat, limit);
        assert!(d.allowed);
    }

    #[test]
    fn gcra_all_charges_all_or_none() {
        let one = RateLimit {
            burst: 1,
            period: Duration::from_secs(10),
        };
        let (d, tats) = gcra_all(0, &[(None, one), (None, one)]);
        assert!(d.iter().all(|d| d.allowed));
        assert_eq!(tats, Some(vec![10_000, 10_000]));
        let (d, tats) = gcra_all(0, &[(None, one), (Some(10_000), one)]);
        assert_eq!(first_refused(&d), Some(1));
        assert!(d[0].allowed, "the other step says what it would have done");
        assert_eq!(d[1].retry_after_ms, 10_000);
        assert_eq!(tats, None);
    }

    #[test]
    fn rate_steps_rules() {
        let l = RateLimit {
            burst: 1,
            period: Duration::from_secs(1),
        };
        assert!(rules::rate_steps(&[("a", l), ("b", l)], 0).is_ok());
        for bad in [
            &[][..],
            &[("a", l), ("a", l)][..],
            &[("a", l), ("a b", l)][..],
            &[("a", l), ("b", l), ("c", l), ("d", l), ("e", l)][..],
        ] {
            assert!(
                matches!(rules::rate_steps(bad, 0), Err(StoreError::Invalid(_))),
                "{bad:?}"
            );
        }
    }
}
