use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use rolegate_core::RequestContext;
use rolegate_core::ids::OrgName;
use rolegate_core::keyspace;
use rolegate_core::onboarding::links::OnboardingLinks;
use rolegate_core::onboarding::{CallbackOutcome, SignatureHeaders, callback};
use rolegate_core::orgs::Org;
use rolegate_core::policy::Action;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Caller, request_id, source_ip};
use crate::authorize::authorized;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::idempotency::{Mode, idempotent};
use crate::state::AppState;

/// The customer callback: authenticated by its signature, not by a bearer token. Replays
/// are refused by the signed nonce, so `Idempotency-Key` plays no part here.
pub fn public_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(callback_handler))
        .routes(routes!(callback_alias))
}

pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(idempotent(
            authorized(routes!(integrate), Action::IssueOnboardingLinks, state),
            Mode::Optional,
            state,
        ))
        .routes(authorized(
            routes!(onboarding_links),
            Action::IssueOnboardingLinks,
            state,
        ))
        .routes(idempotent(
            authorized(routes!(reset_binding), Action::ResetBinding, state),
            Mode::Optional,
            state,
        ))
}

/// The callback's body, as the onboarding stack sends it (checked by
/// `rolegate_core::onboarding::Callback::parse` only after the signature; see
/// docs/onboarding.md).
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // Only describes the body; the handler verifies the raw bytes.
pub struct CallbackRequest {
    /// `created`, `updated` or `deleted`.
    #[schema(example = "created")]
    event: String,
    #[schema(example = "acme-corp")]
    org_name: String,
    /// Read from the stack's own ARN, not from a parameter.
    #[schema(example = "111122223333")]
    account_id: String,
    #[schema(example = "eu-west-1")]
    region: String,
    #[schema(example = "aws")]
    partition: String,
    role_arn: String,
    stack_id: String,
    /// The role's MaxSessionDuration (3600–43200); optional.
    max_session_duration: Option<u32>,
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// The signed onboarding callback
///
/// Sent by the customer's onboarding stack; authenticated by an HMAC-SHA256 signature under
/// the org's callback secret over `"<timestamp>|<nonce>|" + body` (docs/onboarding.md). Binds
/// the org to the reporting account and checks that the role enforces the ExternalId.
#[utoipa::path(
    post, path = "/api/integrations/validate", operation_id = "onboarding_callback", tag = "onboarding",
    params(
        ("X-Sig-Timestamp" = String, Header, description = "Unix time in seconds; within 300 s of the server's clock."),
        ("X-Sig-Nonce" = String, Header, description = "32 lowercase hex characters, new for every attempt (kept 15 minutes)."),
        ("X-Sig-Signature" = String, Header, description = "64 lowercase hex characters: the HMAC-SHA256."),
    ),
    request_body = CallbackRequest,
    responses(
        (status = 200, description = "The verdict (`validated`, `unsafe_trust`, `offboarded`, …).", body = CallbackOutcome),
        (status = 400, description = "`invalid_field`: the signed body is not a valid callback.", body = ErrorBody),
        (status = 401, description = "`invalid_signature`, `stale_timestamp`, `nonce_reused`.", body = ErrorBody),
        (status = 409, description = "`account_mismatch`, `binding_changed`.", body = ErrorBody),
        (status = 424, description = "`role_not_assumable`.", body = ErrorBody),
        (status = 429, description = "`rate_limited` (per source IP; per org once the signature verifies).", body = ErrorBody),
    )
)]
async fn callback_handler(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let ip = source_ip(&state, &headers, Some(peer));
    let limits = state.settings.rate_limits;
    crate::ratelimit::step(
        &state,
        "callback_per_ip",
        keyspace::rate::callback_per_ip(&ip),
        limits.callback_per_ip,
    )
    .await?;
    let ctx = RequestContext {
        request_id: request_id(&headers),
        source_ip: Some(ip),
        actor: "callback".to_owned(),
    };
    let sig = SignatureHeaders {
        signature: header(&headers, "x-sig-signature"),
        timestamp: header(&headers, "x-sig-timestamp"),
        nonce: header(&headers, "x-sig-nonce"),
    };
    let verified = state
        .services
        .onboarding
        .authenticate_callback(&ctx, &sig, &body)
        .await?;
    // Only a verified callback spends its org's budget: unsigned traffic naming an org is
    // the per-IP limit's business and can never lock out the org's real stack.
    if let Some(org) = callback::claimed_org(&body) {
        crate::ratelimit::step(
            &state,
            "callback_per_org",
            keyspace::rate::callback_per_org(org.as_str()),
            limits.callback_per_org,
        )
        .await?;
    }
    let outcome = state
        .services
        .onboarding
        .apply_callback(&ctx, verified, &body)
        .await?;
    Ok(Json(outcome).into_response())
}

