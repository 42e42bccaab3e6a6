//! Customer onboarding: the signed callback from the customer's stack, account binding, the
//! trust-policy check, and binding resets.
//!
//! Wire format (kept from the prototype): `X-Sig-Signature` is lowercase hex
//! HMAC-SHA256(callback_secret, "{timestamp}|{nonce}|" + raw body), with `X-Sig-Timestamp`
//! (Unix seconds) and `X-Sig-Nonce`. Checks run in this order: headers, timestamp window,
//! signature (an unknown org and a bad signature are indistinguishable), nonce, and only
//! then the body's schema.

use std::time::Duration;

use serde::{Deserialize, Serialize};

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

/// Callback timestamps further than this from our clock are refused.
pub const TIMESTAMP_WINDOW_SECS: i64 = 300;
/// Nonces are remembered for longer than the whole acceptance window (±300 s), so a nonce
/// can never be replayed with any timestamp that is still acceptable.
pub const NONCE_TTL: Duration = Duration::from_secs(3 * TIMESTAMP_WINDOW_SECS as u64);
/// Where used nonces are remembered (unsealed markers, `nonce/<org>/<nonce>`).
pub const NONCE_PREFIX: &str = "nonce/";
/// An unused callback secret stops working after this long.
pub const CALLBACK_SECRET_TTL: time::Duration = time::Duration::days(7);

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

/// Proof that a callback's signature, timestamp and nonce were checked; only
/// `Services::authenticate_callback` makes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// Signed with the previous (live stack's) secret rather than the current one.
    previous_secret: bool,
}

/// What a verified callback led to.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CallbackOutcome {
    pub org_name: String,
    pub status: crate::orgs::OrgStatus,
    pub account_id: Option<String>,
    pub role_arn: Option<String>,
    pub trust_check: Option<String>,
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_outlive_the_acceptance_window() {
        assert!(NONCE_TTL.as_secs() > 2 * TIMESTAMP_WINDOW_SECS as u64);
    }
}
