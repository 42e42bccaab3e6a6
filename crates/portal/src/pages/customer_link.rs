//! The page a customer approver sees on opening an approval link in a browser (issue 12,
//! ADR 0013/0025): what the link decides and one button that POSTs back to the same link.
//! No session, no login: the link is the credential. The API route negotiates (`Accept:
//! text/html`) and calls these; the page carries the portal's security headers, so the
//! link's token never leaves in a `Referer` and the page cannot be framed.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use rolegate_core::access::CustomerLinkView;

use super::Frame;

#[derive(Template)]
#[template(path = "customer_link.html")]
struct LinkPage<'a> {
    frame: Option<Frame>,
    title: &'a str,
    view: Option<&'a CustomerLinkView>,
    decided: bool,
    error: Option<&'a str>,
    action: String,
}

fn page(status: StatusCode, p: &LinkPage<'_>) -> Response {
    let mut res = match p.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "customer link page did not render");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    };
    crate::headers::apply(res.headers_mut(), false);
    res
}

/// What a link decides, with the button (`decided = false`), or the recorded outcome.
#[must_use]
pub fn customer_link_page(view: &CustomerLinkView, token: &str, decided: bool) -> Response {
    let title = match (decided, view.decision.as_str()) {
        (false, "approve") => "Approve an access request",
        (false, _) => "Deny an access request",
        (true, "approve") => "Request approved",
        (true, _) => "Request denied",
    };
    page(
        StatusCode::OK,
        &LinkPage {
            frame: None,
            title,
            view: Some(view),
            decided,
            error: None,
            // The token is URL-safe base64 by construction; askama escapes it anyway.
            action: format!("/api/customer-approvals?token={token}"),
        },
    )
}

/// A refused link (used, expired, unknown, …) as a page with the API's status and message.
#[must_use]
pub fn customer_link_error(status: StatusCode, message: &str) -> Response {
    page(
        status,
        &LinkPage {
            frame: None,
            title: "This approval link cannot be used",
            view: None,
            decided: false,
            error: Some(message),
            action: String::new(),
        },
    )
}
