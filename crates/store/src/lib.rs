//! Storage engines for rolegate: an embedded SQLite file, a shared PostgreSQL database and a
//! shared Redis, all implementing `rolegate_core::ports::KvStore` with identical semantics
//! (checked by the conformance suite in `tests/conformance.rs`).
//!
//! This crate is an adapter for the storage port only. It must not depend on HTTP or AWS
//! crates: the server wires it in through [`connect`], and nothing here knows about requests.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rolegate_core::ports::{KvStore, StoreError};

/// `store copy`: every record from one engine to another, as sealed bytes.
pub mod copy;
/// The PostgreSQL engine: shared state for replicas on a database teams already operate.
mod postgres;
/// The Redis engine: shared state for several rolegate processes (Lua scripts for atomicity).
mod redis;
/// The SQLite engine: a single embedded file, the default for one-node deployments.
mod sqlite;
/// Input checks and helpers every engine shares, so they refuse exactly the same requests.
mod validate;

pub use crate::copy::{CopyReport, Record, copy};
pub use crate::postgres::PostgresStore;
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
/// * `"postgres://..."` or `"postgresql://..."`: a PostgreSQL database (see
///   [`PostgresStore::connect`] for the parameters rolegate adds: `sslmode`, `sslrootcert`,
///   `pool_size`);
/// * `"redis://..."` or `"rediss://..."`: a Redis server. Keys are namespaced with the prefix
///   given by the `prefix` query parameter (`redis://host/0?prefix=prod:`), `"rg:"` by default.
///
/// # Errors
/// [`StoreError::Invalid`] for an unknown scheme or malformed spec (the message names the
/// scheme only, never a password); [`StoreError::Unavailable`] when the engine cannot be
/// opened or reached.
pub async fn connect(spec: &str, data_dir: &Path) -> Result<Arc<dyn KvStore>, StoreError> {
    Ok(open(spec, data_dir).await?.into_dyn())
}

/// An opened engine, by type (`store copy` needs each engine's export).
pub(crate) enum Opened {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
    /// Boxed: the Redis connection manager is much larger than the other engines' handles.
    Redis(Box<RedisStore>),
}

impl Opened {
    pub(crate) fn into_dyn(self) -> Arc<dyn KvStore> {
        match self {
            Self::Sqlite(s) => Arc::new(s),
            Self::Postgres(s) => Arc::new(s),
            Self::Redis(s) => Arc::new(*s),
        }
    }

    pub(crate) fn engine(&self) -> &'static str {
        match self {
            Self::Sqlite(s) => s.engine(),
            Self::Postgres(s) => s.engine(),
            Self::Redis(s) => s.engine(),
        }
    }
}

/// [`connect`], keeping the engine's type.
pub(crate) async fn open(spec: &str, data_dir: &Path) -> Result<Opened, StoreError> {
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
    if is_postgres(spec) {
        return Ok(Opened::Postgres(PostgresStore::connect(spec).await?));
    }
    if spec.starts_with("redis://") || spec.starts_with("rediss://") {
        let (url, prefix) = split_prefix_param(spec);
        let prefix = prefix.unwrap_or_else(|| DEFAULT_REDIS_PREFIX.to_owned());
        let store = RedisStore::connect(&url, &prefix).await?;
        return Ok(Opened::Redis(Box::new(store)));
    }
    let scheme = spec.split_once("://").map_or("", |(s, _)| s);
    let scheme: String = scheme
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(16)
        .collect();
    Err(StoreError::Invalid(format!(
        "unsupported store spec scheme {scheme:?} (expected sqlite, sqlite://, postgres://, postgresql://, redis:// or rediss://)"
    )))
}

/// True for a `postgres://` or `postgresql://` spec.
#[must_use]
pub fn is_postgres(spec: &str) -> bool {
    spec.starts_with("postgres://") || spec.starts_with("postgresql://")
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

async fn open_sqlite(path: PathBuf) -> Result<Opened, StoreError> {
    let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path))
        .await
        .map_err(|e| StoreError::Unavailable(format!("sqlite open task failed: {e}")))??;
    Ok(Opened::Sqlite(store))
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
        let err = connect("mysql://user:hunter2@db/x", &dir).await.err();
        match err {
            Some(StoreError::Invalid(msg)) => {
                assert!(msg.contains("mysql"));
                assert!(!msg.contains("hunter2"));
            }
            other => panic!("unexpected: {other:?}"),
        }
    }
}
