//! The embedded engine: one SQLite file in WAL mode with `synchronous=FULL`, so a commit
//! that returned is on disk. Rate-limit buckets live in this process's memory (ADR 0016):
//! only one server serves from the file, a step is a hash-map update instead of a write
//! transaction, and a restart that refills every bucket loses nothing that matters.
//! One writer connection on a thread of its own (`writer`) runs transactions, grouping
//! those that wait into one SQLite transaction and one fsync; a small pool of read-only
//! connections serves `get` and `list` concurrently. A `get` runs in place on the calling
//! task when a reader is free (a point read is cheaper than a thread hand-off); listings
//! run on tokio's blocking pool.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rolegate_core::ports::{
    CommitFuture, KvStore, Page, RateDecision, RateLimit, StoreError, Txn, gcra, gcra_all,
};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use self::sql::*;
use crate::validate;

/// The schema and statements, kept apart from the logic that runs them.
mod sql;
/// The writer thread: group commit of every transaction waiting for it.
mod writer;

/// Read-only connections kept for `get` and `list`.
const READERS: usize = 4;
/// How long a connection waits for another process's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Expired rows (and in-memory rate buckets) are swept once every this many commits (steps).
const SWEEP_EVERY: u64 = 256;
/// Rows removed per sweep, per table: keeps any single sweep short.
const SWEEP_BATCH: i64 = 500;

/// The SQLite engine. Cheap to clone; clones share the connections.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// The writer thread's queue.
    writer: std::sync::mpsc::Sender<writer::Job>,
    /// The rate-limit buckets: key → (TAT, wall-clock expiry in Unix ms).
    rate: Mutex<HashMap<String, (i64, i64)>>,
    rate_steps: AtomicU64,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

/// Creates `path` empty with mode 0600 if it does not exist (an existing file is untouched).
fn create_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map(drop)
        .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", path.display())))
}

fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("sqlite: {e}"))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves the connection usable: any open transaction was
    // rolled back when its guard dropped.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`, and its parent directory.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the directory or file cannot be created or opened, or
    /// the schema cannot be applied.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        // SQLite creates files 0644 (less the umask), and gives the `-wal` and `-shm` files
        // its database file's mode: creating the database 0600 first keeps all three private.
        create_private(path)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let writer = open_wal(path, flags, "FULL")?;
        writer.execute_batch(SCHEMA).map_err(db_err)?;
        writer.set_prepared_statement_cache_capacity(32);

        let ro = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let conn = Connection::open_with_flags(path, ro).map_err(db_err)?;
            conn.busy_timeout(BUSY_TIMEOUT).map_err(db_err)?;
            conn.set_prepared_statement_cache_capacity(16);
            readers.push(Mutex::new(conn));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                writer: writer::spawn(writer)?,
                rate: Mutex::default(),
                rate_steps: AtomicU64::new(0),
                readers,
                next_reader: AtomicUsize::new(0),
            }),
        })
    }

    /// The database file this store uses.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Queues `job` for the writer thread.
    fn send(&self, job: writer::Job) -> Result<(), StoreError> {
        self.inner.writer.send(job).map_err(|_| writer_gone())
    }

    /// Runs `f` on the blocking pool with the shared state.
    async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| StoreError::Unavailable(format!("sqlite task failed: {e}")))?
    }
}

impl SqliteStore {
    /// Every live record after `after` (`""` for the first page) in key order, at most
    /// `limit`, with its remaining TTL. For `rolegate store copy`: values are the sealed
    /// bytes, never opened.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when SQLite fails.
    pub async fn export_page(
        &self,
        after: &str,
        limit: usize,
    ) -> Result<Vec<crate::copy::Record>, StoreError> {
        let after = after.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.blocking(move |inner| {
            let conn = inner.reader();
            let now = validate::now_ms();
            let mut stmt = conn.prepare_cached(SQL_EXPORT).map_err(db_err)?;
            let rows = stmt
                .query_map(params![after, now, limit], |r| {
                    let expires: Option<i64> = r.get(2)?;
                    Ok(crate::copy::Record {
                        key: r.get(0)?,
                        value: r.get(1)?,
                        ttl: expires.map(|at| crate::copy::ttl_from_ms(at - now)),
                    })
                })
                .map_err(db_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
        })
        .await
    }
}

/// Opens a read-write connection in WAL mode at the given `synchronous` level.
fn open_wal(path: &Path, flags: OpenFlags, synchronous: &str) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, flags).map_err(db_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(db_err)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(db_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!(
            "sqlite refused WAL mode (got {mode})"
        )));
    }
    conn.pragma_update(None, "synchronous", synchronous)
        .map_err(db_err)?;
    Ok(conn)
}

