//! The load client and its ledger. Workers send mixed traffic (registrations, credential
//! requests served from the cache and forced past it, org reads) until stopped, optionally
//! at a fixed rate, and record every acknowledged (2xx) request with what identifies it: the
//! org a registration created, the session name and `cached` flag of issued credentials.
//! [`verify`] then checks the store for each of them (the org record and its `org.create`
//! event; the `credentials.issue` event of that session, cached issuances counted one by
//! one) and walks the audit chain.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rolegate_core::audit::{AuditEvent, EVENT_PREFIX, Outcome};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `POST /api/orgs` with a fresh name.
    Register,
    /// `POST /api/credentials`, usually a cache hit.
    Warm,
    /// `POST /api/credentials` with `force_refresh`: always STS.
    Cold,
    /// `GET /api/orgs/{org}` with the org's key.
    Read,
}

/// The default mix: a registration, two warm and one cold credential request, two reads.
pub const MIX: &[Op] = &[
    Op::Register,
    Op::Warm,
    Op::Read,
    Op::Cold,
    Op::Warm,
    Op::Read,
];

/// A validated org the load requests credentials for, with its API key.
#[derive(Debug, Clone)]
pub struct Org {
    pub name: String,
    pub key: String,
}

#[derive(Debug, Clone)]
pub struct Issued {
    pub org: String,
    pub session_name: String,
    pub cached: bool,
}

/// An answer that was not 2xx.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub at: Instant,
    pub op: Op,
    pub status: u16,
    pub code: String,
    pub retry_after: bool,
}

#[derive(Debug, Default)]
pub struct Ledger {
    pub registered: Vec<String>,
    pub issued: Vec<Issued>,
    pub reads: u64,
    pub refusals: Vec<Refusal>,
    /// Requests with no answer (connection refused or cut, client timeout).
    pub unanswered: u64,
    /// When each acknowledged request (of any kind) was answered.
    pub acks: Vec<Instant>,
    /// Every answered request: when it ended, what it was, how long it took, and whether
    /// it was acknowledged (2xx).
    pub latencies: Vec<(Instant, Op, Duration, bool)>,
}

impl Ledger {
    pub fn writes(&self) -> usize {
        self.registered.len() + self.issued.len()
    }

    /// The first acknowledgement at or after `t`.
    pub fn first_ack_after(&self, t: Instant) -> Option<Instant> {
        self.acks.iter().copied().filter(|a| *a >= t).min()
    }

    /// How many requests of kind `op` were acknowledged in `from..to`.
    pub fn acked(&self, op: Op, from: Instant, to: Instant) -> usize {
        self.latencies
            .iter()
            .filter(|(at, o, _, ok)| *ok && *o == op && (from..to).contains(at))
            .count()
    }

    /// The refusals answered in `from..to`.
    pub fn refused(&self, from: Instant, to: Instant) -> Vec<&Refusal> {
        self.refusals
            .iter()
            .filter(|r| (from..to).contains(&r.at))
            .collect()
    }

    /// The slowest answered request of kind `op` that ended in `from..to`.
    pub fn slowest(&self, op: Op, from: Instant, to: Instant) -> Duration {
        self.latencies
            .iter()
            .filter(|(at, o, _, _)| *o == op && (from..to).contains(at))
            .map(|(_, _, d, _)| *d)
            .max()
            .unwrap_or_default()
    }
}

pub struct LoadOptions {
    pub workers: usize,
    /// Requests per second over all workers; `None` is as fast as answers come.
    pub rate: Option<f64>,
    pub mix: &'static [Op],
    /// Prefix of registered org names (3..32 characters in all).
    pub prefix: &'static str,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            workers: 6,
            rate: None,
            mix: MIX,
            prefix: "ld",
        }
    }
}

