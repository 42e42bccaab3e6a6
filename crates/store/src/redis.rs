//! The shared engine: Redis through a tokio `ConnectionManager`. Every multi-step operation
//! is one Lua script (see `redis/*.lua`), so it is atomic across all rolegate processes.
//!
//! Key layout, all under the deployment prefix `P`:
//! * `P{key}`: the value of a stored key (a plain string, `PX` when it has a TTL);
//! * `P idx`: sorted set (score 0) of every stored key, for ordered prefix listing;
//! * `P rl {key}`: a rate-limit bucket's TAT;
//! * `P ping`, `P sweep`: health probe and index clean-up cursor.
//!
//! Store keys never contain spaces, so the engine's own names cannot collide with them.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, ErrorKind, RedisError, Script};
use async_trait::async_trait;
use rolegate_core::ports::{
    Condition, KvStore, Page, RateDecision, RateLimit, StoreError, Txn, Write,
};

use self::secret::{scrub_secret, url_password};
use crate::validate;

/// Masks URL passwords in error messages (the PostgreSQL engine uses it too).
pub(crate) mod secret;

static COMMIT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("redis/commit.lua")));
static LIST: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("redis/list.lua")));
static RATE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("redis/rate.lua")));
static RATES: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("redis/rates.lua")));
static SWEEP: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("redis/sweep.lua")));

/// Index entries a listing may examine beyond the page it returns (expired entries).
const LIST_SCAN_BUDGET: usize = 2000;
/// A background index sweep runs once every this many commits.
const SWEEP_EVERY: u64 = 1024;
/// Index entries one sweep examines.
const SWEEP_BATCH: usize = 500;
/// Longest accepted namespace prefix.
const MAX_PREFIX: usize = 128;

/// The Redis engine. Cheap to clone; clones share one multiplexed connection.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: Arc<str>,
    commits: Arc<AtomicU64>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: &RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

