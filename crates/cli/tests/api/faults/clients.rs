//! Slow and malicious clients against one server, all at once and under the mixed load:
//! 10,000 idle connections (opened at 5,000 a second), clients trickling their headers (slowloris) or their bodies,
//! and oversized headers. A normal client's `GET /api/health` (on a new connection each
//! time) keeps being answered within 100 ms, the slow clients get 408, the oversized
//! headers 431, the idle connections are closed at the header deadline (the server's
//! descriptors come back), and every acknowledged write of the load is there.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::ledger::{Load, LoadOptions, report, verify};
use super::rig::{Rig, config};
use crate::support::moto_url;

const IDLE: usize = 10_000;
const HEADER_DEADLINE: Duration = Duration::from_secs(5);
/// How long the attack takes to set up: 10,000 connections at 5,000 a second.
const RAMP: Duration = Duration::from_millis(2500);

/// The status of the answer on `stream` (0 when it closed without one), waiting at most 30 s.
async fn status_of(mut stream: TcpStream) -> u16 {
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw)).await;
    String::from_utf8_lossy(&raw)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Sends `at_once`, then `slowly` one byte every `every`, then reads the answer.
async fn trickle(addr: String, at_once: Vec<u8>, slowly: Vec<u8>, every: Duration) -> u16 {
    let Ok(stream) = TcpStream::connect(&addr).await else {
        return 0;
    };
    let (mut read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        if write.write_all(&at_once).await.is_err() {
            return;
        }
        for b in slowly {
            if write.write_all(&[b]).await.is_err() {
                return;
            }
            tokio::time::sleep(every).await;
        }
        // Keep the half open: the server must answer or close on its own.
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), read.read_to_end(&mut raw)).await;
    writer.abort();
    String::from_utf8_lossy(&raw)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// `GET /api/health` on a new connection, with blocking I/O: the answer's status.