pub struct Load {
    stop: Arc<AtomicBool>,
    pub ledger: Arc<Mutex<Ledger>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts the workers against whatever `base` says (it follows a restarted server).
    pub fn start(
        base: Arc<RwLock<String>>,
        token: &str,
        orgs: Vec<Org>,
        opts: LoadOptions,
    ) -> Self {
        assert!(!orgs.is_empty());
        let stop = Arc::new(AtomicBool::new(false));
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let next = Arc::new(AtomicU64::new(0));
        let orgs = Arc::new(orgs);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let workers = opts.workers;
        let interval = opts
            .rate
            .map(|r| Duration::from_secs_f64(workers as f64 / r));
        let tasks = (0..workers)
            .map(|w| {
                let worker = Worker {
                    base: Arc::clone(&base),
                    token: token.to_owned(),
                    orgs: Arc::clone(&orgs),
                    client: client.clone(),
                    prefix: opts.prefix,
                    mix: opts.mix,
                };
                let (stop, ledger, next) =
                    (Arc::clone(&stop), Arc::clone(&ledger), Arc::clone(&next));
                tokio::spawn(async move {
                    // Spread the workers' ticks over one interval.
                    let mut tick = tokio::time::Instant::now()
                        + interval.map_or(Duration::ZERO, |i| i * w as u32 / workers as u32);
                    while !stop.load(Ordering::Relaxed) {
                        if let Some(i) = interval {
                            tokio::time::sleep_until(tick).await;
                            tick += i;
                        }
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if !worker.one(n, &ledger).await {
                            // No server to answer (killed, restarting): do not spin.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                })
            })
            .collect();
        Self {
            stop,
            ledger,
            tasks,
        }
    }

    /// Waits until `n` more requests than now have been acknowledged, for at most `secs`.
    pub async fn progress(&self, n: usize, secs: u64) {
        let start = self.ledger.lock().unwrap().acks.len();
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.ledger.lock().unwrap().acks.len() < start + n {
            assert!(
                Instant::now() < deadline,
                "fewer than {n} acknowledgements in {secs} s: {:?}",
                self.ledger.lock().unwrap().refusals.last()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the workers (each finishes its request in flight) and returns the ledger.
    pub async fn stop(self) -> Ledger {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        std::mem::take(&mut *self.ledger.lock().unwrap())
    }
}

struct Worker {
    base: Arc<RwLock<String>>,
    token: String,
    orgs: Arc<Vec<Org>>,
    client: reqwest::Client,
    prefix: &'static str,
    mix: &'static [Op],
}

impl Worker {
    /// Sends request `n`; `false` when nothing answered.
    async fn one(&self, n: u64, ledger: &Mutex<Ledger>) -> bool {
        let op = self.mix[(n % self.mix.len() as u64) as usize];
        let org = &self.orgs[(n / self.mix.len() as u64 % self.orgs.len() as u64) as usize];
        let base = self.base.read().unwrap().clone();
        let name = format!("{}-{n}", self.prefix);
        let req = match op {
            Op::Register => self
                .client
                .post(format!("{base}/api/orgs"))
                .bearer_auth(&self.token)
                .header("idempotency-key", &name)
                .json(&json!({"org_name": name})),
            Op::Warm | Op::Cold => self
                .client
                .post(format!("{base}/api/credentials"))
                .header("x-api-key", &org.key)
                .json(&json!({"org_name": org.name, "force_refresh": op == Op::Cold})),
            Op::Read => self
                .client
                .get(format!("{base}/api/orgs/{}", org.name))
                .header("x-api-key", &org.key),
        };
        let start = Instant::now();
        let answer = match req.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let retry_after = r.headers().contains_key("retry-after");
                r.json::<Value>()
                    .await
                    .ok()
                    .map(|body| (status, retry_after, body))
            }
            Err(_) => None,
        };
        let at = Instant::now();
        let mut l = ledger.lock().unwrap();
        let Some((status, retry_after, body)) = answer else {
            l.unanswered += 1;
            return false;
        };
        let ok = (200..300).contains(&status);
        l.latencies.push((at, op, at - start, ok));
        if !ok {
            l.refusals.push(Refusal {
                at,
                op,
                status,
                code: body["error"]["code"].as_str().unwrap_or("").to_owned(),
                retry_after,
            });
            return true;
        }
        l.acks.push(at);
        match op {
            Op::Register => l.registered.push(name),
            Op::Warm | Op::Cold => l.issued.push(Issued {
                org: org.name.clone(),
                session_name: body["session_name"].as_str().unwrap_or("").to_owned(),
                cached: body["cached"].as_bool().unwrap_or(false),
            }),
            Op::Read => l.reads += 1,
        }
        true
    }
}

/// What [`verify`] found.
#[derive(Debug)]
pub struct Verdict {
    pub acknowledged: usize,
    pub verified: usize,
    pub lost: Vec<String>,
    pub reads: u64,
    pub chain_events: u64,
    pub chain_breaks: usize,
}

impl Verdict {
    /// Asserts nothing acknowledged was lost and the chain is whole.
    pub fn assert_whole(&self) {
        assert!(self.acknowledged > 0, "the load acknowledged nothing");
        assert!(
            self.lost.is_empty(),
            "lost acknowledged writes: {:?}",
            self.lost
        );
        assert_eq!(self.verified, self.acknowledged);
        assert_eq!(self.chain_breaks, 0, "the audit chain is broken");
    }
}

/// Checks every acknowledged write of `ledger` in the store behind `vault`.
pub async fn verify(ledger: &Ledger, vault: &rolegate_core::vault::Vault) -> Verdict {
    let events = vault.list_all::<AuditEvent>(EVENT_PREFIX).await.unwrap();
    let mut created = HashSet::new();
    let mut fresh = HashSet::new();
    let mut cached: HashMap<String, usize> = HashMap::new();
    for (_, e) in &events {
        if e.outcome != Outcome::Success {
            continue;
        }
        match e.action.as_str() {
            "org.create" => {
                created.insert(e.org.clone().unwrap_or_default());
            }
            "credentials.issue" => {
                let session = e.details["session_name"].as_str().unwrap_or("").to_owned();
                if e.details["cached"].as_bool() == Some(true) {
                    *cached.entry(session).or_default() += 1;
                } else {
                    fresh.insert(session);
                }
            }
            _ => {}
        }
    }
    let mut lost = Vec::new();
    for name in &ledger.registered {
        let record = vault
            .get::<rolegate_core::orgs::OrgRecord>(&format!("org/{name}"))
            .await
            .unwrap();
        if record.is_none() || !created.contains(name) {
            lost.push(format!("org {name}"));
        }
    }
    for i in &ledger.issued {
        let found = if i.cached {
            cached.get_mut(&i.session_name).is_some_and(|n| {
                let had = *n > 0;
                *n = n.saturating_sub(1);
                had
            })
        } else {
            fresh.contains(&i.session_name)
        };
        if !found {
            lost.push(format!(
                "credentials for {} (session {}, cached {})",
                i.org, i.session_name, i.cached
            ));
        }
    }
    let report = rolegate_core::audit::verify(vault).await.unwrap();
    let acknowledged = ledger.writes();
    Verdict {
        acknowledged,
        verified: acknowledged - lost.len(),
        lost,
        reads: ledger.reads,
        chain_events: report.events,
        chain_breaks: report.breaks.len(),
    }
}

/// Prints one `fault-report` line (and appends it to `$ROLEGATE_FAULT_REPORT` when set, for
/// `scripts/test` to collect).
pub fn report(scenario: &str, engine: &str, v: &Verdict, recovery: Option<Duration>, note: &str) {
    let recovery = recovery.map_or_else(|| "-".to_owned(), |d| format!("{}ms", d.as_millis()));
    let line = format!(
        "fault-report scenario={scenario} engine={engine} acknowledged={} verified={} lost={} reads={} chain_events={} recovery={recovery} {note}",
        v.acknowledged,
        v.verified,
        v.lost.len(),
        v.reads,
        v.chain_events,
    );
    eprintln!("{line}");
    if let Ok(path) = std::env::var("ROLEGATE_FAULT_REPORT") {
        use std::io::Write as _;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}
