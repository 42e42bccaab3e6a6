use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rolegate_core::ids::OrgName;
use rolegate_core::orgs::{Org, OrgStatus, RegisterOrgCommand, RegisteredOrg};
use rolegate_core::policy::Action;
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::authorize::authorized;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::idempotency::{Mode, idempotent};
use crate::routes::no_store;
use crate::state::AppState;

pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    let register_org = |r: UtoipaMethodRouter<AppState>| {
        idempotent(
            authorized(r, Action::RegisterOrg, state),
            Mode::Required,
            state,
        )
    };
    OpenApiRouter::new()
        .routes(register_org(routes!(register_legacy)))
        .routes(register_org(routes!(register)))
        .routes(authorized(routes!(list), Action::ListOrgs, state))
        .routes(authorized(routes!(show), Action::ReadOrg, state))
        .routes(authorized(routes!(offboard), Action::OffboardOrg, state))
        .routes(idempotent(
            authorized(routes!(rotate_key), Action::RotateOrgApiKey, state),
            Mode::Optional,
            state,
        ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterOrgRequest {
    /// 3 to 32 characters: letters, digits and `-`; starts with a letter, does not end with
    /// `-`. Case-insensitive (kept lowercase).
    #[schema(required = true, nullable = false, example = "acme-corp")]
    org_name: Option<String>,
    /// The customer's 12-digit AWS account, when known: only a callback from it can bind.
    #[schema(example = "111122223333", pattern = "^[0-9]{12}$")]
    account_id: Option<String>,
}

/// Registration's answer: the API key appears here once and never again.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegisterOrgResponse {
    org_name: String,
    /// The `sts:ExternalId` the customer's role must require.
    external_id: String,
    /// `rgk_…`: shown once; only its digest is stored.
    api_key: String,
    api_key_id: String,
    status: OrgStatus,
    expected_account_id: Option<String>,
    created_at: String,
}

/// One page of organisations.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrgListResponse {
    orgs: Vec<Org>,
    /// Pass as `cursor` for the next page; `null` on the last.
    next_cursor: Option<String>,
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

/// Register an organisation
///
/// Creates the customer with its ExternalId and API key (shown only in this answer).
#[utoipa::path(
    post, path = "/api/orgs", operation_id = "register_org", tag = "orgs",
    request_body = RegisterOrgRequest,
    responses(
        (status = 201, description = "Registered; `Location` names the org. `api_key` is shown only here.", body = RegisterOrgResponse, links(
            ("show_org" = (operation_id = "show_org", parameters(("org" = "$response.body#/org_name")), description = "The organisation just registered.")),
            ("onboarding_links" = (operation_id = "onboarding_links", parameters(("org" = "$response.body#/org_name")), description = "Its onboarding links.")),
        )),
        (status = 400, description = "`idempotency_key_required`, `invalid_field`, `invalid_json`.", body = ErrorBody),
        (status = 409, description = "`org_exists`, or `idempotency_in_progress`.", body = ErrorBody),
    )
)]
async fn register(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<RegisterOrgRequest>,
) -> Result<Response, ApiError> {
    let name = req
        .org_name
        .ok_or_else(|| ApiError::invalid_field("org_name", "org_name is required"))?;
    let cmd = RegisterOrgCommand::parse(&name, req.account_id.as_deref())?;
    let created = state.services.orgs.register(&caller, cmd).await?;
    Ok(registered(StatusCode::CREATED, created))
}

