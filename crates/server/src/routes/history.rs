//! The customer's access history: `GET /api/orgs/{org}/access-history` (pages of JSON) and
//! `GET /api/orgs/{org}/access-history/export` (JSON lines for a SIEM, resumable with
//! `after`). The org's API key reads its own org; operators as the policy lets them read it.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use rolegate_core::history::{HistoryEntry, HistoryQuery};
use rolegate_core::ids::OrgName;
use rolegate_core::policy::Action;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::authorize::authorized;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// The export's cursor: the last sequence number the page looked at (resume after it).
pub const CURSOR_HEADER: &str = "rolegate-cursor";
/// `true` when the export stopped before the end of the org's log (ask again at once).
pub const MORE_HEADER: &str = "rolegate-more";

pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(authorized(routes!(list), Action::ReadAccessHistory, state))
        .routes(authorized(
            routes!(export),
            Action::ReadAccessHistory,
            state,
        ))
}

/// One page of history, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessHistoryResponse {
    entries: Vec<HistoryEntry>,
    /// Pass as `cursor` for the next page; `null` at the end of the log.
    next_cursor: Option<String>,
}

fn params(raw: &HashMap<String, String>, known: &[&str]) -> Result<(), ApiError> {
    if let Some(unknown) = raw.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(ApiError::invalid_field(
            unknown,
            format!("unknown query parameter {unknown}"),
        ));
    }
    Ok(())
}

/// An organisation's access history
///
/// Who obtained credentials or console sessions, ran jobs, or asked for, approved, denied
/// or revoked access on this organisation's account: when, from which address, under which
/// grant and SourceIdentity, and why. Refusals are listed too. Never another org's events,
/// never a secret.
#[utoipa::path(
    get, path = "/api/orgs/{org}/access-history", operation_id = "org_access_history", tag = "orgs",
    params(
        ("org" = String, Path, description = "The organisation's name."),
        ("action" = Option<String>, Query, pattern = "^(credentials\\.issue|credentials\\.console|workload\\.session|job\\.create|access\\.request|access\\.break_glass|access\\.approve|access\\.deny|access\\.cancel|access\\.revoke|access\\.request\\.expire|access\\.grant\\.activate|access\\.grant\\.expire|access\\.customer_decision|org\\.customer_approvers\\.set|org\\.customer_approvers\\.clear)$", description = "Only this action."),
        ("since" = Option<String>, Query, format = DateTime, description = "RFC 3339; events at or after it."),
        ("until" = Option<String>, Query, format = DateTime, description = "RFC 3339; events before it."),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "1 to 1000 (default 100)."),
        ("cursor" = Option<String>, Query, pattern = "^[0-9]{1,19}$", description = "`next_cursor` from the previous page."),
    ),
    responses(
        (status = 200, description = "One page.", body = AccessHistoryResponse),
        (status = 400, description = "`invalid_field`.", body = ErrorBody),
        (status = 403, description = "`forbidden` (another org's key, another operator's org).", body = ErrorBody),
        (status = 404, description = "`not_found`.", body = ErrorBody),
    )
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<AccessHistoryResponse>, ApiError> {
    params(&raw, &["action", "since", "until", "limit", "cursor"])?;
    let org = OrgName::parse(&org)?;
    let p = |k: &str| raw.get(k).map(String::as_str);
    let q = HistoryQuery::parse(
        p("action"),
        p("since"),
        p("until"),
        p("limit"),
        p("cursor"),
        1000,
    )?;
    let page = state.services.history.query(&caller, &org, &q).await?;
    Ok(Json(AccessHistoryResponse {
        entries: page.entries,
        next_cursor: page.next.map(|s| s.to_string()),
    }))
}

/// Export an organisation's access history (JSON lines)
///
/// One `HistoryEntry` per line, oldest first, for a SIEM. Resume with `after` set to the
/// `Rolegate-Cursor` of the previous answer (the last sequence number it looked at, present
/// even when no line matched): nothing is skipped or repeated. `Rolegate-More: true` means
/// the page stopped before the end; ask again at once.
#[utoipa::path(
    get, path = "/api/orgs/{org}/access-history/export", operation_id = "export_org_access_history", tag = "orgs",
    params(
        ("org" = String, Path, description = "The organisation's name."),
        ("after" = Option<String>, Query, pattern = "^[0-9]{1,19}$", description = "`Rolegate-Cursor` of the previous answer."),
        ("action" = Option<String>, Query, pattern = "^(credentials\\.issue|credentials\\.console|workload\\.session|job\\.create|access\\.request|access\\.break_glass|access\\.approve|access\\.deny|access\\.cancel|access\\.revoke|access\\.request\\.expire|access\\.grant\\.activate|access\\.grant\\.expire|access\\.customer_decision|org\\.customer_approvers\\.set|org\\.customer_approvers\\.clear)$", description = "Only this action."),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "Lines per answer: 1 to 1000 (default 1000)."),
    ),
    responses(
        (status = 200, description = "JSON lines, with `Rolegate-Cursor` and `Rolegate-More`.", content_type = "application/x-ndjson", body = HistoryEntry,
            headers(
                ("Rolegate-Cursor" = String, description = "Pass as `after` to resume."),
                ("Rolegate-More" = String, description = "`true` when more lines are ready now."),
            )),
        (status = 400, description = "`invalid_field`.", body = ErrorBody),
        (status = 403, description = "`forbidden`.", body = ErrorBody),
        (status = 404, description = "`not_found`.", body = ErrorBody),
    )
)]
async fn export(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    params(&raw, &["after", "action", "limit"])?;
    let org = OrgName::parse(&org)?;
    let p = |k: &str| raw.get(k).map(String::as_str);
    if let Some(a) = p("after")
        && a.parse::<u64>().is_err()
    {
        return Err(ApiError::invalid_field(
            "after",
            "after must be a Rolegate-Cursor this server returned",
        ));
    }
    let limit = p("limit").or(Some("1000"));
    let q = HistoryQuery::parse(p("action"), None, None, limit, p("after"), 1000)?;
    let page = state.services.history.query(&caller, &org, &q).await?;
    let mut body = Vec::new();
    for e in &page.entries {
        // Serialising a struct of strings and numbers cannot fail.
        if let Ok(line) = serde_json::to_vec(e) {
            body.extend_from_slice(&line);
            body.push(b'\n');
        }
    }
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    let cursor = page.last_seq.map(|s| s.to_string()).unwrap_or_default();
    if let Ok(v) = HeaderValue::from_str(&cursor) {
        h.insert(HeaderName::from_static(CURSOR_HEADER), v);
    }
    h.insert(
        HeaderName::from_static(MORE_HEADER),
        HeaderValue::from_static(if page.next.is_some() { "true" } else { "false" }),
    );
    Ok(res)
}
