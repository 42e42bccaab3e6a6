//! Cryptography for rolegate: the master-key ring, AEAD sealing of stored values (with key
//! ids and the record key as associated data), random secrets, and keyed hashing of tokens.
//!
//! Pure functions over bytes: this crate must not do I/O or depend on storage, HTTP or AWS.

/// Keyed digests of bearer secrets and constant-time comparison.
pub mod digest;
/// Master keys, key ids and the ring that seals and opens values.
pub mod keyring;
/// Random identifiers and secrets (tokens, API keys, ExternalIds).
pub mod random;
/// Signing outgoing webhooks and verifying incoming Slack requests.
pub mod webhook;

pub use digest::{Digest, Pepper, ct_eq, hmac_sha256_hex};
pub use keyring::{KeyId, Keyring, MasterKey};
pub use random::{external_id, secret_token, short_id};

/// Why a cryptographic operation failed. Messages never include key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("master key is not valid base64")]
    KeyNotBase64,
    #[error("master key must be 32 bytes, got {0}")]
    KeyLength(usize),
    #[error("the keyring has no keys")]
    EmptyKeyring,
    #[error("sealed value is truncated or has an unknown format version")]
    Malformed,
    #[error("sealed value uses key id {0}, which is not in the keyring")]
    UnknownKey(KeyId),
    #[error("sealed value failed authentication (wrong key, record or tampering)")]
    Authentication,
}