/// Register an organisation (the prototype's path)
///
/// The same as `POST /api/orgs`.
#[utoipa::path(
    post, path = "/api/register", operation_id = "register_org_legacy", tag = "orgs",
    request_body = RegisterOrgRequest,
    responses(
        (status = 201, description = "Registered; `api_key` is shown only here.", body = RegisterOrgResponse, links(
            ("show_org" = (operation_id = "show_org", parameters(("org" = "$response.body#/org_name")), description = "The organisation just registered.")),
            ("onboarding_links" = (operation_id = "onboarding_links", parameters(("org" = "$response.body#/org_name")), description = "Its onboarding links.")),
        )),
        (status = 400, description = "`idempotency_key_required`, `invalid_field`, `invalid_json`.", body = ErrorBody),
        (status = 409, description = "`org_exists`, or `idempotency_in_progress`.", body = ErrorBody),
    )
)]
async fn register_legacy(
    state: State<AppState>,
    caller: Caller,
    req: ApiJson<RegisterOrgRequest>,
) -> Result<Response, ApiError> {
    register(state, caller, req).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
    /// `next_cursor` from the previous page: an opaque token (today an organisation's name;
    /// the page starts after it). Keep it in step with `OrgName::PATTERN` (a test does).
    #[param(
        pattern = "^[a-zA-Z][a-zA-Z0-9-]{1,30}[a-zA-Z0-9]$",
        min_length = 3,
        max_length = 32
    )]
    cursor: Option<String>,
}

/// List organisations
///
/// An operator sees its own, an admin all, an API key only its organisation.
#[utoipa::path(
    get, path = "/api/orgs", operation_id = "list_orgs", tag = "orgs",
    params(ListQuery),
    responses(
        (status = 200, description = "One page, by name.", body = OrgListResponse),
        (status = 400, description = "`invalid_field` (`limit`, `cursor`).", body = ErrorBody),
    )
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<OrgListResponse>, ApiError> {
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
        .orgs
        .list(&caller, q.cursor.as_deref(), limit)
        .await?;
    Ok(Json(OrgListResponse {
        orgs: page.orgs,
        next_cursor: page.next,
    }))
}

fn org_name(raw: &str) -> Result<OrgName, ApiError> {
    Ok(OrgName::parse(raw)?)
}

/// Show an organisation
///
/// No secret but the ExternalId. Its owner, an admin, or the org's own API key.
#[utoipa::path(
    get, path = "/api/orgs/{org}", operation_id = "show_org", tag = "orgs",
    params(("org" = String, Path, description = "The organisation's name.")),
    responses(
        (status = 200, description = "The organisation.", body = Org),
        (status = 404, description = "`not_found`.", body = ErrorBody),
    )
)]
async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Json<Org>, ApiError> {
    Ok(Json(
        state.services.orgs.get(&caller, &org_name(&org)?).await?,
    ))
}

/// Offboard an organisation
///
/// Kills its API key; the record and its audit trail stay. Offboarding an offboarded
/// organisation answers the record again.
#[utoipa::path(
    delete, path = "/api/orgs/{org}", operation_id = "offboard_org", tag = "orgs",
    params(("org" = String, Path, description = "The organisation's name.")),
    responses(
        (status = 200, description = "The offboarded organisation.", body = Org),
        (status = 404, description = "`not_found`.", body = ErrorBody),
    )
)]
async fn offboard(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Json<Org>, ApiError> {
    Ok(Json(
        state
            .services
            .orgs
            .offboard(&caller, &org_name(&org)?)
            .await?,
    ))
}

/// Rotate an organisation's API key
///
/// The old key dies at once; the new one is shown only here. With `revoke_sessions` on a
/// validated org, the sessions the old key obtained are denied too: the customer role gets
/// a `Deny *` for SourceIdentity `apikey.<old key id>` issued before now (ADR 0024).
#[utoipa::path(
    post, path = "/api/orgs/{org}/api-key", operation_id = "rotate_org_api_key", tag = "orgs",
    params(("org" = String, Path, description = "The organisation's name.")),
    responses(
        (status = 200, description = "The organisation and its new API key.", body = RegisterOrgResponse),
        (status = 404, description = "`not_found`.", body = ErrorBody),
        (status = 409, description = "`org_offboarded`.", body = ErrorBody),
    )
)]
async fn rotate_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Response, ApiError> {
    let rotated = state
        .services
        .orgs
        .rotate_api_key(&caller, &org_name(&org)?)
        .await?;
    Ok(registered(StatusCode::OK, rotated))
}
