use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::CryptoError;

/// Format version byte of sealed values.
const FORMAT_V1: u8 = 1;
const HEADER_LEN: usize = 1 + 4;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// A 256-bit master key. Zeroed on drop; `Debug` shows only its id.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey([u8; 32]);

impl MasterKey {
    /// Parses a base64 (standard alphabet) 32-byte key.
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let mut bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| CryptoError::KeyNotBase64)?;
        if bytes.len() != 32 {
            let len = bytes.len();
            bytes.zeroize();
            return Err(CryptoError::KeyLength(len));
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(&bytes);
        bytes.zeroize();
        Ok(Self(key))
    }

    /// A fresh random key.
    #[must_use]
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self(key)
    }

    /// The key as base64, for `rolegate keygen` and the generated key file only.
    #[must_use]
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// A stable, non-secret identifier: the first 4 bytes of SHA-256 over a label and the key.
    #[must_use]
    pub fn id(&self) -> KeyId {
        let digest = Sha256::new()
            .chain_update(b"rolegate/key-id/v1")
            .chain_update(self.0)
            .finalize();
        KeyId([digest[0], digest[1], digest[2], digest[3]])
    }

    /// Derives a 32-byte subkey for another purpose (HKDF-like, HMAC-SHA256 based).
    #[must_use]
    pub fn derive(&self, label: &str) -> [u8; 32] {
        crate::digest::hmac_sha256(&self.0, label.as_bytes())
    }
}

/// The root of a master key's MAC subkeys: derived from the key under its own label, so it
/// is never the sealing key, and each purpose's key is derived from it under another label.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
struct MacRoot([u8; 32]);

impl MacRoot {
    const LABEL: &'static str = "rolegate/keyring/mac-root/v1";

    fn of(key: &MasterKey) -> Self {
        Self(key.derive(Self::LABEL))
    }

    /// HMAC-SHA256 of `msg` under this root's subkey for `purpose`.
    fn mac(&self, purpose: &str, msg: &[u8]) -> [u8; 32] {
        let mut subkey = crate::digest::hmac_sha256(&self.0, purpose.as_bytes());
        let tag = crate::digest::hmac_sha256(&subkey, msg);
        subkey.zeroize();
        tag
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.id())
    }
}

/// Identifies which master key sealed a value. Not secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; 4]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl KeyId {
    /// Parses the 8 lowercase or uppercase hex digits [`KeyId`]'s `Display` writes.
    #[must_use]
    pub fn from_hex(text: &str) -> Option<Self> {
        if text.len() != 8 || !text.is_ascii() {
            return None;
        }
        let mut id = [0u8; 4];
        for (i, b) in id.iter_mut().enumerate() {
            *b = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(id))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// Every configured master key; the last one is current and seals new values, the others
/// still open values they sealed.
///
/// Sealed layout: `version(1) | key_id(4) | nonce(12) | ciphertext+tag`. The associated data
/// is the 5-byte header followed by the record key, so a value moved to another record, or a
/// header edited to another key id, fails to open.
pub struct Keyring {
    keys: Vec<(KeyId, Aes256Gcm)>,
    /// Each key's MAC root, in the same order as `keys`.
    macs: Vec<(KeyId, MacRoot)>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("key_ids", &self.key_ids())
            .finish()
    }
}

impl Keyring {
    /// Builds a ring from keys, oldest first. Duplicate keys are kept once.
    pub fn new(keys: &[MasterKey]) -> Result<Self, CryptoError> {
        let mut ring: Vec<(KeyId, Aes256Gcm)> = Vec::with_capacity(keys.len());
        let mut macs: Vec<(KeyId, MacRoot)> = Vec::with_capacity(keys.len());
        for key in keys {
            let id = key.id();
            ring.retain(|(existing, _)| *existing != id);
            macs.retain(|(existing, _)| *existing != id);
            ring.push((id, Aes256Gcm::new((&key.0).into())));
            macs.push((id, MacRoot::of(key)));
        }
        if ring.is_empty() {
            return Err(CryptoError::EmptyKeyring);
        }
        Ok(Self { keys: ring, macs })
    }

    /// HMAC-SHA256 of `msg` under the current key's subkey for `purpose` (a label such as
    /// `"rolegate/audit-checkpoint/v1"`; never the sealing key itself), and that key's id.
    #[must_use]
    pub fn mac(&self, purpose: &str, msg: &[u8]) -> (KeyId, [u8; 32]) {
        // `new` refuses an empty ring and fills `macs` with `keys`, so there is a last one.
        let (id, root) = &self.macs[self.macs.len() - 1];
        (*id, root.mac(purpose, msg))
    }

    /// Whether `tag` is [`Keyring::mac`] of `msg` for `purpose` under key `id` (compared in
    /// constant time). `UnknownKey` when that key is not in the ring.
    pub fn verify_mac(
        &self,
        id: KeyId,
        purpose: &str,
        msg: &[u8],
        tag: &[u8],
    ) -> Result<bool, CryptoError> {
        let (_, root) = self
            .macs
            .iter()
            .find(|(k, _)| *k == id)
            .ok_or(CryptoError::UnknownKey(id))?;
        Ok(crate::digest::ct_eq(&root.mac(purpose, msg), tag))
    }

    /// Key ids, oldest first.
    #[must_use]
    pub fn key_ids(&self) -> Vec<KeyId> {
        self.keys.iter().map(|(id, _)| *id).collect()
    }

    fn current(&self) -> &(KeyId, Aes256Gcm) {
        // `new` refuses an empty ring, so there is always a last key.
        &self.keys[self.keys.len() - 1]
    }

