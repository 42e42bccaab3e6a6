//! Just-in-time access: ask for a level that needs approval, follow one's own requests,
//! decide those in one's approval queue (approve or deny, with a comment), and see the
//! running grants with revoke. Everything goes through `Access`, so the rule, the refusals
//! (self-approval, an approver outside the rule, the holder revoking) and the audit events
//! are the API's.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use rolegate_core::access::{AccessFilter, Decision, RequestAccessCommand};
use rolegate_core::ids::OrgName;
use rolegate_core::model::{AccessRequestRecord, AccessState, OrgStatus};
use serde::Deserialize;

use super::{Frame, given, render, wire};
use crate::Portal;
use crate::error::PageError;
use crate::session::Session;

/// `3600` → `1 h`, `5400` → `1 h 30 min`.
pub fn human(secs: i64) -> String {
    let (h, m) = (secs / 3600, (secs % 3600) / 60);
    match (h, m) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

/// One request as a row.
pub struct Row {
    pub id: String,
    pub org: String,
    pub level: String,
    pub requested_by: String,
    pub state: String,
    pub badge: &'static str,
    pub duration: String,
    pub reason: String,
    pub ticket: String,
    /// `1 of 2`.
    pub approvals: String,
    pub ends_at: String,
    /// What is left of a running grant.
    pub left: String,
    pub mine: bool,
    pub break_glass: bool,
    /// The last decision's author and comment.
    pub decision: String,
}

fn badge(state: AccessState) -> &'static str {
    match state {
        AccessState::Active | AccessState::Approved => "ok",
        AccessState::Pending => "wait",
        AccessState::Denied | AccessState::Revoked => "bad",
        AccessState::Expired | AccessState::Cancelled => "off",
    }
}

impl Row {
    fn new(r: &AccessRequestRecord, me: &str, now: i64) -> Self {
        let mut decision = r
            .approvals
            .iter()
            .map(|a| match &a.comment {
                Some(c) => format!("approved by {}: {c}", a.by),
                None => format!("approved by {}", a.by),
            })
            .collect::<Vec<_>>();
        if let Some(by) = &r.decided_by {
            decision.push(match &r.decision_comment {
                Some(c) => format!("{} by {by}: {c}", wire(&r.state)),
                None => format!("{} by {by}", wire(&r.state)),
            });
        }
        Self {
            id: r.id.clone(),
            org: r.org.to_string(),
            level: r.access_level.clone(),
            requested_by: r.requested_by.clone(),
            state: wire(&r.state),
            badge: badge(r.state),
            duration: human(i64::from(r.duration_secs)),
            reason: r.reason.clone().unwrap_or_default(),
            ticket: r.ticket.clone().unwrap_or_default(),
            approvals: format!("{} of {}", r.approvals.len(), r.min_approvals),
            ends_at: r.grant_ends_at.clone().unwrap_or_default(),
            left: r
                .grant_end_unix
                .filter(|_| r.state == AccessState::Active)
                .map(|end| human((end - now).max(0)))
                .unwrap_or_default(),
            mine: r.requested_by == me,
            break_glass: r.break_glass,
            decision: decision.join("; "),
        }
    }
}

#[derive(Template)]
#[template(path = "access.html")]
struct ListPage {
    frame: Option<Frame>,
    mine: Vec<Row>,
    queue: Vec<Row>,
    grants: Vec<Row>,
}

async fn rows(
    portal: &Portal,
    session: &Session,
    action: rolegate_core::policy::Action,
    filter: AccessFilter,
) -> Result<Vec<Row>, PageError> {
    let page = portal
        .services
        .access
        .list(&session.caller, action, &filter)
        .await?;
    let now = portal.services.records.clock().now().unix_timestamp();
    let me = session.user();
    let mut rows: Vec<Row> = page
        .requests
        .iter()
        .map(|r| Row::new(r, &me, now))
        .collect();
    rows.reverse();
    Ok(rows)
}

/// `GET /access`: my requests, my approval queue, running grants.
pub async fn list(State(portal): State<Portal>, session: Session) -> Result<Response, PageError> {
    use rolegate_core::policy::Action;
    let mine = rows(
        &portal,
        &session,
        Action::ListAccessRequests,
        AccessFilter {
            mine: true,
            limit: 100,
            ..AccessFilter::default()
        },
    )
    .await?;
    let queue = rows(
        &portal,
        &session,
        Action::ListAccessRequests,
        AccessFilter {
            states: vec![AccessState::Pending],
            limit: 500,
            ..AccessFilter::default()
        },
    )
    .await?
    .into_iter()
    .filter(|r| !r.mine)
    .collect();
    let grants = rows(
        &portal,
        &session,
        Action::ListAccessGrants,
        AccessFilter {
            states: vec![AccessState::Approved, AccessState::Active],
            grants_only: true,
            limit: 500,
            ..AccessFilter::default()
        },
    )
    .await?;
    render(&ListPage {
        frame: Some(Frame::from(&session)),
        mine,
        queue,
        grants,
    })
}

