use serde::{Deserialize, Serialize};

/// Secret text kept inside a sealed record (a callback secret, an STS secret key): it
/// serialises as the plain string (the vault seals the whole record), prints as
/// `[redacted]` in `Debug`, and is zeroised on drop.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; every use is greppable.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        secrecy::zeroize::Zeroize::zeroize(&mut self.0);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn debug_is_redacted_and_serde_is_transparent() {
        let s = super::Secret::new("rgc_topsecret");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(
            serde_json::to_string(&s).unwrap_or_default(),
            "\"rgc_topsecret\""
        );
    }
}
