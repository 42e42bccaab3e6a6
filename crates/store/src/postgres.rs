//! The PostgreSQL engine: shared state for several rolegate replicas, on the database a team
//! already operates, backs up and fails over.
//!
//! * One table `rolegate_kv (key text COLLATE "C" PRIMARY KEY, value bytea, expires_at bigint)`:
//!   the bytewise primary key serves point reads and the ordered prefix ranges of `list`.
//! * `commit` runs at READ COMMITTED and first takes a transaction-scoped advisory lock per
//!   key it names, in a fixed order, then checks its conditions and applies its writes
//!   (docs/adr/0010-postgres-commit-isolation.md says why this and not SERIALIZABLE).
//! * `rate_step` is one `INSERT … ON CONFLICT DO UPDATE` statement (the GCRA arithmetic in
//!   SQL); buckets live in their own table. `rate_steps` (several buckets, all or nothing)
//!   is one call of a PL/pgSQL function (migration 2, ADR 0022).
//! * Expiry uses the database server's clock; expired rows are ignored on read and deleted
//!   by a background sweeper that never waits for a row a commit holds.
//! * Migrations are versioned and applied at start-up under an advisory lock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use rolegate_core::ports::{
    Condition, KvStore, Page, RateDecision, RateLimit, StoreError, Txn, Write, gcra,
};
use tokio_postgres::error::SqlState;
use tokio_postgres_rustls::MakeRustlsConnect;

use self::config::{PgTarget, Tls};
use self::sql::*;
use crate::validate;

/// Parsing the store URL, TLS settings.
mod config;
/// The migrations and statements.
mod sql;

/// How long a caller waits for a free pooled connection, or for a new one, before the store
/// counts as unavailable.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts of a commit that failed on a serialization failure or a deadlock.
const COMMIT_ATTEMPTS: u32 = 5;
/// A successful `ping` is trusted for this long.
const PING_CACHE: Duration = Duration::from_secs(1);
/// How often the background sweeper deletes expired rows.
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);
/// Rows one sweep statement deletes; a sweep repeats it a few times at most.
const SWEEP_BATCH: i64 = 1000;
const SWEEP_ROUNDS: usize = 10;

/// The PostgreSQL engine. Cheap to clone; clones share the connection pool.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    describe: String,
    /// When `ping` last found the database writable.
    last_ping: Mutex<Option<Instant>>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("target", &self.inner.describe)
            .finish_non_exhaustive()
    }
}

/// A database error as the port's error. Server-side messages never contain the URL.
fn db_err(e: &tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => {
            StoreError::Unavailable(format!("postgres: {} ({})", db.message(), db.code().code()))
        }
        None => StoreError::Unavailable(format!("postgres: {e}")),
    }
}

fn pool_err(e: &PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => db_err(e),
        other => StoreError::Unavailable(format!("postgres connection pool: {other}")),
    }
}

