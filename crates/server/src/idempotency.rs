//! The Idempotency-Key middleware for POST routes that create or change something, and
//! [`idempotent`](crate::idempotency::idempotent), which applies it to a route and documents
//! the header in the same step.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rolegate_core::Code;
use rolegate_core::idempotency::{Claim, Idempotency, StoredResponse, fingerprint};
use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
use utoipa::openapi::{ObjectBuilder, Required, Type};
use utoipa_axum::router::UtoipaMethodRouter;

use crate::error::{ApiError, render};
use crate::state::AppState;

const BODY_LIMIT: usize = 64 * 1024;
/// Response headers kept with a stored response.
const KEPT_HEADERS: &[&str] = &["content-type", "location", "cache-control", "retry-after"];

/// Whether a route demands `Idempotency-Key` or honours it when sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A retry must never act twice (organisation registration): 400 without the header.
    Required,
    /// Honoured when sent.
    Optional,
    /// Refused when sent (400 `idempotency_key_not_accepted`): the answer carries fresh
    /// secrets that must never be stored for replay (credentials, console sign-in URLs). The
    /// credential cache already makes repeated requests cheap and consistent.
    Refused,
}

/// Puts a documented route behind the Idempotency-Key middleware and adds the header (and the
/// 422 for a reused key) to its operations, so the document says exactly what is enforced.
pub fn idempotent(
    (schemas, mut paths, route): UtoipaMethodRouter<AppState>,
    mode: Mode,
    state: &AppState,
) -> UtoipaMethodRouter<AppState> {
    let route = match mode {
        Mode::Required => {
            route.route_layer(middleware::from_fn_with_state(state.clone(), required))
        }
        Mode::Optional => {
            route.route_layer(middleware::from_fn_with_state(state.clone(), optional))
        }
        Mode::Refused => route.route_layer(middleware::from_fn(refused)),
    };
    for item in paths.paths.values_mut() {
        for op in crate::openapi::operations_mut(item) {
            op.parameters
                .get_or_insert_with(Vec::new)
                .push(header_parameter(mode));
            if mode == Mode::Refused {
                continue;
            }
            op.responses
                .responses
                .entry("422".to_owned())
                .or_insert_with(|| {
                    crate::openapi::error_response(
                        "`idempotency_key_reused`: the key was used with a different body.",
                    )
                });
        }
    }
    (schemas, paths, route)
}

fn header_parameter(mode: Mode) -> utoipa::openapi::path::Parameter {
    if mode == Mode::Refused {
        return ParameterBuilder::new()
            .name("Idempotency-Key")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(
                "**Not accepted** on this endpoint: sending it is 400 \
                 `idempotency_key_not_accepted`. The answer carries fresh secrets, which are \
                 never stored for replay; repeated requests are served from the credential \
                 cache instead.",
            ))
            // No value is valid (at least one character, at most none): utoipa has no
            // `false` schema. Clients and fuzzers then leave the header out, as they must.
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(0))
                    .description(Some("No value is accepted: leave the header out.")),
            ))
            .build();
    }
    let (required, rule) = match mode {
        Mode::Required => (
            Required::True,
            "**Required** on this endpoint: without it the answer is 400 `idempotency_key_required`.",
        ),
        Mode::Optional | Mode::Refused => (Required::False, "Optional on this endpoint."),
    };
    ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(required)
        .description(Some(format!(
            "{rule} A retry with the same key and body (within the idempotency TTL) replays \
             the first answer with `idempotent-replayed: true` instead of acting again; the same \
             key with another body is 422 `idempotency_key_reused`; while the first request \
             still runs, 409 `idempotency_in_progress` with `Retry-After`. Keys are scoped to \
             the caller, method and path."
        )))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(255))
                .pattern(Some("^[!-~]+$"))
                .description(Some("1 to 255 visible ASCII characters, e.g. a UUID.")),
        ))
        .build()
}

/// For routes where `Idempotency-Key` is required (organisation registration). Applied only
/// through [`idempotent`], so the header is always documented as it is enforced.
async fn required(state: State<AppState>, req: Request, next: Next) -> Response {
    run(state, req, next, true).await
}

/// For routes whose answers must never be stored for replay (through [`idempotent`]).
async fn refused(req: Request, next: Next) -> Response {
    if req.headers().contains_key("idempotency-key") {
        return ApiError::new(
            Code::IdempotencyKeyNotAccepted,
            "this endpoint does not accept Idempotency-Key: its answers carry fresh secrets and are never stored for replay; repeat the request without it (the credential cache makes that cheap)",
        )
        .into_response();
    }
    next.run(req).await
}

/// For routes where `Idempotency-Key` is honoured when sent (through [`idempotent`]).
async fn optional(state: State<AppState>, req: Request, next: Next) -> Response {
    run(state, req, next, false).await
}

