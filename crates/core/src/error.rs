//! The one table of error codes, and the domain's error type.
//!
//! Every error a client can see has a [`Code`]: a stable snake_case string, an HTTP status
//! and a one-line description, all defined once in the table below. The HTTP layer takes the
//! status from the code and never chooses one by matching strings; the README's error table
//! and the OpenAPI document are rendered from [`Code::ALL`] (tests hold them to it).

use crate::ports::StoreError;
use crate::ports::aws::StsError;

macro_rules! codes {
    ($( $variant:ident = ($code:literal, $status:literal, $description:literal), )*) => {
        /// A stable error code. Clients match on its string, never on a message.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $( $variant, )*
        }

        impl Code {
            /// Every code, in the order of the README's table.
            pub const ALL: &'static [Code] = &[$( Code::$variant, )*];

            /// The snake_case string clients see.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self { $( Code::$variant => $code, )* }
            }

            /// The HTTP status this code is answered with.
            #[must_use]
            pub const fn status(self) -> u16 {
                match self { $( Code::$variant => $status, )* }
            }

            /// One line for people: when this code is answered.
            #[must_use]
            pub const fn description(self) -> &'static str {
                match self { $( Code::$variant => $description, )* }
            }
        }
    };
}

codes! {
    InvalidJson = ("invalid_json", 400, "the body is not valid JSON"),
    InvalidField = ("invalid_field", 400, "a field failed its check; `field` names it"),
    InvalidBody = ("invalid_body", 400, "the request body could not be read"),
    BadRequest = ("bad_request", 400, "the request is malformed (framework-level)"),
    IdempotencyKeyRequired = ("idempotency_key_required", 400, "a POST that requires `Idempotency-Key` came without one"),
    IdempotencyKeyNotAccepted = ("idempotency_key_not_accepted", 400, "`Idempotency-Key` was sent to an endpoint whose answers are never stored for replay (credentials)"),
    SessionPolicyTooLarge = ("session_policy_too_large", 400, "AWS found the packed session policy too large"),
    InvalidCredentials = ("invalid_credentials", 400, "the submitted AWS credentials are not valid"),
    Unauthorized = ("unauthorized", 401, "no, malformed or unknown credentials (with `WWW-Authenticate`)"),
    InvalidSignature = ("invalid_signature", 401, "callback: missing or malformed signature headers, wrong signature, unknown org or expired secret (deliberately indistinguishable)"),
    StaleTimestamp = ("stale_timestamp", 401, "callback: `X-Sig-Timestamp` more than 300 s from the server clock"),
    NonceReused = ("nonce_reused", 401, "callback: the nonce was already used (nonces are kept 15 minutes)"),
    Forbidden = ("forbidden", 403, "authenticated, but the policy does not allow this caller to do this (wrong role, another org's key, another operator's org)"),
    AccessLevelNotAllowed = ("access_level_not_allowed", 403, "the access level exists but is not granted to this caller; no STS call was made"),
    WorkloadAuthFailed = ("workload_auth_failed", 403, "`POST /sessions`: the certificate, its chain or CRL, the signature, its date, a replay or the profile's conditions refused the workload; the message and the audit event name the reason"),
    AssumeRoleDenied = ("assume_role_denied", 403, "the customer's role refused AssumeRole: deleted, trust policy changed, or ExternalId no longer matching"),
    SourceIpNotAllowed = ("source_ip_not_allowed", 403, "the request's source address is outside an allowlist of the org, its API key or the operator (audited); no STS call was made"),
    GrantRequired = ("grant_required", 403, "the access level needs approval on this org: it is usable only through an active grant (`POST /api/access-requests`)"),
    GrantEnding = ("grant_ending", 403, "the grant has less than 900 s left, too little for a session; request a new one"),
    SelfApproval = ("self_approval", 403, "nobody approves, denies or revokes their own access request"),
    NotAnApprover = ("not_an_approver", 403, "the caller is not among the approvers of this level's rule for this org"),
    BreakGlassNotAllowed = ("break_glass_not_allowed", 403, "the level's rule for this org does not allow break-glass access"),
    ChatUserNotLinked = ("chat_user_not_linked", 403, "a chat action from a Slack user that no admin has linked to an operator (`PUT /api/users/{user_id}/chat-links/slack`)"),
    ChatApprovalNotAllowed = ("chat_approval_not_allowed", 403, "the request is longer than its rule's `chat_approval_max_duration_secs`: decide it through the API or the portal"),
    AwsAccessDenied = ("aws_access_denied", 403, "a job: the customer's role or the job's session policy refused an AWS call; the job's `error.step` and `error.aws_code` say which and why"),
    NotFound = ("not_found", 404, "no such route or resource"),
    StackNotFound = ("stack_not_found", 404, "a stack job: the stack does not exist"),
    MethodNotAllowed = ("method_not_allowed", 405, "wrong method (with `Allow`)"),
    RequestTimeout = ("request_timeout", 408, "the request was not received in time"),
    OrgExists = ("org_exists", 409, "an organisation of that name exists (names are case-insensitive)"),
    UserExists = ("user_exists", 409, "an operator with that id exists (ids are case-insensitive)"),
    OrgOffboarded = ("org_offboarded", 409, "the organisation is offboarded"),
    UserDisabled = ("user_disabled", 409, "the operator is disabled"),
    CannotDisableSelf = ("cannot_disable_self", 409, "an admin cannot disable its own account"),
    AccountMismatch = ("account_mismatch", 409, "callback from another account than the registered or bound one; reset the binding first"),
    BindingChanged = ("binding_changed", 409, "the binding changed while it was being verified"),
    IdempotencyInProgress = ("idempotency_in_progress", 409, "a request with this key is still running (with `Retry-After`)"),
    InteractionReplayed = ("interaction_replayed", 409, "this chat action (user and `action_ts`) was already handled; nothing changed"),
    InvalidTransition = ("invalid_transition", 409, "the access request is not in a state that allows this (`details.state` says which it is in)"),
    ApprovalLinkUsed = ("approval_link_used", 409, "a customer approval link was used already (each decides once), or the customer has already decided this request"),
    NotCancellable = ("not_cancellable", 409, "the job has ended, or a step that cannot be undone has called AWS"),
    GrantEnded = ("grant_ended", 409, "a job: the grant it was created under was revoked or expired, so the worker stopped it between steps (state `cancelled`, `error.code` says this)"),
    ReviewNotNeeded = ("review_not_needed", 409, "the access request was not taken through break-glass, or has been reviewed already"),
    RevocationPolicyFull = ("revocation_policy_full", 409, "`revoke_sessions`: the customer role's `rolegate-revocations` policy would exceed IAM's 10,240 characters; the revocation stays queued until older statements expire"),
    StackFailed = ("stack_failed", 409, "a stack job: the stack ended in a failed or rolled-back state, is busy with another change, or is ROLLBACK_COMPLETE and the spec did not say `replace_failed`; `error.message` gives its status and reason"),
    JobNotFinished = ("job_not_finished", 409, "the job has not succeeded (yet), so it has no secret to read"),
    SecretAlreadyRetrieved = ("secret_already_retrieved", 410, "the job's secret (a private key) was read once already and is gone"),
    SecretPurged = ("secret_purged", 410, "the job's secret was not read in time (`jobs.secret_ttl_secs`) and was purged"),
    ApprovalLinkExpired = ("approval_link_expired", 410, "a customer approval link outlived its request's `request_ttl`, or the request is no longer pending"),
    NoCustomerApprovers = ("no_customer_approvers", 412, "the level needs the customer's approval on this org, and the org's API key has named no customer approvers (`PUT /api/orgs/{org}/customer-approvers`)"),
    EmailNotConfigured = ("email_not_configured", 412, "an email customer approver was named, and the server has no `[smtp]` table to send mail with; name webhooks, or configure SMTP"),
    OrgNotValidated = ("org_not_validated", 412, "credentials for an org that is not `validated`; `details` has its `status` and the `onboarding` endpoint"),
    PayloadTooLarge = ("payload_too_large", 413, "body over 64 KiB"),
    UnsupportedMediaType = ("unsupported_media_type", 415, "the body is not `application/json`"),
    IdempotencyKeyReused = ("idempotency_key_reused", 422, "the key was used with a different body"),
    Unprocessable = ("unprocessable", 422, "the request could not be processed (framework-level)"),
    RoleNotAssumable = ("role_not_assumable", 424, "callback: rolegate could not assume the reported role with the ExternalId"),
    RateLimited = ("rate_limited", 429, "a rate limit is spent (with `Retry-After`, `RateLimit-Limit/-Remaining/-Reset`)"),
    Internal = ("internal", 500, "a bug or an unreadable record; details are only in the log, under the request id"),
    NotConfigured = ("not_configured", 501, "the server is not set up for this feature: a setting it needs is missing (the message names it); not transient, so no `Retry-After`"),
    StsUnavailable = ("sts_unavailable", 502, "STS could not be reached, after the SDK's bounded retries (with `Retry-After`)"),
    StsError = ("sts_error", 502, "STS answered with an error rolegate does not expect (its code is in the message, the rest in the log)"),
    ConsoleFederationFailed = ("console_federation_failed", 502, "the sign-in federation endpoint failed"),
    AwsError = ("aws_error", 502, "a job: an AWS call failed with an error rolegate does not expect; the job's `error.aws_code` has its code"),
    AwsUnavailable = ("aws_unavailable", 502, "a job: AWS could not be reached or kept throttling, after the SDK's bounded retries"),
    StsThrottled = ("sts_throttled", 503, "STS is throttling (with `Retry-After`)"),
    ProviderCredentialsUnavailable = ("provider_credentials_unavailable", 503, "rolegate's own AWS credentials are missing or expired (detail in the log only)"),
    TemplateStoreUnavailable = ("template_store_unavailable", 503, "onboarding: the template could not be published to S3 (with `Retry-After`)"),
    HandlerTimeout = ("handler_timeout", 503, "the server did not answer within `request_timeout_secs`; retry later"),
    AuditUnavailable = ("audit_unavailable", 503, "the audit log cannot record the action, so it was not performed (with `Retry-After`)"),
    StoreUnavailable = ("store_unavailable", 503, "the store cannot be reached (with `Retry-After`)"),
    Contention = ("contention", 503, "too many concurrent writers on one record; retry (with `Retry-After`)"),
    Unavailable = ("unavailable", 503, "service unavailable (framework-level)"),
}

