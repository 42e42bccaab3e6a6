//! One error page for every failure: the code (from the one table, `core::error::Code`), a
//! message and the request id. A 5xx shows a generic message; the detail is in the log
//! under the request id. No stack trace or secret is ever shown.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use rolegate_core::{Code, Error};

/// A failed page, rendered by [`render`] once the request id is known.
#[derive(Debug, Clone)]
pub struct PageError {
    pub code: Code,
    pub message: String,
}

impl PageError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(Code::NotFound, format!("{what} not found"))
    }
}

impl From<Error> for PageError {
    fn from(e: Error) -> Self {
        let code = e.code();
        if code.status() >= 500 {
            tracing::error!(error = %e, code = code.as_str(), "portal page failed");
            return Self::new(code, code.description());
        }
        Self::new(code, e.to_string())
    }
}

impl From<askama::Error> for PageError {
    fn from(e: askama::Error) -> Self {
        tracing::error!(error = %e, "a portal template failed to render");
        Self::new(Code::Internal, Code::Internal.description())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut res = status.into_response();
        res.extensions_mut().insert(self);
        res
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    code: &'a str,
    message: &'a str,
    request_id: &'a str,
}

/// The error page's HTML, keeping the failed response's status and headers.
pub fn render(err: &PageError, request_id: &str, res: Response) -> Response {
    let page = ErrorPage {
        status: err.code.status(),
        code: err.code.as_str(),
        message: &err.message,
        request_id,
    };
    let body = page.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "the error page failed to render");
        String::from("<!doctype html><title>error</title><p>error</p>")
    });
    let (mut parts, _) = res.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    let mut out = Html(body).into_response();
    *out.status_mut() = parts.status;
    for (name, value) in &parts.headers {
        out.headers_mut().insert(name.clone(), value.clone());
    }
    out
}