/// Serialization failures and deadlocks: the transaction did nothing and may be retried.
fn is_retryable(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// The advisory lock id of a store key: 64-bit FNV-1a of its bytes. Stable across processes
/// and releases (it must be: replicas of different versions may run side by side during an
/// upgrade). A collision only makes two unrelated keys wait for each other.
fn lock_id(key: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(h.to_ne_bytes())
}

/// What a transaction does, prepared once and reused by every attempt.
struct Plan {
    /// Advisory lock ids, sorted and distinct: every commit takes its locks in this global
    /// order, so two commits can never wait on each other in a cycle.
    locks: Vec<i64>,
    conditions: Vec<Condition>,
    /// The keys the conditions read.
    cond_keys: Vec<String>,
    put_keys: Vec<String>,
    put_values: Vec<Vec<u8>>,
    put_ttls: Vec<Option<i64>>,
    deletes: Vec<String>,
}

impl Plan {
    /// Writes to one key apply in order, so only the last write to each key matters: the
    /// plan keeps that one, which lets each kind go to the database as one statement.
    fn new(txn: Txn) -> Result<Self, StoreError> {
        let mut keys = BTreeSet::new();
        let mut last: BTreeMap<String, Write> = BTreeMap::new();
        for w in txn.writes {
            let key = match &w {
                Write::Put { key, .. } | Write::Delete { key } => key.clone(),
            };
            keys.insert(key.clone());
            last.insert(key, w);
        }
        let mut cond_keys = BTreeSet::new();
        for c in &txn.conditions {
            let (Condition::Absent(k) | Condition::Present(k) | Condition::Equals(k, _)) = c;
            keys.insert(k.clone());
            cond_keys.insert(k.clone());
        }
        let mut locks: Vec<i64> = keys.iter().map(|k| lock_id(k)).collect();
        locks.sort_unstable();
        locks.dedup();
        let mut plan = Self {
            locks,
            conditions: txn.conditions,
            cond_keys: cond_keys.into_iter().collect(),
            put_keys: Vec::new(),
            put_values: Vec::new(),
            put_ttls: Vec::new(),
            deletes: Vec::new(),
        };
        for (key, w) in last {
            match w {
                Write::Put { value, ttl, .. } => {
                    plan.put_ttls.push(ttl.map(validate::ttl_ms).transpose()?);
                    plan.put_keys.push(key);
                    plan.put_values.push(value);
                }
                Write::Delete { .. } => plan.deletes.push(key),
            }
        }
        Ok(plan)
    }
}

impl PostgresStore {
    /// Connects to the database at `url`, applies pending migrations and starts the expiry
    /// sweeper. `url` is `postgres://` or `postgresql://` with libpq-style parameters, plus
    /// rolegate's own: `sslmode` (`disable`, or `require` / `verify-ca` / `verify-full`, all of
    /// which verify the certificate chain and host name), `sslrootcert` (a PEM bundle; the
    /// Web PKI roots otherwise) and `pool_size` (connections, default 16).
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for a malformed URL; [`StoreError::Unavailable`] when the
    /// database cannot be reached or migrated. Messages never contain the URL's password.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let target = PgTarget::parse(url)?;
        let describe = target.describe();
        if target.tls == Tls::Disable && !target.is_local() {
            tracing::warn!(
                target = %describe,
                "PostgreSQL store without TLS on a network host: add sslmode=verify-full to the store URL"
            );
        }
        let tls = MakeRustlsConnect::new(target.rustls_config()?);
        let manager = Manager::from_config(
            target.config.clone(),
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(target.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_TIMEOUT))
            .create_timeout(Some(POOL_TIMEOUT))
            .recycle_timeout(Some(POOL_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Invalid(format!("postgres pool: {e}")))?;
        let store = Self {
            inner: Arc::new(Inner {
                pool,
                describe,
                last_ping: Mutex::new(None),
            }),
        };
        store.migrate().await?;
        spawn_sweeper(Arc::downgrade(&store.inner));
        Ok(store)
    }

    /// Applies every migration newer than the database's, in one transaction under an
    /// advisory lock: replicas starting together wait for the first, then find nothing to do.
    /// A database already at the newest version sees no DDL at all, so a role without the
    /// CREATE privilege can run rolegate once an owner has migrated.
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| db_err(&e))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(|e| db_err(&e))?;
        let exists: bool = tx
            .query_one("SELECT to_regclass('rolegate_migrations') IS NOT NULL", &[])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| db_err(&e))?;
        let current: i32 = if exists {
            tx.query_one(
                "SELECT coalesce(max(version), 0) FROM rolegate_migrations",
                &[],
            )
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| db_err(&e))?
        } else {
            tx.batch_execute(MIGRATIONS_TABLE)
                .await
                .map_err(|e| db_err(&e))?;
            0
        };
        let newest = MIGRATIONS.last().map_or(0, |(v, _)| *v);
        if current > newest {
            return Err(StoreError::Unavailable(format!(
                "postgres schema is at version {current}, newer than this rolegate knows \
                 ({newest}): upgrade rolegate"
            )));
        }
        for (version, ddl) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
            tx.batch_execute(ddl).await.map_err(|e| db_err(&e))?;
            tx.execute(
                "INSERT INTO rolegate_migrations (version) VALUES ($1)",
                &[version],
            )
            .await
            .map_err(|e| db_err(&e))?;
            tracing::info!(version, "applied postgres store migration");
        }
        tx.commit().await.map_err(|e| db_err(&e))
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.inner.pool.get().await.map_err(|e| pool_err(&e))
    }

    /// One attempt at a commit on `client`. `Ok(false)`: a condition failed.
    async fn try_commit(
        client: &mut deadpool_postgres::Object,
        plan: &Plan,
    ) -> Result<bool, tokio_postgres::Error> {
        let tx = client.transaction().await?;
        let lock = tx.prepare_cached(SQL_LOCK).await?;
        tx.query_one(&lock, &[&plan.locks]).await?;
        if !plan.conditions.is_empty() {
            let read = tx.prepare_cached(SQL_GET_MANY).await?;
            let rows = tx.query(&read, &[&plan.cond_keys]).await?;
            let mut live: HashMap<String, Vec<u8>> = HashMap::with_capacity(rows.len());
            for row in rows {
                live.insert(row.try_get(0)?, row.try_get(1)?);
            }
            let holds = plan.conditions.iter().all(|c| match c {
                Condition::Absent(k) => !live.contains_key(k),
                Condition::Present(k) => live.contains_key(k),
                Condition::Equals(k, want) => live.get(k) == Some(want),
            });
            if !holds {
                tx.rollback().await?;
                return Ok(false);
            }
        }
        if !plan.put_keys.is_empty() {
            let put = tx.prepare_cached(SQL_PUT_MANY).await?;
            tx.execute(&put, &[&plan.put_keys, &plan.put_values, &plan.put_ttls])
                .await?;
        }
        if !plan.deletes.is_empty() {
            let del = tx.prepare_cached(SQL_DELETE_MANY).await?;
            tx.execute(&del, &[&plan.deletes]).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Every live record after `after` (`""` for the first page) in key order, at most
    /// `limit`, with its remaining TTL. For `rolegate store copy`: values are the sealed
    /// bytes, never opened.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the database fails.
    pub async fn export_page(
        &self,
        after: &str,
        limit: usize,
    ) -> Result<Vec<crate::copy::Record>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(SQL_EXPORT)
            .await
            .map_err(|e| db_err(&e))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(&stmt, &[&after, &limit])
            .await
            .map_err(|e| db_err(&e))?;
        rows.into_iter()
            .map(|r| {
                let ttl: Option<i64> = r.try_get(2)?;
                Ok(crate::copy::Record {
                    key: r.try_get(0)?,
                    value: r.try_get(1)?,
                    ttl: ttl.map(crate::copy::ttl_from_ms),
                })
            })
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(|e| db_err(&e))
    }
}

