//! Customer onboarding: the signed callback from the customer's stack, account binding, the
//! trust-policy check, binding resets, and the links a customer deploys the stack with.
//!
//! Wire format (kept from the prototype): `X-Sig-Signature` is lowercase hex
//! HMAC-SHA256(callback_secret, "{timestamp}|{nonce}|" + raw body), with `X-Sig-Timestamp`
//! (Unix seconds) and `X-Sig-Nonce`. Checks run in this order: headers, timestamp window,
//! signature (an unknown org and a bad signature are indistinguishable), nonce, and only
//! then the body's schema.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ids::OrgName;
use crate::orgs::Orgs;
use crate::ports::aws::{Sts, TemplateStore};
use crate::records::Records;

/// Account binding, stack deletion and binding resets.
mod binding;
/// The callback body and its validation, and the entry points that apply it.
pub mod callback;
/// Quick-create links and the CLI command for a customer.
pub mod links;
/// The callback's signature checks.
mod signature;
/// The trust-policy check after binding.
mod trust;

pub use crate::orgs::CALLBACK_SECRET_TTL;
pub use links::{OnboardingLinks, OnboardingSettings};

/// Callback timestamps further than this from our clock are refused.
pub const TIMESTAMP_WINDOW_SECS: i64 = 300;
/// Nonces are remembered for longer than the whole acceptance window (±300 s), so a nonce
/// can never be replayed with any timestamp that is still acceptable.
pub const NONCE_TTL: Duration = Duration::from_secs(3 * TIMESTAMP_WINDOW_SECS as u64);

/// Settings that shape onboarding decisions.
#[derive(Debug, Clone)]
pub struct OnboardingPolicy {
    /// Leave the org `unsafe_trust` when the role can be assumed without the ExternalId.
    pub require_external_id_enforcement: bool,
    /// How many times to try assuming a freshly created role (IAM is eventually consistent).
    pub verify_attempts: u32,
    pub verify_delay: Duration,
}

impl Default for OnboardingPolicy {
    fn default() -> Self {
        Self {
            require_external_id_enforcement: true,
            verify_attempts: 3,
            verify_delay: Duration::from_secs(2),
        }
    }
}

/// The signature headers as received.
#[derive(Debug, Clone)]
pub struct SignatureHeaders {
    pub signature: Option<String>,
    pub timestamp: Option<String>,
    pub nonce: Option<String>,
}

/// Proof that a callback's signature, timestamp and nonce were checked for `org`; only
/// [`Onboarding::authenticate_callback`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    org: OrgName,
    /// Signed with the previous (live stack's) secret rather than the current one.
    previous_secret: bool,
}

impl Verified {
    /// The org whose secret signed the callback.
    #[must_use]
    pub fn org(&self) -> &OrgName {
        &self.org
    }
}

/// What a verified callback led to.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CallbackOutcome {
    pub org_name: String,
    pub status: crate::model::OrgStatus,
    pub account_id: Option<String>,
    pub role_arn: Option<String>,
    pub trust_check: Option<String>,
    pub message: Option<String>,
}

/// The onboarding area.
#[derive(Debug, Clone)]
pub struct Onboarding {
    records: Records,
    orgs: Orgs,
    sts: Arc<dyn Sts>,
    policy: OnboardingPolicy,
    links: OnboardingSettings,
    templates: Option<Arc<dyn TemplateStore>>,
    /// The template customers deploy.
    template: Arc<[u8]>,
    /// rolegate's own principal, learned from STS when not configured.
    learned_principal: Arc<tokio::sync::OnceCell<String>>,
}

impl Onboarding {
    #[must_use]
    pub fn new(
        orgs: Orgs,
        sts: Arc<dyn Sts>,
        policy: OnboardingPolicy,
        links: OnboardingSettings,
        templates: Option<Arc<dyn TemplateStore>>,
        template: Arc<[u8]>,
    ) -> Self {
        Self {
            records: orgs.records().clone(),
            orgs,
            sts,
            policy,
            links,
            templates,
            template,
            learned_principal: Arc::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_outlive_the_acceptance_window() {
        assert!(NONCE_TTL.as_secs() > 2 * TIMESTAMP_WINDOW_SECS as u64);
    }
}
