//! The domain's error type. Every variant has a stable snake_case code; the HTTP layer maps
//! each to a status in exactly one place.

use crate::ports::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field failed validation.
    #[error("{message}")]
    Invalid { field: String, message: String },
    /// The addressed thing does not exist (or is not visible to the caller).
    #[error("{what} not found")]
    NotFound { what: &'static str },
    /// A state conflict with a stable code (`org_exists`, `user_exists`, ...).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// The caller is authenticated but may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// No valid credentials.
    #[error("authentication required")]
    Unauthorized,
    /// A signed request was refused (bad or replayed signature, skewed clock), with a code.
    #[error("{message}")]
    SignatureRejected { code: &'static str, message: String },
    /// The org is not in a state that allows this (e.g. credentials before validation).
    #[error("{message}")]
    Precondition {
        code: &'static str,
        message: String,
        details: serde_json::Value,
    },
    /// An upstream AWS call failed; the code says how (mapped from `StsError`).
    #[error("{message}")]
    Upstream {
        code: &'static str,
        message: String,
        retry_after_secs: Option<u64>,
    },
    /// A required setting is missing for this feature.
    #[error("{0}")]
    NotConfigured(String),
    /// The audit log could not record the action, so it did not happen.
    #[error("audit log unavailable")]
    AuditUnavailable(#[source] Box<Error>),
    /// Too much contention on one record; the caller may retry.
    #[error("too much contention, retry")]
    Contention,
    /// The storage engine failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored value could not be opened or decoded.
    #[error("stored record {key} is unreadable: {reason}")]
    Corrupt { key: String, reason: String },
}

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The stable snake_case code clients see for this error.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid { .. } => "invalid_field",
            Self::NotFound { .. } => "not_found",
            Self::Forbidden(_) => "forbidden",
            Self::Unauthorized => "unauthorized",
            Self::Conflict { code, .. }
            | Self::SignatureRejected { code, .. }
            | Self::Precondition { code, .. }
            | Self::Upstream { code, .. } => code,
            Self::NotConfigured(_) => "not_configured",
            Self::AuditUnavailable(_) => "audit_unavailable",
            Self::Contention => "contention",
            Self::Store(_) => "store_unavailable",
            Self::Corrupt { .. } => "internal",
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }
}