impl RedisStore {
    /// Connects to the Redis server at `url` (`redis://` or `rediss://`), namespacing every
    /// key this engine writes under `prefix`.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for a malformed URL or prefix; [`StoreError::Unavailable`] when
    /// the server cannot be reached. Messages never contain the URL's password.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        if prefix.len() > MAX_PREFIX || prefix.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(StoreError::Invalid(format!(
                "redis key prefix must be at most {MAX_PREFIX} bytes without whitespace or control characters"
            )));
        }
        let secret = url_password(url);
        let scrub = |msg: String| scrub_secret(msg, secret);
        let client = Client::open(url).map_err(|e| {
            let msg = scrub(format!("redis URL rejected: {e}"));
            if e.kind() == ErrorKind::InvalidClientConfig {
                StoreError::Invalid(msg)
            } else {
                StoreError::Unavailable(msg)
            }
        })?;
        // redis 0.27 hands these to backon, whose first delay is 1 s and `factor` multiplies
        // it: keep reconnects to one retry after about a second so callers fail fast (503)
        // instead of waiting minutes while the server is down.
        let config = ConnectionManagerConfig::new()
            .set_factor(1)
            .set_max_delay(1_000)
            .set_number_of_retries(1)
            .set_connection_timeout(Duration::from_secs(3))
            .set_response_timeout(Duration::from_secs(5));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| StoreError::Unavailable(scrub(format!("cannot connect to redis: {e}"))))?;
        Ok(Self {
            conn,
            prefix: Arc::from(prefix),
            commits: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Reads the server's persistence settings (`CONFIG GET appendonly`, `appendfsync`,
    /// `maxmemory-policy`) on a short-lived connection of its own.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for a malformed URL; [`StoreError::Unavailable`] when the
    /// server cannot be reached. A server that refuses `CONFIG` (disabled or renamed, as on
    /// many managed services, or denied by an ACL) is not an error: it is
    /// [`RedisPersistence::Unknown`].
    pub async fn persistence(url: &str) -> Result<RedisPersistence, StoreError> {
        let secret = url_password(url);
        let scrub = |msg: String| scrub_secret(msg, secret);
        let client = Client::open(url)
            .map_err(|e| StoreError::Invalid(scrub(format!("redis URL rejected: {e}"))))?;
        let mut conn = tokio::time::timeout(
            Duration::from_secs(5),
            client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| StoreError::Unavailable("cannot connect to redis: timed out".into()))?
        .map_err(|e| StoreError::Unavailable(scrub(format!("cannot connect to redis: {e}"))))?;
        let mut values = Vec::with_capacity(3);
        for name in ["appendonly", "appendfsync", "maxmemory-policy"] {
            let reply: Result<HashMap<String, String>, RedisError> = ::redis::cmd("CONFIG")
                .arg("GET")
                .arg(name)
                .query_async(&mut conn)
                .await;
            match reply {
                Ok(map) => values.push(map.get(name).cloned().unwrap_or_default()),
                Err(e) if e.kind() == ErrorKind::IoError => {
                    return Err(StoreError::Unavailable(scrub(format!("redis: {e}"))));
                }
                Err(e) => return Ok(RedisPersistence::Unknown(scrub(e.to_string()))),
            }
        }
        let [appendonly, appendfsync, maxmemory_policy] =
            <[String; 3]>::try_from(values).map_err(|_| {
                StoreError::Unavailable("redis: CONFIG GET answered an unexpected shape".into())
            })?;
        Ok(RedisPersistence::Settings {
            appendonly,
            appendfsync,
            maxmemory_policy,
        })
    }

    /// The namespace prefix of every key this engine writes.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn data_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn meta_key(&self, name: &str) -> String {
        format!("{} {name}", self.prefix)
    }

    /// Every `SWEEP_EVERY` commits, cleans a batch of stale index entries in the background.
    fn maybe_sweep(&self) {
        if self.commits.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY != SWEEP_EVERY - 1 {
            return;
        }
        let mut conn = self.conn.clone();
        let (index, cursor, ns) = (
            self.meta_key("idx"),
            self.meta_key("sweep"),
            self.prefix.to_string(),
        );
        tokio::spawn(async move {
            let res: Result<i64, RedisError> = SWEEP
                .key(index)
                .key(cursor)
                .arg(ns)
                .arg(SWEEP_BATCH)
                .invoke_async(&mut conn)
                .await;
            if let Err(e) = res {
                tracing::warn!(error = %e, "redis index sweep failed");
            }
        });
    }
}

impl RedisStore {
    /// Every live record after `after` (`""` for the first page) in key order, about
    /// `limit` at a time, with its remaining TTL (`PTTL`). For `rolegate store copy`:
    /// values are the sealed bytes, never opened. An empty page with `Some` cursor can
    /// happen past many expired index entries; the second value is the cursor to continue
    /// from, `None` at the end.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when Redis fails.
    pub async fn export_page(
        &self,
        after: &str,
        limit: usize,
    ) -> Result<(Vec<crate::copy::Record>, Option<String>), StoreError> {
        let page = self
            .list("", (!after.is_empty()).then_some(after), limit)
            .await?;
        if page.items.is_empty() {
            return Ok((Vec::new(), page.next));
        }
        let mut pipe = ::redis::pipe();
        for (key, _) in &page.items {
            pipe.cmd("PTTL").arg(self.data_key(key));
        }
        let mut conn = self.conn.clone();
        let ttls: Vec<i64> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| unavailable(&e))?;
        let records = page
            .items
            .into_iter()
            .zip(ttls)
            // -2: expired since the listing; -1: no TTL.
            .filter(|(_, ttl)| *ttl != -2)
            .map(|((key, value), ttl)| crate::copy::Record {
                key,
                value,
                ttl: (ttl >= 0).then(|| crate::copy::ttl_from_ms(ttl)),
            })
            .collect();
        Ok((records, page.next))
    }
}

/// What a Redis server says about its own persistence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisPersistence {
    /// The values of `appendonly`, `appendfsync` and `maxmemory-policy` (empty if unset).
    Settings {
        appendonly: String,
        appendfsync: String,
        maxmemory_policy: String,
    },
    /// The server refused `CONFIG GET`; the reason it gave.
    Unknown(String),
}

