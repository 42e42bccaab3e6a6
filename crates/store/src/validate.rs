//! Argument checks shared by every engine so they refuse exactly the same requests.

use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) use rolegate_core::ports::store::rules::{
    key, page_limit, prefix, rate, rate_steps, ttl_ms, txn,
};

/// The key range `[prefix, upper)` covering every key that starts with `prefix`.
/// `None` means "no upper bound" (empty prefix). Keys are ASCII <= 0x7e, so bumping the last
/// byte of the prefix (to at most 0x7f) gives a valid string just past the range.
pub(crate) fn prefix_upper(prefix: &str) -> Option<String> {
    let mut bytes = prefix.as_bytes().to_vec();
    let last = bytes.pop()?;
    bytes.push(last + 1);
    String::from_utf8(bytes).ok()
}

/// Wall-clock Unix milliseconds (0 if the clock is before 1970).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
