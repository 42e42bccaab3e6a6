//! Argument checks shared by both engines so they refuse exactly the same requests.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rolegate_core::ports::{Condition, RateLimit, StoreError, Txn, Write};

/// Longest key accepted, in bytes.
pub(crate) const MAX_KEY_LEN: usize = 512;
/// Largest page `list` returns, whatever the caller asks for.
pub(crate) const MAX_PAGE: usize = 1000;
/// Timestamps and periods must stay below this so the Redis Lua arithmetic (doubles) is exact.
const MAX_EXACT: i64 = 1 << 52;

/// Keys are 1..=512 bytes of printable ASCII without spaces (0x21..=0x7e).
pub(crate) fn key(key: &str) -> Result<(), StoreError> {
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
pub(crate) fn prefix(prefix: &str) -> Result<(), StoreError> {
    if prefix.is_empty() {
        Ok(())
    } else {
        key(prefix)
    }
}

/// The key range `[prefix, upper)` covering every key that starts with `prefix`.
/// `None` means "no upper bound" (empty prefix). Keys are ASCII <= 0x7e, so bumping the last
/// byte of the prefix (to at most 0x7f) gives a valid string just past the range.
pub(crate) fn prefix_upper(prefix: &str) -> Option<String> {
    let mut bytes = prefix.as_bytes().to_vec();
    let last = bytes.pop()?;
    bytes.push(last + 1);
    String::from_utf8(bytes).ok()
}

/// Clamps a page size to `MAX_PAGE`.
pub(crate) fn page_limit(limit: usize) -> usize {
    limit.min(MAX_PAGE)
}

/// Checks every key of a transaction and that it writes something.
pub(crate) fn txn(txn: &Txn) -> Result<(), StoreError> {
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
pub(crate) fn ttl_ms(ttl: Duration) -> Result<i64, StoreError> {
    if ttl.is_zero() {
        return Err(StoreError::Invalid("ttl must be positive".into()));
    }
    let ms = ttl.as_nanos().div_ceil(1_000_000);
    match i64::try_from(ms) {
        Ok(ms) if ms < MAX_EXACT => Ok(ms),
        _ => Err(StoreError::Invalid("ttl too large".into())),
    }
}

/// Checks a rate-limit step's inputs stay in the range both engines compute exactly.
pub(crate) fn rate(key_: &str, now_ms: i64, limit: RateLimit) -> Result<(), StoreError> {
    key(key_)?;
    if !(-MAX_EXACT..MAX_EXACT).contains(&now_ms) {
        return Err(StoreError::Invalid("rate-limit clock out of range".into()));
    }
    if limit.period.as_millis() >= u128::from(MAX_EXACT.unsigned_abs() >> 12) {
        return Err(StoreError::Invalid("rate-limit period too large".into()));
    }
    Ok(())
}

/// Wall-clock Unix milliseconds (0 if the clock is before 1970).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(key("a/b:c").is_ok());
        assert!(key(&"k".repeat(512)).is_ok());
        for bad in ["", "a b", "a\nb", "a\tb", "é", "a\u{7f}"] {
            assert!(key(bad).is_err(), "{bad:?}");
        }
        assert!(key(&"k".repeat(513)).is_err());
    }

    #[test]
    fn upper_bound() {
        assert_eq!(prefix_upper(""), None);
        assert_eq!(prefix_upper("a/").as_deref(), Some("a0"));
        assert_eq!(prefix_upper("a~").as_deref(), Some("a\u{7f}"));
    }

    #[test]
    fn ttls() {
        assert!(ttl_ms(Duration::ZERO).is_err());
        assert_eq!(ttl_ms(Duration::from_micros(1)).ok(), Some(1));
        assert_eq!(ttl_ms(Duration::from_millis(300)).ok(), Some(300));
    }
}
