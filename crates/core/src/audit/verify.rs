//! `verify`: walks the stored events by listing them (never by counting up to the head),
//! recomputes every hash and link, and reports each break by sequence number or key.

use super::{EVENT_PREFIX, GENESIS, HEAD_KEY, checkpoint};
use crate::error::Error;
use crate::model::{AuditEvent, AuditHead};
use crate::vault::Vault;

/// At most this many breaks are listed; the rest are counted in [`ChainBreak::More`], so a
/// store full of forged records cannot make the report (or its printing) unbounded.
pub const MAX_BREAKS: usize = 1_000;

/// One problem `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainBreak {
    Missing {
        seq: u64,
    },
    /// Events `first..=last` are missing (reported as one break, however long the gap).
    MissingRange {
        first: u64,
        last: u64,
    },
    Unreadable {
        seq: u64,
        reason: String,
    },
    HashMismatch {
        seq: u64,
    },
    PrevMismatch {
        seq: u64,
    },
    SeqMismatch {
        key: String,
        seq: u64,
    },
    HeadMismatch {
        head_seq: u64,
        last_seq: u64,
    },
    /// A record under `audit/ev/` whose key is not an event key (exactly 20 digits, from
    /// 1 up): forged, never written by rolegate.
    BadKey {
        key: String,
    },
    /// A well-formed event key beyond the chain head: forged, or the head was rolled back.
    BeyondHead {
        key: String,
        head_seq: u64,
    },
    /// The head's hash is not the hash of the last event (it was rewritten, or the head
    /// belongs to another history).
    HeadHashMismatch {
        seq: u64,
    },
    /// The store's head is older than an authentic checkpoint: rolled back, or events
    /// deleted together with the head.
    BehindCheckpoint {
        checkpoint_seq: u64,
        head_seq: u64,
    },
    /// The store's event at an authentic checkpoint's sequence number is not the one the
    /// checkpoint names (missing, or a rewritten history).
    DivergesFromCheckpoint {
        seq: u64,
    },
    /// More breaks than [`MAX_BREAKS`]; this many were not listed.
    More {
        count: u64,
    },
}

impl std::fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing { seq } => write!(f, "event {seq} is missing (deleted)"),
            Self::MissingRange { first, last } => {
                write!(f, "events {first} to {last} are missing (deleted)")
            }
            Self::Unreadable { seq, reason } => {
                write!(f, "event {seq} cannot be opened (edited?): {reason}")
            }
            Self::HashMismatch { seq } => write!(f, "event {seq} does not match its hash (edited)"),
            Self::PrevMismatch { seq } => write!(
                f,
                "event {seq} does not link to event {}",
                seq.saturating_sub(1)
            ),
            Self::SeqMismatch { key, seq } => {
                write!(f, "record {key} claims sequence number {seq}")
            }
            Self::HeadMismatch { head_seq, last_seq } => {
                write!(
                    f,
                    "chain head says {head_seq} events but the log ends at {last_seq}"
                )
            }
            Self::BadKey { key } => write!(
                f,
                "record {key} is not an event key (20 digits from 1 up): forged"
            ),
            Self::BeyondHead { key, head_seq } => write!(
                f,
                "record {key} lies beyond the chain head (event {head_seq}): forged, or the head was rolled back"
            ),
            Self::HeadHashMismatch { seq } => write!(
                f,
                "chain head's hash is not the hash of event {seq}, the last one (rewritten?)"
            ),
            Self::BehindCheckpoint {
                checkpoint_seq,
                head_seq,
            } => write!(
                f,
                "store is behind the checkpoint: checkpoint seq {checkpoint_seq}, store head seq {head_seq} (rolled back, or events {} to {checkpoint_seq} deleted)",
                head_seq + 1
            ),
            Self::DivergesFromCheckpoint { seq } => write!(
                f,
                "store diverges from the checkpoint at seq {seq}: its event {seq} is not the one the checkpoint names (rewritten history)"
            ),
            Self::More { count } => write!(f, "{count} more problem(s) not listed"),
        }
    }
}

/// The result of walking the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Events of the chain walked (records under `audit/ev/` that are not event keys of
    /// this chain are reported as breaks, not counted).
    pub events: u64,
    pub breaks: Vec<ChainBreak>,
}

/// The sequence number of an event key's suffix: exactly 20 ASCII digits, at least 1.
fn event_seq(suffix: &str) -> Option<u64> {
    if suffix.len() != 20 || !suffix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    suffix.parse::<u64>().ok().filter(|&s| s > 0)
}

/// Breaks, at most [`MAX_BREAKS`] of them listed.
#[derive(Default)]
struct Breaks {
    list: Vec<ChainBreak>,
    more: u64,
}

