//! The one HTTP error type. Every error has a stable snake_case code and a status, mapped
//! here and nowhere else. A 5xx logs its detail and shows the client a generic message.
//!
//! `render_errors` (middleware) writes the JSON body with the request id, and turns any
//! non-JSON 4xx/5xx produced by the framework (404, 405, 413, ...) into the same shape.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rolegate_core::Error as CoreError;
use serde::Serialize;

/// An error as the client will see it (the body is rendered by `render_errors`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// Machine-readable facts about the error (e.g. an org's status), never secrets.
    pub details: Option<Box<serde_json::Value>>,
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            details: None,
            headers: Vec::new(),
        }
    }

    #[must_use]
    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message).with_header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"rolegate\""),
        )
    }

    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.to_owned()),
            ..Self::new(StatusCode::BAD_REQUEST, "invalid_field", message)
        }
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; quote the request id when reporting it",
        )
    }
}

/// The wire shape of every 4xx and 5xx: `{"error": {"code", "message", "request_id", "field"?}}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail<'a> {
    /// Stable snake_case code (`invalid_field`, `org_exists`, …): match on this.
    #[schema(example = "invalid_field")]
    pub code: &'a str,
    /// For people; may change between versions.
    pub message: &'a str,
    /// The `x-request-id` of this response; the log lines of the request carry it too.
    pub request_id: &'a str,
    /// The offending field, for `invalid_field`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<&'a serde_json::Value>,
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::Invalid { field, message } => Self::invalid_field(&field, message),
            CoreError::NotFound { what } => Self::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{what} not found"),
            ),
            CoreError::Conflict { code, message } => Self::new(StatusCode::CONFLICT, code, message),
            CoreError::Forbidden(m) => Self::new(StatusCode::FORBIDDEN, "forbidden", m),
            CoreError::Unauthorized => Self::unauthorized("authentication required"),
            CoreError::SignatureRejected { code, message } => {
                Self::new(StatusCode::UNAUTHORIZED, code, message).with_header(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("X-Sig-Signature"),
                )
            }
            CoreError::Precondition {
                code,
                message,
                details,
            } => Self {
                details: Some(Box::new(details)),
                ..Self::new(StatusCode::PRECONDITION_FAILED, code, message)
            },
            CoreError::Upstream {
                code,
                message,
                retry_after_secs,
            } => {
                let status = match code {
                    "assume_role_denied" => StatusCode::FORBIDDEN,
                    "sts_throttled"
                    | "provider_credentials_unavailable"
                    | "template_store_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
                    "session_policy_too_large" | "invalid_credentials" => StatusCode::BAD_REQUEST,
                    _ => StatusCode::BAD_GATEWAY,
                };
                let mut e = Self::new(status, code, message);
                if let Some(secs) = retry_after_secs
                    && let Ok(v) = HeaderValue::from_str(&secs.to_string())
                {
                    e = e.with_header(header::RETRY_AFTER, v);
                }
                e
            }
            CoreError::NotConfigured(m) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "not_configured", m)
            }
            CoreError::Contention => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "contention",
                "too much contention; retry",
            )
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("1")),
            CoreError::AuditUnavailable(source) => {
                tracing::error!(error = %source, detail = ?source, "audit log unavailable; action refused");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "audit_unavailable",
                    "the audit log cannot record this action, so it was not performed",
                )
            }
            CoreError::Store(source) => {
                tracing::error!(error = %source, "store failure");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the store is unavailable; retry later",
                )
            }
            other @ CoreError::Corrupt { .. } => {
                tracing::error!(error = %other, "internal error");
                Self::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = Response::new(Body::empty());
        *res.status_mut() = self.status;
        for (k, v) in &self.headers {
            res.headers_mut().insert(k.clone(), v.clone());
        }
        res.extensions_mut().insert(self);
        res
    }
}

/// The code used for framework-made errors, by status.
fn code_for(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        400 => ("bad_request", "the request is malformed"),
        401 => ("unauthorized", "authentication required"),
        403 => ("forbidden", "not allowed"),
        404 => ("not_found", "no such route"),
        405 => (
            "method_not_allowed",
            "method not allowed on this route; see the Allow header",
        ),
        408 => ("request_timeout", "request timed out"),
        413 => ("payload_too_large", "request body exceeds 64 KiB"),
        415 => (
            "unsupported_media_type",
            "send Content-Type: application/json",
        ),
        422 => ("unprocessable", "the request could not be processed"),
        429 => ("rate_limited", "too many requests"),
        503 => ("unavailable", "service unavailable"),
        _ => (
            "internal",
            "internal error; quote the request id when reporting it",
        ),
    }
}

/// Renders every error response as the one JSON shape, with the request id.
pub async fn render_errors(req: Request, next: Next) -> Response {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let res = next.run(req).await;
    render(res, &request_id)
}

/// Gives an error response its JSON body (a no-op for successes and for errors already
/// rendered). The idempotency layer renders before it stores, so a replayed error is the
/// original one, byte for byte.
pub fn render(res: Response, request_id: &str) -> Response {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let api = parts.extensions.remove::<ApiError>();
    let is_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if api.is_none() && is_json {
        return Response::from_parts(parts, body);
    }
    let (code, default_message) = code_for(status);
    let (code, message, field, details) = match &api {
        Some(e) if status.is_server_error() && e.code == "internal" => {
            (e.code, default_message.to_owned(), None, None)
        }
        Some(e) => (
            e.code,
            e.message.clone(),
            e.field.clone(),
            e.details.as_deref(),
        ),
        None => (code, default_message.to_owned(), None, None),
    };
    let body = ErrorBody {
        error: ErrorDetail {
            code,
            message: &message,
            request_id,
            field: field.as_deref(),
            details,
        },
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(bytes))
}
