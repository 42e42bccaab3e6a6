use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rolegate_core::ids::UserId;
use rolegate_core::policy::Action;
use rolegate_core::users::{CreateUserCommand, User};
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
use crate::state::AppState;

pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(idempotent(
            authorized(routes!(create), Action::CreateUser, state),
            Mode::Optional,
            state,
        ))
        .routes(authorized(routes!(list), Action::ListUsers, state))
        .routes(authorized(routes!(show), Action::ReadUser, state))
        .routes(authorized(routes!(disable), Action::DisableUser, state))
        .routes(idempotent(
            authorized(routes!(rotate), Action::RotateUserToken, state),
            Mode::Optional,
            state,
        ))
        .routes(authorized(routes!(set_role), Action::SetUserRole, state))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// 2 to 64 characters: letters, digits and `+ = , . @ _ -`; case-insensitive (kept lowercase).
    #[schema(required = true, nullable = false, example = "alice")]
    user_id: Option<String>,
    /// `admin` or `operator` (the default; `null` means the default too).
    #[schema(nullable = true, example = "operator", pattern = "^(admin|operator)$")]
    role: Option<String>,
    /// A JSON object kept with the operator (default `{}`; `null` means the default too), at
    /// most 4096 bytes as JSON.
    #[schema(nullable = true, value_type = Option<Object>)]
    metadata: Option<serde_json::Value>,
}

/// A user plus its token, which is shown only in this response.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserWithTokenResponse {
    #[serde(flatten)]
    user: User,
    /// `rgt_…`: shown once; only its digest is stored.
    token: String,
}

/// Every operator.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserListResponse {
    users: Vec<User>,
}

fn with_token(status: StatusCode, user: User, token: &secrecy::SecretString) -> Response {
    let body = UserWithTokenResponse {
        user,
        token: token.expose_secret().to_owned(),
    };
    crate::routes::no_store((status, Json(body)).into_response())
}

/// Create an operator
///
/// Returns its bearer token, once.
#[utoipa::path(
    post, path = "/api/users", operation_id = "create_user", tag = "users",
    request_body = CreateUserRequest,
    responses(
        (status = 201, description = "Created; `token` is shown only here.", body = UserWithTokenResponse, links(
            ("show_user" = (operation_id = "show_user", parameters(("user_id" = "$response.body#/user_id")), description = "The operator just created.")),
        )),
        (status = 400, description = "`invalid_field`, `invalid_json`.", body = ErrorBody),
        (status = 409, description = "`user_exists`.", body = ErrorBody),
    )
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateUserRequest>,
) -> Result<Response, ApiError> {
    let user_id = req
        .user_id
        .ok_or_else(|| ApiError::invalid_field("user_id", "user_id is required"))?;
    let role = req.role.unwrap_or_else(|| "operator".to_owned());
    let cmd = CreateUserCommand::parse(&user_id, &role, req.metadata)?;
    let (user, token) = state.services.users.create(&caller, cmd).await?;
    Ok(with_token(StatusCode::CREATED, user, &token))
}

/// List operators
///
/// Admins see everyone; an operator sees only itself.
#[utoipa::path(
    get, path = "/api/users", operation_id = "list_users", tag = "users",
    responses((status = 200, description = "The operators.", body = UserListResponse))
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<UserListResponse>, ApiError> {
    let users = state.services.users.list(&caller).await?;
    Ok(Json(UserListResponse { users }))
}

/// Show an operator
#[utoipa::path(
    get, path = "/api/users/{user_id}", operation_id = "show_user", tag = "users",
    params(("user_id" = String, Path, description = "The operator's user id.")),
    responses(
        (status = 200, description = "The operator.", body = User),
        (status = 404, description = "`not_found`.", body = ErrorBody),
    )
)]
async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<User>, ApiError> {
    let id = UserId::parse(&id)?;
    Ok(Json(state.services.users.get(&caller, &id).await?))
}

/// Disable an operator
///
/// Its token stops working at once, on every replica. The record stays (it is named by the
/// audit log), readable with `GET` as disabled. Disabling a disabled operator answers the
/// record again. With `revoke_sessions`, the sessions it already obtained are denied too:
/// the customer role of every org (with the setting) where the access history shows it
/// obtained credentials, a console session or a job gets a `Deny *` for its
/// SourceIdentity issued before now (ADR 0024).
#[utoipa::path(
    delete, path = "/api/users/{user_id}", operation_id = "disable_user", tag = "users",
    params(("user_id" = String, Path, description = "The operator's user id.")),
    responses(
        (status = 200, description = "The disabled operator.", body = User),
        (status = 404, description = "`not_found`.", body = ErrorBody),
        (status = 409, description = "`cannot_disable_self`: an admin cannot disable itself.", body = ErrorBody),
    )
)]
async fn disable(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<User>, ApiError> {
    let id = UserId::parse(&id)?;
    Ok(Json(state.services.users.disable(&caller, &id).await?))
}

/// Rotate an operator's token
///
/// The old token dies at once; the new one is shown only here.
#[utoipa::path(
    post, path = "/api/users/{user_id}/token", operation_id = "rotate_user_token", tag = "users",
    params(("user_id" = String, Path, description = "The operator's user id.")),
    responses(
        (status = 200, description = "The operator and its new token.", body = UserWithTokenResponse),
        (status = 404, description = "`not_found`.", body = ErrorBody),
        (status = 409, description = "`user_disabled`.", body = ErrorBody),
    )
)]
async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = UserId::parse(&id)?;
    let (user, token) = state.services.users.rotate_token(&caller, &id).await?;
    Ok(with_token(StatusCode::OK, user, &token))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRoleRequest {
    /// `admin` or `operator`.
    #[schema(
        required = true,
        nullable = false,
        example = "admin",
        pattern = "^(admin|operator)$"
    )]
    role: Option<String>,
}

/// Change an operator's role (admins)
///
/// Takes effect at once for its token and its portal sessions, and is audited as
/// `user.role.set`. An admin cannot change its own role, so an installation always keeps
/// the admin who asked. The portal's operators page calls the same service.
#[utoipa::path(
    put, path = "/api/users/{user_id}/role", operation_id = "set_user_role", tag = "users",
    params(("user_id" = String, Path, description = "The operator's user id.")),
    request_body = SetRoleRequest,
    responses(
        (status = 200, description = "The operator with its new role (the same answer when it already had it).", body = User),
        (status = 400, description = "`invalid_field`, `invalid_json`.", body = ErrorBody),
        (status = 404, description = "`not_found`.", body = ErrorBody),
        (status = 409, description = "`cannot_disable_self`: an admin cannot change its own role; `user_disabled`.", body = ErrorBody),
    )
)]
async fn set_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<SetRoleRequest>,
) -> Result<Json<User>, ApiError> {
    let id = UserId::parse(&id)?;
    let role = req
        .role
        .ok_or_else(|| ApiError::invalid_field("role", "role is required"))?;
    let role = rolegate_core::ids::Role::parse(&role)?;
    Ok(Json(
        state.services.users.set_role(&caller, &id, role).await?,
    ))
}
