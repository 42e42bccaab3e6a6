//! One organisation: its status (live while onboarding), binding and trust verdict, the
//! ExternalId, the onboarding links; the owner's and admins' actions are in `org_actions`.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use rolegate_core::ids::OrgName;
use rolegate_core::model::OrgStatus;
use rolegate_core::onboarding::OnboardingLinks;
use rolegate_core::orgs::RegisterOrgCommand;
use secrecy::ExposeSecret as _;
use serde::Deserialize;

use super::home::attention;
use super::{Frame, badge, given, render, wire};
use crate::Portal;
use crate::error::PageError;
use crate::session::Session;

#[derive(Deserialize)]
pub struct RegisterForm {
    org_name: Option<String>,
    account_id: Option<String>,
}

/// A secret shown once (a new API key or operator token).
#[derive(Template)]
#[template(path = "secret.html")]
pub struct SecretPage {
    pub frame: Option<Frame>,
    pub title: String,
    pub what: &'static str,
    pub secret: String,
    pub back: String,
    pub back_label: String,
}

pub async fn register(
    State(portal): State<Portal>,
    session: Session,
    Form(f): Form<RegisterForm>,
) -> Result<Response, PageError> {
    let name = given(f.org_name.as_ref()).unwrap_or_default();
    let cmd = RegisterOrgCommand::parse(name, given(f.account_id.as_ref()))?;
    let registered = portal.services.orgs.register(&session.caller, cmd).await?;
    let org = registered.org.org_name.clone();
    render(&SecretPage {
        frame: Some(Frame::from(&session)),
        title: format!("{org} is registered"),
        what: "API key",
        secret: registered.api_key.expose_secret().to_owned(),
        back: format!("/orgs/{org}"),
        back_label: format!("Continue to {org}'s onboarding"),
    })
}

pub(super) fn org_name(raw: &str) -> Result<OrgName, PageError> {
    OrgName::parse(raw).map_err(|_| PageError::not_found("organisation"))
}

#[derive(Template)]
#[template(path = "org.html")]
struct OrgPage {
    frame: Option<Frame>,
    org: rolegate_core::model::Org,
    status: String,
    badge: &'static str,
    live: bool,
    attention: Option<String>,
    links: Option<OnboardingLinks>,
    links_error: Option<String>,
    can_manage: bool,
    offboarded: bool,
    validated: bool,
}

pub async fn show(
    State(portal): State<Portal>,
    session: Session,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    let name = org_name(&raw)?;
    let org = portal.services.orgs.get(&session.caller, &name).await?;
    let status = wire(&org.status);
    let offboarded = org.status == OrgStatus::Offboarded;
    // Links only for those who may issue them (the owner and admins), and not for an
    // offboarded org; any other refusal is shown in place of the links.
    let owner = matches!(&session.caller.principal,
        rolegate_core::Principal::Operator { user_id, .. } if user_id.as_str() == org.owner);
    let can_manage = owner || session.is_admin();
    let (links, links_error) = if can_manage && !offboarded {
        match portal
            .services
            .onboarding
            .issue_links(&session.caller, &name, false)
            .await
        {
            Ok(l) => (Some(l), None),
            Err(e) => (None, Some(format!("{}: {e}", e.code().as_str()))),
        }
    } else {
        (None, None)
    };
    render(&OrgPage {
        frame: Some(Frame::from(&session)),
        badge: badge(&status),
        live: matches!(org.status, OrgStatus::Pending | OrgStatus::CallbackReceived),
        attention: attention(&org),
        validated: org.status == OrgStatus::Validated,
        status,
        org,
        links,
        links_error,
        can_manage,
        offboarded,
    })
}

/// The status alone, for the page's live badge (polled by the portal's script).
pub async fn status(
    State(portal): State<Portal>,
    session: Session,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    let name = org_name(&raw)?;
    let org = portal.services.orgs.get(&session.caller, &name).await?;
    Ok(Json(serde_json::json!({"status": wire(&org.status)})).into_response())
}

#[derive(Template)]
#[template(path = "confirm.html")]
pub struct ConfirmPage {
    pub frame: Option<Frame>,
    pub title: String,
    pub explain: &'static str,
    pub action: String,
    pub button: &'static str,
    pub cancel: String,
}
