//! Checkpoints: the chain head (sequence number and hash) at a time, with an HMAC-SHA256
//! under a key derived from the master key for this purpose alone.
//!
//! The store cannot prove it was not rolled back: an older head with the newer events
//! deleted is a consistent chain. So the server writes a checkpoint to its log (outside the
//! store) every minute and after every [`CHECKPOINT_EVENTS`] events, and
//! `rolegate audit verify --checkpoint FILE` compares the store with the newest checkpoint
//! in FILE: a store whose head is behind it, or whose event at its sequence number has
//! another hash, was rolled back or rewritten. Rollback is detected, not prevented.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rolegate_crypto::KeyId;
use serde::{Deserialize, Serialize};

use super::{Audit, AuditEvent, AuditHead, ChainBreak, GENESIS, HEAD_KEY, event_key};
use crate::error::Error;
use crate::vault::Vault;

/// The log target checkpoints are written under (keep it at `info` in `log_level`).
pub const LOG_TARGET: &str = "rolegate::audit::checkpoint";
/// A checkpoint at least this often.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(60);
/// And after this many events since the last one.
pub const CHECKPOINT_EVENTS: u64 = 10_000;
/// The MAC's purpose label (the key is derived from the master key under it).
const MAC_PURPOSE: &str = "rolegate/audit-checkpoint/v1";

/// A signed statement of the chain head. Printed as one JSON line by
/// `rolegate audit checkpoint`; logged with the same fields by the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The head's sequence number (0 for an empty log).
    pub seq: u64,
    /// The head's hash (the hash of event `seq`).
    pub head: String,
    /// When it was taken (RFC 3339).
    pub time: String,
    /// The id of the master key the MAC key was derived from.
    pub key_id: String,
    /// Lowercase hex HMAC-SHA256 over the fields above.
    pub mac: String,
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// What the MAC covers: every field but the MAC, unambiguously separated.
fn message(seq: u64, head: &str, time: &str, key_id: &str) -> Vec<u8> {
    format!("{MAC_PURPOSE}\n{seq}\n{head}\n{time}\n{key_id}").into_bytes()
}

fn refused(message: impl Into<String>) -> Error {
    Error::invalid("checkpoint", message)
}

impl Checkpoint {
    /// Signs `head` (`None`: the empty log) as of `time`.
    #[must_use]
    pub fn sign(vault: &Vault, head: Option<&AuditHead>, time: String) -> Self {
        let (seq, head) = head.map_or((0, GENESIS.to_owned()), |h| (h.seq, h.hash.clone()));
        let ring = vault.keyring();
        let key_id = ring.current_id().to_string();
        let (_, tag) = ring.mac(MAC_PURPOSE, &message(seq, &head, &time, &key_id));
        Self {
            seq,
            head,
            time,
            key_id,
            mac: hex(&tag),
        }
    }

    /// Checks the MAC: a forged or edited checkpoint, or one made under a key that is not in
    /// the ring, is refused.
    pub fn authenticate(&self, vault: &Vault) -> Result<(), Error> {
        let id = KeyId::from_hex(&self.key_id)
            .ok_or_else(|| refused("checkpoint key_id is not 8 hex digits"))?;
        let tag = unhex(&self.mac)
            .filter(|t| t.len() == 32)
            .ok_or_else(|| refused("checkpoint mac is not 64 hex digits"))?;
        let msg = message(self.seq, &self.head, &self.time, &self.key_id);
        match vault.keyring().verify_mac(id, MAC_PURPOSE, &msg, &tag) {
            Ok(true) => Ok(()),
            Ok(false) => Err(refused(format!(
                "checkpoint (seq {}) is not authentic: its MAC does not match (forged or edited)",
                self.seq
            ))),
            Err(_) => Err(refused(format!(
                "checkpoint (seq {}) was made under master key {}, which is not in the keyring",
                self.seq, self.key_id
            ))),
        }
    }