impl Breaks {
    fn push(&mut self, b: ChainBreak) {
        if self.list.len() < MAX_BREAKS {
            self.list.push(b);
        } else {
            self.more += 1;
        }
    }

    /// Events `first..=last` are missing (nothing when the range is empty).
    fn gap(&mut self, first: u64, last: u64) {
        match first.cmp(&last) {
            std::cmp::Ordering::Less => self.push(ChainBreak::MissingRange { first, last }),
            std::cmp::Ordering::Equal => self.push(ChainBreak::Missing { seq: first }),
            std::cmp::Ordering::Greater => {}
        }
    }

    fn finish(mut self) -> Vec<ChainBreak> {
        if self.more > 0 {
            self.list.push(ChainBreak::More { count: self.more });
        }
        self.list
    }
}

/// Walks the whole chain and reports every broken link, first one first.
///
/// Bounded by what is stored: it walks the records under `audit/ev/` by listing them, page
/// by page, and never counts its way towards a sequence number it was told (a gap, however
/// long, is one break). A record whose key is not an event key, or lies beyond the head, is
/// reported by its key and not walked.
pub async fn verify(vault: &Vault) -> Result<VerifyReport, Error> {
    verify_with(vault, None).await
}

/// [`verify`], then the store compared with `checkpoint` (see [`checkpoint`]), whose MAC is
/// checked first: a forged checkpoint is an error, and nothing is walked.
pub async fn verify_with(
    vault: &Vault,
    checkpoint: Option<&checkpoint::Checkpoint>,
) -> Result<VerifyReport, Error> {
    if let Some(cp) = checkpoint {
        cp.authenticate(vault)?;
    }
    let mut breaks = Breaks::default();
    let mut head = vault.get::<AuditHead>(HEAD_KEY).await?.map(|v| v.value);
    let mut expected_seq = 1u64;
    let mut prev_hash = GENESIS.to_owned();
    let mut after: Option<String> = None;
    let mut count = 0u64;
    // The hash of the last event walked, when it could be opened.
    let mut last_hash: Option<String> = None;
    loop {
        let page = vault
            .store()
            .list(EVENT_PREFIX, after.as_deref(), 500)
            .await?;
        for (key, raw) in &page.items {
            let Some(key_seq) = key.strip_prefix(EVENT_PREFIX).and_then(event_seq) else {
                breaks.push(ChainBreak::BadKey { key: key.clone() });
                continue;
            };
            if let Some(h) = &head
                && key_seq > h.seq
            {
                // The head may have moved since it was read (a live server appending):
                // read it again before calling the record foreign.
                head = vault.get::<AuditHead>(HEAD_KEY).await?.map(|v| v.value);
                if let Some(h) = head.as_ref().filter(|h| key_seq > h.seq) {
                    breaks.push(ChainBreak::BeyondHead {
                        key: key.clone(),
                        head_seq: h.seq,
                    });
                    continue;
                }
            }
            count += 1;
            if key_seq > expected_seq {
                breaks.gap(expected_seq, key_seq - 1);
                prev_hash = String::new();
            }
            last_hash = None;
            let event: AuditEvent = match vault.open(key, raw) {
                Ok(e) => e,
                Err(e) => {
                    breaks.push(ChainBreak::Unreadable {
                        seq: key_seq,
                        reason: e.to_string(),
                    });
                    expected_seq = key_seq + 1;
                    prev_hash = String::new();
                    continue;
                }
            };
            if event.seq != key_seq {
                breaks.push(ChainBreak::SeqMismatch {
                    key: key.clone(),
                    seq: event.seq,
                });
            }
            if event.compute_hash() != event.hash {
                breaks.push(ChainBreak::HashMismatch { seq: key_seq });
            } else if !prev_hash.is_empty() && event.prev != prev_hash {
                breaks.push(ChainBreak::PrevMismatch { seq: key_seq });
            }
            prev_hash = event.hash.clone();
            last_hash = Some(event.hash);
            expected_seq = key_seq + 1;
        }
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let last_seq = expected_seq - 1;
    match &head {
        Some(h) if h.seq == last_seq && last_hash.as_ref().is_some_and(|l| *l != h.hash) => {
            breaks.push(ChainBreak::HeadHashMismatch { seq: h.seq });
        }
        Some(h) => breaks.gap(expected_seq, h.seq),
        None if count > 0 => breaks.push(ChainBreak::HeadMismatch {
            head_seq: 0,
            last_seq,
        }),
        None => {}
    }
    if let Some(cp) = checkpoint {
        for b in checkpoint::compare(vault, cp).await? {
            breaks.push(b);
        }
    }
    Ok(VerifyReport {
        events: count,
        breaks: breaks.finish(),
    })
}