/// Deletes expired rows every [`SWEEP_INTERVAL`] while the store is alive. Several replicas
/// may sweep at once: `SKIP LOCKED` keeps them (and commits) from waiting on each other.
fn spawn_sweeper(inner: Weak<Inner>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_INTERVAL);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(inner) = inner.upgrade() else { return };
            let store = PostgresStore { inner };
            if let Err(e) = store.sweep().await {
                tracing::warn!(error = %e, "postgres expiry sweep failed");
            }
        }
    });
}

impl PostgresStore {
    /// One sweep: a few batches of expired values and rate-limit buckets. Returns the rows
    /// deleted.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the database fails.
    pub async fn sweep(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let mut total = 0;
        for sql in [SQL_SWEEP_KV, SQL_SWEEP_RATE] {
            let stmt = client.prepare_cached(sql).await.map_err(|e| db_err(&e))?;
            for _ in 0..SWEEP_ROUNDS {
                let n = client
                    .execute(&stmt, &[&SWEEP_BATCH])
                    .await
                    .map_err(|e| db_err(&e))?;
                total += n;
                if n < u64::try_from(SWEEP_BATCH).unwrap_or(u64::MAX) {
                    break;
                }
            }
        }
        Ok(total)
    }
}

#[async_trait]
impl KvStore for PostgresStore {
    fn engine(&self) -> &'static str {
        "postgres"
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        validate::key(key)?;
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(SQL_GET)
            .await
            .map_err(|e| db_err(&e))?;
        let row = client
            .query_opt(&stmt, &[&key])
            .await
            .map_err(|e| db_err(&e))?;
        row.map(|r| r.try_get(0))
            .transpose()
            .map_err(|e| db_err(&e))
    }

    async fn commit(&self, txn: Txn) -> Result<bool, StoreError> {
        validate::txn(&txn)?;
        let plan = Plan::new(txn)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut client = self.client().await?;
            match Self::try_commit(&mut client, &plan).await {
                Ok(applied) => return Ok(applied),
                Err(e) if is_retryable(&e) && attempt < COMMIT_ATTEMPTS => {
                    tracing::debug!(attempt, error = %e, "postgres commit retried");
                    drop(client);
                    let jitter = validate::now_ms().rem_euclid(7).unsigned_abs();
                    tokio::time::sleep(Duration::from_millis(u64::from(attempt) * 5 + jitter))
                        .await;
                }
                Err(e) if is_retryable(&e) => {
                    return Err(StoreError::Unavailable(format!(
                        "postgres: too much contention, gave up after {COMMIT_ATTEMPTS} attempts: {}",
                        db_err(&e)
                    )));
                }
                Err(e) => return Err(db_err(&e)),
            }
        }
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
            Some(a) if a >= prefix => (SQL_LIST_AFTER, a),
            _ => (SQL_LIST_FROM, prefix),
        };
        let upper = validate::prefix_upper(prefix).unwrap_or_else(|| ALL_KEYS_UPPER.to_owned());
        let fetch = i64::try_from(limit + 1).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(|e| db_err(&e))?;
        let rows = client
            .query(&stmt, &[&lower, &upper, &fetch])
            .await
            .map_err(|e| db_err(&e))?;
        let mut items = rows
            .into_iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<Vec<(String, Vec<u8>)>, tokio_postgres::Error>>()
            .map_err(|e| db_err(&e))?;
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|(k, _)| k.clone())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn rate_step(
        &self,
        key: &str,
        now_ms: i64,
        limit: RateLimit,
    ) -> Result<RateDecision, StoreError> {
        validate::rate(key, now_ms, limit)?;
        // The same emission interval as `gcra` computes.
        let burst = i64::from(limit.burst.max(1));
        let period = i64::try_from(limit.period.as_millis())
            .unwrap_or(i64::MAX / 4)
            .max(1);
        let interval = (period / burst).max(1);
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(SQL_RATE_STEP)
            .await
            .map_err(|e| db_err(&e))?;
        let row = client
            .query_one(&stmt, &[&key, &now_ms, &interval, &(interval * burst)])
            .await
            .map_err(|e| db_err(&e))?;
        let tat: i64 = row.try_get(0).map_err(|e| db_err(&e))?;
        let allowed: bool = row.try_get(1).map_err(|e| db_err(&e))?;
        // The statement returns the TAT after the step. The shared helper, given the TAT
        // before it (one interval less when allowed, unchanged when denied), reproduces the
        // decision exactly, remaining and retry-after included.
        let before = if allowed { tat - interval } else { tat };
        let (decision, _) = gcra(now_ms, Some(before), limit);
        if decision.allowed != allowed {
            return Err(StoreError::Corrupt {
                key: format!("ratelimit {key}"),
                reason: "stored TAT disagrees with the rate step".into(),
            });
        }
        Ok(decision)
    }

    async fn rate_steps(
        &self,
        steps: &[(&str, RateLimit)],
        now_ms: i64,
    ) -> Result<Vec<RateDecision>, StoreError> {
        validate::rate_steps(steps, now_ms)?;
        // Sorted by key, so that every caller locks the buckets in one order.
        let mut order: Vec<usize> = (0..steps.len()).collect();
        order.sort_by(|&a, &b| steps[a].0.cmp(steps[b].0));
        let (mut keys, mut intervals, mut spans) = (Vec::new(), Vec::new(), Vec::new());
        for &i in &order {
            let (key, limit) = steps[i];
            // The same emission interval as `gcra` computes.
            let burst = i64::from(limit.burst.max(1));
            let period = i64::try_from(limit.period.as_millis())
                .unwrap_or(i64::MAX / 4)
                .max(1);
            let interval = (period / burst).max(1);
            keys.push(key);
            intervals.push(interval);
            spans.push(interval * burst);
        }
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(SQL_RATE_STEPS)
            .await
            .map_err(|e| db_err(&e))?;
        let rows = client
            .query(&stmt, &[&keys, &now_ms, &intervals, &spans])
            .await
            .map_err(|e| db_err(&e))?;
        let corrupt = |reason: &str| StoreError::Corrupt {
            key: format!("ratelimit {}", keys.join(",")),
            reason: reason.into(),
        };
        if rows.len() != steps.len() {
            return Err(corrupt("the rate steps answered for other buckets"));
        }
        let mut decisions = vec![None; steps.len()];
        for (row, &i) in rows.iter().zip(&order) {
            let tat: i64 = row.try_get(0).map_err(|e| db_err(&e))?;
            let allowed: bool = row.try_get(1).map_err(|e| db_err(&e))?;
            // The TAT as the step read it: the shared helper reproduces the decision.
            let (decision, _) = gcra(now_ms, Some(tat), steps[i].1);
            if decision.allowed != allowed {
                return Err(corrupt("stored TAT disagrees with the rate step"));
            }
            decisions[i] = Some(decision);
        }
        decisions
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| corrupt("a rate step went unanswered"))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let fresh = |at: &Option<Instant>| at.is_some_and(|t| t.elapsed() < PING_CACHE);
        if fresh(
            &self
                .inner
                .last_ping
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        ) {
            return Ok(());
        }
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(SQL_WRITABLE)
            .await
            .map_err(|e| db_err(&e))?;
        let writable: bool = client
            .query_one(&stmt, &[])
            .await
            .map_err(|e| db_err(&e))?
            .try_get(0)
            .map_err(|e| db_err(&e))?;
        if !writable {
            return Err(StoreError::Unavailable(
                "postgres is read-only (a standby, or no write privilege)".into(),
            ));
        }
        *self
            .inner
            .last_ping
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lock_ids_are_stable() {
        // FNV-1a 64 test vectors: replicas of every version must agree on these.
        assert_eq!(lock_id(""), 0xcbf2_9ce4_8422_2325_u64 as i64);
        assert_eq!(lock_id("a"), 0xaf63_dc4c_8601_ec8c_u64 as i64);
        assert_ne!(lock_id("org/a"), lock_id("org/b"));
    }

    #[test]
    fn plan_keeps_the_last_write_per_key() {
        let txn = Txn::new()
            .absent("b")
            .put("a", b"1".to_vec())
            .delete("a")
            .delete("c")
            .put("c", b"3".to_vec())
            .put_ttl("d", vec![], Duration::from_millis(5));
        let plan = Plan::new(txn).unwrap();
        assert_eq!(plan.deletes, ["a"]);
        assert_eq!(plan.put_keys, ["c", "d"]);
        assert_eq!(plan.put_ttls, [None, Some(5)]);
        assert_eq!(plan.cond_keys, ["b"]);
        assert_eq!(plan.locks.len(), 4);
        assert!(plan.locks.windows(2).all(|w| w[0] < w[1]));
    }
}
