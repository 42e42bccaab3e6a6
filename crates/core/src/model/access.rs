//! Just-in-time access: a request for an access level on one org, which becomes a grant once
//! approved. One sealed record (`access/req/<id>`) carries the whole life; it is also the
//! public view (it holds no secret).

use serde::{Deserialize, Serialize};

use crate::ids::OrgName;

/// Where a request is in its life.
///
/// `pending → approved → active → expired`; from `pending` also `denied`, `cancelled` or
/// `expired` (its `request_ttl` passed); from `approved` or `active` also `revoked`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessState {
    Pending,
    Approved,
    Active,
    Expired,
    Denied,
    Cancelled,
    Revoked,
}

impl AccessState {
    pub const ALL: [AccessState; 7] = [
        Self::Pending,
        Self::Approved,
        Self::Active,
        Self::Expired,
        Self::Denied,
        Self::Cancelled,
        Self::Revoked,
    ];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Denied => "denied",
            Self::Cancelled => "cancelled",
            Self::Revoked => "revoked",
        }
    }

    /// Whether nothing can happen to it any more.
    #[must_use]
    pub const fn is_final(self) -> bool {
        matches!(
            self,
            Self::Expired | Self::Denied | Self::Cancelled | Self::Revoked
        )
    }

    /// Parses a `state` filter.
    pub fn parse(s: &str) -> Result<Self, crate::Error> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                crate::Error::invalid(
                    "state",
                    "state must be one of pending, approved, active, expired, denied, cancelled, revoked",
                )
            })
    }
}

/// One approver's decision.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// The approving operator's id.
    pub by: String,
    pub at: String,
    pub comment: Option<String>,
}

/// An admin's review of a break-glass grant.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    /// The reviewing admin's id (never the grant's holder).
    pub by: String,
    pub at: String,
    pub comment: String,
}

/// A request for an access level, and the grant it becomes.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRequestRecord {
    /// `a` + 12 hex digits of creation time + 16 random hex digits.
    pub id: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub org: OrgName,
    pub access_level: String,
    /// The requesting operator's id (the grant's holder).
    pub requested_by: String,
    /// How long the grant lasts once it starts.
    pub duration_secs: u32,
    pub reason: Option<String>,
    pub ticket: Option<String>,
    /// When the grant may start at the earliest (RFC 3339); `null` means on approval.
    pub starts_at: Option<String>,
    pub state: AccessState,
    /// Approvals so far (at most one per approver).
    pub approvals: Vec<Approval>,
    /// How many distinct approvals the policy asks for.
    pub min_approvals: u32,
    /// Who decided the last transition (`denied`, `cancelled`, `revoked`) and why.
    pub decided_by: Option<String>,
    pub decision_comment: Option<String>,
    /// Taken through `break_glass`: active at once, without approval, flagged for review.
    pub break_glass: bool,
    /// Approved by the policy's `auto_approve_under`.
    pub auto_approved: bool,
    /// Break-glass use that nobody has reviewed yet (`needs_review=true` lists these).
    pub review_required: bool,
    /// The admin's review of a break-glass grant, once made.
    #[serde(default)]
    pub review: Option<Review>,
    pub created_at: String,
    pub updated_at: String,
    /// A pending request expires at this time (`request_ttl`).
    pub request_expires_at: String,
    /// The grant's start and end, once approved.
    pub grant_starts_at: Option<String>,
    pub grant_ends_at: Option<String>,
    /// The grant's start and end in unix seconds (for clients' arithmetic).
    pub grant_start_unix: Option<i64>,
    pub grant_end_unix: Option<i64>,
    /// `request_expires_at` in unix seconds.
    pub request_expires_unix: i64,
    /// The customer's say, when the level's rule asks for `customer_approval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<CustomerApproval>,
}

/// The customer's approval of one request: the provider's quorum *and* one customer approver
/// must agree (a customer's deny denies).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerApproval {
    /// The customer approvers asked (ids, never their addresses' secrets).
    pub approvers: Vec<String>,
    /// `approved` or `denied`, once one of them decided.
    pub decision: Option<String>,
    /// The approver who decided.
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
}

/// How a customer approver is reached. Records written before email approvers existed
/// have no `channel` and are webhooks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ApproverChannel {
    /// A signed JSON POST to `url`.
    #[default]
    Webhook,
    /// A plain-text email to `url` (an address), sent over SMTP (`[smtp]`).
    Email,
}

impl ApproverChannel {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Email => "email",
        }
    }
}