/// A client's `Idempotency-Key`: 1 to 255 visible ASCII characters (the documented
/// `^[!-~]+$`, at most 255), else 400 `invalid_field` naming the header.
fn parse_key(raw: &[u8]) -> Result<String, ApiError> {
    match std::str::from_utf8(raw) {
        Ok(k) if !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(k.to_owned())
        }
        _ => Err(ApiError::invalid_field(
            "Idempotency-Key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        )),
    }
}

async fn run(State(state): State<AppState>, req: Request, next: Next, required: bool) -> Response {
    let key = match req.headers().get("idempotency-key") {
        None if required => {
            return ApiError::new(
                Code::IdempotencyKeyRequired,
                "this endpoint requires an Idempotency-Key header",
            )
            .into_response();
        }
        None => return next.run(req).await,
        Some(v) => match parse_key(v.as_bytes()) {
            Ok(k) => k,
            Err(e) => return e.into_response(),
        },
    };
    let Some(caller) = req.extensions().get::<rolegate_core::Caller>().cloned() else {
        return ApiError::unauthorized("authentication required").into_response();
    };
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, BODY_LIMIT).await else {
        return ApiError::new(Code::PayloadTooLarge, "request body exceeds 64 KiB").into_response();
    };
    // From the claim to the stored response, the work runs in its own task: a client that
    // hangs up mid-request (or the handler timeout) must not leave the action done and its
    // answer, such as a one-time API key, never stored for the retry.
    let task = tokio::spawn(async move {
        let fp = fingerprint(&bytes);
        let scope = Idempotency::scope_key(
            &caller.principal.actor(),
            parts.method.as_str(),
            parts.uri.path(),
            &key,
        );
        match state.idempotency.claim(&scope, &fp).await {
            Err(e) => ApiError::from(e).into_response(),
            Ok(Claim::Mismatch) => ApiError::new(
                Code::IdempotencyKeyReused,
                "this Idempotency-Key was already used with a different request body",
            )
            .into_response(),
            Ok(Claim::InProgress) => ApiError::new(
                Code::IdempotencyInProgress,
                "a request with this Idempotency-Key is still being processed",
            )
            .with_header(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from_static("1"),
            )
            .into_response(),
            Ok(Claim::Replay(stored)) => replay(stored),
            Ok(Claim::Proceed(scope)) => {
                let request_id = crate::auth::request_id(&parts.headers);
                let res = next
                    .run(Request::from_parts(parts, Body::from(bytes)))
                    .await;
                finish(&state, &scope, &fp, render(res, &request_id)).await
            }
        }
    });
    match task.await {
        Ok(res) => res,
        Err(e) => {
            tracing::error!(error = %e, "an idempotent request's task failed");
            ApiError::internal().into_response()
        }
    }
}

fn replay(stored: StoredResponse) -> Response {
    let mut res = Response::new(Body::from(stored.body));
    *res.status_mut() = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    for (k, v) in stored.headers {
        if let (Ok(k), Ok(v)) = (
            axum::http::HeaderName::try_from(k),
            HeaderValue::from_str(&v),
        ) {
            res.headers_mut().insert(k, v);
        }
    }
    res.headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    res
}

async fn finish(state: &AppState, scope: &str, fp: &str, res: Response) -> Response {
    if res.status().is_server_error() {
        if let Err(e) = state.idempotency.release(scope).await {
            tracing::error!(error = %e, "could not release an idempotency key after a 5xx");
        }
        return res;
    }
    let (parts, body) = res.into_parts();
    let Ok(bytes) = to_bytes(body, usize::MAX).await else {
        let _ = state.idempotency.release(scope).await;
        return ApiError::internal().into_response();
    };
    let headers = KEPT_HEADERS
        .iter()
        .filter_map(|h| {
            parts
                .headers
                .get(*h)
                .and_then(|v| v.to_str().ok())
                .map(|v| ((*h).to_owned(), v.to_owned()))
        })
        .collect();
    let stored = StoredResponse {
        status: parts.status.as_u16(),
        headers,
        body: bytes.to_vec(),
    };
    if let Err(e) = state.idempotency.complete(scope, fp, stored).await {
        // The action happened; say so, and let the key lapse rather than replay a wrong answer.
        tracing::error!(error = %e, "could not store an idempotent response");
        let _ = state.idempotency.release(scope).await;
    }
    Response::from_parts(parts, Body::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Any header bytes: the key exactly when the document's rule admits it, else
        /// `invalid_field` naming the header; never a panic. The storage key derived from it
        /// is a fixed-size digest whatever the caller, method and path.
        #[test]
        fn any_key_is_accepted_exactly_as_documented(
            raw in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..300),
                "[!-~]{1,260}".prop_map(String::into_bytes),
            ],
            actor in any::<String>(), path in any::<String>(),
        ) {
            let documented = !raw.is_empty() && raw.len() <= 255 && raw.iter().all(|b| (b'!'..=b'~').contains(b));
            match parse_key(&raw) {
                Ok(k) => {
                    prop_assert!(documented);
                    let scoped = rolegate_core::idempotency::Idempotency::scope_key(&actor, "POST", &path, &k);
                    let again = rolegate_core::idempotency::Idempotency::scope_key(&actor, "POST", &path, &k);
                    prop_assert_eq!(&scoped, &again);
                    prop_assert!(scoped.len() < 128, "{}", scoped);
                }
                Err(e) => {
                    prop_assert!(!documented);
                    prop_assert_eq!(e.code, Code::InvalidField);
                }
            }
        }
    }
}
