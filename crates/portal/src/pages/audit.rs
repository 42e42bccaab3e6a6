//! The audit log: filter by org, actor, action and time, page through (oldest first, as
//! the API), open one event. Admins can verify the whole chain and see the current signed
//! checkpoint. Operators see their own orgs' events (the policy's `Scoped`).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use rolegate_core::audit_log::{AuditQuery, RawAuditQuery};
use rolegate_core::model::AuditEvent;
use serde::Deserialize;

use super::{Frame, given, render};
use crate::Portal;
use crate::error::PageError;
use crate::session::Session;

#[derive(Deserialize, Default)]
pub struct Filter {
    org: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
}

/// An event as a row.
pub struct Row {
    pub seq: u64,
    pub time: String,
    pub actor: String,
    pub action: String,
    pub org: String,
    pub outcome: String,
    pub code: String,
}

impl From<&AuditEvent> for Row {
    fn from(e: &AuditEvent) -> Self {
        Self {
            seq: e.seq,
            time: e.time.clone(),
            actor: e.actor.clone(),
            action: e.action.clone(),
            org: e.org.clone().unwrap_or_default(),
            outcome: super::wire(&e.outcome),
            code: e.code.clone().unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "audit.html")]
struct ListPage {
    frame: Option<Frame>,
    org: String,
    actor: String,
    action: String,
    since: String,
    until: String,
    rows: Vec<Row>,
    next: Option<String>,
    checkpoint: Option<String>,
}

fn query_string(f: &Filter, cursor: &str) -> String {
    let mut parts = Vec::new();
    for (k, v) in [
        ("org", &f.org),
        ("actor", &f.actor),
        ("action", &f.action),
        ("since", &f.since),
        ("until", &f.until),
    ] {
        if let Some(v) = given(v.as_ref()) {
            parts.push(format!(
                "{k}={}",
                rolegate_core::onboarding::links::url_encode(v)
            ));
        }
    }
    parts.push(format!(
        "cursor={}",
        rolegate_core::onboarding::links::url_encode(cursor)
    ));
    format!("/audit?{}", parts.join("&"))
}

pub async fn list(
    State(portal): State<Portal>,
    session: Session,
    Query(f): Query<Filter>,
) -> Result<Response, PageError> {
    let q = AuditQuery::parse(&RawAuditQuery {
        org: given(f.org.as_ref()),
        actor: given(f.actor.as_ref()),
        action: given(f.action.as_ref()),
        since: given(f.since.as_ref()),
        until: given(f.until.as_ref()),
        limit: Some("50"),
        cursor: given(f.cursor.as_ref()),
    })?;
    let page = portal.services.audit.query(&session.caller, &q).await?;
    let checkpoint = if session.is_admin() {
        let c = portal.services.audit.checkpoint(&session.caller).await?;
        Some(serde_json::to_string(&c).unwrap_or_default())
    } else {
        None
    };
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    render(&ListPage {
        frame: Some(Frame::from(&session)),
        org: text(&f.org),
        actor: text(&f.actor),
        action: text(&f.action),
        since: text(&f.since),
        until: text(&f.until),
        rows: page.events.iter().map(Row::from).collect(),
        next: page.next.as_deref().map(|c| query_string(&f, c)),
        checkpoint,
    })
}

#[derive(Template)]
#[template(path = "event.html")]
struct EventPage {
    frame: Option<Frame>,
    event: AuditEvent,
    details: String,
}

pub async fn event(
    State(portal): State<Portal>,
    session: Session,
    Path(seq): Path<u64>,
) -> Result<Response, PageError> {
    let q = AuditQuery {
        after_seq: seq.checked_sub(1),
        limit: 1,
        ..AuditQuery::default()
    };
    let page = portal.services.audit.query(&session.caller, &q).await?;
    let event = page
        .events
        .into_iter()
        .find(|e| e.seq == seq)
        .ok_or_else(|| PageError::not_found("event"))?;
    render(&EventPage {
        frame: Some(Frame::from(&session)),
        details: serde_json::to_string_pretty(&event.details).unwrap_or_default(),
        event,
    })
}

#[derive(Template)]
#[template(path = "verify.html")]
struct VerifyPage {
    frame: Option<Frame>,
    events: u64,
    breaks: Vec<String>,
}

pub async fn verify(State(portal): State<Portal>, session: Session) -> Result<Response, PageError> {
    let report = portal.services.audit.verify(&session.caller, None).await?;
    render(&VerifyPage {
        frame: Some(Frame::from(&session)),
        events: report.events,
        breaks: report.breaks.iter().map(ToString::to_string).collect(),
    })
}