/// The KEYS array of a commit script call: the index first, then each distinct data key once.
struct KeySlots<'a> {
    prefix: &'a str,
    keys: Vec<String>,
    slots: HashMap<&'a str, usize>,
}

impl<'a> KeySlots<'a> {
    /// The 1-based KEYS position of `key`, adding it on first use.
    fn slot(&mut self, key: &'a str) -> usize {
        if let Some(&pos) = self.slots.get(key) {
            return pos;
        }
        self.keys.push(format!("{}{key}", self.prefix));
        self.slots.insert(key, self.keys.len());
        self.keys.len()
    }
}

#[async_trait]
impl KvStore for RedisStore {
    fn engine(&self) -> &'static str {
        "redis"
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        validate::key(key)?;
        let mut conn = self.conn.clone();
        ::redis::cmd("GET")
            .arg(self.data_key(key))
            .query_async(&mut conn)
            .await
            .map_err(|e| unavailable(&e))
    }

    async fn commit(&self, txn: Txn) -> Result<bool, StoreError> {
        validate::txn(&txn)?;
        // KEYS[1] is the index; every distinct data key gets one KEYS slot.
        let mut keys = KeySlots {
            prefix: &self.prefix,
            keys: vec![self.meta_key("idx")],
            slots: HashMap::new(),
        };
        let mut args: Vec<Vec<u8>> = vec![txn.conditions.len().to_string().into_bytes()];
        for cond in &txn.conditions {
            let (kind, key, expected): (&[u8], &str, &[u8]) = match cond {
                Condition::Absent(k) => (b"A", k, b""),
                Condition::Present(k) => (b"P", k, b""),
                Condition::Equals(k, v) => (b"E", k, v),
            };
            let pos = keys.slot(key);
            args.extend([
                kind.to_vec(),
                pos.to_string().into_bytes(),
                expected.to_vec(),
            ]);
        }
        for write in &txn.writes {
            match write {
                Write::Put { key, value, ttl } => {
                    let ttl_ms = match ttl {
                        Some(t) => validate::ttl_ms(*t)?,
                        None => 0,
                    };
                    let pos = keys.slot(key);
                    args.extend([
                        b"S".to_vec(),
                        pos.to_string().into_bytes(),
                        key.as_bytes().to_vec(),
                        value.clone(),
                        ttl_ms.to_string().into_bytes(),
                    ]);
                }
                Write::Delete { key } => {
                    let pos = keys.slot(key);
                    args.extend([
                        b"D".to_vec(),
                        pos.to_string().into_bytes(),
                        key.as_bytes().to_vec(),
                    ]);
                }
            }
        }
        let mut inv = COMMIT.prepare_invoke();
        for k in &keys.keys {
            inv.key(k);
        }
        for a in &args {
            inv.arg(a.as_slice());
        }
        let mut conn = self.conn.clone();
        let applied: i64 = inv
            .invoke_async(&mut conn)
            .await
            .map_err(|e| unavailable(&e))?;
        self.maybe_sweep();
        Ok(applied == 1)
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
        let min = match after {
            Some(a) if a >= prefix => format!("({a}"),
            _ if prefix.is_empty() => "-".to_owned(),
            _ => format!("[{prefix}"),
        };
        let max =
            validate::prefix_upper(prefix).map_or_else(|| "+".to_owned(), |u| format!("({u}"));
        let mut conn = self.conn.clone();
        let reply: Vec<Vec<u8>> = LIST
            .key(self.meta_key("idx"))
            .arg(&*self.prefix)
            .arg(min)
            .arg(max)
            .arg(limit + 1)
            .arg(limit + 1 + LIST_SCAN_BUDGET)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| unavailable(&e))?;
        let mut reply = reply.into_iter();
        let last_scanned = reply.next().unwrap_or_default();
        let corrupt = |reason: &str| StoreError::Corrupt {
            key: self.meta_key("idx"),
            reason: reason.into(),
        };
        let mut items = Vec::new();
        while let Some(key) = reply.next() {
            let value = reply
                .next()
                .ok_or_else(|| corrupt("odd-length listing reply"))?;
            let key = String::from_utf8(key).map_err(|_| corrupt("index member is not UTF-8"))?;
            items.push((key, value));
        }
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|(k, _)| k.clone())
        } else if last_scanned.is_empty() {
            None
        } else {
            // The script stopped early (many expired entries): resume after what it examined.
            Some(
                String::from_utf8(last_scanned)
                    .map_err(|_| corrupt("index member is not UTF-8"))?,
            )
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
        let burst = limit.burst.max(1);
        let period = i64::try_from(limit.period.as_millis())
            .unwrap_or(i64::MAX / 4)
            .max(1);
        let bucket = self.meta_key(&format!("rl {key}"));
        let mut conn = self.conn.clone();
        let reply: Vec<i64> = RATE
            .key(&bucket)
            .arg(now_ms)
            .arg(burst)
            .arg(period)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| unavailable(&e))?;
        let &[allowed, remaining, retry_after, reset_after] = reply.as_slice() else {
            return Err(StoreError::Corrupt {
                key: bucket,
                reason: "unexpected rate script reply".into(),
            });
        };
        if allowed < 0 {
            return Err(StoreError::Corrupt {
                key: bucket,
                reason: "stored TAT is not a number".into(),
            });
        }
        let to_u64 = |v: i64| u64::try_from(v.max(0)).unwrap_or(0);
        Ok(RateDecision {
            allowed: allowed == 1,
            limit: limit.burst,
            remaining: u32::try_from(remaining.max(0)).unwrap_or(0),
            retry_after_ms: to_u64(retry_after),
            reset_after_ms: to_u64(reset_after),
        })
    }

    async fn rate_steps(
        &self,
        steps: &[(&str, RateLimit)],
        now_ms: i64,
    ) -> Result<Vec<RateDecision>, StoreError> {
        validate::rate_steps(steps, now_ms)?;
        let mut invocation = RATES.prepare_invoke();
        invocation.arg(now_ms);
        for (key, limit) in steps {
            let period = i64::try_from(limit.period.as_millis())
                .unwrap_or(i64::MAX / 4)
                .max(1);
            invocation
                .key(self.meta_key(&format!("rl {key}")))
                .arg(limit.burst.max(1))
                .arg(period);
        }
        let mut conn = self.conn.clone();
        let reply: Vec<i64> = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(|e| unavailable(&e))?;
        let corrupt = |i: usize, reason: &str| StoreError::Corrupt {
            key: self.meta_key(&format!("rl {}", steps.get(i).map_or("", |s| s.0))),
            reason: reason.into(),
        };
        if let [-1, i] = reply.as_slice() {
            let i = usize::try_from(*i - 1).unwrap_or(0);
            return Err(corrupt(i, "stored TAT is not a number"));
        }
        if reply.len() != steps.len() * 4 {
            return Err(corrupt(0, "unexpected rate script reply"));
        }
        let to_u64 = |v: i64| u64::try_from(v.max(0)).unwrap_or(0);
        Ok(reply
            .chunks_exact(4)
            .zip(steps)
            .map(|(d, (_, limit))| RateDecision {
                allowed: d[0] == 1,
                limit: limit.burst,
                remaining: u32::try_from(d[1].max(0)).unwrap_or(0),
                retry_after_ms: to_u64(d[2]),
                reset_after_ms: to_u64(d[3]),
            })
            .collect())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let token = format!(
            "{}-{}",
            validate::now_ms(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let key = self.meta_key("ping");
        let mut conn = self.conn.clone();
        let (_, seen): ((), Option<String>) = ::redis::pipe()
            .cmd("SET")
            .arg(&key)
            .arg(&token)
            .arg("PX")
            .arg(60_000)
            .cmd("GET")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .map_err(|e| unavailable(&e))?;
        match seen {
            Some(_) => Ok(()),
            None => Err(StoreError::Unavailable(
                "redis ping key vanished after SET".into(),
            )),
        }
    }
}