    /// The id of the key that seals new values.
    #[must_use]
    pub fn current_id(&self) -> KeyId {
        self.current().0
    }

    /// Seals `plaintext` for the record at `record_key` under the current key.
    #[must_use]
    pub fn seal(&self, record_key: &str, plaintext: &[u8]) -> Vec<u8> {
        let (id, cipher) = self.current();
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let header = [FORMAT_V1, id.0[0], id.0[1], id.0[2], id.0[3]];
        let aad = aad(&header, record_key);
        let mut out = Vec::with_capacity(HEADER_LEN + NONCE_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&header);
        out.extend_from_slice(&nonce);
        // AES-GCM encryption only fails for plaintexts over ~64 GiB; values are capped far
        // below that by the HTTP body limit, so this branch cannot be taken.
        match cipher.encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        ) {
            Ok(ct) => out.extend_from_slice(&ct),
            Err(_) => unreachable!("AES-GCM plaintext length is bounded by the request limit"),
        }
        out
    }

    /// Opens a value sealed for `record_key`.
    pub fn open(&self, record_key: &str, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let id = Self::key_id_of(sealed)?;
        let (_, cipher) = self
            .keys
            .iter()
            .find(|(k, _)| *k == id)
            .ok_or(CryptoError::UnknownKey(id))?;
        let (header, rest) = sealed.split_at(HEADER_LEN);
        let (nonce, ct) = rest.split_at(NONCE_LEN);
        let aad = aad(header, record_key);
        cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
            .map_err(|_| CryptoError::Authentication)
    }

    /// The key id in a sealed value's header.
    pub fn key_id_of(sealed: &[u8]) -> Result<KeyId, CryptoError> {
        if sealed.len() < HEADER_LEN + NONCE_LEN + TAG_LEN || sealed[0] != FORMAT_V1 {
            return Err(CryptoError::Malformed);
        }
        Ok(KeyId([sealed[1], sealed[2], sealed[3], sealed[4]]))
    }
}

fn aad(header: &[u8], record_key: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + record_key.len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(record_key.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn roundtrip_and_aad_binding() {
        let ring = Keyring::new(&[MasterKey::generate()]).unwrap();
        let sealed = ring.seal("org/acme", b"secret");
        assert_eq!(ring.open("org/acme", &sealed).unwrap(), b"secret");
        assert_eq!(
            ring.open("org/other", &sealed),
            Err(CryptoError::Authentication)
        );
    }

    #[test]
    fn tampering_is_detected() {
        let ring = Keyring::new(&[MasterKey::generate()]).unwrap();
        let mut sealed = ring.seal("k", b"value");
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(ring.open("k", &sealed), Err(CryptoError::Authentication));
        assert_eq!(ring.open("k", &sealed[..10]), Err(CryptoError::Malformed));
    }

    #[test]
    fn rotation_keeps_old_ids_readable() {
        let old = MasterKey::generate();
        let new = MasterKey::generate();
        let ring1 = Keyring::new(std::slice::from_ref(&old)).unwrap();
        let sealed_old = ring1.seal("k", b"v1");
        let ring2 = Keyring::new(&[old.clone(), new.clone()]).unwrap();
        assert_eq!(ring2.open("k", &sealed_old).unwrap(), b"v1");
        let sealed_new = ring2.seal("k", b"v2");
        assert_eq!(Keyring::key_id_of(&sealed_new).unwrap(), new.id());
        assert_eq!(
            ring1.open("k", &sealed_new),
            Err(CryptoError::UnknownKey(new.id()))
        );
    }

    #[test]
    fn macs_are_per_purpose_and_verify_under_older_keys() {
        let old = MasterKey::generate();
        let ring1 = Keyring::new(std::slice::from_ref(&old)).unwrap();
        let (id, tag) = ring1.mac("p", b"msg");
        assert_eq!(id, old.id());
        assert!(ring1.verify_mac(id, "p", b"msg", &tag).unwrap());
        assert!(!ring1.verify_mac(id, "q", b"msg", &tag).unwrap());
        assert!(!ring1.verify_mac(id, "p", b"msh", &tag).unwrap());
        assert_ne!(tag, crate::digest::hmac_sha256(&old.0, b"msg"));
        let ring2 = Keyring::new(&[old, MasterKey::generate()]).unwrap();
        assert!(ring2.verify_mac(id, "p", b"msg", &tag).unwrap());
        assert_ne!(ring2.mac("p", b"msg").0, id);
        let other = MasterKey::generate().id();
        assert_eq!(
            ring2.verify_mac(other, "p", b"msg", &tag),
            Err(CryptoError::UnknownKey(other))
        );
        assert_eq!(KeyId::from_hex(&id.to_string()), Some(id));
        assert_eq!(KeyId::from_hex("xyz"), None);
        assert_eq!(KeyId::from_hex("é1234567"), None);
    }

    #[test]
    fn key_parsing_errors_name_the_problem() {
        assert_eq!(
            MasterKey::from_base64("!!").unwrap_err(),
            CryptoError::KeyNotBase64
        );
        assert_eq!(
            MasterKey::from_base64("AAAA").unwrap_err(),
            CryptoError::KeyLength(3)
        );
        let k = MasterKey::generate();
        assert_eq!(MasterKey::from_base64(&k.to_base64()).unwrap().id(), k.id());
    }
}

#[cfg(test)]
mod zeroize_on_drop {
    /// The AES key schedule inside every cipher is wiped when the cipher is dropped: `aes`
    /// is built with its `zeroize` feature (and `aes-gcm` wipes the GHASH key with its own).
    #[test]
    fn the_aes_key_schedule_is_zeroized_on_drop() {
        fn wiped_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        wiped_on_drop::<aes::Aes256>();
    }
}
