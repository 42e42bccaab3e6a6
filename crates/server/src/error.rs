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
use rolegate_core::ports::RateDecision;
use rolegate_core::{Code, Error as CoreError};
use serde::Serialize;

/// An error as the client will see it (the body is rendered by `render_errors`). Its status
/// is always its code's ([`Code::status`]): the one table in `rolegate_core::error` decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Code,
    pub message: String,
    pub field: Option<String>,
    /// Machine-readable facts about the error (e.g. an org's status), never secrets.
    pub details: Option<Box<serde_json::Value>>,
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            status: status_of(code),
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
        Self::new(Code::Unauthorized, message).with_header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"rolegate\""),
        )
    }

    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.to_owned()),
            ..Self::new(Code::InvalidField, message)
        }
    }

    /// [`ApiError::rate_limited`] naming the limit that refused (its config key) in
    /// `details.limit`, for a client that spends more than one budget per request.
    #[must_use]
    pub fn rate_limited_by(limit: &str, d: &RateDecision) -> Self {
        Self {
            details: Some(Box::new(serde_json::json!({ "limit": limit }))),
            ..Self::rate_limited(d)
        }
    }

    /// 429 `rate_limited` for a denied rate-limit step, with `Retry-After` and the IETF
    /// `RateLimit-Limit/-Remaining/-Reset` headers (not counted: `ratelimit::rejected` counts).
    #[must_use]
    pub fn rate_limited(d: &RateDecision) -> Self {
        let secs = |ms: u64| ms.div_ceil(1000).max(1).to_string();
        let hv = |v: String| HeaderValue::from_str(&v).unwrap_or(HeaderValue::from_static(""));
        Self::new(
            Code::RateLimited,
            "too many requests; retry after the time in Retry-After",
        )
        .with_header(header::RETRY_AFTER, hv(secs(d.retry_after_ms)))
        .with_header(
            header::HeaderName::from_static("ratelimit-limit"),
            hv(d.limit.to_string()),
        )
        .with_header(
            header::HeaderName::from_static("ratelimit-remaining"),
            hv(d.remaining.to_string()),
        )
        .with_header(
            header::HeaderName::from_static("ratelimit-reset"),
            hv(secs(d.reset_after_ms)),
        )
    }

    pub fn internal() -> Self {
        Self::new(
            Code::Internal,
            "internal error; quote the request id when reporting it",
        )
    }
}

/// The HTTP status of `code`, from the table.
fn status_of(code: Code) -> StatusCode {
    StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
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
    /// Machine-readable facts about the error, e.g. an org's `status`, or for
    /// `rate_limited` the `limit` that refused (its `rate_limits` setting).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<&'a serde_json::Value>,
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        let code = e.code();
        match e {
            CoreError::Invalid { field, message } => Self::invalid_field(&field, message),
            CoreError::Unauthorized => Self::unauthorized("authentication required"),
            CoreError::SignatureRejected { message, .. } => Self::new(code, message).with_header(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("X-Sig-Signature"),
            ),
            CoreError::Precondition {
                message, details, ..
            } => Self {
                details: Some(Box::new(details)),
                ..Self::new(code, message)
            },
            CoreError::Upstream {
                message,
                retry_after_secs,
                ..
            } => {
                let mut e = Self::new(code, message);
                if let Some(secs) = retry_after_secs
                    && let Ok(v) = HeaderValue::from_str(&secs.to_string())
                {
                    e = e.with_header(header::RETRY_AFTER, v);
                }
                e
            }
            CoreError::RateLimited { limit, decision } => Self::rate_limited_by(limit, &decision),
            CoreError::Contention => Self::new(code, "too much contention; retry")
                .with_header(header::RETRY_AFTER, HeaderValue::from_static("1")),
            CoreError::AuditUnavailable(source) => {
                tracing::error!(error = %source, detail = ?source, "audit log unavailable; action refused");
                // Nearly always the store failing under the audit write: as transient as
                // `store_unavailable`, so the client is told when to retry.
                Self::new(
                    code,
                    "the audit log cannot record this action, so it was not performed",
                )
                .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
            }
            CoreError::Store(source) => {
                tracing::error!(error = %source, "store failure");
                Self::new(code, "the store is unavailable; retry later")
                    .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
            }
            other @ CoreError::Corrupt { .. } => {
                tracing::error!(error = %other, "internal error");
                Self::internal()
            }
            other @ (CoreError::NotFound { .. }
            | CoreError::Conflict { .. }
            | CoreError::Forbidden { .. }
            | CoreError::NotConfigured(_)) => Self::new(code, other.to_string()),
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

/// The message of a framework-made error (no handler chose one), by its code.
fn default_message(code: Code) -> &'static str {
    match code {
        Code::BadRequest => "the request is malformed",
        Code::Unauthorized => "authentication required",
        Code::Forbidden => "not allowed",
        Code::NotFound => "no such route",
        Code::MethodNotAllowed => "method not allowed on this route; see the Allow header",
        Code::RequestTimeout => "request timed out",
        Code::PayloadTooLarge => "request body exceeds 64 KiB",
        Code::UnsupportedMediaType => "send Content-Type: application/json",
        Code::Unprocessable => "the request could not be processed",
        Code::RateLimited => "too many requests",
        Code::Unavailable => "service unavailable",
        _ => "internal error; quote the request id when reporting it",
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
    // The portal renders its own error pages (HTML, with the request id).
    let is_html = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if api.is_none() && (is_json || is_html) {
        return Response::from_parts(parts, body);
    }
    let code = Code::for_status(status.as_u16());
    let (code, message, field, details) = match &api {
        Some(e) if e.code == Code::Internal => {
            (e.code, default_message(e.code).to_owned(), None, None)
        }
        Some(e) => (
            e.code,
            e.message.clone(),
            e.field.clone(),
            e.details.as_deref(),
        ),
        None => (code, default_message(code).to_owned(), None, None),
    };
    let body = ErrorBody {
        error: ErrorDetail {
            code: code.as_str(),
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
