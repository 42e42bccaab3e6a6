use serde::{Deserialize, Serialize};

use super::Secret;

/// A cached credential, sealed as a whole under `cred/<org>/<digest>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedCredentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Secret,
    /// Unix seconds.
    pub expiration: i64,
    pub assumed_role_arn: String,
    pub session_name: String,
    pub source_identity: String,
    /// The bound role they were minted for: a binding change makes them unusable.
    pub role_arn: String,
    pub issued_at_ms: i64,
}
