//! The writer thread: the one connection that writes the file, on a thread of its own, fed
//! by a channel. It takes every transaction waiting in the channel (up to `MAX_GROUP`) and
//! runs them in ONE SQLite transaction, each inside a savepoint: a transaction whose
//! conditions fail (or whose statements fail) is rolled back to its savepoint alone, the
//! others stay, and one `COMMIT` (one fsync under `synchronous=FULL`) makes the whole group
//! durable. Each caller hears its own outcome only after that commit returned, so an
//! acknowledged write is on disk exactly as before; transactions see each other's writes in
//! channel order, as if run one after the other.
//!
//! This replaces a mutex and one trip to tokio's blocking pool per commit (a thread hand-off
//! each way and, under load, dozens of pool threads contending for the mutex) with one
//! long-lived thread, and many fsyncs with one per group (ADR 0016).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use rolegate_core::ports::{Condition, StoreError, Txn, Write};
use rusqlite::{Connection, TransactionBehavior, params};
use tokio::sync::oneshot;

use super::sql::{SQL_DELETE, SQL_PUT, SQL_SWEEP_KV};
use super::{SWEEP_BATCH, SWEEP_EVERY, db_err, live_value};
use crate::validate;

/// At most this many transactions share one SQLite transaction (and fsync).
const MAX_GROUP: usize = 512;

/// What the writer thread is asked to do.
pub(super) enum Job {
    /// Apply a transaction: `Ok(true)` applied, `Ok(false)` a condition failed.
    Commit(Txn, oneshot::Sender<Result<bool, StoreError>>),
    /// Bump the ping counter and answer its new value.
    Ping(oneshot::Sender<Result<i64, StoreError>>),
}

/// Starts the writer thread on `conn`. It runs until every sender is dropped.
pub(super) fn spawn(conn: Connection) -> Result<mpsc::Sender<Job>, StoreError> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("sqlite-writer".into())
        .spawn(move || run(conn, &rx))
        .map_err(|e| StoreError::Unavailable(format!("cannot start the sqlite writer: {e}")))?;
    Ok(tx)
}

fn run(mut conn: Connection, rx: &mpsc::Receiver<Job>) {
    let writes = AtomicU64::new(0);
    // Blocks for the first job, then takes whatever else is already waiting.
    while let Ok(first) = rx.recv() {
        let mut group = Vec::new();
        let mut pings = Vec::new();
        let mut next = Some(first);
        while let Some(job) = next {
            match job {
                Job::Commit(txn, done) => group.push((txn, done)),
                Job::Ping(done) => pings.push(done),
            }
            next = (group.len() < MAX_GROUP)
                .then(|| rx.try_recv().ok())
                .flatten();
        }
        if !group.is_empty() {
            let n = u64::try_from(group.len()).unwrap_or(u64::MAX);
            commit_group(&mut conn, group);
            // Every SWEEP_EVERY commits, a batch of expired rows goes (outside any group).
            let before = writes.fetch_add(n, Ordering::Relaxed);
            if before / SWEEP_EVERY != (before + n) / SWEEP_EVERY {
                sweep(&conn);
            }
        }
        for done in pings {
            let _ = done.send(ping(&conn));
        }
    }
}

fn sweep(conn: &Connection) {
    let res = conn
        .prepare_cached(SQL_SWEEP_KV)
        .and_then(|mut s| s.execute(params![validate::now_ms(), SWEEP_BATCH]));
    if let Err(e) = res {
        tracing::warn!(error = %e, "sqlite expiry sweep failed");
    }
}

fn ping(conn: &Connection) -> Result<i64, StoreError> {
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES ('ping', 1)
         ON CONFLICT(key) DO UPDATE SET value = value + 1 RETURNING value",
    )
    .and_then(|mut s| s.query_row([], |r| r.get(0)))
    .map_err(db_err)
}

/// Runs `group` in one IMMEDIATE transaction, one savepoint per member, and answers each
/// member once the commit is durable (or failed: then every member hears the error).
fn commit_group(
    conn: &mut Connection,
    group: Vec<(Txn, oneshot::Sender<Result<bool, StoreError>>)>,
) {
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            for (_, done) in group {
                let _ = done.send(Err(group_err(&e)));
            }
            return;
        }
    };
    let now = validate::now_ms();
    let mut outcomes = Vec::with_capacity(group.len());
    for (txn, _) in &group {
        outcomes.push(apply_one(&tx, txn, now));
    }
    match tx.commit() {
        Ok(()) => {
            for ((_, done), outcome) in group.into_iter().zip(outcomes) {
                let _ = done.send(outcome);
            }
        }
        Err(e) => {
            for (_, done) in group {
                let _ = done.send(Err(group_err(&e)));
            }
        }
    }
}

/// The error every member of a failed group hears (`rusqlite::Error` is not `Clone`).
fn group_err(e: &rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("sqlite: {e}"))
}

/// One member of a group, inside its own savepoint: every condition checked against what
/// the group has written so far, then every write; rolled back alone when a condition fails
/// or a statement errs.
fn apply_one(conn: &Connection, txn: &Txn, now: i64) -> Result<bool, StoreError> {
    conn.execute_batch("SAVEPOINT member").map_err(db_err)?;
    let result = conditions_hold(conn, txn, now).and_then(|holds| {
        if holds {
            apply_writes(conn, txn, now).map(|()| true)
        } else {
            Ok(false)
        }
    });
    let end = match result {
        Ok(true) => "RELEASE member",
        Ok(false) | Err(_) => "ROLLBACK TO member; RELEASE member",
    };
    conn.execute_batch(end).map_err(db_err)?;
    result.map_err(db_err)
}

fn conditions_hold(conn: &Connection, txn: &Txn, now: i64) -> Result<bool, rusqlite::Error> {
    for cond in &txn.conditions {
        let holds = match cond {
            Condition::Absent(k) => live_value(conn, k, now)?.is_none(),
            Condition::Present(k) => live_value(conn, k, now)?.is_some(),
            Condition::Equals(k, want) => {
                live_value(conn, k, now)?.as_deref() == Some(want.as_slice())
            }
        };
        if !holds {
            return Ok(false);
        }
    }
    Ok(true)
}

fn apply_writes(conn: &Connection, txn: &Txn, now: i64) -> Result<(), rusqlite::Error> {
    for write in &txn.writes {
        match write {
            Write::Put { key, value, ttl } => {
                // Already validated: the TTL converts.
                let expires = ttl
                    .and_then(|t| validate::ttl_ms(t).ok())
                    .map(|ms| now.saturating_add(ms));
                conn.prepare_cached(SQL_PUT)?
                    .execute(params![key, value, expires])?;
            }
            Write::Delete { key } => {
                conn.prepare_cached(SQL_DELETE)?.execute(params![key])?;
            }
        }
    }
    Ok(())
}