/// The signed onboarding callback (alias)
///
/// The same as `POST /api/integrations/validate`.
#[utoipa::path(
    post, path = "/api/onboarding/callback", operation_id = "onboarding_callback_alias", tag = "onboarding",
    params(
        ("X-Sig-Timestamp" = String, Header, description = "Unix time in seconds."),
        ("X-Sig-Nonce" = String, Header, description = "32 lowercase hex characters."),
        ("X-Sig-Signature" = String, Header, description = "64 lowercase hex characters: the HMAC-SHA256."),
    ),
    request_body = CallbackRequest,
    responses(
        (status = 200, description = "The verdict.", body = CallbackOutcome),
        (status = 401, description = "`invalid_signature`, `stale_timestamp`, `nonce_reused`.", body = ErrorBody),
    )
)]
async fn callback_alias(
    state: State<AppState>,
    peer: ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    callback_handler(state, peer, headers, body).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntegrateRequest {
    #[schema(required = true, nullable = false, example = "acme-corp")]
    org_name: Option<String>,
}

async fn issue(
    state: &AppState,
    caller: &Caller,
    org: &OrgName,
    rotate: bool,
) -> Result<Response, ApiError> {
    let links: OnboardingLinks = state
        .services
        .onboarding
        .issue_links(caller, org, rotate)
        .await?;
    Ok(crate::routes::no_store(Json(links).into_response()))
}

/// Issue onboarding links (the prototype's path)
///
/// The same as `GET /api/orgs/{org}/onboarding`, with the org in the body.
#[utoipa::path(
    post, path = "/api/integrate", operation_id = "integrate", tag = "onboarding",
    request_body = IntegrateRequest,
    responses(
        (status = 200, description = "The links; they carry the new callback secret.", body = OnboardingLinks),
        (status = 404, description = "`not_found`.", body = ErrorBody),
        (status = 501, description = "`not_configured`: onboarding is not set up on this server (the message names the missing setting).", body = ErrorBody),
    )
)]
async fn integrate(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<IntegrateRequest>,
) -> Result<Response, ApiError> {
    let name = req
        .org_name
        .ok_or_else(|| ApiError::invalid_field("org_name", "org_name is required"))?;
    issue(&state, &caller, &OrgName::parse(&name)?, true).await
}

/// Issue onboarding links
///
/// A CloudFormation quick-create link, the template URL and an AWS CLI command. They reuse
/// the current callback secret while it still works; only `POST /api/integrate` replaces it.
#[utoipa::path(
    get, path = "/api/orgs/{org}/onboarding", operation_id = "onboarding_links", tag = "onboarding",
    params(("org" = String, Path, description = "The organisation's name.")),
    responses(
        (status = 200, description = "The links; they carry the current callback secret.", body = OnboardingLinks),
        (status = 404, description = "`not_found`.", body = ErrorBody),
        (status = 501, description = "`not_configured`: onboarding is not set up on this server (the message names the missing setting).", body = ErrorBody),
    )
)]
async fn onboarding_links(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Response, ApiError> {
    issue(&state, &caller, &OrgName::parse(&org)?, false).await
}

/// Reset an organisation's account binding
///
/// So that a callback from another account can bind (audited).
#[utoipa::path(
    post, path = "/api/orgs/{org}/binding/reset", operation_id = "reset_binding", tag = "onboarding",
    params(("org" = String, Path, description = "The organisation's name.")),
    responses(
        (status = 200, description = "The organisation, unbound.", body = Org),
        (status = 404, description = "`not_found`.", body = ErrorBody),
    )
)]
async fn reset_binding(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Json<Org>, ApiError> {
    Ok(Json(
        state
            .services
            .onboarding
            .reset_binding(&caller, &OrgName::parse(&org)?)
            .await?,
    ))
}
