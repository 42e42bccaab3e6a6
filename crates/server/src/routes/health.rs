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
    /// `ready`, or `degraded` when the store may lose acknowledged writes (a Redis started
    /// with `store_allow_volatile_redis = true`; `warnings` says why).
    #[schema(example = "ready")]
    status: &'static str,
    /// The storage engine: `sqlite`, `postgres` or `redis`.
    store: &'static str,
    /// Why the status is `degraded`.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    warnings: Vec<String>,
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
/// The store must be reachable and writable. The check is a durable write, made at most once
/// a second; calls in between get its cached result.
#[utoipa::path(
    get, path = "/api/ready", operation_id = "ready", tag = "health",
    responses(
        (status = 200, description = "Ready to serve.", body = ReadyResponse),
        (status = 503, description = "`store_unavailable`, naming the store (with `Retry-After`).", body = ErrorBody),
    )
)]
async fn ready(State(state): State<AppState>) -> Response {
    let store = state.services.records.vault().store();
    match state.readiness.check(store.as_ref()).await {
        Ok(()) => {
            let warnings = state.readiness.degraded().to_vec();
            Json(ReadyResponse {
                status: if warnings.is_empty() {
                    "ready"
                } else {
                    "degraded"
                },
                store: store.engine(),
                warnings,
            })
            .into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            // The answer is re-checked at most once a second: a probe may come back then.
            ApiError::new(
                Code::StoreUnavailable,
                format!(
                    "the {} store is not reachable or not writable",
                    state.services.records.engine()
                ),
            )
            .with_header(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            )
            .into_response()
        }
    }
}
