//! [`authorized`]: every protected route declares the [`Action`] it performs, the way
//! [`idempotent`](crate::idempotency::idempotent) declares its Idempotency-Key. The one
//! declaration does three things:
//!
//! - a kind of caller the policy never admits for that action (an API key on an admin
//!   route) is refused before the handler runs, and the refusal is audited;
//! - the operation's OpenAPI `security` entry is derived from the same rules, so the document
//!   cannot claim an API key works where the policy says no;
//! - the operation's description says who may call it.
//!
//! The full decision, with the facts only a service knows (who owns the org, which level was
//! asked for), is still taken in `rolegate_core` by `policy::authorize`, once per service
//! call.

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rolegate_core::policy::{Action, Facts, Rule};
use utoipa::openapi::security::SecurityRequirement;
use utoipa_axum::router::UtoipaMethodRouter;

use crate::error::ApiError;
use crate::openapi::{OPERATOR_TOKEN, ORG_API_KEY};
use crate::state::AppState;

/// Declares that the route performs `action`: enforced and documented in one step.
pub fn authorized(
    (schemas, paths, route): UtoipaMethodRouter<AppState>,
    action: Action,
    state: &AppState,
) -> UtoipaMethodRouter<AppState> {
    let route = route.route_layer(middleware::from_fn_with_state(
        (state.clone(), action),
        precheck,
    ));
    documented((schemas, paths, route), action)
}

/// Only the documentation half of [`authorized`], for a route outside the authenticated
/// router that checks its own credentials against the same action (`/metrics`).
pub fn documented(
    (schemas, mut paths, route): UtoipaMethodRouter<AppState>,
    action: Action,
) -> UtoipaMethodRouter<AppState> {
    let rules = action.rules();
    let mut security = Vec::new();
    if rules.admin != Rule::Deny || rules.operator != Rule::Deny {
        security.push(SecurityRequirement::new(
            OPERATOR_TOKEN,
            Vec::<String>::new(),
        ));
    }
    if rules.admits_api_keys() {
        security.push(SecurityRequirement::new(ORG_API_KEY, Vec::<String>::new()));
    }
    for item in paths.paths.values_mut() {
        for op in crate::openapi::operations_mut(item) {
            op.security = Some(security.clone());
            let who = format!(
                "**Action** `{}`. **Who may call it:** {}.",
                action.name(),
                rules.describe()
            );
            op.description = Some(match op.description.take() {
                Some(d) if !d.is_empty() => format!("{d}\n\n{who}"),
                _ => who,
            });
            op.extensions
                .get_or_insert_with(Default::default)
                .insert("x-rolegate-action".to_owned(), action.name().into());
        }
    }
    (schemas, paths, route)
}

/// Refuses, before the handler, a kind of principal the action's rules deny outright.
async fn precheck(
    State((state, action)): State<(AppState, Action)>,
    req: Request,
    next: Next,
) -> Response {
    let Some(caller) = req.extensions().get::<rolegate_core::Caller>() else {
        return ApiError::unauthorized("authentication required").into_response();
    };
    if action.rules().for_principal(&caller.principal) == Rule::Deny
        && let Err(e) = state
            .services
            .records
            .authorize(caller, action, &Facts::default())
            .await
    {
        return ApiError::from(e).into_response();
    }
    next.run(req).await
}