fn health(addr: &str) -> u16 {
    use std::io::{Read as _, Write as _};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return 0;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.write_all(b"GET /api/health HTTP/1.1\r\nHost: rolegate\r\nConnection: close\r\n\r\n");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    String::from_utf8_lossy(&raw)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Sends a request whose headers are too large, all at once.
async fn oversized(addr: String, head: String) -> u16 {
    let Ok(mut stream) = TcpStream::connect(&addr).await else {
        return 0;
    };
    let _ = stream.write_all(head.as_bytes()).await;
    status_of(stream).await
}

/// Raises this process's soft descriptor limit to the hard one (the server, started after,
/// inherits it): the idle connections need more than 10,000 descriptors on each side.
fn raise_descriptor_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    }
    assert!(
        hard >= IDLE as u64 + 1024,
        "the hard descriptor limit ({hard}) is too low for {IDLE} connections"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault suite: timing-sensitive, run alone by scripts/test (--ignored --test-threads 1)"]
async fn health_answers_within_100_ms_under_slow_and_malicious_clients() {
    raise_descriptor_limit();
    let rig = Rig::start(
        "sqlite",
        &config(
            moto_url(),
            "max_attempts = 1",
            &format!(
                "header_read_timeout_secs = {}\nbody_read_timeout_secs = 3\n",
                HEADER_DEADLINE.as_secs()
            ),
        ),
    );
    let addr = rig.base().trim_start_matches("http://").to_owned();
    let orgs = rig.orgs("mc", 3).await;
    let load = Load::start(
        rig.base.clone(),
        &rig.token,
        orgs,
        LoadOptions {
            workers: 3,
            ..LoadOptions::default()
        },
    );
    load.progress(20, 60).await;
    let before = rig.process_stats();

    // The attack, all at once.
    let attack = Instant::now();
    let idle = {
        let addr = addr.clone();
        tokio::spawn(async move {
            let mut open = Vec::with_capacity(IDLE);
            let mut failed = 0;
            // 5,000 a second: 100 every 20 ms.
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            for _ in 0..IDLE / 100 {
                tick.tick().await;
                for _ in 0..100 {
                    match TcpStream::connect(&addr).await {
                        Ok(s) => open.push(s),
                        Err(_) => failed += 1,
                    }
                }
            }
            (open, failed, Instant::now())
        })
    };
    let mut slow = Vec::new();
    for _ in 0..100 {
        let head =
            b"GET /api/health HTTP/1.1\r\nHost: rolegate\r\nUser-Agent: slowloris\r\n\r\n".to_vec();
        slow.push(tokio::spawn(trickle(
            addr.clone(),
            Vec::new(),
            head,
            Duration::from_millis(500),
        )));
    }
    for i in 0..50 {
        let head = format!(
            "POST /api/orgs HTTP/1.1\r\nHost: rolegate\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\nIdempotency-Key: slow-{i}\r\n\r\n",
            rig.token
        );
        let body = format!("{{\"org_name\":\"slow-body-{i}\"}}").into_bytes();
        slow.push(tokio::spawn(trickle(
            addr.clone(),
            head.into_bytes(),
            body,
            Duration::from_secs(1),
        )));
    }
    let mut big = Vec::new();
    for i in 0..40 {
        let head = if i % 2 == 0 {
            format!(
                "GET /api/health HTTP/1.1\r\nHost: rolegate\r\nX-Big: {}\r\n\r\n",
                "a".repeat(1024 * 1024)
            )
        } else {
            let many: String = (0..500).map(|h| format!("X-H{h}: v\r\n")).collect();
            format!("GET /api/health HTTP/1.1\r\nHost: rolegate\r\n{many}\r\n")
        };
        big.push(tokio::spawn(oversized(addr.clone(), head)));
    }

    // A normal client on a thread of its own (so that the attack's tasks in this process do
    // not delay it), a new connection per probe, every 100 ms while the attack lasts.
    let prober = {
        let addr = addr.clone();
        std::thread::spawn(move || {
            let mut latencies = Vec::new();
            while attack.elapsed() < HEADER_DEADLINE + Duration::from_secs(2) {
                let t = Instant::now();
                let status = health(&addr);
                let took = t.elapsed();
                assert_eq!(status, 200, "health failed after {took:?}");
                latencies.push((t - attack, took));
                std::thread::sleep(Duration::from_millis(100));
            }
            latencies
        })
    };
    let mut during = rig.process_stats();
    while attack.elapsed() < HEADER_DEADLINE + Duration::from_secs(2) {
        let now = rig.process_stats();
        if now.fds > during.fds {
            during = now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The ramp (idle connections opening, the oversized headers parsed) and the steady state
    // after it, while all of it is held open.
    let (ramp, steady): (Vec<_>, Vec<_>) = prober
        .join()
        .unwrap()
        .into_iter()
        .partition(|(at, _)| *at < RAMP);
    let ramp_max = ramp.iter().map(|(_, d)| *d).max().unwrap_or_default();
    let mut latencies: Vec<Duration> = steady.into_iter().map(|(_, d)| d).collect();
    let (open, connect_failed, opened) = idle.await.unwrap();
    let mut slow_statuses = Vec::new();
    for s in slow {
        slow_statuses.push(s.await.unwrap());
    }
    let mut big_statuses = Vec::new();
    for b in big {
        big_statuses.push(b.await.unwrap());
    }
    // The idle connections are closed by the server at the header deadline (a closed one
    // reads end-of-file at once; stop looking after a few that are still open).
    tokio::time::sleep_until((opened + HEADER_DEADLINE + Duration::from_secs(1)).into()).await;
    let mut closed = 0;
    let mut still_open = 0;
    for mut s in open {
        let mut buf = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(20), s.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => closed += 1,
            _ => still_open += 1,
        }
        if still_open > 20 {
            break;
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rig.process_stats();
    let ledger = load.stop().await;
    let v = verify(&ledger, &rig.vault().await).await;

    latencies.sort();
    let p95 = latencies[latencies.len() * 95 / 100];
    let max = *latencies.last().unwrap();
    let over = latencies
        .iter()
        .filter(|d| **d >= Duration::from_millis(100))
        .count();
    let count = |list: &[u16], s: u16| list.iter().filter(|x| **x == s).count();
    report(
        "slow_clients",
        "sqlite",
        &v,
        None,
        &format!(
            "health_ramp_max_ms={} health_probes={} health_p95_ms={} health_max_ms={} over_100ms={over} idle_open={} idle_open_ms={} idle_failed={connect_failed} idle_closed_by_server={closed} slow_408={} big_431={} fds_before={} fds_peak={} fds_after={}",
            ramp_max.as_millis(),
            latencies.len(),
            p95.as_millis(),
            max.as_millis(),
            IDLE - connect_failed,
            (opened - attack).as_millis(),
            count(&slow_statuses, 408),
            count(&big_statuses, 431),
            before.fds,
            during.fds,
            after.fds
        ),
    );
    v.assert_whole();
    assert_eq!(connect_failed, 0, "not every idle connection was accepted");
    assert_eq!(
        closed, IDLE,
        "idle connections left open past the header deadline"
    );
    assert!(
        slow_statuses.iter().all(|s| *s == 408),
        "slow clients: {slow_statuses:?}"
    );
    assert!(
        big_statuses.iter().all(|s| *s == 431),
        "oversized: {big_statuses:?}"
    );
    // Once the attack is in place, probes are answered within 100 ms: one may lose its time
    // slice on a shared 2-core machine (none may take half a second). While the attack is
    // being set up (a debug build accepting 5,000 connections a second and parsing 40
    // oversized heads, with the machine's load average at 7 to 9 from other builds: up to
    // 1.2 s seen), answered within two seconds.
    assert!(over <= 1, "health probes over 100 ms: {latencies:?}");
    assert!(max < Duration::from_millis(500), "{max:?}");
    assert!(ramp_max < Duration::from_secs(2), "{ramp_max:?}");
    assert!(
        after.fds <= before.fds + 20,
        "descriptors: {} before, {} after",
        before.fds,
        after.fds
    );
}
