//! The sealing barrier. Everything written through the `Vault` is serialised to JSON and
//! sealed with AES-256-GCM under the current master key, with the storage key as associated
//! data, before it reaches the (untrusted) storage engine.

use std::sync::Arc;

use rolegate_crypto::{Keyring, Pepper};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::decoded::DecodedCache;
use crate::error::Error;
use crate::keyspace::{self, Key, Rekey};
use crate::ports::{KvStore, Txn};

/// A decoded record together with its raw stored bytes, which serve as the revision for
/// compare-and-swap.
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    pub value: T,
    pub rev: Vec<u8>,
}

/// The store seen through the sealing barrier.
#[derive(Debug, Clone)]
pub struct Vault {
    store: Arc<dyn KvStore>,
    ring: Arc<Keyring>,
    /// Values opened from the lookups every request makes (ADR 0017, 0018).
    decoded: Arc<DecodedCache>,
}

impl Vault {
    #[must_use]
    pub fn new(store: Arc<dyn KvStore>, ring: Arc<Keyring>) -> Self {
        Self {
            store,
            ring,
            decoded: Arc::default(),
        }
    }

    #[must_use]
    pub fn store(&self) -> &Arc<dyn KvStore> {
        &self.store
    }

    #[must_use]
    pub fn keyring(&self) -> &Keyring {
        &self.ring
    }

    /// Serialises and seals `value` for `key`.
    pub fn seal<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<Vec<u8>, Error> {
        let plain = serde_json::to_vec(value).map_err(|e| Error::Corrupt {
            key: key.to_owned(),
            reason: format!("serialise: {e}"),
        })?;
        Ok(self.ring.seal(key, &plain))
    }

    /// Opens and decodes raw bytes read from `key`.
    pub fn open<T: DeserializeOwned>(&self, key: &str, raw: &[u8]) -> Result<T, Error> {
        let plain = self.ring.open(key, raw).map_err(|e| Error::Corrupt {
            key: key.to_owned(),
            reason: e.to_string(),
        })?;
        serde_json::from_slice(&plain).map_err(|e| Error::Corrupt {
            key: key.to_owned(),
            reason: decode_reason(&e),
        })
    }

    /// The record at a typed key.
    pub async fn load<T: DeserializeOwned>(
        &self,
        key: &Key<T>,
    ) -> Result<Option<Versioned<T>>, Error> {
        self.get(key.as_str()).await
    }

    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<Versioned<T>>, Error> {
        match self.store.get(key).await? {
            None => Ok(None),
            Some(rev) => Ok(Some(Versioned {
                value: self.open(key, &rev)?,
                rev,
            })),
        }
    }

    /// [`Vault::load`] for the families of [`crate::decoded`]: the record is read from the
    /// store as always, and opened only when its sealed bytes differ from the ones its
    /// kept value came from (any write changes them), so the answer is exactly what
    /// [`Vault::load`] would give.
    pub async fn load_cached<T>(&self, key: &Key<T>) -> Result<Option<Versioned<T>>, Error>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let k = key.as_str();
        if !crate::decoded::cached(k) {
            return self.get(k).await;
        }
        let Some(rev) = self.store.get(k).await? else {
            self.decoded.forget(k);
            return Ok(None);
        };
        if let Some(value) = self.decoded.hit::<T>(k, &rev) {
            return Ok(Some(Versioned { value, rev }));
        }
        let value: T = self.open(k, &rev)?;
        self.decoded.keep(k, &rev, value.clone());
        Ok(Some(Versioned { value, rev }))
    }

    /// Adds a sealed put of `value` at `key` to `txn`.
    pub fn put<T: Serialize + ?Sized>(&self, txn: Txn, key: &str, value: &T) -> Result<Txn, Error> {
        Ok(txn.put(key, self.seal(key, value)?))
    }

    /// Adds a sealed put with a TTL.
    pub fn put_ttl<T: Serialize + ?Sized>(
        &self,
        txn: Txn,
        key: &str,
        value: &T,
        ttl: std::time::Duration,
    ) -> Result<Txn, Error> {
        Ok(txn.put_ttl(key, self.seal(key, value)?, ttl))
    }

    pub async fn commit(&self, txn: Txn) -> Result<bool, Error> {
        Ok(self.store.commit(txn).await?)
    }

    /// Every record under `prefix`, decoded, following cursors to the end.
    pub async fn list_all<T: DeserializeOwned>(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, T)>, Error> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.store.list(prefix, after.as_deref(), 500).await?;
            for (k, raw) in &page.items {
                out.push((k.clone(), self.open(k, raw)?));
            }
            match page.next {
                Some(n) => after = Some(n),
                None => return Ok(out),
            }
        }
    }

    /// Loads the per-store pepper, creating it on first use. Safe under races: only one
    /// creator wins and everyone reads the winner's value.
    pub async fn pepper(&self) -> Result<Pepper, Error> {
        let key = keyspace::pepper();
        for _ in 0..3 {
            if let Some(v) = self.load(&key).await? {
                let bytes: [u8; 32] = v.value.try_into().map_err(|_| Error::Corrupt {
                    key: key.to_string(),
                    reason: "pepper must be 32 bytes".to_owned(),
                })?;
                return Ok(Pepper::from_bytes(bytes));
            }
            let fresh = rolegate_crypto::MasterKey::generate().derive("pepper");
            let txn = self.put(
                Txn::new().absent(key.as_str()),
                key.as_str(),
                &fresh.to_vec(),
            )?;
            self.commit(txn).await?;
        }
        Err(Error::Contention)
    }

    /// Re-seals every record not sealed under the current key, following each family's
    /// rule in [`keyspace::FAMILIES`]: `Skip` families are left alone, `Drop` ones deleted,
    /// the rest (and any key no family claims) re-sealed. Returns (re-sealed or dropped,
    /// total).
    pub async fn rekey(&self) -> Result<(usize, usize), Error> {
        let current = self.ring.current_id();
        let (mut resealed, mut total) = (0, 0);
        let mut after: Option<String> = None;
        loop {
            let page = self.store.list("", after.as_deref(), 500).await?;
            for (key, raw) in &page.items {
                let rule = keyspace::family_of(key).map_or(Rekey::Reseal, |f| f.rekey);
                if rule == Rekey::Skip {
                    continue;
                }
                total += 1;
                let id = Keyring::key_id_of(raw).map_err(|e| Error::Corrupt {
                    key: key.clone(),
                    reason: e.to_string(),
                })?;
                if id == current {
                    continue;
                }
                let txn = if rule == Rekey::Drop {
                    Txn::new()
                        .equals(key.clone(), raw.clone())
                        .delete(key.clone())
                } else {
                    let plain = self.ring.open(key, raw).map_err(|e| Error::Corrupt {
                        key: key.clone(),
                        reason: e.to_string(),
                    })?;
                    Txn::new()
                        .equals(key.clone(), raw.clone())
                        .put(key.clone(), self.ring.seal(key, &plain))
                };
                // A concurrent writer already re-sealed it under the current key if this fails.
                if self.store.commit(txn).await? {
                    resealed += 1;
                }
            }
            match page.next {
                Some(n) => after = Some(n),
                None => return Ok((resealed, total)),
            }
        }
    }
}

