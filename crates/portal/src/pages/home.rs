//! Home: the organisations the operator may see, with status badges and what needs
//! attention, and the form to register a new one.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use rolegate_core::model::{Org, OrgStatus};

use super::{Frame, badge, render, wire};
use crate::Portal;
use crate::error::PageError;
use crate::session::Session;

/// One row of the table.
pub struct Row {
    pub name: String,
    pub status: String,
    pub badge: &'static str,
    pub account: String,
    pub attention: Option<String>,
}

impl From<&Org> for Row {
    fn from(o: &Org) -> Self {
        let status = wire(&o.status);
        Self {
            name: o.org_name.clone(),
            badge: badge(&status),
            status,
            account: o.account_id.clone().unwrap_or_default(),
            attention: attention(o),
        }
    }
}

/// What the operator should do about an org, if anything.
pub fn attention(o: &Org) -> Option<String> {
    match o.status {
        OrgStatus::Validated | OrgStatus::Offboarded => None,
        OrgStatus::Pending => {
            Some("waiting for the customer to deploy the onboarding stack".into())
        }
        OrgStatus::CallbackReceived => Some("the stack called back; checking the role".into()),
        OrgStatus::UnsafeTrust => Some(
            "the role's trust policy does not enforce the ExternalId: the customer must fix it"
                .into(),
        ),
        OrgStatus::Failed => Some(
            o.status_message
                .clone()
                .unwrap_or_else(|| "onboarding failed: issue new links".into()),
        ),
    }
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    frame: Option<Frame>,
    rows: Vec<Row>,
    attention: usize,
}

pub async fn show(State(portal): State<Portal>, session: Session) -> Result<Response, PageError> {
    let mut orgs = Vec::new();
    let mut after: Option<String> = None;
    // At most 10 pages of 500: the home page is for people, not a bulk export.
    for _ in 0..10 {
        let page = portal
            .services
            .orgs
            .list(&session.caller, after.as_deref(), 500)
            .await?;
        orgs.extend(page.orgs);
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let rows: Vec<Row> = orgs.iter().map(Row::from).collect();
    let attention = rows.iter().filter(|r| r.attention.is_some()).count();
    render(&HomePage {
        frame: Some(Frame::from(&session)),
        rows,
        attention,
    })
}