/// A level the form offers on one org.
pub struct LevelChoice {
    pub name: String,
    pub selected: bool,
    /// The rule in words: longest grant, what it requires.
    pub hint: String,
}

pub struct OrgChoice {
    pub org: String,
    pub levels: Vec<LevelChoice>,
}

#[derive(Template)]
#[template(path = "access_new.html")]
struct RequestPage {
    frame: Option<Frame>,
    choices: Vec<OrgChoice>,
    break_glass: bool,
}

#[derive(Deserialize)]
pub struct RequestQuery {
    org: Option<String>,
    level: Option<String>,
}

/// `GET /access/new`: the levels that need a grant on the orgs the operator sees (and on
/// the org named in the query, such as a link from the credentials page).
pub async fn form(
    State(portal): State<Portal>,
    session: Session,
    Query(q): Query<RequestQuery>,
) -> Result<Response, PageError> {
    let page = portal
        .services
        .orgs
        .list(&session.caller, None, 500)
        .await?;
    let mut orgs: Vec<OrgName> = page
        .orgs
        .iter()
        .filter(|o| o.status == OrgStatus::Validated)
        .filter_map(|o| OrgName::parse(&o.org_name).ok())
        .collect();
    let wanted = q.org.as_deref().and_then(|o| OrgName::parse(o).ok());
    if let Some(w) = &wanted
        && !orgs.contains(w)
    {
        orgs.insert(0, w.clone());
    }
    let mut break_glass = false;
    let choices = orgs
        .iter()
        .map(|org| {
            let levels = portal
                .services
                .access
                .requestable(org)
                .into_iter()
                .map(|r| {
                    break_glass |= r.rule.break_glass;
                    let mut hint = vec![format!(
                        "up to {}",
                        human(i64::from(r.rule.max_duration_secs))
                    )];
                    if r.rule.min_approvals > 1 {
                        hint.push(format!("{} approvals", r.rule.min_approvals));
                    }
                    if r.rule.reason_required {
                        hint.push("reason required".to_owned());
                    }
                    if r.rule.ticket_required {
                        hint.push("ticket required".to_owned());
                    }
                    if r.rule.break_glass {
                        hint.push("break-glass allowed".to_owned());
                    }
                    LevelChoice {
                        selected: wanted.as_ref() == Some(org)
                            && q.level.as_deref() == Some(r.access_level.as_str()),
                        name: r.access_level,
                        hint: hint.join(", "),
                    }
                })
                .collect::<Vec<_>>();
            OrgChoice {
                org: org.to_string(),
                levels,
            }
        })
        .filter(|c| !c.levels.is_empty())
        .collect();
    render(&RequestPage {
        frame: Some(Frame::from(&session)),
        choices,
        break_glass,
    })
}

#[derive(Deserialize)]
pub struct RequestForm {
    /// `org|level`.
    choice: Option<String>,
    duration_mins: Option<String>,
    reason: Option<String>,
    ticket: Option<String>,
    break_glass: Option<String>,
}

/// `POST /access/requests`: files the request (or takes a break-glass grant).
pub async fn create(
    State(portal): State<Portal>,
    session: Session,
    Form(f): Form<RequestForm>,
) -> Result<Response, PageError> {
    let invalid = rolegate_core::Error::invalid;
    let choice =
        given(f.choice.as_ref()).ok_or_else(|| invalid("choice", "pick an org and a level"))?;
    let (org, level) = choice
        .split_once('|')
        .ok_or_else(|| invalid("choice", "the choice must be an org and a level"))?;
    let mins = given(f.duration_mins.as_ref())
        .ok_or_else(|| invalid("duration_mins", "say how long the grant should last"))?
        .parse::<i64>()
        .ok()
        .filter(|m| (1..=7 * 24 * 60).contains(m))
        .ok_or_else(|| invalid("duration_mins", "the duration must be whole minutes"))?;
    let cmd = RequestAccessCommand::parse(
        Some(org),
        Some(level),
        Some(mins * 60),
        given(f.reason.as_ref()),
        given(f.ticket.as_ref()),
        None,
        given(f.break_glass.as_ref()).is_some(),
    )?;
    portal
        .services
        .access
        .request(&session.caller, &cmd)
        .await?;
    Ok(Redirect::to("/access").into_response())
}

#[derive(Deserialize)]
pub struct DecideForm {
    comment: Option<String>,
}

/// `POST /access/requests/{id}/{approve|deny|cancel|revoke}`.
pub async fn decide(
    State(portal): State<Portal>,
    session: Session,
    Path((id, what)): Path<(String, String)>,
    Form(f): Form<DecideForm>,
) -> Result<Response, PageError> {
    let decision = match what.as_str() {
        "approve" => Decision::Approve,
        "deny" => Decision::Deny,
        "cancel" => Decision::Cancel,
        "revoke" => Decision::Revoke,
        _ => return Err(PageError::not_found("action")),
    };
    portal
        .services
        .access
        .decide(&session.caller, &id, decision, given(f.comment.as_ref()))
        .await?;
    Ok(Redirect::to("/access").into_response())
}
