use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use rolegate_core::ids::UserId;
use rolegate_core::users::{CreateUserCommand, User};
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::AppState;

pub fn router(state: &AppState) -> Router<AppState> {
    let idem = || middleware::from_fn_with_state(state.clone(), crate::idempotency::optional);
    Router::new()
        .route("/api/users", post(create).route_layer(idem()).get(list))
        .route("/api/users/{id}", get(show).delete(disable))
        .route("/api/users/{id}/token", post(rotate).route_layer(idem()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    user_id: Option<String>,
    role: Option<String>,
    metadata: Option<serde_json::Value>,
}

/// A user plus its token, which is shown only in this response.
#[derive(Debug, Serialize)]
pub struct UserWithTokenResponse {
    #[serde(flatten)]
    user: User,
    token: String,
}

fn with_token(status: StatusCode, user: User, token: &secrecy::SecretString) -> Response {
    let body = UserWithTokenResponse {
        user,
        token: token.expose_secret().to_owned(),
    };
    let mut res = (status, Json(body)).into_response();
    res.headers_mut().insert(
        "cache-control",
        axum::http::HeaderValue::from_static("no-store"),
    );
    res
}

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
    let (user, token) = state
        .services
        .create_user(&caller.ctx, &caller.principal, cmd)
        .await?;
    Ok(with_token(StatusCode::CREATED, user, &token))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    let users = state.services.list_users(&caller.principal).await?;
    Ok(Json(serde_json::json!({ "users": users })))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<User>, ApiError> {
    let id = UserId::parse(&id)?;
    Ok(Json(state.services.get_user(&caller.principal, &id).await?))
}

async fn disable(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<User>, ApiError> {
    let id = UserId::parse(&id)?;
    Ok(Json(
        state
            .services
            .disable_user(&caller.ctx, &caller.principal, &id)
            .await?,
    ))
}

async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = UserId::parse(&id)?;
    let (user, token) = state
        .services
        .rotate_user_token(&caller.ctx, &caller.principal, &id)
        .await?;
    Ok(with_token(StatusCode::OK, user, &token))
}