impl Inner {
    /// A free read-only connection, or (if all are busy) waits for one, round-robin.
    fn reader(&self) -> MutexGuard<'_, Connection> {
        self.free_reader().unwrap_or_else(|| {
            lock(&self.readers[self.next_reader.load(Ordering::Relaxed) % self.readers.len()])
        })
    }

    /// A read-only connection that is free right now, round-robin, without waiting.
    fn free_reader(&self) -> Option<MutexGuard<'_, Connection>> {
        let n = self.readers.len();
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed) % n;
        (0..n).find_map(|i| self.readers[(start + i) % n].try_lock().ok())
    }
}

fn live_value(conn: &Connection, key: &str, now: i64) -> Result<Option<Vec<u8>>, rusqlite::Error> {
    conn.prepare_cached(SQL_GET)?
        .query_row(params![key, now], |r| r.get(0))
        .optional()
}

/// One GCRA step on the in-memory bucket `key`. The stored TAT expires (in wall-clock time)
/// after `new_tat - now_ms`, like the Redis engine's `PX`; expired buckets are swept every
/// `SWEEP_EVERY` steps, so the map holds only buckets that still limit something.
fn step_bucket(
    buckets: &mut HashMap<String, (i64, i64)>,
    sweep: bool,
    key: &str,
    now_ms: i64,
    limit: RateLimit,
) -> RateDecision {
    let wall = validate::now_ms();
    if sweep {
        buckets.retain(|_, (_, expires)| *expires > wall);
    }
    let stored = buckets
        .get(key)
        .filter(|(_, expires)| *expires > wall)
        .map(|(tat, _)| *tat);
    let (decision, new_tat) = gcra(now_ms, stored, limit);
    if let Some(tat) = new_tat {
        let expires = wall.saturating_add(tat.saturating_sub(now_ms));
        match buckets.get_mut(key) {
            Some(bucket) => *bucket = (tat, expires),
            None => {
                buckets.insert(key.to_owned(), (tat, expires));
            }
        }
    }
    decision
}

/// [`step_bucket`] over several buckets, all or nothing, under the one map lock.
fn step_buckets(
    buckets: &mut HashMap<String, (i64, i64)>,
    sweep: bool,
    steps: &[(&str, RateLimit)],
    now_ms: i64,
) -> Vec<RateDecision> {
    let wall = validate::now_ms();
    if sweep {
        buckets.retain(|_, (_, expires)| *expires > wall);
    }
    let read: Vec<(Option<i64>, RateLimit)> = steps
        .iter()
        .map(|(key, limit)| {
            let stored = buckets
                .get(*key)
                .filter(|(_, expires)| *expires > wall)
                .map(|(tat, _)| *tat);
            (stored, *limit)
        })
        .collect();
    let (decisions, tats) = gcra_all(now_ms, &read);
    for ((key, _), tat) in steps.iter().zip(tats.unwrap_or_default()) {
        let expires = wall.saturating_add(tat.saturating_sub(now_ms));
        match buckets.get_mut(*key) {
            Some(bucket) => *bucket = (tat, expires),
            None => {
                buckets.insert((*key).to_owned(), (tat, expires));
            }
        }
    }
    decisions
}

