//! Aggregated failures. A failed login or a rejected callback has no caller to attribute it
//! to, and an attacker can make as many as the rate limit lets through; one permanent event
//! each would let it grow the log without bound.
//!
//! So failures are counted per (action, source) in windows of [`WINDOW`] on the injected
//! clock, a source being an IPv4 address or an IPv6 /64 (`keyspace::rate::source`):
//! - the first failure of a window is written at once, as it came, with `details.count = 1`
//!   and `details.window_secs`;
//! - later ones in that window are only counted in memory (codes, orgs, details kinds);
//! - when the window ends (a flusher task looks every second), or on shutdown, they are
//!   written as ONE event with `details.count` (how many), `details.window_secs`,
//!   `details.source`, `details.first`/`details.last` (times), `details.codes` and
//!   `details.variants` (the distinct details, at most [`MAX_VARIANTS`], with counts).
//!
//! The log grows by at most two events per source and minute, and the fact and number of
//! failures is never dropped: if the aggregated event cannot be written it is logged at
//! error level with its counts. When more than [`MAX_SOURCES`] sources are being counted, a
//! new source's failures are written one by one, as before (bounded memory, nothing lost).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use super::{Audit, AuditRecord, Outcome};
use crate::error::Error;
use crate::keyspace;
use crate::principal::RequestContext;

/// How long one source's failures are gathered into one event.
pub const WINDOW: Duration = Duration::from_secs(60);
/// How often the flusher looks for ended windows.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// At most this many sources are counted at a time.
pub const MAX_SOURCES: usize = 10_000;
/// At most this many distinct details (and orgs) are kept per window; the rest are counted.
pub const MAX_VARIANTS: usize = 16;

/// One source's failures of one action since its window opened (the first one, already
/// written, not included).
#[derive(Debug)]
pub(super) struct Window {
    action: &'static str,
    source: String,
    opened_ms: i64,
    actor: String,
    last_request_id: String,
    first: String,
    last: String,
    count: u64,
    codes: BTreeMap<String, u64>,
    orgs: BTreeSet<String>,
    variants: BTreeMap<String, u64>,
    other_variants: u64,
}

fn window_ms() -> i64 {
    i64::try_from(WINDOW.as_millis()).unwrap_or(i64::MAX)
}

impl Window {
    fn new(action: &'static str, source: String, opened_ms: i64, ctx: &RequestContext) -> Self {
        Self {
            action,
            source,
            opened_ms,
            actor: ctx.actor.clone(),
            last_request_id: ctx.request_id.clone(),
            first: String::new(),
            last: String::new(),
            count: 0,
            codes: BTreeMap::new(),
            orgs: BTreeSet::new(),
            variants: BTreeMap::new(),
            other_variants: 0,
        }
    }

    fn ended(&self, now_ms: i64) -> bool {
        now_ms.saturating_sub(self.opened_ms) >= window_ms()
    }

    fn add(&mut self, ctx: &RequestContext, record: &AuditRecord, time: String) {
        self.count += 1;
        if self.first.is_empty() {
            self.first.clone_from(&time);
        }
        self.last = time;
        self.last_request_id.clone_from(&ctx.request_id);
        let code = record.code.clone().unwrap_or_default();
        if self.codes.len() < MAX_VARIANTS || self.codes.contains_key(&code) {
            *self.codes.entry(code).or_default() += 1;
        } else {
            *self.codes.entry("other".to_owned()).or_default() += 1;
        }
        if let Some(org) = &record.org
            && self.orgs.len() < MAX_VARIANTS
        {
            self.orgs.insert(org.clone());
        }
        let variant = record.details.to_string();
        if self.variants.len() < MAX_VARIANTS || self.variants.contains_key(&variant) {
            *self.variants.entry(variant).or_default() += 1;
        } else {
            self.other_variants += 1;
        }
    }

