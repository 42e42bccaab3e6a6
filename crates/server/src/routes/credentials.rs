//! `POST /api/credentials`, `POST /api/credentials/console` and `POST /api/validate`.
//! Callers are an org API key (its own org only) or an operator (the org's owner, or any
//! admin). Responses that carry secrets are sent with `Cache-Control: no-store`.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use rolegate_core::credentials::{IssueCommand, ValidateCommand, Validation};
use rolegate_core::keyspace;
use rolegate_core::policy::Action;
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::authorize::authorized;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::idempotency::{Mode, idempotent};
use crate::ratelimit::step;
use crate::routes::no_store;
use crate::state::AppState;

pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        // Credentials and sign-in URLs are never stored for replay (issue 10, defect 7).
        .routes(idempotent(
            authorized(routes!(issue), Action::IssueCredentials, state),
            Mode::Refused,
            state,
        ))
        .routes(idempotent(
            authorized(routes!(console), Action::ConsoleSignin, state),
            Mode::Refused,
            state,
        ))
        // Checking credentials changes nothing, and its body holds secrets: no idempotency
        // record is kept for it.
        .routes(authorized(
            routes!(validate),
            Action::ValidateCredentials,
            state,
        ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialsRequest {
    #[schema(required = true, nullable = false, example = "acme-corp")]
    org_name: Option<String>,
    /// One of the configured access levels; the default level when absent.
    #[schema(example = "readonly")]
    access_level: Option<String>,
    /// 900 up to the level's maximum (and the role's MaxSessionDuration): 43200 at most.
    #[schema(example = 3600, minimum = 900, maximum = 43200)]
    #[serde(default, deserialize_with = "crate::extract::integer")]
    duration_seconds: Option<i64>,
    /// Why the credentials are needed: at most 256 characters, shown in CloudTrail as the
    /// `rolegate:reason` session tag.
    #[schema(
        example = "deploy #42",
        max_length = 256,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$"
    )]
    reason: Option<String>,
    /// Mint new credentials even when cached ones are fresh.
    #[serde(default)]
    force_refresh: bool,
}

impl CredentialsRequest {
    fn command(&self) -> Result<IssueCommand, ApiError> {
        Ok(IssueCommand::parse(
            self.org_name.as_deref(),
            self.access_level.as_deref(),
            self.duration_seconds,
            self.reason.as_deref(),
            self.force_refresh,
        )?)
    }
}

/// Temporary credentials for the org's bound role.
#[derive(Serialize, ToSchema)]
struct CredentialsResponse {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    /// RFC 3339, `Z`.
    expiration: String,
    assumed_role_arn: String,
    session_name: String,
    source_identity: String,
    access_level: String,
    region: String,
    cached: bool,
    /// The grant the credentials were issued under, for a level that needs approval:
    /// `expiration` is never later than its end.
    #[serde(skip_serializing_if = "Option::is_none")]
    grant_id: Option<String>,
    /// RFC 3339: when that grant ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    grant_expires_at: Option<String>,
}

/// Counts a 429 the service answered like the edge's own. Issuance spends two budgets in
/// the service (ADR 0022): the caller's and the org's in one step once the policy admits
/// the caller for that org (so nobody can exhaust another org's budget), the caller's
/// alone when it refuses; the 429 names the one that refused.
fn counted(state: &AppState, e: rolegate_core::Error) -> ApiError {
    if let rolegate_core::Error::RateLimited { limit, .. } = &e {
        state.metrics.rate_limit_rejected(limit);
    }
    e.into()
}

