//! Who is calling, and what each kind of caller may touch.

use serde::{Deserialize, Serialize};

use crate::ids::{OrgName, Role, UserId};

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Staff, authenticated with a bearer token.
    Operator { user_id: UserId, role: Role },
    /// A provider service, authenticated with an org-scoped API key.
    OrgKey { org: OrgName, key_id: String },
}

impl Principal {
    /// The actor string recorded in audit events and idempotency scopes. Never a secret.
    #[must_use]
    pub fn actor(&self) -> String {
        match self {
            Self::Operator { user_id, .. } => format!("user:{user_id}"),
            Self::OrgKey { key_id, .. } => format!("apikey:{key_id}"),
        }
    }

    #[must_use]
    pub fn is_admin(&self) -> bool {
        matches!(
            self,
            Self::Operator {
                role: Role::Admin,
                ..
            }
        )
    }

    /// Whether this caller may see and manage `org`, owned by `owner`.
    #[must_use]
    pub fn can_access_org(&self, org: &OrgName, owner: &UserId) -> bool {
        match self {
            Self::Operator {
                role: Role::Admin, ..
            } => true,
            Self::Operator { user_id, .. } => user_id == owner,
            Self::OrgKey { org: own, .. } => own == org,
        }
    }
}

/// Per-request facts every service call carries, for audit and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestContext {
    pub request_id: String,
    pub source_ip: Option<String>,
    /// `user:ID`, `apikey:ID`, `anonymous` or `system`.
    pub actor: String,
}

impl RequestContext {
    #[must_use]
    pub fn system(request_id: impl Into<String>) -> Self {
        Self {
            request_id: request_id.into(),
            source_ip: None,
            actor: "system".to_owned(),
        }
    }
}
