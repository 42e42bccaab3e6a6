use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    #[default]
    Success,
    Failure,
}

/// One stored event of the hash chain.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub seq: u64,
    pub time: String,
    pub actor: String,
    pub action: String,
    pub org: Option<String>,
    pub target: Option<String>,
    pub outcome: Outcome,
    pub code: Option<String>,
    pub request_id: String,
    pub source_ip: Option<String>,
    pub details: serde_json::Value,
    /// SHA-256 (hex) of the previous event; all zeros for the first.
    pub prev: String,
    /// SHA-256 (hex) of this event with `hash` set to the empty string.
    pub hash: String,
}

impl AuditEvent {
    /// Recomputes this event's hash.
    #[must_use]
    pub fn compute_hash(&self) -> String {
        let mut copy = self.clone();
        copy.hash = String::new();
        // Serialising a struct of strings, numbers and a JSON value cannot fail.
        let bytes = serde_json::to_vec(&copy).unwrap_or_default();
        hex::encode(Sha256::digest(&bytes))
    }
}

/// The chain's head: the last sequence number and its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHead {
    pub seq: u64,
    pub hash: String,
}
