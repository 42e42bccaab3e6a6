//! Who is calling. What each kind of caller may do is decided in one place, `policy`.

use serde::{Deserialize, Serialize};

use crate::ids::{OrgName, Role, UserId};

/// An authenticated caller. Adding a kind here fails to compile until `policy` has decided,
/// for every action, what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Staff, authenticated with a bearer token.
    Operator { user_id: UserId, role: Role },
    /// A provider service, authenticated with an org-scoped API key.
    OrgKey { org: OrgName, key_id: String },
    /// A customer's onboarding stack, proven by a callback signed with its org's secret.
    Stack { org: OrgName },
    /// A workload outside AWS, proven by an X.509 certificate that chains to one of its org's
    /// trust anchors and a request signed with the certificate's key (`POST /sessions`).
    /// It may only create sessions, under the one profile it was verified against.
    Workload {
        org: OrgName,
        /// The profile's id (a UUID).
        profile: String,
        /// SHA-256 of the leaf certificate's DER, lowercase hex.
        cert_fingerprint: String,
        /// The subject's common name, as the certificate says it (sanitised where used).
        common_name: String,
    },
    /// rolegate itself: start-up bootstrap and the offline admin commands, which run on the
    /// machine that holds the master key.
    System { task: &'static str },
}

impl Principal {
    /// The actor string recorded in audit events and idempotency scopes. Never a secret.
    #[must_use]
    pub fn actor(&self) -> String {
        match self {
            Self::Operator { user_id, .. } => format!("user:{user_id}"),
            Self::OrgKey { key_id, .. } => format!("apikey:{key_id}"),
            Self::Stack { .. } => "callback".to_owned(),
            // A profile and a certificate: the credential cache is per both.
            Self::Workload {
                profile,
                cert_fingerprint,
                ..
            } => format!(
                "workload:{profile}:{}",
                cert_fingerprint.chars().take(32).collect::<String>()
            ),
            Self::System { .. } => "system".to_owned(),
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
}

/// Per-request facts every service call carries, for audit and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestContext {
    pub request_id: String,
    pub source_ip: Option<String>,
    /// `user:ID`, `apikey:ID`, `workload:PROFILE:FINGERPRINT`, `callback`, `anonymous` or
    /// `system`.
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

/// A principal and the request it made: what every service method takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub principal: Principal,
    pub ctx: RequestContext,
}

impl Caller {
    /// An authenticated caller; the context's actor is the principal's.
    #[must_use]
    pub fn new(principal: Principal, mut ctx: RequestContext) -> Self {
        ctx.actor = principal.actor();
        Self { principal, ctx }
    }

    /// rolegate itself, for `task` (`bootstrap`, `admin-token`, …): the only way to act
    /// without an authenticated request, and still decided by the policy.
    #[must_use]
    pub fn system(task: &'static str) -> Self {
        Self {
            principal: Principal::System { task },
            ctx: RequestContext::system(task),
        }
    }
}
