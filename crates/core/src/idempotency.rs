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

    /// Deletes every stored response that carries AWS credentials or a console sign-in URL.
    /// Older versions stored credential answers for replay; they never should have been
    /// (issue 10, defect 7), so `serve` drops them at start-up. Returns how many. A record
    /// that cannot be opened is left for its TTL.
    pub async fn purge_secret_responses(&self) -> Result<usize, Error> {
        // Credential answers carry keys; sign-in answers carry a `session_name` beside the URL.
        const SECRET_FIELDS: &[&[u8]] = &[
            b"\"secret_access_key\"",
            b"\"session_token\"",
            b"\"session_name\"",
        ];
        let store = self.vault.store();
        let mut after: Option<String> = None;
        let mut purged = 0;
        loop {
            let page = store
                .list(keyspace::IDEMPOTENCY.prefix, after.as_deref(), 500)
                .await?;
            let mut txn = Txn::new();
            for (key, raw) in &page.items {
                let Ok(Entry::Done { response, .. }) = self.vault.open::<Entry>(key, raw) else {
                    continue;
                };
                let body = &response.body;
                if SECRET_FIELDS
                    .iter()
                    .any(|f| body.windows(f.len()).any(|w| w == *f))
                {
                    txn = txn.delete(key.clone());
                    purged += 1;
                }
            }
            if !txn.writes.is_empty() {
                self.vault.commit(txn).await?;
            }
            match page.next {
                Some(n) => after = Some(n),
                None => return Ok(purged),
            }
        }
    }

    /// Frees the key so the request can be retried (after a 5xx).
    pub async fn release(&self, scope_key: &str) -> Result<(), Error> {
        self.vault.commit(Txn::new().delete(scope_key)).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn stored_credential_answers_are_purged_and_others_kept() {
        let (services, _) = crate::testing::services().await;
        let idem = Idempotency::new(services.records.vault().clone(), Duration::from_secs(60));
        let answers = [
            (
                r#"{"access_key_id":"ASIA","secret_access_key":"s","session_token":"t"}"#,
                true,
            ),
            (
                r#"{"url":"https://x/federation?Action=login","session_name":"a.b.c"}"#,
                true,
            ),
            (r#"{"org_name":"acme","api_key":"rgk_x"}"#, false),
        ];
        for (i, (body, _)) in answers.iter().enumerate() {
            let key = Idempotency::scope_key("user:a", "POST", "/p", &i.to_string());
            let Claim::Proceed(k) = idem.claim(&key, "fp").await.unwrap() else {
                panic!("fresh key")
            };
            let stored = StoredResponse {
                status: 200,
                headers: vec![],
                body: body.as_bytes().to_vec(),
            };
            idem.complete(&k, "fp", stored).await.unwrap();
        }
        assert_eq!(idem.purge_secret_responses().await.unwrap(), 2);
        for (i, (_, secret)) in answers.iter().enumerate() {
            let key = Idempotency::scope_key("user:a", "POST", "/p", &i.to_string());
            let left = services.records.vault().store().get(&key).await.unwrap();
            assert_eq!(left.is_none(), *secret, "answer {i}");
        }
        assert_eq!(idem.purge_secret_responses().await.unwrap(), 0);
    }
}
