//! Sign-in through the identity provider. `/auth/oidc/start` remembers a fresh state, nonce
//! and PKCE verifier (server-side, 10 minutes, one use), binds the state to this browser
//! with a short-lived cookie, and sends the browser to the IdP; `/auth/oidc/callback`
//! takes them back, verifies the answer, provisions (or disables) the operator and opens a
//! session. Every refusal is audited as `auth.failed` with its reason and spends the
//! per-source failure budget.

use askama::Template;
use axum::Extension;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use rolegate_core::ids::UserId;
use rolegate_core::model::{OidcPending, Secret};
use rolegate_core::{Caller, Code, Principal, RequestContext};
use secrecy::ExposeSecret as _;
use serde::Deserialize;

use super::login::failed;
use super::{Frame, render};
use crate::error::PageError;
use crate::oidc::OidcError;
use crate::session::{context, secure_origin, set_cookie};
use crate::{Client, Portal};

/// The cookie that binds a sign-in's state to the browser that started it. `Lax`: the
/// IdP's redirect back is a cross-site top-level navigation.
const STATE_COOKIE: &str = "__Host-rolegate-oidc";
const STATE_COOKIE_INSECURE: &str = "rolegate-oidc";

fn state_cookie(state: &str, secure: bool) -> Option<HeaderValue> {
    let v = if secure {
        format!("{STATE_COOKIE}={state}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=600")
    } else {
        format!("{STATE_COOKIE_INSECURE}={state}; Path=/; HttpOnly; SameSite=Lax; Max-Age=600")
    };
    HeaderValue::from_str(&v).ok()
}

fn presented_state(headers: &HeaderMap) -> Option<String> {
    for line in headers.get_all(header::COOKIE) {
        let Ok(line) = line.to_str() else { continue };
        for pair in line.split(';') {
            if let Some((name, value)) = pair.trim().split_once('=')
                && (name == STATE_COOKIE || name == STATE_COOKIE_INSECURE)
            {
                return Some(value.to_owned());
            }
        }
    }
    None
}

fn not_configured() -> PageError {
    PageError::new(
        Code::NotConfigured,
        "sign-in through an identity provider is not configured ([oidc])",
    )
}

pub async fn start(
    State(portal): State<Portal>,
    client: Option<Extension<Client>>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let oidc = portal.oidc.as_ref().ok_or_else(not_configured)?;
    let started = oidc.start().await.map_err(|e| {
        tracing::warn!(error = %e, "could not start an OIDC sign-in");
        PageError::new(Code::Unavailable, e.to_string())
    })?;
    let pending = OidcPending {
        nonce: Secret::new(started.nonce.expose_secret()),
        pkce_verifier: Secret::new(started.pkce_verifier.expose_secret()),
        next: "/".to_owned(),
    };
    portal
        .services
        .sessions
        .begin_sign_in(started.state.expose_secret(), &pending)
        .await?;
    let client = client.map(|Extension(c)| c);
    let secure = secure_origin(&headers, client.as_ref());
    let mut res = Redirect::to(&started.url).into_response();
    if let Some(c) = state_cookie(started.state.expose_secret(), secure) {
        res.headers_mut().insert(header::SET_COOKIE, c);
    }
    Ok(res)
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "signed_in.html")]
struct SignedIn {
    frame: Option<Frame>,
}

pub async fn callback(
    State(portal): State<Portal>,
    client: Option<Extension<Client>>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Result<Response, PageError> {
    let oidc = portal.oidc.as_ref().ok_or_else(not_configured)?;
    let client = client.map(|Extension(c)| c);
    let ctx = context(&headers, client.as_ref());
    let principal = match sign_in(&portal, &ctx, &headers, &q).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "refused an OIDC sign-in");
            failed(&portal, &ctx, "oidc", Some(e.reason())).await?;
            return Err(PageError::new(
                Code::Unauthorized,
                format!("sign-in through {} refused: {e}", oidc.display_name()),
            ));
        }
    };
    let opened = portal
        .services
        .sessions
        .open(principal, ctx, "oidc")
        .await?;
    let secure = secure_origin(&headers, client.as_ref());
    let cookie = set_cookie(opened.id.expose_secret(), secure)
        .ok_or_else(|| PageError::new(Code::Internal, Code::Internal.description()))?;
    // A page, not a redirect: the session cookie is SameSite=Strict, and a redirect that
    // continues the IdP's cross-site navigation would not carry it; this page's own
    // navigation to / is same-site.
    let mut res = render(&SignedIn { frame: None })?;
    *res.status_mut() = StatusCode::OK;
    let h = res.headers_mut();
    h.append(header::SET_COOKIE, cookie);
    h.append(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "__Host-rolegate-oidc=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0",
        ),
    );
    Ok(res)
}

async fn sign_in(
    portal: &Portal,
    ctx: &RequestContext,
    headers: &HeaderMap,
    q: &CallbackQuery,
) -> Result<Principal, OidcError> {
    let oidc = portal
        .oidc
        .as_ref()
        .ok_or_else(|| OidcError::Provider("not configured".into()))?;
    if let Some(e) = &q.error {
        let e: String = e.chars().take(100).collect();
        return Err(OidcError::Provider(format!("the provider answered {e}")));
    }
    let state = q.state.as_deref().unwrap_or_default();
    let bound = presented_state(headers).unwrap_or_default();
    if state.is_empty() || !rolegate_crypto::ct_eq(state.as_bytes(), bound.as_bytes()) {
        return Err(OidcError::BadState);
    }
    let pending = portal
        .services
        .sessions
        .take_sign_in(state)
        .await
        .map_err(|e| OidcError::Provider(e.to_string()))?
        .ok_or(OidcError::BadState)?;
    let code = q.code.as_deref().unwrap_or_default();
    let identity = oidc
        .finish(code, pending.nonce.expose(), pending.pkce_verifier.expose())
        .await?;
    let user = UserId::parse(&identity.user).map_err(|_| {
        OidcError::NotAllowed(format!("{:?} is not a valid operator id", identity.user))
    })?;
    let system = Caller {
        principal: Principal::System { task: "oidc" },
        ctx: RequestContext {
            actor: "system".to_owned(),
            ..ctx.clone()
        },
    };
    let metadata = serde_json::json!({
        "idp": "oidc",
        "subject": identity.subject,
        "groups": identity.groups,
    });
    portal
        .services
        .users
        .provision(&system, &user, identity.role, metadata)
        .await
        .map_err(|e| OidcError::Provider(e.to_string()))?
        .ok_or_else(|| {
            OidcError::NotAllowed(format!(
                "{user} is not an operator: no group maps to a role, or the operator is disabled"
            ))
        })
}
