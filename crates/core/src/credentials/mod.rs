//! Credential vending. Cached credentials live under `cred/<org>/…` (sealed), so that
//! offboarding, a binding reset or an API-key rotation can drop an org's cache at once.

/// Console sign-in URLs through the federation endpoint.
pub mod console;
/// The issuance path: cache, single-flight, STS, audit.
pub mod issue;
/// Access levels (session policies) and cache refresh settings.
pub mod levels;
/// Session names, SourceIdentity and session tags.
pub mod session;
/// Checking submitted credentials with GetCallerIdentity.
pub mod validate;

pub use console::{ConsoleLogin, ConsoleSettings};
pub use issue::{Flights, IssueCommand, Issued};
pub use levels::{AccessLevel, CredentialPolicy, LevelError};
pub use validate::{ValidateCommand, Validation};

use crate::ids::OrgName;
use crate::{Error, Services};

/// Where cached credentials live (sealed, with a TTL to their expiry).
pub const CACHE_PREFIX: &str = "cred/";
/// Where single-flight locks live (unsealed markers with a short TTL).
pub const LOCK_PREFIX: &str = "credlock/";

/// The storage prefix of every cached credential of `org`.
#[must_use]
pub fn cache_prefix(org: &OrgName) -> String {
    format!("{CACHE_PREFIX}{org}/")
}

impl Services {
    /// Drops every cached credential of `org`. Returns how many were dropped.
    pub async fn evict_credentials(&self, org: &OrgName) -> Result<usize, Error> {
        let prefix = cache_prefix(org);
        let mut dropped = 0;
        loop {
            let page = self.vault.store().list(&prefix, None, 500).await?;
            if page.items.is_empty() {
                return Ok(dropped);
            }
            let mut txn = crate::ports::Txn::new();
            for (key, _) in &page.items {
                txn = txn.delete(key.clone());
            }
            dropped += page.items.len();
            self.vault.commit(txn).await?;
        }
    }
}

impl Services {
    /// Evicts after a committed change (rotation, offboarding). The change stands either
    /// way, and issuance re-checks the org's status and binding, so a failure is logged
    /// rather than reported.
    pub(crate) async fn evict_after_change(&self, org: &OrgName) {
        if let Err(e) = self.evict_credentials(org).await {
            tracing::error!(error = %e, %org, "could not evict cached credentials");
        }
    }
}

use crate::ports::aws::StsError;

/// The stable error code for an STS failure.
#[must_use]
pub fn sts_error_code(e: &StsError) -> &'static str {
    match e {
        StsError::AccessDenied(_) => "assume_role_denied",
        StsError::Throttled => "sts_throttled",
        StsError::Unavailable(_) => "sts_unavailable",
        StsError::PolicyTooLarge(_) => "session_policy_too_large",
        StsError::ProviderCredentials(_) => "provider_credentials_unavailable",
        StsError::InvalidCredentials(_) => "invalid_credentials",
        StsError::Invalid { .. } => "invalid_field",
        StsError::Federation(_) => "console_federation_failed",
        StsError::Other { .. } => "sts_error",
    }
}

/// Maps an STS failure to the domain error clients see. Detail that could help an attacker
/// or leak provider internals (provider credential problems) goes to the log only.
#[must_use]
pub fn sts_error(e: StsError) -> Error {
    let code = sts_error_code(&e);
    match e {
        StsError::AccessDenied(m) => Error::Upstream {
            code,
            message: format!(
                "the customer's role refused AssumeRole ({m}); the role may have been deleted, its trust policy changed, or the ExternalId no longer matches"
            ),
            retry_after_secs: None,
        },
        StsError::Throttled => Error::Upstream {
            code,
            message: "STS is throttling requests; retry later".to_owned(),
            retry_after_secs: Some(5),
        },
        StsError::Unavailable(detail) => {
            tracing::warn!(%detail, "STS unreachable");
            Error::Upstream {
                code,
                message: "STS could not be reached after retries".to_owned(),
                retry_after_secs: None,
            }
        }
        StsError::PolicyTooLarge(m) => Error::Upstream {
            code,
            message: format!("the session policy is too large: {m}"),
            retry_after_secs: None,
        },
        StsError::ProviderCredentials(detail) => {
            tracing::error!(%detail, "provider AWS credentials unavailable");
            Error::Upstream {
                code,
                message: "rolegate's own AWS credentials are missing or expired".to_owned(),
                retry_after_secs: Some(30),
            }
        }
        StsError::InvalidCredentials(m) => Error::Upstream {
            code,
            message: m,
            retry_after_secs: None,
        },
        StsError::Invalid { field, message } => Error::invalid(field, message),
        StsError::Federation(detail) => {
            tracing::warn!(%detail, "console federation endpoint failed");
            Error::Upstream {
                code,
                message: "the AWS sign-in federation endpoint refused or failed the request"
                    .to_owned(),
                retry_after_secs: None,
            }
        }
        StsError::Other { code: c, message } => {
            tracing::warn!(sts_code = %c, %message, "unexpected STS error");
            Error::Upstream {
                code,
                message: format!(
                    "STS answered with an unexpected error ({c}); details are in the log"
                ),
                retry_after_secs: None,
            }
        }
    }
}
