//! Idempotency-Key semantics (IETF draft): a key is scoped to principal, method and path;
//! the first request's response is stored (sealed) and replayed for retries with the same
//! body; a different body is refused; a request still running makes others wait; a 5xx
//! releases the key.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::Error;
use crate::keyspace;
use crate::ports::Txn;
use crate::vault::Vault;
/// How long a claim lives if its holder dies before finishing.
const IN_PROGRESS_TTL: Duration = Duration::from_secs(300);

/// A stored response, replayed byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum Entry {
    InProgress {
        fingerprint: String,
    },
    Done {
        fingerprint: String,
        response: StoredResponse,
    },
}

/// What to do with an incoming request.
#[derive(Debug)]
pub enum Claim {
    /// Run it; then call `complete` or `release` with this key.
    Proceed(String),
    /// Send this stored response again.
    Replay(StoredResponse),
    /// The same key is in flight.
    InProgress,
    /// The key was used with a different request body.
    Mismatch,
}

/// The idempotency record store.
#[derive(Debug, Clone)]
pub struct Idempotency {
    vault: Vault,
    ttl: Duration,
}

/// The SHA-256 fingerprint of a request body.
#[must_use]
pub fn fingerprint(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

impl Idempotency {
    #[must_use]
    pub fn new(vault: Vault, ttl: Duration) -> Self {
        Self { vault, ttl }
    }

    /// The storage key for a scoped idempotency key (hashed: keys are client-chosen text).
    #[must_use]
    pub fn scope_key(actor: &str, method: &str, path: &str, key: &str) -> String {
        let mut h = Sha256::new();
        for part in [actor, method, path, key] {
            h.update(part.as_bytes());
            h.update([0u8]);
        }
        keyspace::idempotency(&hex::encode(h.finalize()))
    }

    /// Atomically claims `scope_key` or reports what is already there.
    pub async fn claim(&self, scope_key: &str, fingerprint: &str) -> Result<Claim, Error> {
        for _ in 0..4 {
            let entry = Entry::InProgress {
                fingerprint: fingerprint.to_owned(),
            };
            let txn = self.vault.put_ttl(
                Txn::new().absent(scope_key),
                scope_key,
                &entry,
                IN_PROGRESS_TTL,
            )?;
            if self.vault.commit(txn).await? {
                return Ok(Claim::Proceed(scope_key.to_owned()));
            }
            match self.vault.get::<Entry>(scope_key).await?.map(|v| v.value) {
                // Expired between the claim and the read: claim again.
                None => {}
                Some(Entry::InProgress { fingerprint: fp })
                | Some(Entry::Done {
                    fingerprint: fp, ..
                }) if fp != fingerprint => {
                    return Ok(Claim::Mismatch);
                }
                Some(Entry::InProgress { .. }) => return Ok(Claim::InProgress),
                Some(Entry::Done { response, .. }) => return Ok(Claim::Replay(response)),
            }
        }
        Err(Error::Contention)
    }

    /// Stores the final response for replay.
    pub async fn complete(
        &self,
        scope_key: &str,
        fingerprint: &str,
        response: StoredResponse,
    ) -> Result<(), Error> {
        let entry = Entry::Done {
            fingerprint: fingerprint.to_owned(),
            response,
        };
        let txn = self
            .vault
            .put_ttl(Txn::new(), scope_key, &entry, self.ttl)?;
        self.vault.commit(txn).await?;
        Ok(())
    }

    /// Frees the key so the request can be retried (after a 5xx).
    pub async fn release(&self, scope_key: &str) -> Result<(), Error> {
        self.vault.commit(Txn::new().delete(scope_key)).await?;
        Ok(())
    }
}
