use axum::Json;
use axum::extract::State;
use rolegate_core::Code;

use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    #[schema(example = "ok")]
    status: &'static str,
    /// The server's version.
    version: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyResponse {
    #[schema(example = "ready")]
    status: &'static str,
    /// The storage engine: `sqlite` or `redis`.
    store: &'static str,
}

/// Liveness
///
/// Touches no dependency.
#[utoipa::path(
    get, path = "/api/health", operation_id = "health", tag = "health",
    responses((status = 200, description = "The process is up.", body = HealthResponse))
)]
async fn health() -> Json<HealthResponse> {
    Json(HealthResponse {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// Readiness
///
/// The store must be reachable and writable.
#[utoipa::path(
    get, path = "/api/ready", operation_id = "ready", tag = "health",
    responses(
        (status = 200, description = "Ready to serve.", body = ReadyResponse),
        (status = 503, description = "`store_unavailable`.", body = ErrorBody),
    )
)]
async fn ready(State(state): State<AppState>) -> Response {
    match state.services.records.ping().await {
        Ok(()) => Json(ReadyResponse {
            status: "ready",
            store: state.services.records.engine(),
        })
        .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            ApiError::new(
                Code::StoreUnavailable,
                format!(
                    "the {} store is not reachable or not writable",
                    state.services.records.engine()
                ),
            )
            .into_response()
        }
    }
}
