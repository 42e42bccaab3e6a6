//! Decoded records kept beside the sealed bytes they were opened from: the in-memory cache
//! of the lookups every authenticated request makes (API key and token digests, the org
//! and operator records; ADR 0017 and 0018).
//!
//! The cache never decides on its own whether an entry is current. Every lookup still
//! reads the record's raw bytes from the store, in the same single round trip as before,
//! and a cached value is used only when those bytes are *identical* to the ones it was
//! opened from. Sealing draws a fresh random nonce for every write, so any write (an
//! update, a rotation, a re-seal under a new master key) yields new bytes; and opening is
//! deterministic, so identical bytes under the same key ring always open to the same value.
//! A hit therefore returns exactly what decrypting and decoding would have returned, on
//! every engine and every replica, whoever wrote the record (another replica, an offline
//! `rolegate admin token` beside a running server): zero staleness by construction. What a
//! hit saves is the AES-GCM open, the JSON parse and their allocations.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::keyspace;

/// Most entries kept; when full, the cache starts again from empty (the entries are cheap
/// to rebuild, and a bound is what matters: keys are digests an attacker cannot choose
/// into existence, but orgs and operators can be many).
const MAX_ENTRIES: usize = 16_384;

/// The families whose decoded values are kept: what authentication and the org read of
/// every request look up. Anything else is opened afresh each time.
const CACHED_PREFIXES: [&str; 4] = [
    keyspace::API_KEY.prefix,
    keyspace::TOKEN.prefix,
    keyspace::ORG.prefix,
    keyspace::USER.prefix,
];

/// Whether reads of `key` go through the cache.
#[must_use]
pub fn cached(key: &str) -> bool {
    CACHED_PREFIXES.iter().any(|p| key.starts_with(p))
}

struct Entry {
    raw: Vec<u8>,
    value: Arc<dyn Any + Send + Sync>,
}

/// Decoded values by storage key, each with the sealed bytes it came from.
#[derive(Default)]
pub struct DecodedCache {
    entries: Mutex<HashMap<String, Entry>>,
}

impl std::fmt::Debug for DecodedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodedCache")
            .field("entries", &self.len())
            .finish()
    }
}

impl DecodedCache {
    /// The value opened from exactly `raw` at `key`, if it is kept.
    #[must_use]
    pub fn hit<T: Clone + Send + Sync + 'static>(&self, key: &str, raw: &[u8]) -> Option<T> {
        let value = {
            let map = self.lock();
            let entry = map.get(key)?;
            if entry.raw != raw {
                return None;
            }
            Arc::clone(&entry.value)
        };
        value.downcast_ref::<T>().cloned()
    }

    /// Keeps `value`, opened from `raw` at `key`.
    pub fn keep<T: Send + Sync + 'static>(&self, key: &str, raw: &[u8], value: T) {
        let mut map = self.lock();
        if map.len() >= MAX_ENTRIES && !map.contains_key(key) {
            map.clear();
        }
        map.insert(
            key.to_owned(),
            Entry {
                raw: raw.to_vec(),
                value: Arc::new(value),
            },
        );
    }

    /// Forgets `key` (the record is gone).
    pub fn forget(&self, key: &str) {
        self.lock().remove(key);
    }

    /// How many entries are kept.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is kept.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // The map holds no invariant a panicking holder could break half-way.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hit_needs_the_very_bytes_the_value_came_from() {
        let cache = DecodedCache::default();
        cache.keep("org/acme", b"sealed-1", "first".to_owned());
        assert_eq!(
            cache.hit::<String>("org/acme", b"sealed-1").as_deref(),
            Some("first")
        );
        // A rewrite (new nonce, new bytes) misses, whatever it holds.
        assert_eq!(cache.hit::<String>("org/acme", b"sealed-2"), None);
        // Another type at the same key is never handed out.
        assert_eq!(cache.hit::<u32>("org/acme", b"sealed-1"), None);
        cache.forget("org/acme");
        assert_eq!(cache.hit::<String>("org/acme", b"sealed-1"), None);
        assert!(cache.is_empty());
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = DecodedCache::default();
        for i in 0..=MAX_ENTRIES {
            cache.keep(&format!("org/o{i}"), b"x", i);
        }
        assert!(cache.len() <= MAX_ENTRIES);
        assert!(cached("apikey/ab") && cached("tok/ab") && cached("org/acme"));
        assert!(cached("user/alice") && !cached("cred/acme/x") && !cached("owner/a/b"));
    }
}