/// Issue credentials
///
/// Short-lived STS credentials for the organisation's bound role, with the ExternalId, a
/// SourceIdentity and session tags naming the caller, and the access level's session
/// policy. Served from the sealed cache while fresh; concurrent requests make one STS call.
#[utoipa::path(
    post, path = "/api/credentials", operation_id = "issue_credentials", tag = "credentials",
    request_body = CredentialsRequest,
    responses(
        (status = 200, description = "Credentials (`Cache-Control: no-store`).", body = CredentialsResponse),
        (status = 400, description = "`invalid_field`, `session_policy_too_large`, `idempotency_key_not_accepted`.", body = ErrorBody),
        (status = 403, description = "`forbidden` (another org's key or operator), `access_level_not_allowed`, `grant_required`, `grant_ending`, `assume_role_denied`.", body = ErrorBody),
        (status = 412, description = "`org_not_validated`, with `details.status` and `details.onboarding`.", body = ErrorBody),
        (status = 429, description = "`rate_limited`: the caller's or the org's budget, named in `details.limit` (`credentials_per_principal`, `credentials_per_org`).", body = ErrorBody),
        (status = 502, description = "`sts_unavailable`, `sts_error`.", body = ErrorBody),
        (status = 503, description = "`sts_throttled`, `provider_credentials_unavailable`, `audit_unavailable`.", body = ErrorBody),
    )
)]
async fn issue(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CredentialsRequest>,
) -> Result<Response, ApiError> {
    let cmd = req.command()?;
    let issued = state
        .services
        .credentials
        .issue(&caller, &cmd)
        .await
        .map_err(|e| counted(&state, e))?;
    state.metrics.credential_cache_result(issued.cached);
    let c = issued.credentials;
    let body = CredentialsResponse {
        access_key_id: c.access_key_id,
        secret_access_key: c.secret_access_key.expose_secret().to_owned(),
        session_token: c.session_token.expose_secret().to_owned(),
        expiration: rolegate_core::clock::rfc3339(c.expiration),
        assumed_role_arn: c.assumed_role_arn,
        session_name: issued.session_name,
        source_identity: issued.source_identity,
        access_level: issued.access_level,
        region: issued.region,
        cached: issued.cached,
        grant_expires_at: issued
            .grant
            .as_ref()
            .map(|(_, end)| rolegate_core::clock::rfc3339_unix(*end)),
        grant_id: issued.grant.map(|(id, _)| id),
    };
    Ok(no_store(Json(body).into_response()))
}

/// A console sign-in request (no `force_refresh`: a sign-in URL may use cached
/// credentials).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsoleRequest {
    #[schema(required = true, nullable = false, example = "acme-corp")]
    org_name: Option<String>,
    #[schema(example = "readonly")]
    access_level: Option<String>,
    /// 900 up to the level's maximum (and the role's MaxSessionDuration): 43200 at most.
    #[schema(example = 3600, minimum = 900, maximum = 43200)]
    #[serde(default, deserialize_with = "crate::extract::integer")]
    duration_seconds: Option<i64>,
    /// Why the credentials are needed: at most 256 characters, shown in CloudTrail as the
    /// `rolegate:reason` session tag.
    #[schema(
        example = "deploy #42",
        max_length = 256,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$"
    )]
    reason: Option<String>,
    /// An https URL on the partition's console (default: its home page).
    #[schema(example = "https://us-east-1.console.aws.amazon.com/ec2/home")]
    destination: Option<String>,
}

impl ConsoleRequest {
    fn command(&self) -> Result<IssueCommand, ApiError> {
        Ok(IssueCommand::parse(
            self.org_name.as_deref(),
            self.access_level.as_deref(),
            self.duration_seconds,
            self.reason.as_deref(),
            false,
        )?)
    }
}

/// A console sign-in URL. The URL is a bearer secret until it is used.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsoleResponse {
    url: String,
    expires_at: String,
    access_level: String,
    session_name: String,
}

