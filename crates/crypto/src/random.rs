use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use rand::distributions::{Alphanumeric, DistString as _};
use secrecy::SecretString;

/// A bearer secret: `prefix` followed by 256 random bits in unpadded base64url (43 chars).
#[must_use]
pub fn secret_token(prefix: &str) -> SecretString {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let mut text = String::with_capacity(prefix.len() + 43);
    text.push_str(prefix);
    URL_SAFE_NO_PAD.encode_string(bytes, &mut text);
    SecretString::from(text)
}

/// An STS ExternalId: 48 characters from `[A-Za-z0-9]` (about 285 bits).
#[must_use]
pub fn external_id() -> String {
    Alphanumeric.sample_string(&mut rand::rngs::OsRng, 48)
}

/// A short random identifier (lowercase hex, 64 bits) for non-secret ids such as API key ids.
#[must_use]
pub fn short_id() -> String {
    let mut bytes = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret as _;

    use super::*;

    #[test]
    fn shapes() {
        let t = secret_token("rgt_");
        assert!(t.expose_secret().starts_with("rgt_"));
        assert_eq!(t.expose_secret().len(), 4 + 43);
        let e = external_id();
        assert_eq!(e.len(), 48);
        assert!(e.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(external_id(), e);
        assert_eq!(short_id().len(), 16);
    }
}
