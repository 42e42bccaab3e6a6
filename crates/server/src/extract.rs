//! Request extractors that fail with rolegate's error codes rather than the framework's.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{StatusCode, header, request::Parts};
use rolegate_core::Code;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body: 415 without a JSON content type, 413 over the limit, 400 `invalid_json` when
/// it does not parse, 400 `invalid_field` (with the field's path) when a value has the wrong
/// shape. An empty body is read as `{}` so that body-less POSTs work.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let has_json_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim())
            .is_some_and(|m| {
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            });
        let has_type = req.headers().contains_key(header::CONTENT_TYPE);
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(Code::PayloadTooLarge, "request body exceeds 64 KiB")
            } else {
                ApiError::new(Code::InvalidBody, "could not read the request body")
            }
        })?;
        if bytes.is_empty() && !has_type {
            return parse(b"{}").map(ApiJson);
        }
        if !has_json_type {
            return Err(ApiError::new(
                Code::UnsupportedMediaType,
                "send Content-Type: application/json",
            ));
        }
        let body: &[u8] = if bytes.is_empty() { b"{}" } else { &bytes };
        parse(body).map(ApiJson)
    }
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_data() {
            let field = if path == "." {
                unknown_field(&inner.to_string()).unwrap_or_else(|| "body".to_owned())
            } else {
                path
            };
            let message = format!("{field}: {}", strip_position(&inner.to_string()));
            ApiError::invalid_field(&field, message)
        } else {
            ApiError::new(Code::InvalidJson, format!("malformed JSON: {}", inner))
        }
    })
}

fn unknown_field(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("unknown field `")?;
    Some(rest.split('`').next()?.to_owned())
}

fn strip_position(msg: &str) -> &str {
    msg.split(" at line ").next().unwrap_or(msg)
}

/// The caller's network address: the peer, or, when `trust_forwarded_for` is set, the last
/// `X-Forwarded-For` hop over all its header lines (the one the trusted proxy appended).
/// Inserted by the auth middleware.
#[derive(Debug, Clone)]
pub struct SourceIp(pub String);

impl<S: Send + Sync> FromRequestParts<S> for SourceIp {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<SourceIp>()
            .cloned()
            .ok_or_else(ApiError::internal)
    }
}
