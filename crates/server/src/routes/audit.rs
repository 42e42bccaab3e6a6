use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use rolegate_core::audit::AuditEvent;
use rolegate_core::audit_log::{AuditQuery, RawAuditQuery};
use rolegate_core::policy::Action;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::authorize::authorized;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(authorized(routes!(query), Action::ReadAudit, state))
}

/// One page of events, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPageResponse {
    events: Vec<AuditEvent>,
    /// Pass as `cursor` for the next page; `null` at the end of the log.
    next_cursor: Option<String>,
}

/// Query the audit log
///
/// Oldest first. An admin sees every event, an operator those of its own organisations.
/// Unknown parameters are rejected (`invalid_field`).
#[utoipa::path(
    get, path = "/api/audit", operation_id = "query_audit", tag = "audit",
    params(
        ("org" = Option<String>, Query, description = "Only this organisation's events."),
        ("actor" = Option<String>, Query, min_length = 1, max_length = 128, description = "Only this actor's events (e.g. `user:alice`): 1 to 128 characters."),
        ("action" = Option<String>, Query, min_length = 1, max_length = 128, description = "Only this action (e.g. `user.create`): 1 to 128 characters."),
        ("since" = Option<String>, Query, format = DateTime, description = "RFC 3339; events at or after it."),
        ("until" = Option<String>, Query, format = DateTime, description = "RFC 3339; events before it."),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "1 to 1000 (default 100)."),
        ("cursor" = Option<String>, Query, pattern = "^[0-9]{1,19}$", description = "`next_cursor` from the previous page: an opaque token (today the last sequence number seen; the page starts after it)."),
    ),
    responses(
        (status = 200, description = "One page of events.", body = AuditPageResponse),
        (status = 400, description = "`invalid_field`.", body = ErrorBody),
    )
)]
async fn query(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<AuditPageResponse>, ApiError> {
    const KNOWN: &[&str] = &[
        "org", "actor", "action", "since", "until", "limit", "cursor",
    ];
    if let Some(unknown) = params.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(ApiError::invalid_field(
            unknown,
            format!("unknown query parameter {unknown}"),
        ));
    }
    let p = |k: &str| params.get(k).map(String::as_str);
    let q = AuditQuery::parse(&RawAuditQuery {
        org: p("org"),
        actor: p("actor"),
        action: p("action"),
        since: p("since"),
        until: p("until"),
        limit: p("limit"),
        cursor: p("cursor"),
    })?;
    let page = state.services.audit.query(&caller, &q).await?;
    Ok(Json(AuditPageResponse {
        events: page.events,
        next_cursor: page.next,
    }))
}