/// A customer approver: a webhook or an email address the org's API key named. Webhook
/// deliveries are signed with its secret (`X-Rolegate-Signature`), shown once to the key
/// that set it; an email approver's secret is never shown, so a signed POST on its links
/// never verifies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerApprover {
    /// `c` + 16 hex digits.
    pub id: String,
    #[serde(default)]
    pub channel: ApproverChannel,
    /// The webhook's `https://…` (or `http://` to a loopback address), or the email
    /// address.
    pub url: String,
    pub secret: super::Secret,
    pub created_at: String,
}

/// One single-use decision link (`access/link/<digest of its token>`): the token itself is
/// never stored, only sent to the approver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerLink {
    pub request_id: String,
    pub approver_id: String,
    /// `approve` or `deny`.
    pub decision: String,
    /// Unix seconds: the request's TTL.
    pub expires_unix: i64,
}

/// A delivery still owed to a customer approver (`access/deliver/<id>`): the signed POST
/// (or the email) with the request's details and its two links, retried with backoff until it is taken
/// (2xx) or the request's TTL passes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerDelivery {
    pub id: String,
    pub request_id: String,
    pub org: String,
    pub approver_id: String,
    /// The approver's channel: a webhook POST, or an email rendered from `body`.
    #[serde(default)]
    pub channel: ApproverChannel,
    /// The webhook URL, or the email address.
    pub url: String,
    pub secret: super::Secret,
    /// The JSON body; it holds the links' tokens, so it is a secret.
    pub body: super::Secret,
    pub attempts: u32,
    pub next_unix: i64,
    pub expires_unix: i64,
}

impl AccessRequestRecord {
    /// The state as of `now` (unix seconds): a transition the sweeper has not written yet
    /// (a pending request past its TTL, an approved grant that started or ended) already
    /// counts. Enforcement never waits for the sweeper.
    #[must_use]
    pub fn state_at(&self, now: i64) -> AccessState {
        match self.state {
            AccessState::Pending if now >= self.request_expires_unix => AccessState::Expired,
            AccessState::Approved | AccessState::Active => {
                match (self.grant_start_unix, self.grant_end_unix) {
                    (_, Some(end)) if now >= end => AccessState::Expired,
                    (Some(start), Some(_)) if now >= start => AccessState::Active,
                    (Some(_), Some(_)) => AccessState::Approved,
                    _ => self.state,
                }
            }
            s => s,
        }
    }

    /// This record as seen at `now`: `state` is [`Self::state_at`].
    #[must_use]
    pub fn view_at(mut self, now: i64) -> Self {
        self.state = self.state_at(now);
        self
    }
}

/// What a revocation statement in the customer role's `rolegate-revocations` policy
/// matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokedBy {
    /// The session tag `rolegate:grant` (credentials and jobs under one grant).
    Grant,
    /// `aws:SourceIdentity` (an operator's or an API key's sessions).
    SourceIdentity,
}

/// A revocation waiting to be written into the customer's role (sealed under
/// `access/revq/<org>/<id>`, written in the revocation's own transaction).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRevocation {
    pub org: OrgName,
    pub by: RevokedBy,
    /// The grant id or the SourceIdentity.
    pub value: String,
    /// Sessions issued before this (unix seconds) are denied.
    pub before_unix: i64,
    /// When the last session it can affect has expired (unix seconds).
    pub expires_unix: i64,
}

/// A disabled operator's revocation, waiting to be queued for the orgs whose roles its
/// sessions may reach (sealed under `access/revu/<id>`, written in the disable's own
/// transaction). The access sweeper reads the access history to find those orgs, queues a
/// [`PendingRevocation`] for each one not yet `queued`, and drops this record once
/// `settle_unix` has passed (issuances still in flight at the disable are in the history
/// by then).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorRevocation {
    pub user_id: crate::ids::UserId,
    /// The SourceIdentity its sessions carry.
    pub source_identity: String,
    /// Sessions issued before this (unix seconds) are denied.
    pub before_unix: i64,
    /// When the last session it can affect has expired (unix seconds).
    pub expires_unix: i64,
    /// The last scope lookup (unix seconds); then the record goes.
    pub settle_unix: i64,
    /// The orgs already queued.
    pub queued: std::collections::BTreeSet<OrgName>,
}

/// Where an org's `rolegate-revocations` policy stands (sealed under `access/revs/<org>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationState {
    /// How many rolegate statements the policy holds now.
    pub statements: usize,
    /// When the next statement expires and the policy must be rewritten (unix seconds).
    pub next_cleanup_unix: Option<i64>,
    /// Failed attempts in a row, and when to try again (unix seconds).
    pub attempts: u32,
    pub retry_at_unix: i64,
    /// The last failure, for operators (no secret: an error code and message).
    pub last_error: Option<String>,
    pub updated_at: String,
}
