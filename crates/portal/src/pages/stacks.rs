//! Stacks from blueprints: one form per template, generated from its declared parameters
//! (type, default, allowed values, range, description), applied as a `stack.apply` job
//! whose steps the job page follows live; inspect and delete a stack; run the `inventory`
//! job, whose result the job page shows as tables. Through `Jobs`, so parameters are
//! checked against the template, and the job's session policy, the access level, the
//! grant and the audit are the API's.

use std::collections::{BTreeMap, BTreeSet};

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use rolegate_core::ids::OrgName;
use rolegate_core::jobs::CreateJobCommand;
use rolegate_core::jobs::spec::blueprint::{BLUEPRINTS, parameters};
use serde_json::{Value, json};

use super::jobs::Row;
use super::orgs::ConfirmPage;
use super::{Frame, given, render};
use crate::Portal;
use crate::error::PageError;
use crate::session::Session;

/// An allowed value, and whether it is the default.
pub struct Allowed {
    pub value: String,
    pub selected: bool,
}

/// One form field, from one declared parameter.
pub struct Field {
    pub name: String,
    pub kind: String,
    pub default: String,
    pub allowed: Vec<Allowed>,
    pub number: bool,
    pub min: String,
    pub max: String,
    /// The description (or else the pattern the server checks).
    pub hint: String,
    pub required: bool,
}

pub struct BlueprintForm {
    pub name: &'static str,
    pub fields: Vec<Field>,
}

fn forms() -> Vec<BlueprintForm> {
    BLUEPRINTS
        .iter()
        .map(|b| BlueprintForm {
            name: b.name,
            fields: parameters(b.template)
                .into_iter()
                .map(|p| {
                    // The description says the form in words; the pattern only when it is all
                    // there is.
                    let hint = p
                        .description
                        .clone()
                        .or_else(|| p.allowed_pattern.as_ref().map(|pat| format!("Form: {pat}")))
                        .unwrap_or_default();
                    Field {
                        required: p.default.is_none(),
                        number: p.kind == "Number",
                        min: p.min_value.map(|v| v.to_string()).unwrap_or_default(),
                        max: p.max_value.map(|v| v.to_string()).unwrap_or_default(),
                        allowed: p
                            .allowed_values
                            .iter()
                            .map(|v| Allowed {
                                value: v.clone(),
                                selected: p.default.as_ref() == Some(v),
                            })
                            .collect(),
                        default: p.default.unwrap_or_default(),
                        hint,
                        kind: p.kind,
                        name: p.name,
                    }
                })
                .collect(),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "stacks.html")]
struct ListPage {
    frame: Option<Frame>,
    org: String,
    blueprints: Vec<BlueprintForm>,
    levels: Vec<String>,
    /// Stack names applied through rolegate (from the org's jobs).
    stacks: Vec<String>,
    rows: Vec<Row>,
}

fn org_name(raw: &str) -> Result<OrgName, PageError> {
    OrgName::parse(raw).map_err(|_| PageError::not_found("organisation"))
}

/// `GET /orgs/{org}/stacks`.
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
        .list(&session.caller, &org, None, None, None, 200)
        .await?;
    let jobs: Vec<_> = page
        .jobs
        .iter()
        .filter(|j| j.kind.starts_with("stack.") || j.kind == "inventory")
        .collect();
    let stacks: BTreeSet<String> = jobs
        .iter()
        .filter(|j| j.kind == "stack.apply")
        .filter_map(|j| j.spec["name"].as_str().map(str::to_owned))
        .collect();
    let mut rows: Vec<Row> = jobs.into_iter().map(Row::from).collect();
    rows.reverse();
    render(&ListPage {
        frame: Some(Frame::from(&session)),
        org: org.to_string(),
        blueprints: forms(),
        levels: view.access_levels,
        stacks: stacks.into_iter().collect(),
        rows,
    })
}

async fn start(
    portal: &Portal,
    session: &Session,
    org: &OrgName,
    kind: &str,
    spec: &Value,
    form: &BTreeMap<String, String>,
) -> Result<Response, PageError> {
    let cmd = CreateJobCommand::parse(
        org.as_str(),
        Some(kind),
        spec,
        given(form.get("access_level")),
        given(form.get("reason")),
    )?;
    let job = portal.services.jobs.create(&session.caller, &cmd).await?;
    Ok(Redirect::to(&format!("/jobs/{}", job.id)).into_response())
}

/// `POST /orgs/{org}/stacks`: `blueprint`, `name`, and `p.<Parameter>` for each declared
/// parameter; an empty value leaves the template's default.
pub async fn apply(
    State(portal): State<Portal>,
    session: Session,
    Path(raw): Path<String>,
    Form(f): Form<BTreeMap<String, String>>,
) -> Result<Response, PageError> {
    let org = org_name(&raw)?;
    let params: serde_json::Map<String, Value> = f
        .iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix("p.")?;
            let v = v.trim();
            (!v.is_empty()).then(|| (name.to_owned(), Value::String(v.to_owned())))
        })
        .collect();
    let spec = json!({
        "blueprint": given(f.get("blueprint")).unwrap_or_default(),
        "name": given(f.get("name")).unwrap_or_default(),
        "parameters": params,
    });
    start(&portal, &session, &org, "stack.apply", &spec, &f).await
}

/// `GET /orgs/{org}/stacks/{name}/confirm-delete`.
/// The access level chosen on the stacks page travels in the query.
pub async fn confirm_delete(
    session: Session,
    Path((raw, name)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Result<Response, PageError> {
    let org = org_name(&raw)?;
    let name = rolegate_core::jobs::spec::stack::parse_stack_name(Some(name.as_str()))?;
    let level = given(q.get("access_level"))
        // Level names are plain words; anything else is left out (the default applies).
        .filter(|l| {
            l.len() <= 64
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        })
        .map(|l| format!("?access_level={l}"))
        .unwrap_or_default();
    render(&ConfirmPage {
        frame: Some(Frame::from(&session)),
        title: format!("Delete the stack {name} of {org}?"),
        explain: "CloudFormation deletes the stack and every resource it made in the \
                  customer's account. This cannot be undone.",
        action: format!("/orgs/{org}/stacks/{name}/delete{level}"),
        button: "Delete the stack",
        cancel: format!("/orgs/{org}/stacks"),
    })
}

/// `POST /orgs/{org}/stacks/{name}/inspect` and `…/delete` (after its confirmation).
pub async fn act(
    State(portal): State<Portal>,
    session: Session,
    Path((raw, name, action)): Path<(String, String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
    Form(mut f): Form<BTreeMap<String, String>>,
) -> Result<Response, PageError> {
    let org = org_name(&raw)?;
    if let Some(level) = q.get("access_level") {
        f.entry("access_level".to_owned())
            .or_insert_with(|| level.clone());
    }
    let kind = match action.as_str() {
        "inspect" => "stack.inspect",
        "delete" => "stack.delete",
        _ => return Err(PageError::not_found("action")),
    };
    let spec = json!({ "name": name });
    start(&portal, &session, &org, kind, &spec, &f).await
}

/// `POST /orgs/{org}/inventory`: runs the read-only `inventory` job.
pub async fn inventory(
    State(portal): State<Portal>,
    session: Session,
    Path(raw): Path<String>,
    Form(f): Form<BTreeMap<String, String>>,
) -> Result<Response, PageError> {
    let org = org_name(&raw)?;
    start(&portal, &session, &org, "inventory", &json!({}), &f).await
}