/// Console sign-in URL
///
/// Credentials as for `POST /api/credentials`, exchanged at the AWS federation endpoint of
/// the role's partition for a sign-in URL.
#[utoipa::path(
    post, path = "/api/credentials/console", operation_id = "console_signin", tag = "credentials",
    request_body = ConsoleRequest,
    responses(
        (status = 200, description = "The sign-in URL (`Cache-Control: no-store`).", body = ConsoleResponse),
        (status = 400, description = "`invalid_field` (e.g. `destination`), `idempotency_key_not_accepted`.", body = ErrorBody),
        (status = 403, description = "`forbidden`, `assume_role_denied`.", body = ErrorBody),
        (status = 412, description = "`org_not_validated`.", body = ErrorBody),
        (status = 429, description = "`rate_limited`: the caller's or the org's budget, named in `details.limit`.", body = ErrorBody),
        (status = 502, description = "`console_federation_failed`, `sts_unavailable`.", body = ErrorBody),
    )
)]
async fn console(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<ConsoleRequest>,
) -> Result<Response, ApiError> {
    let cmd = req.command()?;
    let login = state
        .services
        .credentials
        .console_signin(&caller, &cmd, req.destination.as_deref())
        .await
        .map_err(|e| counted(&state, e))?;
    let body = ConsoleResponse {
        url: login.url,
        expires_at: rolegate_core::clock::rfc3339(login.expires_at),
        access_level: login.access_level,
        session_name: login.session_name,
    };
    Ok(no_store(Json(body).into_response()))
}

/// Credentials to check. Never logged: `Debug` is not derived.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateRequest {
    #[schema(required = true, nullable = false, example = "acme-corp")]
    org_name: Option<String>,
    /// 16 to 128 letters and digits.
    #[schema(
        required = true,
        nullable = false,
        min_length = 16,
        max_length = 128,
        pattern = "^[A-Za-z0-9]+$"
    )]
    access_key_id: Option<String>,
    /// 1 to 256 printable characters.
    #[schema(
        required = true,
        nullable = false,
        min_length = 1,
        max_length = 256,
        pattern = "^[ -~]+$"
    )]
    secret_access_key: Option<String>,
    /// 1 to 8192 printable characters, for temporary credentials.
    #[schema(min_length = 1, max_length = 8192, pattern = "^[ -~]+$")]
    session_token: Option<String>,
}

impl std::fmt::Debug for ValidateRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValidateRequest")
            .field("org_name", &self.org_name)
            .finish_non_exhaustive()
    }
}

/// Check credentials
///
/// GetCallerIdentity with the submitted credentials: whether they are valid and whether they
/// are a session of the organisation's bound role. The secrets are passed to STS only.
#[utoipa::path(
    post, path = "/api/validate", operation_id = "validate_credentials", tag = "credentials",
    request_body = ValidateRequest,
    responses(
        (status = 200, description = "The verdict; refused credentials are `valid: false` with the STS reason.", body = ValidationResponse),
        (status = 400, description = "`invalid_field`.", body = ErrorBody),
        (status = 403, description = "`forbidden`.", body = ErrorBody),
        (status = 429, description = "`rate_limited` (per caller).", body = ErrorBody),
        (status = 502, description = "`sts_unavailable`.", body = ErrorBody),
    )
)]
async fn validate(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<ValidateRequest>,
) -> Result<Json<ValidationResponse>, ApiError> {
    step(
        &state,
        "validate_per_principal",
        keyspace::rate::validate_per_principal(&caller.principal.actor()),
        state.settings.rate_limits.validate_per_principal,
    )
    .await?;
    let cmd = ValidateCommand::parse(
        req.org_name.as_deref(),
        req.access_key_id.as_deref(),
        req.secret_access_key,
        req.session_token,
    )?;
    let v: Validation = state.services.credentials.validate(&caller, &cmd).await?;
    Ok(Json(ValidationResponse {
        valid: v.valid,
        arn: v.arn,
        account: v.account,
        matches_org: v.matches_org,
        reason: v.reason,
    }))
}

/// Whether submitted credentials are valid, and whose they are.
#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationResponse {
    valid: bool,
    /// The caller ARN (an assumed-role session ARN for vended credentials).
    arn: Option<String>,
    account: Option<String>,
    /// True only for a session of the organisation's bound role.
    matches_org: bool,
    /// Why STS refused the credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}
