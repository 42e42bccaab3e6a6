use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;
use zeroize::{Zeroize, ZeroizeOnDrop};

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 of `msg` under `key`.
#[must_use]
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        unreachable!("HMAC takes keys of any length")
    };
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// Lowercase hex HMAC-SHA256, the onboarding callback's signature format.
#[must_use]
pub fn hmac_sha256_hex(key: &[u8], msg: &[u8]) -> String {
    hex(&hmac_sha256(key, msg))
}

/// Constant-time equality of two byte strings (lengths are not secret).
#[must_use]
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The server-wide secret used to derive lookup digests of bearer secrets. It is random,
/// created once per store, and kept sealed in the store (see ADR 0003).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Pepper([u8; 32]);

impl Pepper {
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw bytes, for sealing into the store only.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The keyed digest of a bearer secret under a purpose label (`"token"`, `"api-key"`…).
    #[must_use]
    pub fn digest(&self, purpose: &str, secret: &str) -> Digest {
        let mut msg = Vec::with_capacity(purpose.len() + 1 + secret.len());
        msg.extend_from_slice(purpose.as_bytes());
        msg.push(0);
        msg.extend_from_slice(secret.as_bytes());
        let d = Digest(hmac_sha256(&self.0, &msg));
        msg.zeroize();
        d
    }
}

impl fmt::Debug for Pepper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pepper(..)")
    }
}

/// A keyed digest of a secret: safe to store and to use in storage keys.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// Lowercase hex, for storage keys.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Constant-time comparison with another digest.
    #[must_use]
    pub fn ct_eq(&self, other: &Digest) -> bool {
        ct_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({}…)", &self.to_hex()[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn digests_depend_on_pepper_and_purpose() {
        let p1 = Pepper::from_bytes([1; 32]);
        let p2 = Pepper::from_bytes([2; 32]);
        assert!(p1.digest("token", "x").ct_eq(&p1.digest("token", "x")));
        assert!(!p1.digest("token", "x").ct_eq(&p2.digest("token", "x")));
        assert!(!p1.digest("token", "x").ct_eq(&p1.digest("api-key", "x")));
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
