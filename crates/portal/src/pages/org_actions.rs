//! The owner's and admins' actions on one organisation (rotate the API key, reset the
//! binding, offboard): one table of what each says on its confirmation page, one handler
//! that shows the confirmation and one that performs it. A new API key is shown once.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use rolegate_core::ids::OrgName;
use secrecy::ExposeSecret as _;

use super::orgs::{ConfirmPage, SecretPage, org_name};
use super::{Frame, render};
use crate::Portal;
use crate::error::PageError;
use crate::session::Session;

/// An action behind a confirmation page.
#[derive(Debug, Clone, Copy)]
enum OrgAction {
    RotateKey,
    ResetBinding,
    Offboard,
}

impl OrgAction {
    /// The action named in the path (`rotate-key`, `reset-binding`, `offboard`).
    fn parse(slug: &str) -> Result<Self, PageError> {
        match slug {
            "rotate-key" => Ok(Self::RotateKey),
            "reset-binding" => Ok(Self::ResetBinding),
            "offboard" => Ok(Self::Offboard),
            _ => Err(PageError::not_found("action")),
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Self::RotateKey => "rotate-key",
            Self::ResetBinding => "reset-binding",
            Self::Offboard => "offboard",
        }
    }

    /// The confirmation's question, explanation and button.
    fn wording(self, org: &OrgName) -> (String, &'static str, &'static str) {
        match self {
            Self::RotateKey => (
                format!("Rotate {org}'s API key?"),
                "A new API key is issued and shown once. The current key stops working at \
                 once, and the org's cached credentials are dropped.",
                "Rotate the API key",
            ),
            Self::ResetBinding => (
                format!("Reset {org}'s account binding?"),
                "The org forgets the account and role it is bound to, and the old onboarding \
                 links stop working. The customer must deploy the stack again (in any account).",
                "Reset the binding",
            ),
            Self::Offboard => (
                format!("Offboard {org}?"),
                "The org's API key stops working and no more credentials are issued for it. \
                 The record and its audit trail stay. This cannot be undone.",
                "Offboard",
            ),
        }
    }
}

/// `GET /orgs/{org}/confirm/{action}`: asks before acting.
pub async fn confirm(
    session: Session,
    Path((raw, slug)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let org = org_name(&raw)?;
    let action = OrgAction::parse(&slug)?;
    let (title, explain, button) = action.wording(&org);
    render(&ConfirmPage {
        frame: Some(Frame::from(&session)),
        title,
        explain,
        action: format!("/orgs/{org}/actions/{}", action.slug()),
        button,
        cancel: format!("/orgs/{org}"),
    })
}

/// `POST /orgs/{org}/actions/{action}`: through the same services as the API.
pub async fn perform(
    State(portal): State<Portal>,
    session: Session,
    Path((raw, slug)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let org = org_name(&raw)?;
    let s = &portal.services;
    match OrgAction::parse(&slug)? {
        OrgAction::RotateKey => {
            let rotated = s.orgs.rotate_api_key(&session.caller, &org).await?;
            return render(&SecretPage {
                frame: Some(Frame::from(&session)),
                title: format!("{org}'s new API key"),
                what: "API key",
                secret: rotated.api_key.expose_secret().to_owned(),
                back: format!("/orgs/{org}"),
                back_label: format!("Back to {org}"),
            });
        }
        OrgAction::ResetBinding => {
            s.onboarding.reset_binding(&session.caller, &org).await?;
        }
        OrgAction::Offboard => {
            s.orgs.offboard(&session.caller, &org).await?;
        }
    }
    Ok(Redirect::to(&format!("/orgs/{org}")).into_response())
}