    /// Every checkpoint in `text`, one per line: the output of `rolegate audit checkpoint`,
    /// or the server's JSON log lines (fields at the top level or under `fields`); other
    /// lines are skipped. Not authenticated yet.
    #[must_use]
    pub fn parse_all(text: &str) -> Vec<Self> {
        text.lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line.trim()).ok())
            .filter(|v| v.get("target").is_none_or(|t| t == LOG_TARGET))
            .filter_map(|v| {
                let fields = v.get("fields").cloned().unwrap_or(v);
                serde_json::from_value::<Self>(fields).ok()
            })
            .collect()
    }

    /// One JSON line.
    #[must_use]
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The store's current head, signed now.
pub async fn current(vault: &Vault, time: String) -> Result<Checkpoint, Error> {
    let head = vault.get::<AuditHead>(HEAD_KEY).await?.map(|v| v.value);
    Ok(Checkpoint::sign(vault, head.as_ref(), time))
}

/// How the store compares with an authenticated checkpoint: nothing when it holds the
/// checkpoint's head (and possibly more after it).
pub async fn compare(vault: &Vault, cp: &Checkpoint) -> Result<Vec<ChainBreak>, Error> {
    let head = vault.get::<AuditHead>(HEAD_KEY).await?.map(|v| v.value);
    let head_seq = head.as_ref().map_or(0, |h| h.seq);
    if head_seq < cp.seq {
        return Ok(vec![ChainBreak::BehindCheckpoint {
            checkpoint_seq: cp.seq,
            head_seq,
        }]);
    }
    let hash = if cp.seq == 0 {
        Some(GENESIS.to_owned())
    } else {
        match vault.get::<AuditEvent>(&event_key(cp.seq)).await {
            Ok(ev) => ev.map(|v| v.value.hash),
            // Unreadable: the walk names it; here it is simply not the checkpoint's event.
            Err(_) => None,
        }
    };
    if hash.as_deref() == Some(cp.head.as_str()) {
        Ok(Vec::new())
    } else {
        Ok(vec![ChainBreak::DivergesFromCheckpoint { seq: cp.seq }])
    }
}

impl Audit {
    /// The store's current head (read from the store, not this replica's cache), signed.
    pub async fn checkpoint(&self) -> Result<Checkpoint, Error> {
        current(&self.vault, crate::clock::rfc3339_millis(self.clock.now())).await
    }

    /// Writes a checkpoint to the log (info, target [`LOG_TARGET`]); a failure to read the
    /// head is a warning (the next one will try again).
    pub async fn emit_checkpoint(&self) {
        self.since_checkpoint.store(0, Ordering::Release);
        match self.checkpoint().await {
            Ok(cp) => tracing::info!(
                target: LOG_TARGET,
                seq = cp.seq,
                head = %cp.head,
                time = %cp.time,
                key_id = %cp.key_id,
                mac = %cp.mac,
                "audit checkpoint"
            ),
            Err(e) => tracing::warn!(error = %e, "could not take an audit checkpoint"),
        }
    }

    /// Emits a checkpoint now, then every [`CHECKPOINT_EVERY`] (waiting on the injected
    /// clock) and whenever [`CHECKPOINT_EVENTS`] events were appended since the last one.
    /// Runs until its task is dropped.
    pub async fn run_checkpoints(self: Arc<Self>) {
        loop {
            self.emit_checkpoint().await;
            tokio::select! {
                () = self.clock.sleep(CHECKPOINT_EVERY) => {}
                () = self.checkpoint_due.notified() => {}
            }
        }
    }

    /// Counts `n` appended events towards the next checkpoint.
    pub(super) fn appended(&self, n: usize) {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        let before = self.since_checkpoint.fetch_add(n, Ordering::AcqRel);
        if before < CHECKPOINT_EVENTS && before.saturating_add(n) >= CHECKPOINT_EVENTS {
            self.checkpoint_due.notify_one();
        }
    }
}
