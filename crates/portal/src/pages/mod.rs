//! One module per page family. Handlers follow the API's order: the session (the caller),
//! the form turned into a command, the service call (which asks the policy and audits), the
//! template.

/// Just-in-time access: request, the approval queue, running grants with revoke.
pub mod access;
/// The audit log: filter, page, one event, verify.
pub mod audit;
/// Credentials: the three forms, and the console.
pub mod credentials;
/// The page behind a customer approval link (no session: the link is the credential).
pub mod customer_link;
/// The organisations the operator may see.
pub mod home;
/// An inventory job's result as tables (job and stacks pages).
pub mod inventory;
/// Key-pair jobs: create, live steps, the private key once.
pub mod jobs;
/// Sign-in and sign-out.
pub mod login;
/// Operators (admins): create, disable, rotate.
pub mod operators;
/// The owner's and admins' actions on an organisation, each behind a confirmation.
pub mod org_actions;
/// One organisation: status, onboarding.
pub mod orgs;
/// Sign-in through the identity provider: the redirect and the callback.
pub mod sso;
/// Stacks from blueprints (a form per template), inspect, delete, the inventory.
pub mod stacks;

use askama::Template;
use axum::response::{Html, IntoResponse, Response};

use crate::error::PageError;
use crate::session::Session;

/// What every signed-in page shows around its content.
#[derive(Debug, Clone)]
pub struct Frame {
    pub user: String,
    pub admin: bool,
    /// The session's form token, for every form.
    pub csrf: String,
}

impl From<&Session> for Frame {
    fn from(s: &Session) -> Self {
        Self {
            user: s.user(),
            admin: s.is_admin(),
            csrf: s.form_token.clone(),
        }
    }
}

/// Renders a page.
pub fn render(page: &impl Template) -> Result<Response, PageError> {
    Ok(Html(page.render()?).into_response())
}

/// An empty form field is no value.
pub fn given(v: Option<&String>) -> Option<&str> {
    v.map(|s| s.trim()).filter(|s| !s.is_empty())
}

/// The CSS class of a status badge.
pub fn badge(status: &str) -> &'static str {
    match status {
        "validated" | "succeeded" => "ok",
        "pending" | "callback_received" | "queued" | "running" => "wait",
        "unsafe_trust" | "failed" | "cancelled" => "bad",
        _ => "off",
    }
}

/// The wire name of a serde enum value (`OrgStatus::UnsafeTrust` → `unsafe_trust`).
pub fn wire<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}
