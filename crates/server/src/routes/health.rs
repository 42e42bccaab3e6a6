use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/health", get(health))
        .route("/api/ready", get(ready))
}

/// Liveness: touches no dependency.
async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

/// Readiness: the store must be reachable and writable.
async fn ready(State(state): State<AppState>) -> Response {
    match state.services.vault.store().ping().await {
        Ok(()) => Json(json!({"status": "ready", "store": state.services.vault.store().engine()}))
            .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                format!(
                    "the {} store is not reachable or not writable",
                    state.services.vault.store().engine()
                ),
            )
            .into_response()
        }
    }
}
