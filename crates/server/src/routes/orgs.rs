use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use rolegate_core::ids::OrgName;
use rolegate_core::orgs::{Org, OrgStatus, RegisterOrgCommand, RegisteredOrg};
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};

use crate::auth::{Caller, require_operator};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::AppState;

pub fn router(state: &AppState) -> Router<AppState> {
    let required = || middleware::from_fn_with_state(state.clone(), crate::idempotency::required);
    let optional = || middleware::from_fn_with_state(state.clone(), crate::idempotency::optional);
    Router::new()
        .route("/api/register", post(register).route_layer(required()))
        .route(
            "/api/orgs",
            post(register).route_layer(required()).get(list),
        )
        .route("/api/orgs/{org}", get(show).delete(offboard))
        .route(
            "/api/orgs/{org}/api-key",
            post(rotate_key).route_layer(optional()),
        )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterOrgRequest {
    org_name: Option<String>,
    account_id: Option<String>,
}

/// Registration's answer: the API key appears here once and never again.
#[derive(Debug, Serialize)]
pub struct RegisterOrgResponse {
    org_name: String,
    external_id: String,
    api_key: String,
    api_key_id: String,
    status: OrgStatus,
    expected_account_id: Option<String>,
    created_at: String,
}

fn no_store(mut res: Response) -> Response {
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn registered(status: StatusCode, r: RegisteredOrg) -> Response {
    let location = format!("/api/orgs/{}", r.org.org_name);
    let body = RegisterOrgResponse {
        org_name: r.org.org_name,
        external_id: r.org.external_id,
        api_key: r.api_key.expose_secret().to_owned(),
        api_key_id: r.org.api_key_id,
        status: r.org.status,
        expected_account_id: r.org.expected_account_id,
        created_at: r.org.created_at,
    };
    let mut res = (status, Json(body)).into_response();
    if status == StatusCode::CREATED
        && let Ok(v) = HeaderValue::from_str(&location)
    {
        res.headers_mut().insert(header::LOCATION, v);
    }
    no_store(res)
}

async fn register(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<RegisterOrgRequest>,
) -> Result<Response, ApiError> {
    require_operator(&caller.principal)?;
    let name = req
        .org_name
        .ok_or_else(|| ApiError::invalid_field("org_name", "org_name is required"))?;
    let cmd = RegisterOrgCommand::parse(&name, req.account_id.as_deref())?;
    let created = state
        .services
        .register_org(&caller.ctx, &caller.principal, cmd)
        .await?;
    Ok(registered(StatusCode::CREATED, created))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    limit: Option<usize>,
    cursor: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 500 {
        return Err(ApiError::invalid_field(
            "limit",
            "limit must be between 1 and 500",
        ));
    }
    if let Some(c) = &q.cursor {
        OrgName::parse(c).map_err(|_| {
            ApiError::invalid_field("cursor", "cursor is not one this server returned")
        })?;
    }
    let page = state
        .services
        .list_orgs(&caller.principal, q.cursor.as_deref(), limit)
        .await?;
    Ok(Json(
        serde_json::json!({ "orgs": page.orgs, "next_cursor": page.next }),
    ))
}

fn org_name(raw: &str) -> Result<OrgName, ApiError> {
    Ok(OrgName::parse(raw)?)
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Json<Org>, ApiError> {
    Ok(Json(
        state
            .services
            .get_org(&caller.principal, &org_name(&org)?)
            .await?,
    ))
}

async fn offboard(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Json<Org>, ApiError> {
    Ok(Json(
        state
            .services
            .offboard_org(&caller.ctx, &caller.principal, &org_name(&org)?)
            .await?,
    ))
}

async fn rotate_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Response, ApiError> {
    let rotated = state
        .services
        .rotate_api_key(&caller.ctx, &caller.principal, &org_name(&org)?)
        .await?;
    Ok(registered(StatusCode::OK, rotated))
}
