use serde::{Deserialize, Serialize};

use super::Secret;
use crate::ids::{AccountId, OrgName, UserId};

/// Lifecycle of an organisation's onboarding.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgStatus {
    Pending,
    CallbackReceived,
    Validated,
    UnsafeTrust,
    Failed,
    Offboarded,
}

/// The stored organisation record (sealed as a whole).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrgRecord {
    pub name: OrgName,
    pub external_id: String,
    pub owner: UserId,
    pub status: OrgStatus,
    pub api_key_id: String,
    pub api_key_digest: String,
    pub callback_secret: Secret,
    pub expected_account_id: Option<AccountId>,
    pub account_id: Option<AccountId>,
    pub role_arn: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub offboarded_at: Option<String>,
    /// When the current callback secret stops working if unused (RFC 3339).
    #[serde(default)]
    pub callback_secret_expires_at: Option<String>,
    /// Whether a verified callback has used the current secret (then it does not expire).
    #[serde(default)]
    pub callback_secret_used: bool,
    /// The secret a live stack was deployed with, kept when new links replace it so that
    /// stack's Update and Delete notifications still verify; dropped once a callback uses
    /// the current secret.
    #[serde(default)]
    pub previous_callback_secret: Option<Secret>,
    /// Result of the trust-policy check after binding (`external_id_enforced`,
    /// `external_id_not_enforced`, or why the check failed).
    #[serde(default)]
    pub trust_check: Option<String>,
    /// A human-readable explanation of the current status, when it needs one.
    #[serde(default)]
    pub status_message: Option<String>,
    #[serde(default)]
    pub last_callback_at: Option<String>,
    /// The CloudFormation stack that reported the binding.
    #[serde(default)]
    pub stack_id: Option<String>,
    /// The bound role's MaxSessionDuration, as its stack reported it.
    #[serde(default)]
    pub max_session_duration: Option<u32>,
    /// Credentials, console sign-ins and jobs for this org only from these blocks (empty:
    /// anywhere).
    #[serde(default)]
    pub allowed_cidrs: Vec<crate::network::Cidr>,
    /// The org's API key only from these blocks (empty: anywhere).
    #[serde(default)]
    pub api_key_allowed_cidrs: Vec<crate::network::Cidr>,
    /// Vended credentials carry a session-policy deny outside the allowed blocks (or the
    /// requester's address).
    #[serde(default)]
    pub bind_source_ip: bool,
    /// The customer's own approvers, named by the org's API key only (ADR 0013).
    #[serde(default)]
    pub customer_approvers: Vec<super::CustomerApprover>,
}

impl OrgRecord {
    /// Kills every callback secret: the current one is replaced by a fresh random one that is
    /// already expired (so nothing verifies until new links are issued), and the previous
    /// one is dropped. For a binding reset and for the deletion of a stack, whose secret must
    /// die with it.
    pub fn retire_callback_secrets(&mut self, now: &str) {
        let fresh = rolegate_crypto::secret_token(crate::orgs::CALLBACK_SECRET_PREFIX);
        self.callback_secret = Secret::new(secrecy::ExposeSecret::expose_secret(&fresh));
        self.callback_secret_expires_at = Some(now.to_owned());
        self.callback_secret_used = false;
        self.previous_callback_secret = None;
    }
}

/// What the API-key index points at.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiKeyEntry {
    pub org: OrgName,
    pub key_id: String,
    pub digest: String,
}

/// The public view of an organisation: the ExternalId is included (AWS does not treat it as
/// a secret); the API key and callback secret never are.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Org {
    pub org_name: String,
    pub external_id: String,
    pub status: OrgStatus,
    pub owner: String,
    pub api_key_id: String,
    pub expected_account_id: Option<String>,
    pub account_id: Option<String>,
    pub role_arn: Option<String>,
    pub trust_check: Option<String>,
    pub status_message: Option<String>,
    pub last_callback_at: Option<String>,
    /// The bound role's MaxSessionDuration, when its stack reported it.
    pub max_session_duration: Option<u32>,
    pub created_at: String,
    pub updated_at: String,
    pub offboarded_at: Option<String>,
    /// The access levels the caller may use for this organisation's credentials.
    #[serde(default)]
    pub access_levels: Vec<String>,
    /// Source blocks credentials, console sign-ins and jobs are allowed from (empty:
    /// anywhere).
    #[serde(default)]
    pub allowed_cidrs: Vec<String>,
    /// Source blocks the org's API key is allowed from (empty: anywhere).
    #[serde(default)]
    pub api_key_allowed_cidrs: Vec<String>,
    /// Credentials carry a deny outside the allowed blocks.
    #[serde(default)]
    pub bind_source_ip: bool,
}

impl From<&OrgRecord> for Org {
    fn from(r: &OrgRecord) -> Self {
        Self {
            org_name: r.name.to_string(),
            external_id: r.external_id.clone(),
            status: r.status,
            owner: r.owner.to_string(),
            api_key_id: r.api_key_id.clone(),
            expected_account_id: r
                .expected_account_id
                .as_ref()
                .map(|a| a.as_str().to_owned()),
            account_id: r.account_id.as_ref().map(|a| a.as_str().to_owned()),
            role_arn: r.role_arn.clone(),
            trust_check: r.trust_check.clone(),
            status_message: r.status_message.clone(),
            last_callback_at: r.last_callback_at.clone(),
            max_session_duration: r.max_session_duration,
            created_at: r.created_at.clone(),
            updated_at: r.updated_at.clone(),
            offboarded_at: r.offboarded_at.clone(),
            access_levels: Vec::new(),
            allowed_cidrs: r.allowed_cidrs.iter().map(ToString::to_string).collect(),
            api_key_allowed_cidrs: r
                .api_key_allowed_cidrs
                .iter()
                .map(ToString::to_string)
                .collect(),
            bind_source_ip: r.bind_source_ip,
        }
    }
}