    /// The aggregated event, and the context it is recorded under.
    fn into_event(self) -> (RequestContext, AuditRecord) {
        let code = self
            .codes
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(c, _)| c.clone())
            .filter(|c| !c.is_empty());
        let mut variants: Vec<serde_json::Value> = self
            .variants
            .iter()
            .map(|(d, n)| {
                serde_json::json!({
                    "details": serde_json::from_str::<serde_json::Value>(d)
                        .unwrap_or(serde_json::Value::Null),
                    "count": n,
                })
            })
            .collect();
        if self.other_variants > 0 {
            variants.push(serde_json::json!({"details": "other", "count": self.other_variants}));
        }
        let record = AuditRecord {
            action: self.action,
            org: (self.orgs.len() == 1)
                .then(|| self.orgs.iter().next().cloned())
                .flatten(),
            target: None,
            outcome: Outcome::Failure,
            code,
            details: serde_json::json!({
                "count": self.count,
                "window_secs": WINDOW.as_secs(),
                "aggregated": true,
                "source": self.source,
                "first": self.first,
                "last": self.last,
                "codes": self.codes,
                "orgs": self.orgs,
                "variants": variants,
            }),
        };
        let ctx = RequestContext {
            request_id: self.last_request_id,
            source_ip: Some(self.source),
            actor: self.actor,
        };
        (ctx, record)
    }
}

/// The first failure of a window, as it came, marked as the first of its count.
fn first_of_window(mut record: AuditRecord) -> AuditRecord {
    let mut details = match record.details {
        serde_json::Value::Object(map) => map,
        serde_json::Value::Null => serde_json::Map::new(),
        other => {
            let mut map = serde_json::Map::new();
            map.insert("value".to_owned(), other);
            map
        }
    };
    details.insert("count".to_owned(), 1.into());
    details.insert("window_secs".to_owned(), WINDOW.as_secs().into());
    record.details = serde_json::Value::Object(details);
    record
}

impl Audit {
    fn windows(&self) -> std::sync::MutexGuard<'_, HashMap<(&'static str, String), Window>> {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a failure that has no authenticated caller (see the module docs): written at
    /// once when it is the first of its source's window, counted otherwise.
    pub async fn append_failure(
        &self,
        ctx: &RequestContext,
        record: AuditRecord,
    ) -> Result<(), Error> {
        let source = keyspace::rate::source(ctx.source_ip.as_deref().unwrap_or("unknown"));
        let now_ms = self.clock.now_ms();
        let key = (record.action, source);
        let ended = {
            let mut windows = self.windows();
            let ended = match windows.get_mut(&key) {
                Some(w) if !w.ended(now_ms) => {
                    w.add(ctx, &record, crate::clock::rfc3339_millis(self.clock.now()));
                    return Ok(());
                }
                Some(_) => windows.remove(&key),
                None => None,
            };
            if windows.len() < MAX_SOURCES {
                let window = Window::new(record.action, key.1.clone(), now_ms, ctx);
                windows.insert(key, window);
            }
            ended
        };
        if let Some(w) = ended {
            self.write_window(w).await;
        }
        self.append(ctx, first_of_window(record)).await
    }

    /// Writes the aggregated events of every ended window (`all`: every window, for
    /// shutdown).
    pub async fn flush_failures(&self, all: bool) {
        let now_ms = self.clock.now_ms();
        let ended: Vec<Window> = {
            let mut windows = self.windows();
            let keys: Vec<(&'static str, String)> = windows
                .iter()
                .filter(|(_, w)| all || w.ended(now_ms))
                .map(|(k, _)| k.clone())
                .collect();
            keys.iter().filter_map(|k| windows.remove(k)).collect()
        };
        for w in ended {
            self.write_window(w).await;
        }
    }

    /// Looks for ended windows every second (waiting on the injected clock). Runs until its
    /// task is dropped; call [`Audit::flush_failures`] with `all` on the way out.
    pub async fn run_failure_flusher(self: std::sync::Arc<Self>) {
        loop {
            self.clock.sleep(FLUSH_EVERY).await;
            self.flush_failures(false).await;
        }
    }

    async fn write_window(&self, w: Window) {
        if w.count == 0 {
            return;
        }
        let (action, source, count) = (w.action, w.source.clone(), w.count);
        let (ctx, record) = w.into_event();
        if let Err(e) = self.append(&ctx, record).await {
            // The log is the last place the fact can go.
            tracing::error!(error = %e, action, source = %source, count, "could not audit aggregated failures");
        }
    }
}
