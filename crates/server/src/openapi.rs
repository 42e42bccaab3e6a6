//! The OpenAPI 3.1 document, generated from the code: each handler's `#[utoipa::path]`
//! annotation, the `ToSchema` types it names, and what this module adds to every operation
//! (security schemes, the one error shape, default error responses).
//!
//! # Adding a route
//!
//! 1. Annotate the handler with `#[utoipa::path(post, path = "/api/…", tag = "…", responses(…))]`
//!    and derive `ToSchema` on its request and response types (`IntoParams` on a query).
//!    The first line of the doc comment is the summary. Write
//!    `security(("operator_token" = []))` when an API key may not call it (utoipa wants the
//!    literal, [`OPERATOR_TOKEN`](crate::openapi::OPERATOR_TOKEN)); a protected route without
//!    `security` gets "operator token or org API key".
//! 2. Register it in its resource's `router()` with `.routes(routes!(handler))`, or, for a POST,
//!    `.routes(idempotent(routes!(handler), Mode::Optional, state))` (`Mode::Required` where a
//!    retry must never act twice). The path and methods come from the annotation, so the router
//!    and the document cannot disagree, and `idempotent` both enforces and documents the
//!    `Idempotency-Key` header. One handler has one path: an alias is a second small annotated
//!    function that calls the first.
//! 3. A new resource module's `router()` (an `OpenApiRouter<AppState>`) is merged in
//!    `app::router`: into the authenticated list, or the open one if it authenticates itself.
//!
//! Never register a route with axum's `.route(…)`: it would be served but missing from the
//! document. `crates/cli/tests/api/openapi.rs` catches that (it scans this crate for raw
//! registrations, and probes every documented operation on a running server).

use utoipa::OpenApi as _;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder};
use utoipa::openapi::security::{SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, Response, ResponseBuilder};

use rolegate_core::Code;
use utoipa::openapi::schema::Schema;

use crate::error::ErrorBody;

/// Operators' bearer token (`Authorization: Bearer rgt_…`).
pub const OPERATOR_TOKEN: &str = "operator_token";
/// An organisation's API key (`X-Api-Key: rgk_…`).
pub const ORG_API_KEY: &str = "org_api_key";

/// The parts of the document that belong to no single route.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "rolegate",
        description = "Vends short-lived AWS STS credentials for customers' accounts.\n\n\
            Every error has the shape of `ErrorBody`; clients match on `error.code`, never on \
            the message. Every response carries `x-request-id`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    components(schemas(ErrorBody)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "health", description = "Liveness and readiness; no authentication."),
        (name = "users", description = "Operators and their bearer tokens (admin)."),
        (name = "orgs", description = "Organisations (customers): registration, API keys, offboarding."),
        (name = "onboarding", description = "Connecting a customer's AWS account: links, the signed callback, binding."),
        (name = "audit", description = "The hash-chained audit log."),
        (name = "jobs", description = "Work in a customer's AWS account (key pairs), run by workers with a session policy per job."),
        (name = "metrics", description = "Prometheus metrics; no authentication, internal network only."),
        (name = "docs", description = "This document; no authentication."),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, doc: &mut OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let mut bearer = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("rgt_…")
            .build();
        bearer.description = Some(
            "An operator's token: `Authorization: Bearer rgt_…`. Admins are operators with \
             role `admin`."
                .to_owned(),
        );
        components.add_security_scheme(OPERATOR_TOKEN, SecurityScheme::Http(bearer));
        components.add_security_scheme(
            ORG_API_KEY,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Api-Key",
                "An organisation's API key: `X-Api-Key: rgk_…` (also accepted as \
                 `Authorization: Bearer rgk_…`). It sees only its own organisation.",
            ))),
        );
        let responses = &mut components.responses;
        responses.insert(
            "Error".to_owned(),
            error_response("An error (see `error.code`)."),
        );
        responses.insert(
            "Unauthorized".to_owned(),
            error_response(
                "`unauthorized`: no, malformed or unknown credentials (with `WWW-Authenticate`).",
            ),
        );
        responses.insert(
            "Forbidden".to_owned(),
            error_response("`forbidden`: authenticated, but not allowed."),
        );
    }
}

/// A response whose body is the one error shape.
pub(crate) fn error_response(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                Content::new(Some(Ref::from_schema_name("ErrorBody"))),
            )
            .build(),
    )
}

/// Every operation of a path item.
pub fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// Marks the operations of the authenticated routers: either scheme unless the annotation
/// names one, and the 401/403 every such route can answer.
pub fn protect(doc: &mut OpenApi) {
    for item in doc.paths.paths.values_mut() {
        for op in operations_mut(item) {
            op.security.get_or_insert_with(|| {
                vec![
                    SecurityRequirement::new(OPERATOR_TOKEN, Vec::<String>::new()),
                    SecurityRequirement::new(ORG_API_KEY, Vec::<String>::new()),
                ]
            });
            for (status, name) in [("401", "Unauthorized"), ("403", "Forbidden")] {
                op.responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
            }
        }
    }
}

/// The whole document: the shared parts, then the routers' operations, each given the
/// `default` error response, and the error shape's `code` listing every code of the table in
/// `rolegate_core::error::Code`.
#[must_use]
pub fn document(routes: OpenApi) -> OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(routes);
    list_error_codes(&mut doc);
    for item in doc.paths.paths.values_mut() {
        for op in operations_mut(item) {
            op.responses
                .responses
                .entry("default".to_owned())
                .or_insert_with(|| RefOr::Ref(Ref::from_response_name("Error")));
        }
    }
    doc
}

/// Gives `ErrorDetail.code` an `enum` of every code, each described in the schema's text, so a
/// client generator (and a fuzzer) knows the complete list.
fn list_error_codes(doc: &mut OpenApi) {
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    let Some(RefOr::T(Schema::Object(detail))) = components.schemas.get_mut("ErrorDetail") else {
        return;
    };
    let Some(RefOr::T(Schema::Object(code))) = detail.properties.get_mut("code") else {
        return;
    };
    code.enum_values = Some(Code::ALL.iter().map(|c| c.as_str().into()).collect());
    let mut text = String::from("Stable snake_case code: match on this. Every code:\n\n");
    for c in Code::ALL {
        text.push_str(&format!(
            "- `{}` ({}): {}\n",
            c.as_str(),
            c.status(),
            c.description()
        ));
    }
    code.description = Some(text);
}
