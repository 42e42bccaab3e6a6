//! `POST /api/credentials`, `POST /api/credentials/console` and `POST /api/validate`.
//! Callers are an org API key (its own org only) or an operator (the org's owner, or any
//! admin). Responses that carry secrets are sent with `Cache-Control: no-store`.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router, middleware};
use rolegate_core::credentials::{IssueCommand, ValidateCommand, Validation};
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::ratelimit::step;
use crate::state::AppState;

pub fn router(state: &AppState) -> Router<AppState> {
    let optional = || middleware::from_fn_with_state(state.clone(), crate::idempotency::optional);
    Router::new()
        .route("/api/credentials", post(issue).route_layer(optional()))
        .route(
            "/api/credentials/console",
            post(console).route_layer(optional()),
        )
        // Checking credentials changes nothing, and its body holds secrets: no idempotency
        // record is kept for it.
        .route("/api/validate", post(validate))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsRequest {
    org_name: Option<String>,
    access_level: Option<String>,
    duration_seconds: Option<i64>,
    reason: Option<String>,
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
#[derive(Serialize)]
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
}

fn no_store(mut res: Response) -> Response {
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Issuance is limited per principal and per org, before any work is done.
async fn limit(state: &AppState, caller: &Caller, cmd: &IssueCommand) -> Result<(), ApiError> {
    let limits = state.settings.rate_limits;
    step(
        state,
        "credentials_per_principal",
        format!("rl/creds-principal/{}", caller.principal.actor()),
        limits.credentials_per_principal,
    )
    .await?;
    step(
        state,
        "credentials_per_org",
        format!("rl/creds-org/{}", cmd.org),
        limits.credentials_per_org,
    )
    .await
}

async fn issue(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CredentialsRequest>,
) -> Result<Response, ApiError> {
    let cmd = req.command()?;
    limit(&state, &caller, &cmd).await?;
    let issued = state
        .services
        .issue_credentials(
            &caller.ctx,
            &caller.principal,
            &cmd,
            &state.settings.credentials,
        )
        .await?;
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
    };
    Ok(no_store(Json(body).into_response()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleRequest {
    #[serde(flatten)]
    credentials: ConsoleCredentials,
    destination: Option<String>,
}

/// The credential fields of a console request (no `force_refresh`: a sign-in URL may use
/// cached credentials).
#[derive(Debug, Deserialize)]
pub struct ConsoleCredentials {
    org_name: Option<String>,
    access_level: Option<String>,
    duration_seconds: Option<i64>,
    reason: Option<String>,
}

/// A console sign-in URL. The URL is a bearer secret until it is used.
#[derive(Debug, Serialize)]
pub struct ConsoleResponse {
    url: String,
    expires_at: String,
    access_level: String,
    session_name: String,
}

async fn console(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<ConsoleRequest>,
) -> Result<Response, ApiError> {
    let c = &req.credentials;
    let cmd = IssueCommand::parse(
        c.org_name.as_deref(),
        c.access_level.as_deref(),
        c.duration_seconds,
        c.reason.as_deref(),
        false,
    )?;
    limit(&state, &caller, &cmd).await?;
    let login = state
        .services
        .console_signin(
            &caller.ctx,
            &caller.principal,
            &cmd,
            req.destination.as_deref(),
            &state.settings.credentials,
            &state.settings.console,
        )
        .await?;
    let body = ConsoleResponse {
        url: login.url,
        expires_at: rolegate_core::clock::rfc3339(login.expires_at),
        access_level: login.access_level,
        session_name: login.session_name,
    };
    Ok(no_store(Json(body).into_response()))
}

/// Credentials to check. Never logged: `Debug` is not derived.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidateRequest {
    org_name: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    session_token: Option<String>,
}

impl std::fmt::Debug for ValidateRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValidateRequest")
            .field("org_name", &self.org_name)
            .finish_non_exhaustive()
    }
}

async fn validate(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<ValidateRequest>,
) -> Result<Json<Validation>, ApiError> {
    step(
        &state,
        "validate_per_principal",
        format!("rl/validate-principal/{}", caller.principal.actor()),
        state.settings.rate_limits.validate_per_principal,
    )
    .await?;
    let cmd = ValidateCommand::parse(
        req.org_name.as_deref(),
        req.access_key_id.as_deref(),
        req.secret_access_key,
        req.session_token,
    )?;
    Ok(Json(
        state
            .services
            .validate_credentials(&caller.principal, &cmd)
            .await?,
    ))
}
