//! The schema and every statement the SQLite engine runs (all prepared and cached).

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL,
    expires_at INTEGER NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_expires ON kv(expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY NOT NULL,
    value INTEGER NOT NULL
) WITHOUT ROWID;
";

pub(super) const SQL_GET: &str =
    "SELECT value FROM kv WHERE key = ?1 AND (expires_at IS NULL OR expires_at > ?2)";
pub(super) const SQL_PUT: &str = "INSERT INTO kv (key, value, expires_at) VALUES (?1, ?2, ?3)
     ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at";
pub(super) const SQL_DELETE: &str = "DELETE FROM kv WHERE key = ?1";
/// A page from the start of a prefix: `key >= prefix`.
///
/// Each listing statement has ONE lower bound, so that SQLite seeks straight to it. With two
/// (`key >= prefix AND key > after`) it ranges over one, the prefix, and filters the other,
/// which made every page of a long listing rescan the prefix from its start.
pub(super) const SQL_LIST_FROM: &str = "SELECT key, value FROM kv
     WHERE key >= ?1 AND key < ?2 AND (expires_at IS NULL OR expires_at > ?3)
     ORDER BY key LIMIT ?4";
/// A page that continues after a key inside the prefix: `key > after`.
pub(super) const SQL_LIST_AFTER: &str = "SELECT key, value FROM kv
     WHERE key > ?1 AND key < ?2 AND (expires_at IS NULL OR expires_at > ?3)
     ORDER BY key LIMIT ?4";
/// Live records after `?1`, with their expiry, for `store copy`.
pub(super) const SQL_EXPORT: &str = "SELECT key, value, expires_at FROM kv
     WHERE key > ?1 AND (expires_at IS NULL OR expires_at > ?2) ORDER BY key LIMIT ?3";
pub(super) const SQL_SWEEP_KV: &str =
    "DELETE FROM kv WHERE key IN (SELECT key FROM kv WHERE expires_at <= ?1 LIMIT ?2)";

/// Upper bound used for the empty prefix: every valid key is ASCII below 0x7f.
pub(super) const ALL_KEYS_UPPER: &str = "\u{7f}";
