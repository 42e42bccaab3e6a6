use serde::{Deserialize, Serialize};

use crate::ids::{Role, UserId};

/// The stored operator record (sealed).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRecord {
    pub user_id: UserId,
    pub role: Role,
    pub metadata: serde_json::Value,
    pub token_digest: String,
    pub disabled: bool,
    pub created_at: String,
    pub created_by: String,
    pub token_rotated_at: Option<String>,
    /// Credentials, console sign-ins and jobs for this operator only from these blocks
    /// (empty: anywhere).
    #[serde(default)]
    pub allowed_cidrs: Vec<crate::network::Cidr>,
}

/// What the token index points at; deleted when the token dies.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenEntry {
    pub user_id: UserId,
    pub role: Role,
    pub digest: String,
}

/// The public view of an operator: no token material.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct User {
    pub user_id: String,
    pub role: Role,
    pub metadata: serde_json::Value,
    pub disabled: bool,
    pub created_at: String,
    pub created_by: String,
    pub token_rotated_at: Option<String>,
    /// Source blocks this operator may use credentials from (empty: anywhere).
    #[serde(default)]
    pub allowed_cidrs: Vec<String>,
}

impl From<&UserRecord> for User {
    fn from(r: &UserRecord) -> Self {
        Self {
            user_id: r.user_id.to_string(),
            role: r.role,
            metadata: r.metadata.clone(),
            disabled: r.disabled,
            created_at: r.created_at.clone(),
            created_by: r.created_by.clone(),
            token_rotated_at: r.token_rotated_at.clone(),
            allowed_cidrs: r.allowed_cidrs.iter().map(ToString::to_string).collect(),
        }
    }
}
