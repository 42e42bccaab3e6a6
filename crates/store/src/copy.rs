//! `rolegate store copy`: moves every record from one engine to another as sealed bytes.
//!
//! A record's key is the associated data of its AES-GCM seal, so the bytes stay valid under
//! the same key in any engine: nothing is decrypted, and no master key is needed to copy
//! (only to verify the audit chain afterwards, which the CLI does). Remaining TTLs are
//! carried over. Rate-limit buckets are not records and are not copied.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rolegate_core::ports::{KvStore, StoreError, Txn};

use crate::{Opened, open};

/// Records read from the source per page.
const PAGE: usize = 500;
/// Records written to the target per transaction.
const BATCH: usize = 100;

/// One stored record as `store copy` moves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: String,
    /// The sealed bytes, exactly as stored.
    pub value: Vec<u8>,
    /// Time left before it expires, if it has a TTL.
    pub ttl: Option<Duration>,
}

/// What a copy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    pub from_engine: &'static str,
    pub to_engine: &'static str,
    /// Records written to the target.
    pub records: u64,
    /// Of those, records that carry a TTL.
    pub with_ttl: u64,
    /// Bytes of sealed values written.
    pub bytes: u64,
}

/// A remaining TTL in ms as a duration of at least 1 ms (a record read as live must not be
/// written without a TTL, nor with a zero one, which the port refuses).
pub(crate) fn ttl_from_ms(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0).max(1))
}

impl Opened {
    /// One page of records after `after`, and where to continue (`None`: done).
    async fn export_page(&self, after: &str) -> Result<(Vec<Record>, Option<String>), StoreError> {
        let full = |records: Vec<Record>| {
            let next = (records.len() == PAGE)
                .then(|| records.last().map(|r| r.key.clone()))
                .flatten();
            (records, next)
        };
        match self {
            Self::Sqlite(s) => Ok(full(s.export_page(after, PAGE).await?)),
            Self::Postgres(s) => Ok(full(s.export_page(after, PAGE).await?)),
            Self::Redis(s) => s.export_page(after, PAGE).await,
        }
    }
}

/// Copies every live record of the store `from` into the store `to` (specs as for
/// [`connect`](crate::connect); `data_dir` resolves `"sqlite"`). Refuses a target that holds
/// any record unless `force`, in which case records of the same key are overwritten and
/// others are left alone.
///
/// # Errors
/// [`StoreError::Invalid`] for a bad spec, the same store on both sides, or a non-empty
/// target without `force`; [`StoreError::Unavailable`] when either engine fails (the target
/// may then hold part of the records: run again with `force`).
pub async fn copy(
    from: &str,
    to: &str,
    data_dir: &Path,
    force: bool,
) -> Result<CopyReport, StoreError> {
    if from.trim() == to.trim() {
        return Err(StoreError::Invalid(
            "--from and --to name the same store".into(),
        ));
    }
    let source = open(from, data_dir).await?;
    let target: Arc<dyn KvStore> = open(to, data_dir).await?.into_dyn();
    let existing = target.list("", None, 1).await?;
    if !existing.items.is_empty() && !force {
        return Err(StoreError::Invalid(
            "the target store is not empty; pass --force to write over the records it holds".into(),
        ));
    }
    let mut report = CopyReport {
        from_engine: source.engine(),
        to_engine: target.engine(),
        records: 0,
        with_ttl: 0,
        bytes: 0,
    };
    let mut after = String::new();
    loop {
        let (records, next) = source.export_page(&after).await?;
        for chunk in records.chunks(BATCH) {
            let mut txn = Txn::new();
            for r in chunk {
                txn = match r.ttl {
                    Some(ttl) => txn.put_ttl(r.key.clone(), r.value.clone(), ttl),
                    None => txn.put(r.key.clone(), r.value.clone()),
                };
                report.records += 1;
                report.with_ttl += u64::from(r.ttl.is_some());
                report.bytes += u64::try_from(r.value.len()).unwrap_or(u64::MAX);
            }
            if !target.commit(txn).await? {
                // A transaction without conditions always applies.
                return Err(StoreError::Unavailable(
                    "the target refused an unconditional write".into(),
                ));
            }
        }
        match next {
            Some(n) => after = n,
            None => break,
        }
    }
    Ok(report)
}
