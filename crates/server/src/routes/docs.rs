//! `GET /api/openapi.json` (the document [`crate::openapi`] builds) and `/docs`, an
//! interactive page for it. Both are public, like `/api/health`: they describe the API and
//! hold no data. Every asset of `/docs` is compiled into the binary (ADR 0006), so the page
//! works with no internet access.

use std::sync::Arc;

use axum::{Extension, Json, Router};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::state::AppState;

/// Where the document is served; `/docs` loads it from here.
pub const OPENAPI_PATH: &str = "/api/openapi.json";

/// The finished document, handed to the handler as an extension once every router is built.
#[derive(Clone)]
pub struct Document(pub Arc<utoipa::openapi::OpenApi>);

impl std::fmt::Debug for Document {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Document")
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(openapi_json))
}

/// `/docs`: Swagger UI, served from the binary by utoipa-swagger-ui (with `vendored`). No
/// validator badge (it would call an outside service), no top bar (its box loads any URL),
/// and no remembered credentials.
pub fn ui() -> Router<AppState> {
    let config = Config::new([OPENAPI_PATH])
        .use_base_layout()
        .validator_url("none")
        .try_it_out_enabled(true)
        .persist_authorization(false)
        .display_request_duration(true)
        .doc_expansion("list")
        .filter(true);
    SwaggerUi::new("/docs").config(config).into()
}

/// The OpenAPI document
///
/// This document: every route rolegate serves, generated from the code.
#[utoipa::path(
    get, path = "/api/openapi.json", operation_id = "openapi_document", tag = "docs",
    responses((status = 200, description = "The OpenAPI 3.1 document.", content_type = "application/json", body = Object))
)]
async fn openapi_json(Extension(doc): Extension<Document>) -> Json<Arc<utoipa::openapi::OpenApi>> {
    Json(doc.0)
}
