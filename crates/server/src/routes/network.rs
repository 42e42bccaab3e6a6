//! Source allowlists: `PUT /api/orgs/{org}/network` (the org's and its API key's blocks,
//! `bind_source_ip`) and `PUT /api/users/{user_id}/allowed-cidrs` (an operator's).

use axum::Json;
use axum::extract::{Path, State};
use rolegate_core::ids::{OrgName, UserId};
use rolegate_core::model::{Org, User};
use rolegate_core::network::parse_list;
use rolegate_core::orgs::NetworkCommand;
use rolegate_core::policy::Action;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::authorize::authorized;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::state::AppState;

pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(authorized(routes!(set_org), Action::SetOrgNetwork, state))
        .routes(authorized(routes!(set_user), Action::SetUserNetwork, state))
}

/// Fields left out keep their value; `[]` allows every address.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgNetworkRequest {
    /// IPv4/IPv6 blocks (`203.0.113.0/24`, `2001:db8::/32`, or one address) credentials,
    /// console sign-ins and jobs for this org may be asked from, by anyone; at most 32.
    #[schema(example = json!(["203.0.113.0/24", "2001:db8::/32"]))]
    allowed_cidrs: Option<Vec<String>>,
    /// Blocks the org's API key may be used from (for those actions); at most 32.
    #[schema(example = json!(["198.51.100.7"]))]
    api_key_allowed_cidrs: Option<Vec<String>>,
    /// Credentials carry a session-policy deny of calls from outside `allowed_cidrs` (or the
    /// API key's blocks, or the requester's own address when neither is set).
    bind_source_ip: Option<bool>,
}

/// An operator's blocks.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserNetworkRequest {
    /// IPv4/IPv6 blocks this operator may use credentials, console sign-ins and jobs from;
    /// `[]` allows every address; at most 32.
    #[schema(required = true, nullable = false, example = json!(["203.0.113.0/24"]))]
    allowed_cidrs: Option<Vec<String>>,
}

/// Set an organisation's source allowlists
///
/// A request from outside a non-empty allowlist (the source address as the trusted-proxy
/// logic determines it) gets 403 `source_ip_not_allowed`, audited and logged as an alert.
#[utoipa::path(
    put, path = "/api/orgs/{org}/network", operation_id = "set_org_network", tag = "orgs",
    params(("org" = String, Path, description = "The organisation's name.")),
    request_body = OrgNetworkRequest,
    responses(
        (status = 200, description = "The organisation.", body = Org),
        (status = 400, description = "`invalid_field` (`allowed_cidrs`, `api_key_allowed_cidrs`).", body = ErrorBody),
        (status = 403, description = "`forbidden`.", body = ErrorBody),
        (status = 404, description = "`not_found`.", body = ErrorBody),
        (status = 409, description = "`org_offboarded`.", body = ErrorBody),
    )
)]
async fn set_org(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    ApiJson(req): ApiJson<OrgNetworkRequest>,
) -> Result<Json<Org>, ApiError> {
    let org = OrgName::parse(&org)?;
    let cmd = NetworkCommand {
        allowed_cidrs: req
            .allowed_cidrs
            .as_deref()
            .map(|l| parse_list("allowed_cidrs", l))
            .transpose()?,
        api_key_allowed_cidrs: req
            .api_key_allowed_cidrs
            .as_deref()
            .map(|l| parse_list("api_key_allowed_cidrs", l))
            .transpose()?,
        bind_source_ip: req.bind_source_ip,
    };
    Ok(Json(
        state.services.orgs.set_network(&caller, &org, &cmd).await?,
    ))
}

/// Set an operator's source allowlist
#[utoipa::path(
    put, path = "/api/users/{user_id}/allowed-cidrs", operation_id = "set_user_allowed_cidrs", tag = "users",
    params(("user_id" = String, Path, description = "The operator's id.")),
    request_body = UserNetworkRequest,
    responses(
        (status = 200, description = "The operator.", body = User),
        (status = 400, description = "`invalid_field` (`allowed_cidrs`).", body = ErrorBody),
        (status = 403, description = "`forbidden`.", body = ErrorBody),
        (status = 404, description = "`not_found`.", body = ErrorBody),
    )
)]
async fn set_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(user_id): Path<String>,
    ApiJson(req): ApiJson<UserNetworkRequest>,
) -> Result<Json<User>, ApiError> {
    let id = UserId::parse(&user_id)?;
    let list = req
        .allowed_cidrs
        .ok_or_else(|| ApiError::invalid_field("allowed_cidrs", "allowed_cidrs is required"))?;
    let cidrs = parse_list("allowed_cidrs", &list)?;
    Ok(Json(
        state
            .services
            .users
            .set_allowed_cidrs(&caller, &id, cidrs)
            .await?,
    ))
}
