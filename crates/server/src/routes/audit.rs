use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use rolegate_core::audit::query::AuditQuery;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/audit", get(query))
}

/// `GET /api/audit?org=&actor=&action=&since=&until=&limit=&cursor=`
async fn query(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
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
    let q = AuditQuery::parse(
        p("org"),
        p("actor"),
        p("action"),
        p("since"),
        p("until"),
        p("limit"),
        p("cursor"),
    )?;
    let page = state.services.query_audit(&caller.principal, &q).await?;
    Ok(Json(
        serde_json::json!({ "events": page.events, "next_cursor": page.next }),
    ))
}