impl Code {
    /// The code of a framework-made error with this status (no handler chose one).
    #[must_use]
    pub fn for_status(status: u16) -> Self {
        match status {
            400 => Self::BadRequest,
            401 => Self::Unauthorized,
            403 => Self::Forbidden,
            404 => Self::NotFound,
            405 => Self::MethodNotAllowed,
            408 => Self::RequestTimeout,
            413 => Self::PayloadTooLarge,
            415 => Self::UnsupportedMediaType,
            422 => Self::Unprocessable,
            429 => Self::RateLimited,
            503 => Self::Unavailable,
            _ => Self::Internal,
        }
    }

    /// The README's error table, rendered from [`Code::ALL`].
    #[must_use]
    pub fn markdown_table() -> String {
        let mut out = String::from("| status | code | when |\n|---|---|---|\n");
        for c in Self::ALL {
            out.push_str(&format!(
                "| {} | `{}` | {} |\n",
                c.status(),
                c.as_str(),
                c.description()
            ));
        }
        out
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field failed validation.
    #[error("{message}")]
    Invalid { field: String, message: String },
    /// The addressed thing does not exist (or is not visible to the caller).
    #[error("{what} not found")]
    NotFound { what: &'static str },
    /// A state conflict (`org_exists`, `user_exists`, ...).
    #[error("{message}")]
    Conflict { code: Code, message: String },
    /// The caller is authenticated but the policy does not allow this (`forbidden`,
    /// `access_level_not_allowed`).
    #[error("{message}")]
    Forbidden { code: Code, message: String },
    /// No valid credentials.
    #[error("authentication required")]
    Unauthorized,
    /// A signed request was refused (bad or replayed signature, skewed clock).
    #[error("{message}")]
    SignatureRejected { code: Code, message: String },
    /// The org is not in a state that allows this (e.g. credentials before validation).
    #[error("{message}")]
    Precondition {
        code: Code,
        message: String,
        details: serde_json::Value,
    },
    /// An upstream AWS call failed; the code says how (mapped from `StsError`).
    #[error("{message}")]
    Upstream {
        code: Code,
        message: String,
        retry_after_secs: Option<u64>,
    },
    /// A rate limit is spent; `limit` is its configuration name.
    #[error("rate limit {limit} is spent")]
    RateLimited {
        limit: &'static str,
        decision: crate::ports::RateDecision,
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

    pub fn conflict(code: Code, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden {
            code: Code::Forbidden,
            message: message.into(),
        }
    }

    /// `org_offboarded` for `org`.
    pub fn offboarded(org: impl std::fmt::Display) -> Self {
        Self::conflict(
            Code::OrgOffboarded,
            format!("organisation {org} is offboarded"),
        )
    }

    /// The code clients see for this error.
    #[must_use]
    pub fn code(&self) -> Code {
        match self {
            Self::Invalid { .. } => Code::InvalidField,
            Self::NotFound { .. } => Code::NotFound,
            Self::Unauthorized => Code::Unauthorized,
            Self::Conflict { code, .. }
            | Self::Forbidden { code, .. }
            | Self::SignatureRejected { code, .. }
            | Self::Precondition { code, .. }
            | Self::Upstream { code, .. } => *code,
            Self::NotConfigured(_) => Code::NotConfigured,
            Self::RateLimited { .. } => Code::RateLimited,
            Self::AuditUnavailable(_) => Code::AuditUnavailable,
            Self::Contention => Code::Contention,
            Self::Store(_) => Code::StoreUnavailable,
            Self::Corrupt { .. } => Code::Internal,
        }
    }

    /// Maps an STS failure to the error clients see. Detail that could help an attacker or
    /// leak provider internals (provider credential problems) goes to the log only.
    #[must_use]
    pub fn from_sts(e: StsError) -> Self {
        let code = sts_code(&e);
        let upstream = |message: String, retry_after_secs| Self::Upstream {
            code,
            message,
            retry_after_secs,
        };
        match e {
            StsError::AccessDenied(m) => upstream(
                format!(
                    "the customer's role refused AssumeRole ({m}); the role may have been deleted, its trust policy changed, or the ExternalId no longer matches"
                ),
                None,
            ),
            StsError::Throttled => upstream(
                "STS is throttling requests; retry later".to_owned(),
                Some(5),
            ),
            StsError::Unavailable(detail) => {
                tracing::warn!(%detail, "STS unreachable");
                // Transient by nature (a network or STS outage): say when to try again, as
                // for throttling, so that clients back off instead of hammering.
                upstream("STS could not be reached after retries".to_owned(), Some(5))
            }
            StsError::PolicyTooLarge(m) => {
                upstream(format!("the session policy is too large: {m}"), None)
            }
            StsError::ProviderCredentials(detail) => {
                tracing::error!(%detail, "provider AWS credentials unavailable");
                upstream(
                    "rolegate's own AWS credentials are missing or expired".to_owned(),
                    Some(30),
                )
            }
            StsError::InvalidCredentials(m) => upstream(m, None),
            StsError::Invalid { field, message } => Self::invalid(field, message),
            StsError::Federation(detail) => {
                tracing::warn!(%detail, "console federation endpoint failed");
                upstream(
                    "the AWS sign-in federation endpoint refused or failed the request".to_owned(),
                    None,
                )
            }
            StsError::Other { code: c, message } => {
                tracing::warn!(sts_code = %c, %message, "unexpected STS error");
                upstream(
                    format!("STS answered with an unexpected error ({c}); details are in the log"),
                    None,
                )
            }
        }
    }
}

/// The code of an STS failure.
#[must_use]
pub fn sts_code(e: &StsError) -> Code {
    match e {
        StsError::AccessDenied(_) => Code::AssumeRoleDenied,
        StsError::Throttled => Code::StsThrottled,
        StsError::Unavailable(_) => Code::StsUnavailable,
        StsError::PolicyTooLarge(_) => Code::SessionPolicyTooLarge,
        StsError::ProviderCredentials(_) => Code::ProviderCredentialsUnavailable,
        StsError::InvalidCredentials(_) => Code::InvalidCredentials,
        StsError::Invalid { .. } => Code::InvalidField,
        StsError::Federation(_) => Code::ConsoleFederationFailed,
        StsError::Other { .. } => Code::StsError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_with_a_real_status() {
        let mut seen = std::collections::HashSet::new();
        for c in Code::ALL {
            assert!(seen.insert(c.as_str()), "{c} twice");
            assert!(
                c.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{c}"
            );
            assert!((400..600).contains(&c.status()), "{c}");
            assert!(!c.description().is_empty());
        }
        let statuses: Vec<u16> = Code::ALL.iter().map(|c| c.status()).collect();
        let mut sorted = statuses.clone();
        sorted.sort_unstable();
        assert_eq!(statuses, sorted, "the table is ordered by status");
    }

    #[test]
    fn the_readme_error_table_is_the_enum() {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"));
        let (begin, end) = ("<!-- error-codes:begin -->\n", "<!-- error-codes:end -->");
        let table = readme
            .split_once(begin)
            .and_then(|(_, rest)| rest.split_once(end))
            .map(|(table, _)| table);
        let expected = Code::markdown_table();
        assert_eq!(
            table,
            Some(expected.as_str()),
            "README.md's error table differs from the Code enum; paste this between the markers:\n{expected}"
        );
    }

    /// Fuzz finding (issue 17): a missing setting was a 503 "unavailable", which tells
    /// clients to retry; nothing changes until the operator configures the feature.
    #[test]
    fn a_missing_setting_is_not_implemented_not_unavailable() {
        assert_eq!(Code::NotConfigured.status(), 501);
        assert_eq!(Error::NotConfigured("x".into()).code(), Code::NotConfigured);
    }

    #[test]
    fn framework_statuses_have_codes_of_that_status() {
        for s in [400, 401, 403, 404, 405, 408, 413, 415, 422, 429, 503] {
            assert_eq!(Code::for_status(s).status(), s);
        }
        assert_eq!(Code::for_status(418), Code::Internal);
    }
}
