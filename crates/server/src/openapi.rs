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
//!    Name request values as the rest of the API does (`{org}`, `org_name`, `{user_id}`,
//!    `access_level`, `duration_seconds`, `destination`): the document then carries the
//!    server's own rules for them (`named_rule`, [`describe_settings`]), which the fuzzer
//!    (`scripts/fuzz-api`) holds the server to. Give other constrained fields their rule in
//!    `#[schema(…)]`. Where an answer names a resource another operation reads, declare
//!    `links(…)` on that response (register → `show_org`): the fuzzer's stateful phase
//!    follows them.
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
use rolegate_core::credentials::console::destination_pattern;
use rolegate_core::ids::{OrgName, UserId};
use rolegate_core::levels::{AccessLevel, MIN_DURATION_SECS};
use utoipa::openapi::request_body::RequestBody;
use utoipa::openapi::schema::{Object, Schema, SchemaType, Type};

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
        (name = "access", description = "Just-in-time access: requests for levels that need approval, approvals, time-bound grants, revocation, break-glass."),
        (name = "notifications", description = "Notification dead letters, and approve-from-Slack (signed by Slack)."),
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
        responses.insert(
            "AuthRateLimited".to_owned(),
            error_response(
                "`rate_limited`: too many failed authentications from this source (with \
                 `Retry-After` and `RateLimit-*`).",
            ),
        );
        responses.insert(
            "RequestTimeout".to_owned(),
            error_response(
                "`request_timeout`: the request's headers or body did not arrive within \
                 `header_read_timeout_secs` / `body_read_timeout_secs`.",
            ),
        );
        responses.insert("Unavailable".to_owned(), error_response(UNAVAILABLE));
    }
}

/// The 503 every operation can answer, whatever else it documents for that status.
const UNAVAILABLE: &str = "`handler_timeout`: no answer within `request_timeout_secs` (with \
    `Retry-After`); `store_unavailable`, `audit_unavailable` or `contention` when the store \
    cannot serve the request.";

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
/// answers every route can give (the `default` error response, 408 and 503 from the
/// server's timeouts, see `crate::timeouts`), the server's checks on named values
/// ([`constrain_named_values`]), and the error shape's `code` listing every code of the
/// table in `rolegate_core::error::Code`.
#[must_use]
pub fn document(routes: OpenApi) -> OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(routes);
    list_error_codes(&mut doc);
    for item in doc.paths.paths.values_mut() {
        for op in operations_mut(item) {
            let responses = &mut op.responses.responses;
            responses
                .entry("default".to_owned())
                .or_insert_with(|| RefOr::Ref(Ref::from_response_name("Error")));
            responses
                .entry("408".to_owned())
                .or_insert_with(|| RefOr::Ref(Ref::from_response_name("RequestTimeout")));
            // Wrong credentials are limited per source on every route that takes any.
            if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
                responses
                    .entry("429".to_owned())
                    .or_insert_with(|| RefOr::Ref(Ref::from_response_name("AuthRateLimited")));
            }
            match responses.get_mut("503") {
                None => {
                    responses.insert(
                        "503".to_owned(),
                        RefOr::Ref(Ref::from_response_name("Unavailable")),
                    );
                }
                Some(RefOr::T(own)) => {
                    own.description = format!("{} Also {UNAVAILABLE}", own.description);
                }
                Some(RefOr::Ref(_)) => {}
            }
            for response in op.responses.responses.values_mut() {
                if let RefOr::T(response) = response {
                    response.links.values_mut().for_each(camel_case_link);
                }
            }
        }
    }
    constrain_named_values(&mut doc);
    doc
}

/// utoipa 5 writes a link's fields as `operation_id`, `operation_ref` and `request_body`,
/// which no OpenAPI tool reads (the specification says `operationId`, …): the links that
/// routes declare in their annotations are moved to the right names here. The extension map
/// is written flattened into the link, so its keys become the link's own.
fn camel_case_link(link: &mut RefOr<utoipa::openapi::link::Link>) {
    let RefOr::T(link) = link else {
        return;
    };
    let extensions = link.extensions.get_or_insert_with(Default::default);
    for (name, value) in [
        ("operationId", std::mem::take(&mut link.operation_id)),
        ("operationRef", std::mem::take(&mut link.operation_ref)),
    ] {
        if !value.is_empty() {
            extensions.insert(name.to_owned(), value.into());
        }
    }
    if let Some(body) = link.request_body.take() {
        extensions.insert("requestBody".to_owned(), body);
    }
}