/// Why a decrypted record did not decode, without its content: serde's own message may quote
/// a field's value, and the plaintext of a sealed record can be a secret.
fn decode_reason(e: &serde_json::Error) -> String {
    let kind = match e.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "not valid JSON",
        serde_json::error::Category::Data => "JSON of the wrong shape",
        serde_json::error::Category::Eof => "truncated JSON",
    };
    format!("decode: {kind} at line {} column {}", e.line(), e.column())
}

#[cfg(test)]
mod decode_tests {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn decode_errors_never_quote_the_plaintext() {
        let e = serde_json::from_slice::<u64>(br#""rgk_secret-value""#).unwrap_err();
        assert!(
            e.to_string().contains("rgk_secret-value"),
            "serde would have quoted it"
        );
        let reason = super::decode_reason(&e);
        assert!(!reason.contains("rgk_secret"), "{reason}");
        assert!(reason.contains("wrong shape"), "{reason}");
    }
}

#[cfg(test)]
mod cache_tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use super::Vault;
    use crate::ids::{OrgName, Role, UserId};
    use crate::keyspace;
    use crate::model::TokenEntry;
    use crate::ports::Txn;
    use crate::testing::MemoryStore;

    fn vault() -> Vault {
        let ring =
            rolegate_crypto::Keyring::new(&[rolegate_crypto::MasterKey::generate()]).unwrap();
        Vault::new(Arc::new(MemoryStore::default()), Arc::new(ring))
    }

    fn entry(digest: &str) -> TokenEntry {
        TokenEntry {
            user_id: UserId::parse("alice").unwrap(),
            role: Role::Operator,
            digest: digest.to_owned(),
        }
    }

    /// A kept value is served exactly while the store holds the bytes it came from: the
    /// planted value below proves the hit path is taken, and every write (new nonce) or
    /// deletion is seen at once.
    #[tokio::test]
    async fn a_kept_value_is_served_only_for_its_very_bytes() {
        let v = vault();
        let owner = keyspace::owner(
            &UserId::parse("alice").unwrap(),
            &OrgName::parse("acme").unwrap(),
        );
        let name = OrgName::parse("acme").unwrap();
        v.commit(v.put(Txn::new(), owner.as_str(), &name).unwrap())
            .await
            .unwrap();
        // `owner/` is not a cached family: nothing is kept.
        assert_eq!(v.load_cached(&owner).await.unwrap().unwrap().value, name);
        assert!(v.decoded.is_empty());

        let key = keyspace::token("ab12");
        assert!(v.load_cached(&key).await.unwrap().is_none());
        v.store()
            .commit(Txn::new().put(key.as_str(), b"not even sealed".to_vec()))
            .await
            .unwrap();
        // Unopenable bytes are an error, and nothing is kept.
        assert!(v.load_cached(&key).await.is_err());
        assert!(v.decoded.is_empty());
        v.commit(v.put(Txn::new(), key.as_str(), &entry("real")).unwrap())
            .await
            .unwrap();
        let first = v.load_cached(&key).await.unwrap().unwrap();
        assert_eq!(first.value.digest, "real");
        assert_eq!(v.decoded.len(), 1);
        // Plant another value for the same bytes: a hit hands it out without opening.
        v.decoded.keep(key.as_str(), &first.rev, entry("planted"));
        let hit = v.load_cached(&key).await.unwrap().unwrap();
        assert_eq!(hit.value.digest, "planted");
        assert_eq!(hit.rev, first.rev);
        // The same value written again: new bytes, so it is opened afresh.
        v.commit(v.put(Txn::new(), key.as_str(), &entry("real")).unwrap())
            .await
            .unwrap();
        let again = v.load_cached(&key).await.unwrap().unwrap();
        assert_eq!(again.value.digest, "real");
        assert_ne!(again.rev, first.rev);
        v.commit(Txn::new().delete(key.as_str())).await.unwrap();
        assert!(v.load_cached(&key).await.unwrap().is_none());
        assert!(v.decoded.is_empty());
    }
}
