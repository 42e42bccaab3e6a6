//! The soak (`bench/soak`): the mixed workload at a fixed rate for `ROLEGATE_SOAK_SECS`
//! (default 60) against one server on SQLite, reporting per interval (a minute, or a sixth
//! of a shorter run) the server's RSS, open descriptors, the store's size on disk and the
//! p99 latency. RSS and descriptors, sampled every second, must stay within 10% of the
//! plateau the start sets (their highest in the first minute, or in the first third of a
//! shorter run); every acknowledged write is verified at the end.

use std::time::{Duration, Instant};

use super::ledger::{Load, LoadOptions, report, verify};
use super::rig::{ProcStats, Rig, config};
use crate::support::moto_url;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Bytes of the SQLite store's files (the database, its WAL and shared memory).
fn store_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("rolegate.db"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "bench/soak runs it (scripts/test for 60 s)"]
async fn soak() {
    let secs: u64 = env_or("ROLEGATE_SOAK_SECS", 60);
    let rate: f64 = env_or("ROLEGATE_SOAK_RATE", 50.0);
    let interval = Duration::from_secs(if secs >= 360 { 60 } else { (secs / 6).max(5) });
    let plateau_until = Duration::from_secs((secs / 3).min(60));
    let rig = Rig::start("sqlite", &config(moto_url(), "max_attempts = 1", ""));
    let orgs = rig.orgs("sk", 4).await;
    let load = Load::start(
        rig.base.clone(),
        &rig.token,
        orgs,
        LoadOptions {
            workers: 8,
            rate: Some(rate),
            ..LoadOptions::default()
        },
    );
    eprintln!(
        "soak: {secs} s at {rate} requests/s; one row per {} s",
        interval.as_secs()
    );
    eprintln!(
        "soak: {:>6} {:>9} {:>5} {:>8} {:>11} {:>8} {:>8}",
        "t_s", "rss_kib", "fds", "threads", "store_kib", "requests", "p99_ms"
    );
    let start = Instant::now();
    // Sampled every second; each row shows its interval's highest RSS, descriptors and
    // threads (descriptors move with the connections in flight, so one sample says little).
    let max = |a: ProcStats, b: ProcStats| ProcStats {
        rss_kib: a.rss_kib.max(b.rss_kib),
        fds: a.fds.max(b.fds),
        threads: a.threads.max(b.threads),
    };
    let (mut plateau, mut after) = (ProcStats::default(), ProcStats::default());
    let mut from = start;
    let mut row = ProcStats::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while start.elapsed() < Duration::from_secs(secs) {
        tick.tick().await;
        let stats = rig.process_stats();
        row = max(row, stats);
        if start.elapsed() <= plateau_until {
            plateau = max(plateau, stats);
        } else {
            after = max(after, stats);
        }
        let to = Instant::now();
        if to - from < interval {
            continue;
        }
        let mut lat: Vec<Duration> = load
            .ledger
            .lock()
            .unwrap()
            .latencies
            .iter()
            .filter(|(at, ..)| (from..to).contains(at))
            .map(|(_, _, d, _)| *d)
            .collect();
        lat.sort();
        let p99 = lat
            .get(lat.len().saturating_sub(1) * 99 / 100)
            .copied()
            .unwrap_or_default();
        eprintln!(
            "soak: {:>6} {:>9} {:>5} {:>8} {:>11} {:>8} {:>8}",
            (to - start).as_secs(),
            row.rss_kib,
            row.fds,
            row.threads,
            store_bytes(rig.data_dir()) / 1024,
            lat.len(),
            p99.as_millis()
        );
        row = ProcStats::default();
        from = to;
    }
    let ledger = load.stop().await;
    let v = verify(&ledger, &rig.vault().await).await;
    let peak = max(plateau, after);
    report(
        "soak",
        "sqlite",
        &v,
        None,
        &format!(
            "secs={secs} rate={rate} refusals={} unanswered={} plateau_rss_kib={} peak_rss_kib={} plateau_fds={} peak_fds={}",
            ledger.refusals.len(),
            ledger.unanswered,
            plateau.rss_kib,
            peak.rss_kib,
            plateau.fds,
            peak.fds
        ),
    );
    v.assert_whole();
    assert!(ledger.refusals.is_empty(), "{:?}", ledger.refusals.first());
    // Growth beyond the plateau, within 10% (rounded up for the small descriptor counts).
    assert!(
        peak.rss_kib * 10 <= plateau.rss_kib * 11,
        "RSS grew from {} KiB to {} KiB",
        plateau.rss_kib,
        peak.rss_kib
    );
    assert!(
        peak.fds * 10 <= plateau.fds * 11 + 9,
        "descriptors grew from {} to {}",
        plateau.fds,
        peak.fds
    );
}