/// The request values whose rules are this server's configuration, so the document is
/// finished with them once the settings are known:
/// - `access_level`: one of the configured levels (any other name is `invalid_field`);
/// - `duration_seconds`: at most what every level allows (a level may allow more; the
///   description says so), at least 900;
/// - `destination`: an https URL on the configured partition's console.
pub fn describe_settings(doc: &mut OpenApi, levels: &[&AccessLevel], partition: &str) {
    let names: Vec<serde_json::Value> = levels.iter().map(|l| l.name().into()).collect();
    for_each_request_value(doc, "access_level", |schema| {
        if let RefOr::T(Schema::Object(object)) = schema
            && is_string(object)
        {
            let mut values = names.clone();
            if matches!(&object.schema_type, SchemaType::Array(ts) if ts.contains(&Type::Null)) {
                values.push(serde_json::Value::Null);
            }
            object.enum_values = Some(values);
        }
    });
    if let Some(max) = levels.iter().map(|l| l.max_duration_secs()).min() {
        for_each_request_value(doc, "duration_seconds", |schema| {
            if let RefOr::T(Schema::Object(object)) = schema {
                object.minimum = Some(MIN_DURATION_SECS.into());
                object.maximum = Some(max.into());
                let levels: Vec<String> = levels
                    .iter()
                    .map(|l| format!("`{}` {}", l.name(), l.max_duration_secs()))
                    .collect();
                object.description = Some(format!(
                    "{MIN_DURATION_SECS} up to the access level's maximum ({}), and the role's \
                     MaxSessionDuration. The bound here is what every level allows.",
                    levels.join(", ")
                ));
            }
        });
    }
    let pattern = destination_pattern(partition);
    for_each_request_value(doc, "destination", |schema| {
        if let RefOr::T(Schema::Object(object)) = schema
            && is_string(object)
        {
            object.pattern = Some(pattern.clone());
            object.max_length = Some(2048);
        }
    });
}

/// The server's own checks on a value, keyed by the name the value has in every route: a
/// path or query parameter, or a property of a request body. A route added later gets them
/// by using these names (`{org}`, `org_name`, `{user_id}`, …); the patterns come from the
/// parsers in `rolegate_core::ids`, so the document cannot drift from what is enforced.
fn named_rule(name: &str) -> Option<(&'static str, usize, usize)> {
    match name {
        "org" | "org_name" => Some((OrgName::PATTERN, OrgName::MIN_LEN, OrgName::MAX_LEN)),
        "user_id" => Some((UserId::PATTERN, UserId::MIN_LEN, UserId::MAX_LEN)),
        _ => None,
    }
}

/// Applies [`named_rule`] to a string schema that does not carry a pattern of its own.
fn constrain(name: &str, schema: &mut RefOr<Schema>) {
    let (Some((pattern, min, max)), RefOr::T(Schema::Object(object))) = (named_rule(name), schema)
    else {
        return;
    };
    if object.pattern.is_none() && is_string(object) {
        object.pattern = Some(pattern.to_owned());
        object.min_length = Some(min);
        object.max_length = Some(max);
    }
}

fn is_string(object: &Object) -> bool {
    match &object.schema_type {
        SchemaType::Type(t) => *t == Type::String,
        SchemaType::Array(ts) => ts.contains(&Type::String),
        SchemaType::AnyValue => false,
    }
}

/// Gives every parameter and request-body property named in [`named_rule`] the server's
/// pattern and length, so clients and fuzzers send what the server accepts. Response schemas
/// are left alone: they describe what was stored, which a rule may postdate.
fn constrain_named_values(doc: &mut OpenApi) {
    visit_request_values(doc, &mut |name, schema| constrain(name, schema));
}

/// The schema of every request value named `wanted`.
fn for_each_request_value(doc: &mut OpenApi, wanted: &str, mut f: impl FnMut(&mut RefOr<Schema>)) {
    visit_request_values(doc, &mut |name, schema| {
        if name == wanted {
            f(schema);
        }
    });
}

/// Calls `f` with the name and schema of every value a client sends: each operation's
/// parameters, and the top-level properties of its JSON request body (inline, or the
/// component it names).
fn visit_request_values(doc: &mut OpenApi, f: &mut dyn FnMut(&str, &mut RefOr<Schema>)) {
    let mut bodies = Vec::new();
    for item in doc.paths.paths.values_mut() {
        for param in item.parameters.iter_mut().flatten() {
            if let Some(schema) = param.schema.as_mut() {
                f(&param.name, schema);
            }
        }
        for op in operations_mut(item) {
            for param in op.parameters.iter_mut().flatten() {
                if let Some(schema) = param.schema.as_mut() {
                    f(&param.name, schema);
                }
            }
            if let Some(RequestBody { content, .. }) = op.request_body.as_mut() {
                for media in content.values_mut() {
                    match media.schema.as_mut() {
                        Some(RefOr::Ref(r)) => bodies.push(r.ref_location.clone()),
                        Some(RefOr::T(Schema::Object(inline))) => {
                            for (name, schema) in &mut inline.properties {
                                f(name, schema);
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    bodies.sort();
    bodies.dedup();
    for location in bodies {
        let name = location.trim_start_matches("#/components/schemas/");
        if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(name) {
            for (name, schema) in &mut object.properties {
                f(name, schema);
            }
        }
    }
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
