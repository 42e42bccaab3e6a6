//! Sign-in with an operator token (pasted once; the browser keeps only the session
//! cookie), and sign-out. A wrong token counts against the same per-source budget as a
//! wrong bearer token on the API and is audited the same way (`auth.failed`).

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use rolegate_core::Code;
use rolegate_core::audit::AuditRecord;
use rolegate_core::keyspace;
use secrecy::ExposeSecret as _;
use serde::Deserialize;

use super::{Frame, render};
use crate::error::PageError;
use crate::session::{self, Session, context, secure_origin, set_cookie};
use crate::{Client, Portal};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    frame: Option<Frame>,
    notice: Option<&'static str>,
    error: Option<&'static str>,
    /// The identity provider's name, when sign-in through it is configured.
    sso: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginQuery {
    ended: Option<String>,
}

pub async fn form(
    State(portal): State<Portal>,
    Query(q): Query<LoginQuery>,
) -> Result<Response, PageError> {
    let notice = match q.ended.as_deref() {
        Some("expired") => Some("Your session expired. Sign in again."),
        Some("revoked") => Some("Your session ended: your operator account is disabled."),
        Some("signed_out") => Some("You are signed out."),
        _ => None,
    };
    render(&LoginPage {
        frame: None,
        notice,
        error: None,
        sso: portal.oidc.as_ref().map(|o| o.display_name().to_owned()),
    })
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: Option<String>,
}

pub async fn submit(
    State(portal): State<Portal>,
    client: Option<Extension<Client>>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Result<Response, PageError> {
    let client = client.map(|Extension(c)| c);
    let ctx = context(&headers, client.as_ref());
    let token = f.token.unwrap_or_default();
    let token = token.trim();
    let principal = portal.services.users.authenticate_token(token).await?;
    let Some(principal) = principal else {
        let kind = if token.starts_with("rgt_") {
            "portal_token"
        } else {
            "portal_unknown"
        };
        failed(&portal, &ctx, kind, None).await?;
        let mut res = render(&LoginPage {
            frame: None,
            notice: None,
            error: Some("That token is not valid (wrong, rotated or disabled)."),
            sso: portal.oidc.as_ref().map(|o| o.display_name().to_owned()),
        })?;
        *res.status_mut() = StatusCode::UNAUTHORIZED;
        return Ok(res);
    };
    let opened = portal
        .services
        .sessions
        .open(principal, ctx, "token")
        .await?;
    let cookie = set_cookie(
        opened.id.expose_secret(),
        secure_origin(&headers, client.as_ref()),
    )
    .ok_or_else(|| PageError::new(Code::Internal, Code::Internal.description()))?;
    let mut res = Redirect::to("/").into_response();
    res.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(res)
}

/// A failed sign-in (`kind`: `portal_token`, `oidc`, …): one step of the per-source failure
/// budget and an `auth.failed` event (aggregated per source and minute). `Err` with 429
/// once the budget is spent.
pub(crate) async fn failed(
    portal: &Portal,
    ctx: &rolegate_core::RequestContext,
    kind: &'static str,
    reason: Option<&'static str>,
) -> Result<(), PageError> {
    let records = &portal.services.records;
    let ip = ctx.source_ip.clone().unwrap_or_default();
    let limited = match records
        .rate_step(&keyspace::rate::auth_failures(&ip), portal.auth_failures)
        .await
    {
        Ok(d) => !d.allowed,
        Err(e) => {
            tracing::warn!(error = %e, "rate limiter unavailable");
            false
        }
    };
    let code = if limited {
        "rate_limited"
    } else {
        "unauthorized"
    };
    let mut details = serde_json::json!({"credential": kind});
    if let Some(r) = reason {
        details["reason"] = serde_json::Value::from(r);
    }
    let record = AuditRecord::new("auth.failed")
        .failure(code)
        .details(details);
    if let Err(e) = records.record_unauthenticated(ctx, record).await {
        tracing::error!(error = %e, "could not audit a failed portal sign-in");
    }
    if limited {
        return Err(PageError::new(
            Code::RateLimited,
            "too many failed sign-ins from your address; wait a minute",
        ));
    }
    Ok(())
}

pub async fn logout(State(portal): State<Portal>, session: Session) -> Result<Response, PageError> {
    portal
        .services
        .sessions
        .close(&session.caller, session.id())
        .await?;
    Ok(session::to_login(Some("signed_out")))
}
