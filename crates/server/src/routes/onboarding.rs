use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use rolegate_core::RequestContext;
use rolegate_core::ids::OrgName;
use rolegate_core::onboarding::links::{OnboardingLinks, OnboardingSettings};
use rolegate_core::onboarding::{SignatureHeaders, callback};
use serde::Deserialize;

use crate::auth::{Caller, request_id, source_ip};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::{AppState, ONBOARDING_TEMPLATE};

/// The customer callback: authenticated by its signature, not by a bearer token.
pub fn public_router() -> Router<AppState> {
    Router::new()
        .route("/api/integrations/validate", post(callback_handler))
        .route("/api/onboarding/callback", post(callback_handler))
}

pub fn router(state: &AppState) -> Router<AppState> {
    let optional = || middleware::from_fn_with_state(state.clone(), crate::idempotency::optional);
    Router::new()
        .route("/api/integrate", post(integrate).route_layer(optional()))
        .route("/api/orgs/{org}/onboarding", get(onboarding_links))
        .route(
            "/api/orgs/{org}/binding/reset",
            post(reset_binding).route_layer(optional()),
        )
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// `POST /api/integrations/validate`: the onboarding stack's signed callback.
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
        format!("rl/callback-ip/{ip}"),
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
    state
        .services
        .authenticate_callback(&ctx, &sig, &body)
        .await?;
    // Only a verified callback spends its org's budget: unsigned traffic naming an org is
    // the per-IP limit's business and can never lock out the org's real stack.
    if let Some(org) = callback::claimed_org(&body) {
        crate::ratelimit::step(
            &state,
            "callback_per_org",
            format!("rl/callback-org/{org}"),
            limits.callback_per_org,
        )
        .await?;
    }
    let outcome = state
        .services
        .apply_callback(&ctx, &body, &state.settings.onboarding.policy)
        .await?;
    if outcome.status == rolegate_core::orgs::OrgStatus::Failed {
        // The stack should fail with a reason the customer can act on.
        let message = outcome
            .message
            .clone()
            .unwrap_or_else(|| "rolegate could not assume the role".to_owned());
        return Err(ApiError::new(
            StatusCode::FAILED_DEPENDENCY,
            "role_not_assumable",
            message,
        ));
    }
    Ok(Json(outcome).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrateRequest {
    org_name: Option<String>,
}

fn settings(state: &AppState) -> Result<OnboardingSettings, ApiError> {
    let o = &state.settings.onboarding;
    let account = o.provider_account_id.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_configured",
            "onboarding.provider_account_id is not set",
        )
    })?;
    Ok(OnboardingSettings {
        provider_account_id: account,
        provider_principal_arn: o.provider_principal_arn.clone(),
        callback_url: state.callback_url.clone(),
        region: o.region.clone(),
        partition: o.partition.clone(),
        access_level: o.access_level.clone(),
        max_session_duration: o.max_session_duration,
        template_url_ttl: o.template_url_ttl,
    })
}

async fn issue(state: &AppState, caller: &Caller, org: &OrgName) -> Result<Response, ApiError> {
    crate::auth::require_operator(&caller.principal)?;
    // 404/403 for the org come before any configuration problem.
    state.services.org_record(&caller.principal, org).await?;
    let s = settings(state)?;
    let templates = state.templates.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_configured",
            "onboarding.template_bucket is not set",
        )
    })?;
    let links: OnboardingLinks = state
        .services
        .issue_onboarding(
            &caller.ctx,
            &caller.principal,
            org,
            &s,
            templates.as_ref(),
            ONBOARDING_TEMPLATE,
        )
        .await?;
    let mut res = Json(links).into_response();
    res.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(res)
}

/// `POST /api/integrate {org_name}` (the prototype's path).
async fn integrate(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<IntegrateRequest>,
) -> Result<Response, ApiError> {
    let name = req
        .org_name
        .ok_or_else(|| ApiError::invalid_field("org_name", "org_name is required"))?;
    issue(&state, &caller, &OrgName::parse(&name)?).await
}

/// `GET /api/orgs/{org}/onboarding`: the same links; issuing them replaces the callback secret.
async fn onboarding_links(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Response, ApiError> {
    issue(&state, &caller, &OrgName::parse(&org)?).await
}

/// `POST /api/orgs/{org}/binding/reset`.
async fn reset_binding(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Json<rolegate_core::orgs::Org>, ApiError> {
    Ok(Json(
        state
            .services
            .reset_binding(&caller.ctx, &caller.principal, &OrgName::parse(&org)?)
            .await?,
    ))
}
