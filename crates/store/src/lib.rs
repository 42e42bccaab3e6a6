//! Storage engines for rolegate: an embedded SQLite file and a shared Redis, both
//! implementing `rolegate_core::ports::KvStore` with identical semantics (checked by the
//! conformance suite in `tests/conformance.rs`).
//!
//! This crate is an adapter for the storage port only. It must not depend on HTTP or AWS
//! crates: the server wires it in through [`connect`], and nothing here knows about requests.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rolegate_core::ports::{KvStore, StoreError};

/// The Redis engine: shared state for several rolegate processes (Lua scripts for atomicity).
mod redis;
/// The SQLite engine: a single embedded file, the default for one-node deployments.
mod sqlite;
/// Input checks and helpers both engines share, so they refuse exactly the same requests.
mod validate;

pub use crate::redis::{RedisPersistence, RedisStore};
pub use crate::sqlite::SqliteStore;

/// The key prefix a Redis deployment uses when the URL does not say `?prefix=...`.
pub const DEFAULT_REDIS_PREFIX: &str = "rg:";

/// The SQLite file name used under the data directory for the `"sqlite"` spec.
pub const DEFAULT_SQLITE_FILE: &str = "rolegate.db";

/// Opens the engine named by `spec`:
///
/// * `""` or `"sqlite"`: the file `data_dir/rolegate.db`;
/// * `"sqlite:///abs/path.db"`: that absolute file; `"sqlite://relative.db"`: that file,
///   relative to the working directory;
/// * `"redis://..."` or `"rediss://..."`: a Redis server. Keys are namespaced with the prefix
///   given by the `prefix` query parameter (`redis://host/0?prefix=prod:`), `"rg:"` by default.
///
/// # Errors
/// [`StoreError::Invalid`] for an unknown scheme or malformed spec (the message names the
/// scheme only, never a password); [`StoreError::Unavailable`] when the engine cannot be
/// opened or reached.
pub async fn connect(spec: &str, data_dir: &Path) -> Result<Arc<dyn KvStore>, StoreError> {
    let spec = spec.trim();
    if spec.is_empty() || spec == "sqlite" {
        return open_sqlite(data_dir.join(DEFAULT_SQLITE_FILE)).await;
    }
    if let Some(path) = spec.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(StoreError::Invalid(
                "sqlite:// spec has no file path".into(),
            ));
        }
        return open_sqlite(PathBuf::from(path)).await;
    }
    if spec.starts_with("redis://") || spec.starts_with("rediss://") {
        let (url, prefix) = split_prefix_param(spec);
        let prefix = prefix.unwrap_or_else(|| DEFAULT_REDIS_PREFIX.to_owned());
        let store = RedisStore::connect(&url, &prefix).await?;
        return Ok(Arc::new(store));
    }
    let scheme = spec.split_once("://").map_or("", |(s, _)| s);
    let scheme: String = scheme
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(16)
        .collect();
    Err(StoreError::Invalid(format!(
        "unsupported store spec scheme {scheme:?} (expected sqlite, sqlite://, redis:// or rediss://)"
    )))
}

/// The persistence settings of the Redis server a `redis://` or `rediss://` spec names, or
/// `None` for any other engine.
///
/// # Errors
/// As [`RedisStore::persistence`].
pub async fn redis_persistence(spec: &str) -> Result<Option<RedisPersistence>, StoreError> {
    let spec = spec.trim();
    if !(spec.starts_with("redis://") || spec.starts_with("rediss://")) {
        return Ok(None);
    }
    let (url, _) = split_prefix_param(spec);
    RedisStore::persistence(&url).await.map(Some)
}

async fn open_sqlite(path: PathBuf) -> Result<Arc<dyn KvStore>, StoreError> {
    let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path))
        .await
        .map_err(|e| StoreError::Unavailable(format!("sqlite open task failed: {e}")))??;
    Ok(Arc::new(store))
}

/// Removes a `prefix=...` query parameter from a Redis URL, returning the URL to hand to the
/// redis crate and the prefix (percent-decoding is not applied; prefixes are plain text).
fn split_prefix_param(url: &str) -> (String, Option<String>) {
    let (base, fragment) = match url.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (url, None),
    };
    let Some((head, query)) = base.split_once('?') else {
        return (url.to_owned(), None);
    };
    let mut prefix = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("prefix", value)) => prefix = Some(value.to_owned()),
            _ => kept.push(pair),
        }
    }
    let mut out = head.to_owned();
    if !kept.is_empty() {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    (out, prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_param_is_stripped() {
        assert_eq!(
            split_prefix_param("redis://h:1/0"),
            ("redis://h:1/0".into(), None)
        );
        assert_eq!(
            split_prefix_param("redis://h/0?prefix=x:&protocol=resp3"),
            ("redis://h/0?protocol=resp3".into(), Some("x:".into()))
        );
        assert_eq!(
            split_prefix_param("redis://h/?prefix=a"),
            ("redis://h/".into(), Some("a".into()))
        );
    }

    #[tokio::test]
    async fn unknown_scheme_is_invalid_without_secrets() {
        let dir = std::env::temp_dir();
        let err = connect("postgres://user:hunter2@db/x", &dir).await.err();
        match err {
            Some(StoreError::Invalid(msg)) => {
                assert!(msg.contains("postgres"));
                assert!(!msg.contains("hunter2"));
            }
            other => panic!("unexpected: {other:?}"),
        }
    }
}
