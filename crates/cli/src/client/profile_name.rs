//! The name of an AWS profile, validated once: safe as an ini section header.

/// A profile name that is safe as an ini section header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileName(String);

impl ProfileName {
    /// Letters, digits and `-_.@+`, at most 64 characters.
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.@+".contains(c));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "profile name {s:?} must be 1 to 64 letters, digits or -_.@+"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}
