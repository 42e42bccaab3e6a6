//! Credentials, as Identity Center's access portal hands them out: pick an org and one of
//! the access levels the operator is granted there, then copy environment variables, a
//! `~/.aws/credentials` profile or the individual values, or open the console. Issued
//! through `Credentials::issue`, so the same policy, cache, rate limits and audit apply.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::response::Response;
use std::collections::BTreeMap;

use rolegate_core::access::AccessFilter;
use rolegate_core::credentials::IssueCommand;
use rolegate_core::ids::OrgName;
use rolegate_core::model::{AccessState, OrgStatus};
use rolegate_core::policy::Action;
use secrecy::ExposeSecret as _;
use serde::Deserialize;

use super::access::human;
use super::{Frame, given, render};
use crate::Portal;
use crate::error::PageError;
use crate::session::Session;

/// A level in the picker.
pub struct LevelOption {
    pub name: String,
    /// `operator (grant, 55 min left)` for a level used through a grant.
    pub label: String,
}

/// One org, the levels the operator may use on it now, and those that need a grant it
/// does not hold (linked to the request form).
pub struct Choice {
    pub org: String,
    pub levels: Vec<LevelOption>,
    pub needs_grant: Vec<String>,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "credentials.html")]
struct FormPage {
    frame: Option<Frame>,
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
pub struct FormQuery {
    org: Option<String>,
}

/// The caller's running grants: (org, level) → time left in seconds.
async fn running_grants(
    portal: &Portal,
    session: &Session,
) -> Result<BTreeMap<(String, String), i64>, PageError> {
    let filter = AccessFilter {
        states: vec![AccessState::Active],
        mine: true,
        grants_only: true,
        limit: 500,
        ..AccessFilter::default()
    };
    let page = portal
        .services
        .access
        .list(&session.caller, Action::ListAccessGrants, &filter)
        .await?;
    let now = portal.services.records.clock().now().unix_timestamp();
    Ok(page
        .requests
        .into_iter()
        .filter_map(|r| {
            let left = r.grant_end_unix? - now;
            Some(((r.org.to_string(), r.access_level), left))
        })
        .collect())
}

pub async fn form(
    State(portal): State<Portal>,
    session: Session,
    Query(q): Query<FormQuery>,
) -> Result<Response, PageError> {
    let page = portal
        .services
        .orgs
        .list(&session.caller, None, 500)
        .await?;
    let grants = running_grants(&portal, &session).await?;
    let mut orgs: BTreeMap<String, Vec<String>> = page
        .orgs
        .into_iter()
        .filter(|o| o.status == OrgStatus::Validated)
        .map(|o| (o.org_name, o.access_levels))
        .collect();
    // A grant on an org the operator does not own still offers that org.
    for (org, _) in grants.keys() {
        orgs.entry(org.clone()).or_default();
    }
    let choices = orgs
        .into_iter()
        .map(|(org, usable)| {
            let name = OrgName::parse(&org).ok();
            let needing: Vec<String> = name
                .map(|n| portal.services.access.requestable(&n))
                .unwrap_or_default()
                .into_iter()
                .map(|r| r.access_level)
                .collect();
            let mut levels: Vec<LevelOption> = usable
                .iter()
                .filter(|l| !needing.contains(*l))
                .map(|l| LevelOption {
                    name: l.clone(),
                    label: l.clone(),
                })
                .collect();
            let mut needs_grant = Vec::new();
            for l in needing {
                match grants.get(&(org.clone(), l.clone())) {
                    Some(left) => levels.push(LevelOption {
                        label: format!("{l} (grant, {} left)", human(*left)),
                        name: l,
                    }),
                    None => needs_grant.push(l),
                }
            }
            Choice {
                selected: q.org.as_deref() == Some(org.as_str()),
                org,
                levels,
                needs_grant,
            }
        })
        .filter(|c| !c.levels.is_empty() || !c.needs_grant.is_empty())
        .collect();
    render(&FormPage {
        frame: Some(Frame::from(&session)),
        choices,
    })
}

#[derive(Deserialize)]
pub struct IssueForm {
    /// `org|level`.
    choice: Option<String>,
    duration_secs: Option<String>,
    reason: Option<String>,
}

impl IssueForm {
    fn command(&self) -> Result<IssueCommand, PageError> {
        let choice = given(self.choice.as_ref())
            .ok_or_else(|| rolegate_core::Error::invalid("choice", "pick an org and a level"))?;
        let (org, level) = choice.split_once('|').ok_or_else(|| {
            rolegate_core::Error::invalid("choice", "the choice must be an org and a level")
        })?;
        let duration = given(self.duration_secs.as_ref())
            .map(|d| {
                d.parse::<i64>().map_err(|_| {
                    rolegate_core::Error::invalid("duration_secs", "duration must be seconds")
                })
            })
            .transpose()?;
        Ok(IssueCommand::parse(
            Some(org),
            Some(level),
            duration,
            given(self.reason.as_ref()),
            false,
        )?)
    }
}

#[derive(Template)]
#[template(path = "credentials_issued.html")]
struct IssuedPage {
    frame: Option<Frame>,
    org: String,
    level: String,
    profile: String,
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    region: String,
    expiration: String,
    minutes: i64,
    session_name: String,
    role_arn: String,
    cached: bool,
    /// The grant the credentials run under.
    grant: Option<GrantBanner>,
}

/// The grant credentials run under: its id, its end and what is left of it.
struct GrantBanner {
    id: String,
    ends_at: String,
    left: String,
}

pub async fn issue(
    State(portal): State<Portal>,
    session: Session,
    Form(f): Form<IssueForm>,
) -> Result<Response, PageError> {
    let cmd = f.command()?;
    let issued = portal
        .services
        .credentials
        .issue(&session.caller, &cmd)
        .await?;
    let c = &issued.credentials;
    let now = portal.services.records.clock().now();
    render(&IssuedPage {
        frame: Some(Frame::from(&session)),
        org: cmd.org.to_string(),
        profile: format!("rg-{}-{}", cmd.org, issued.access_level),
        level: issued.access_level.clone(),
        access_key_id: c.access_key_id.clone(),
        secret_access_key: c.secret_access_key.expose_secret().to_owned(),
        session_token: c.session_token.expose_secret().to_owned(),
        region: issued.region.clone(),
        expiration: rolegate_core::clock::rfc3339(c.expiration),
        minutes: (c.expiration - now).whole_minutes(),
        session_name: issued.session_name.clone(),
        role_arn: issued.role_arn.clone(),
        cached: issued.cached,
        grant: issued.grant.as_ref().map(|(id, end)| GrantBanner {
            id: id.clone(),
            ends_at: rolegate_core::clock::rfc3339_unix(*end),
            left: human(end - now.unix_timestamp()),
        }),
    })
}

#[derive(Template)]
#[template(path = "console.html")]
struct ConsolePage {
    frame: Option<Frame>,
    org: String,
    level: String,
    url: String,
    expires_at: String,
}

pub async fn console(
    State(portal): State<Portal>,
    session: Session,
    Form(f): Form<IssueForm>,
) -> Result<Response, PageError> {
    let cmd = f.command()?;
    let login = portal
        .services
        .credentials
        .console_signin(&session.caller, &cmd, None)
        .await?;
    render(&ConsolePage {
        frame: Some(Frame::from(&session)),
        org: cmd.org.to_string(),
        level: login.access_level.clone(),
        url: login.url.clone(),
        expires_at: rolegate_core::clock::rfc3339(login.expires_at),
    })
}
