//! Key-pair jobs: create one in the org's account, watch its steps live, and download the
//! private key of a created key pair once (a `.pem` attachment; afterwards the page says it
//! was retrieved). Through `Jobs`, so the job's own session policy, audit and one-time
//! secret rules are the API's.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Json, Redirect, Response};
use rolegate_core::ids::OrgName;
use rolegate_core::jobs::CreateJobCommand;
use rolegate_core::model::{JobRecord, SecretState};
use serde::Deserialize;

use super::{Frame, badge, given, render, wire};
use crate::Portal;
use crate::error::PageError;
use crate::session::Session;

/// One job as a row.
pub struct Row {
    pub id: String,
    pub kind: String,
    pub target: String,
    pub state: String,
    pub badge: &'static str,
    pub created_at: String,
}

impl From<&JobRecord> for Row {
    fn from(j: &JobRecord) -> Self {
        let state = j.state.as_str().to_owned();
        Self {
            id: j.id.clone(),
            kind: j.kind.clone(),
            target: j.target.clone(),
            badge: badge(&state),
            state,
            created_at: j.created_at.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "jobs.html")]
struct ListPage {
    frame: Option<Frame>,
    org: String,
    rows: Vec<Row>,
    levels: Vec<String>,
}

fn org_name(raw: &str) -> Result<OrgName, PageError> {
    OrgName::parse(raw).map_err(|_| PageError::not_found("organisation"))
}

pub async fn list(
    State(portal): State<Portal>,
    session: Session,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    let org = org_name(&raw)?;
    let view = portal.services.orgs.get(&session.caller, &org).await?;
    let page = portal
        .services
        .jobs
        .list(&session.caller, &org, None, None, None, 100)
        .await?;
    let mut rows: Vec<Row> = page.jobs.iter().map(Row::from).collect();
    rows.reverse();
    render(&ListPage {
        frame: Some(Frame::from(&session)),
        org: org.to_string(),
        rows,
        levels: view.access_levels,
    })
}

#[derive(Deserialize)]
pub struct CreateForm {
    name: Option<String>,
    key_type: Option<String>,
    access_level: Option<String>,
    reason: Option<String>,
}

pub async fn create(
    State(portal): State<Portal>,
    session: Session,
    Path(raw): Path<String>,
    Form(f): Form<CreateForm>,
) -> Result<Response, PageError> {
    let org = org_name(&raw)?;
    let spec = serde_json::json!({
        "name": given(f.name.as_ref()).unwrap_or_default(),
        "type": given(f.key_type.as_ref()).unwrap_or("ed25519"),
    });
    let cmd = CreateJobCommand::parse(
        org.as_str(),
        Some("keypair.create"),
        &spec,
        given(f.access_level.as_ref()),
        given(f.reason.as_ref()),
    )?;
    let job = portal.services.jobs.create(&session.caller, &cmd).await?;
    Ok(Redirect::to(&format!("/jobs/{}", job.id)).into_response())
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    frame: Option<Frame>,
    job: JobRecord,
    state: String,
    badge: &'static str,
    live: bool,
    secret: String,
    spec: String,
    result: String,
    /// An `inventory` job's result, as tables.
    tables: Vec<super::inventory::Table>,
}

pub async fn show(
    State(portal): State<Portal>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let job = portal.services.jobs.get(&session.caller, &id).await?;
    let state = job.state.as_str().to_owned();
    let tables = match (&job.result, job.kind.as_str()) {
        (Some(r), "inventory") => super::inventory::inventory_tables(r),
        _ => Vec::new(),
    };
    render(&JobPage {
        tables,
        frame: Some(Frame::from(&session)),
        badge: badge(&state),
        live: !job.state.is_final(),
        state,
        secret: wire(&job.secret),
        spec: serde_json::to_string_pretty(&job.spec).unwrap_or_default(),
        result: job
            .result
            .as_ref()
            .map(|r| serde_json::to_string_pretty(r).unwrap_or_default())
            .unwrap_or_default(),
        job,
    })
}

/// The state alone, for the page's live view.
pub async fn status(
    State(portal): State<Portal>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let job = portal.services.jobs.get(&session.caller, &id).await?;
    let steps: Vec<String> = job.steps.iter().map(|s| wire(&s.state)).collect();
    Ok(Json(serde_json::json!({
        "status": job.state.as_str(),
        "steps": steps,
    }))
    .into_response())
}

/// The private key, once, as `<name>.pem`. A second try is 410 `secret_already_retrieved`.
pub async fn download(
    State(portal): State<Portal>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let job = portal.services.jobs.get(&session.caller, &id).await?;
    let secret = portal
        .services
        .jobs
        .take_secret(&session.caller, &id)
        .await?;
    // Key-pair names are [A-Za-z0-9._-] (checked when the job was created), so the name is
    // safe in the header; anything else falls back to the job id.
    let name = job.spec["name"]
        .as_str()
        .filter(|n| {
            n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
        .unwrap_or(&job.id)
        .to_owned();
    let mut res = secret.private_key.expose().to_owned().into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-pem-file"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.pem\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

/// Whether the job's key can still be downloaded (for the template).
impl JobPage {
    fn downloadable(&self) -> bool {
        self.job.secret == SecretState::Available
    }
}
