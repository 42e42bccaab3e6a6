//! Operators: admins create them (the token is shown once), disable them (their tokens
//! and portal sessions stop working at once) and rotate their tokens; an operator sees
//! itself and can rotate its own token.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use rolegate_core::ids::UserId;
use rolegate_core::users::{CreateUserCommand, User};
use secrecy::ExposeSecret as _;
use serde::Deserialize;

use super::orgs::{ConfirmPage, SecretPage};
use super::{Frame, given, render, wire};
use crate::Portal;
use crate::error::PageError;
use crate::session::Session;

pub struct Row {
    pub user_id: String,
    pub role: String,
    pub disabled: bool,
    pub created_at: String,
    pub me: bool,
    /// `IdP (subject)` for an operator the identity provider provisioned.
    pub idp: Option<String>,
}

#[derive(Template)]
#[template(path = "operators.html")]
struct ListPage {
    frame: Option<Frame>,
    rows: Vec<Row>,
}

pub async fn list(State(portal): State<Portal>, session: Session) -> Result<Response, PageError> {
    let users: Vec<User> = portal.services.users.list(&session.caller).await?;
    let me = session.user();
    let rows = users
        .iter()
        .map(|u| Row {
            user_id: u.user_id.clone(),
            role: wire(&u.role),
            disabled: u.disabled,
            created_at: u.created_at.clone(),
            me: u.user_id == me,
            idp: (u.metadata["idp"] == "oidc")
                .then(|| format!("IdP ({})", u.metadata["subject"].as_str().unwrap_or("?"))),
        })
        .collect();
    render(&ListPage {
        frame: Some(Frame::from(&session)),
        rows,
    })
}

#[derive(Deserialize)]
pub struct CreateForm {
    user_id: Option<String>,
    role: Option<String>,
}

pub async fn create(
    State(portal): State<Portal>,
    session: Session,
    Form(f): Form<CreateForm>,
) -> Result<Response, PageError> {
    let cmd = CreateUserCommand::parse(
        given(f.user_id.as_ref()).unwrap_or_default(),
        given(f.role.as_ref()).unwrap_or("operator"),
        None,
    )?;
    let (user, token) = portal.services.users.create(&session.caller, cmd).await?;
    render(&SecretPage {
        frame: Some(Frame::from(&session)),
        title: format!("Operator {} is created", user.user_id),
        what: "operator token",
        secret: token.expose_secret().to_owned(),
        back: "/operators".to_owned(),
        back_label: "Back to the operators".to_owned(),
    })
}

fn user_id(raw: &str) -> Result<UserId, PageError> {
    UserId::parse(raw).map_err(|_| PageError::not_found("user"))
}

pub async fn confirm_disable(
    session: Session,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    let id = user_id(&raw)?;
    render(&ConfirmPage {
        frame: Some(Frame::from(&session)),
        title: format!("Disable {id}?"),
        explain: "The operator's token and every portal session stop working at once, on every \
                  replica. The record and its audit trail stay.",
        action: format!("/operators/{id}/disable"),
        button: "Disable",
        cancel: "/operators".to_owned(),
    })
}

pub async fn disable(
    State(portal): State<Portal>,
    session: Session,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    let id = user_id(&raw)?;
    portal.services.users.disable(&session.caller, &id).await?;
    Ok(Redirect::to("/operators").into_response())
}

pub async fn rotate(
    State(portal): State<Portal>,
    session: Session,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    let id = user_id(&raw)?;
    let (user, token) = portal
        .services
        .users
        .rotate_token(&session.caller, &id)
        .await?;
    render(&SecretPage {
        frame: Some(Frame::from(&session)),
        title: format!("{}'s new token", user.user_id),
        what: "operator token",
        secret: token.expose_secret().to_owned(),
        back: "/operators".to_owned(),
        back_label: "Back to the operators".to_owned(),
    })
}

#[derive(Deserialize)]
pub struct RoleForm {
    role: Option<String>,
}

pub async fn set_role(
    State(portal): State<Portal>,
    session: Session,
    Path(raw): Path<String>,
    Form(f): Form<RoleForm>,
) -> Result<Response, PageError> {
    let id = user_id(&raw)?;
    let role = rolegate_core::ids::Role::parse(given(f.role.as_ref()).unwrap_or_default())?;
    portal
        .services
        .users
        .set_role(&session.caller, &id, role)
        .await?;
    Ok(Redirect::to("/operators").into_response())
}
