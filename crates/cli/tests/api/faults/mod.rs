//! The fault suite (issue 17): faults under load, each checked by a ledger of every write
//! rolegate acknowledged. Every scenario runs the real `rolegate` binary as a process (so it
//! can be SIGKILLed and its RSS, descriptors and threads read from `/proc`), on a store and
//! an STS (moto) of its own where the scenario breaks them, on free ports of 127.0.0.1.
//! Each prints one `fault-report` line: scenario, engine, acknowledged, verified, lost and
//! the recovery time; `scripts/test` collects them.

/// Slow headers, slow bodies, 10,000 idle connections, oversized headers.
mod clients;
/// The disk fills under the SQLite engine (a tmpfs data directory).
mod disk;
/// The load client and the ledger of acknowledged writes.
pub mod ledger;
/// One rolegate process, its store and its config, restartable.
pub mod rig;
/// SIGKILL of rolegate under load, then a restart on the same store.
mod sigkill;
/// The soak: a fixed rate for minutes, RSS, descriptors, store size and p99 per interval.
mod soak;
/// The store goes away for 5 s: Redis killed, PostgreSQL stopped with `-m immediate`.
mod store_outage;
/// STS goes away (moto killed), and STS becomes slow (a delaying proxy).
mod sts;
