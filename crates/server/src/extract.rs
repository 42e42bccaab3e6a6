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

/// An optional JSON integer as JSON Schema reads one: `1186` and `1186.0` are the same integer
/// (the document says `type: integer`, which admits both), a fraction or a value outside
/// `i64` is refused. For `#[serde(default, deserialize_with = "crate::extract::integer")]`.
pub fn integer<'de, D>(de: D) -> Result<Option<i64>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::Deserialize as _;
    use serde::de::Error as _;
    let Some(n) = Option::<serde_json::Number>::deserialize(de)? else {
        return Ok(None);
    };
    if let Some(i) = n.as_i64() {
        return Ok(Some(i));
    }
    // i64::MIN and 2^63 are exact in f64, so the range test admits only values that convert
    // without saturating.
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f >= -(2f64.powi(63)) && f < 2f64.powi(63) =>
        {
            #[allow(clippy::cast_possible_truncation)]
            Ok(Some(f as i64))
        }
        _ => Err(D::Error::custom(format!("expected an integer, got {n}"))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        #[serde(default, deserialize_with = "integer")]
        n: Option<i64>,
        #[allow(dead_code)]
        s: Option<String>,
    }

    /// Regression (fuzz finding): `{"duration_seconds": 1186.0}` is a JSON Schema integer
    /// and was refused with "invalid type: floating point".
    #[test]
    fn integral_floats_are_integers() {
        let parsed: Body = parse(br#"{"n": 1186.0}"#).unwrap();
        assert_eq!(parsed.n, Some(1186));
        let parsed: Body = parse(br#"{"n": 3600}"#).unwrap();
        assert_eq!(parsed.n, Some(3600));
        let parsed: Body = parse(br#"{"n": null}"#).unwrap();
        assert_eq!(parsed.n, None);
        for bad in [
            r#"{"n": 1.5}"#,
            r#"{"n": 1e300}"#,
            r#"{"n": "3600"}"#,
            r#"{"n": 18446744073709551615}"#,
        ] {
            let e = parse::<Body>(bad.as_bytes()).unwrap_err();
            assert_eq!(e.code, Code::InvalidField, "{bad}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any bytes as a JSON body: parsed, or a typed 400/413-class error; never a panic.
        #[test]
        fn any_body_parses_or_is_refused_with_a_code(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Err(e) = parse::<Body>(&bytes) {
                prop_assert!(matches!(e.code, Code::InvalidJson | Code::InvalidField), "{:?}", e.code);
            }
        }

        /// JSON-shaped input with numbers of every kind.
        #[test]
        fn any_number_is_an_integer_or_invalid_field(f in any::<f64>(), i in any::<i64>()) {
            for text in [format!(r#"{{"n": {f:?}}}"#), format!(r#"{{"n": {i}}}"#), format!(r#"{{"n": {i}.0}}"#)] {
                match parse::<Body>(text.as_bytes()) {
                    Ok(b) => prop_assert!(b.n.is_some()),
                    Err(e) => prop_assert!(matches!(e.code, Code::InvalidJson | Code::InvalidField)),
                }
            }
        }
    }
}