#[async_trait]
impl KvStore for SqliteStore {
    fn engine(&self) -> &'static str {
        "sqlite"
    }

    /// One server process owns the file (ADR 0016).
    fn single_process(&self) -> bool {
        true
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        validate::key(key)?;
        // A point read takes a few microseconds once its pages are cached, less than the two
        // thread wake-ups of a trip to the blocking pool, which dominated `GET /api/orgs/{org}`
        // (bench/run). So a `get` runs in place when a reader is free; WAL readers never wait
        // for the writer. Busy readers, listings and writes still go to the blocking pool.
        if let Some(conn) = self.inner.free_reader() {
            return live_value(&conn, key, validate::now_ms()).map_err(db_err);
        }
        let key = key.to_owned();
        self.blocking(move |inner| {
            let conn = inner.reader();
            live_value(&conn, &key, validate::now_ms()).map_err(db_err)
        })
        .await
    }

    async fn commit(&self, txn: Txn) -> Result<bool, StoreError> {
        self.commit_queued(txn).await
    }

    /// Queued on the writer thread before this returns; the thread applies transactions in
    /// queue order.
    fn commit_queued(&self, txn: Txn) -> CommitFuture<'_> {
        let queued = validate::txn(&txn).and_then(|()| {
            let (done, outcome) = tokio::sync::oneshot::channel();
            self.send(writer::Job::Commit(txn, done)).map(|()| outcome)
        });
        Box::pin(async move { queued?.await.map_err(|_| writer_gone())? })
    }

    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        validate::prefix(prefix)?;
        if let Some(a) = after {
            validate::key(a)?;
        }
        let limit = validate::page_limit(limit);
        if limit == 0 {
            return Ok(Page::default());
        }
        // `after` below the prefix does not narrow the range; at or above it, it replaces it.
        let (sql, lower) = match after {
            Some(a) if a >= prefix => (SQL_LIST_AFTER, a.to_owned()),
            _ => (SQL_LIST_FROM, prefix.to_owned()),
        };
        let upper = validate::prefix_upper(prefix).unwrap_or_else(|| ALL_KEYS_UPPER.to_owned());
        self.blocking(move |inner| {
            let conn = inner.reader();
            let now = validate::now_ms();
            let fetch = i64::try_from(limit + 1).unwrap_or(i64::MAX);
            let mut stmt = conn.prepare_cached(sql).map_err(db_err)?;
            let rows = stmt
                .query_map(params![lower, upper, now, fetch], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
                })
                .map_err(db_err)?;
            let mut items = rows.collect::<Result<Vec<_>, _>>().map_err(db_err)?;
            let next = if items.len() > limit {
                items.truncate(limit);
                items.last().map(|(k, _)| k.clone())
            } else {
                None
            };
            Ok(Page { items, next })
        })
        .await
    }

    async fn rate_step(
        &self,
        key: &str,
        now_ms: i64,
        limit: RateLimit,
    ) -> Result<RateDecision, StoreError> {
        validate::rate(key, now_ms, limit)?;
        let sweep =
            self.inner.rate_steps.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1;
        Ok(step_bucket(
            &mut lock(&self.inner.rate),
            sweep,
            key,
            now_ms,
            limit,
        ))
    }

    async fn rate_steps(
        &self,
        steps: &[(&str, RateLimit)],
        now_ms: i64,
    ) -> Result<Vec<RateDecision>, StoreError> {
        validate::rate_steps(steps, now_ms)?;
        let sweep =
            self.inner.rate_steps.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1;
        Ok(step_buckets(
            &mut lock(&self.inner.rate),
            sweep,
            steps,
            now_ms,
        ))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let (done, outcome) = tokio::sync::oneshot::channel();
        self.send(writer::Job::Ping(done))?;
        let written = outcome.await.map_err(|_| writer_gone())??;
        self.blocking(move |inner| {
            let conn = inner.reader();
            let seen: i64 = conn
                .prepare_cached("SELECT value FROM meta WHERE key = 'ping'")
                .and_then(|mut s| s.query_row([], |r| r.get(0)))
                .map_err(db_err)?;
            // The counter only grows; a concurrent ping can only have moved it further.
            if seen < written {
                return Err(StoreError::Unavailable(
                    "sqlite ping read back a stale value".into(),
                ));
            }
            Ok(())
        })
        .await
    }
}

fn writer_gone() -> StoreError {
    StoreError::Unavailable("the sqlite writer thread stopped".into())
}
