//! Just-in-time access: `POST /api/access-requests`, listing and reading them, approving,
//! denying, cancelling, revoking, reviewing break-glass grants, and `GET /api/access-grants`.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rolegate_core::access::{AccessFilter, Decision, RequestAccessCommand};
use rolegate_core::model::{AccessRequestRecord, AccessState};
use rolegate_core::policy::Action;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::authorize::authorized;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::idempotency::{Mode, idempotent};
use crate::state::AppState;

pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(idempotent(
            authorized(routes!(create), Action::RequestAccess, state),
            Mode::Optional,
            state,
        ))
        .routes(authorized(routes!(list), Action::ListAccessRequests, state))
        .routes(authorized(routes!(show), Action::ReadAccessRequest, state))
        .routes(idempotent(
            authorized(routes!(approve), Action::ApproveAccess, state),
            Mode::Optional,
            state,
        ))
        .routes(idempotent(
            authorized(routes!(deny), Action::DenyAccess, state),
            Mode::Optional,
            state,
        ))
        .routes(idempotent(
            authorized(routes!(cancel), Action::CancelAccessRequest, state),
            Mode::Optional,
            state,
        ))
        .routes(idempotent(
            authorized(routes!(revoke), Action::RevokeAccess, state),
            Mode::Optional,
            state,
        ))
        .routes(idempotent(
            authorized(routes!(review), Action::ReviewAccess, state),
            Mode::Optional,
            state,
        ))
        .routes(authorized(routes!(grants), Action::ListAccessGrants, state))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccessRequest {
    #[schema(required = true, nullable = false, example = "acme-corp")]
    org_name: Option<String>,
    /// A level whose rule on this org requires approval.
    #[schema(required = true, nullable = false, example = "operator")]
    access_level: Option<String>,
    /// How long the grant lasts once it starts: 900 up to the rule's `max_duration_secs`.
    #[schema(required = true, nullable = false, minimum = 900, example = 7200)]
    duration_secs: Option<i64>,
    /// Why (required when the rule says `reason_required`, and for break-glass): at most 256
    /// characters.
    #[schema(example = "INC-123: disk full on prod")]
    reason: Option<String>,
    /// A ticket reference: at most 64 of `A-Za-z0-9-_./#:`.
    #[schema(example = "INC-123")]
    ticket: Option<String>,
    /// The earliest start (RFC 3339), up to 7 days ahead; on approval when absent.
    #[schema(example = "2026-01-01T09:00:00Z")]
    starts_at: Option<String>,
    /// Take the grant at once, without approval, where the rule allows `break_glass`:
    /// reason required, loudly audited and flagged for review.
    #[serde(default)]
    break_glass: bool,
}

/// An optional comment on a decision.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// At most 512 characters, without control characters.
    #[schema(
        example = "approved for INC-123",
        max_length = 512,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$"
    )]
    comment: Option<String>,
}

/// A review's comment (required).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    /// What the review found: 1 to 512 characters, not only spaces, without control
    /// characters.
    #[schema(
        required = true,
        nullable = false,
        example = "justified: INC-123, postmortem filed",
        min_length = 1,
        max_length = 512,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    comment: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccessListQuery {
    /// Only requests in this state (as of now).
    #[param(pattern = "^(pending|approved|active|expired|denied|cancelled|revoked)$")]
    state: Option<String>,
    /// Only requests for this organisation.
    org: Option<String>,
    /// Only the caller's own requests.
    mine: Option<bool>,
    /// Only break-glass grants nobody has reviewed yet (`true`).
    needs_review: Option<bool>,
    /// `next_cursor` from the previous page.
    #[param(pattern = "^a[0-9a-f]{28}$")]
    cursor: Option<String>,
    /// 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GrantListQuery {
    /// Only grants running now (`true`), or every grant ever approved (`false`, the
    /// default).
    active: Option<bool>,
    /// Only grants on this organisation.
    org: Option<String>,
    /// Only the caller's own grants.
    mine: Option<bool>,
    /// `next_cursor` from the previous page.
    #[param(pattern = "^a[0-9a-f]{28}$")]
    cursor: Option<String>,
    /// 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// One page of requests (or grants), oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessListResponse {
    requests: Vec<AccessRequestRecord>,
    /// Pass as `cursor` for the next page; `null` on the last.
    next_cursor: Option<String>,
}

/// Request access
///
/// Asks for an access level that needs approval on an organisation, for `duration_secs`.
/// The answer is `pending` (waiting for the rule's approvers), or already `approved` /
/// `active` when the rule auto-approves short requests or for break-glass.
#[utoipa::path(
    post, path = "/api/access-requests", operation_id = "create_access_request", tag = "access",
    request_body = CreateAccessRequest,
    responses(
        (status = 201, description = "Filed; `Location` names it.", body = AccessRequestRecord),
        (status = 400, description = "`invalid_field` (naming `access_level`, `duration_secs`, `reason`, `ticket`, `starts_at`).", body = ErrorBody),
        (status = 403, description = "`forbidden` (not an operator), `break_glass_not_allowed`.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such organisation.", body = ErrorBody),
    )
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateAccessRequest>,
) -> Result<Response, ApiError> {
    let cmd = RequestAccessCommand::parse(
        req.org_name.as_deref(),
        req.access_level.as_deref(),
        req.duration_secs,
        req.reason.as_deref(),
        req.ticket.as_deref(),
        req.starts_at.as_deref(),
        req.break_glass,
    )?;
    let rec = state.services.access.request(&caller, &cmd).await?;
    let mut res = (StatusCode::CREATED, Json(&rec)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/access-requests/{}", rec.id)) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

fn parse_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(100);
    if limit == 0 || limit > 500 {
        return Err(ApiError::invalid_field(
            "limit",
            "limit must be between 1 and 500",
        ));
    }
    Ok(limit)
}

fn parse_org(org: Option<&str>) -> Result<Option<rolegate_core::ids::OrgName>, ApiError> {
    Ok(org.map(rolegate_core::ids::OrgName::parse).transpose()?)
}

/// List access requests
///
/// Admins see every request; an operator sees its own and those it may approve.
#[utoipa::path(
    get, path = "/api/access-requests", operation_id = "list_access_requests", tag = "access",
    params(AccessListQuery),
    responses(
        (status = 200, description = "One page.", body = AccessListResponse),
        (status = 400, description = "`invalid_field` (`state`, `org`, `cursor`, `limit`).", body = ErrorBody),
        (status = 403, description = "`forbidden`.", body = ErrorBody),
    )
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<AccessListQuery>,
) -> Result<Json<AccessListResponse>, ApiError> {
    let filter = AccessFilter {
        states: q
            .state
            .as_deref()
            .map(AccessState::parse)
            .transpose()?
            .into_iter()
            .collect(),
        org: parse_org(q.org.as_deref())?,
        mine: q.mine.unwrap_or(false),
        grants_only: false,
        needs_review: q.needs_review.unwrap_or(false),
        cursor: q.cursor,
        limit: parse_limit(q.limit)?,
    };
    let page = state
        .services
        .access
        .list(&caller, Action::ListAccessRequests, &filter)
        .await?;
    Ok(Json(AccessListResponse {
        requests: page.requests,
        next_cursor: page.next_cursor,
    }))
}

/// List grants
///
/// Requests that were approved (or taken through break-glass), in their state as of now;
/// `active=true` keeps those running now.
#[utoipa::path(
    get, path = "/api/access-grants", operation_id = "list_access_grants", tag = "access",
    params(GrantListQuery),
    responses(
        (status = 200, description = "One page.", body = AccessListResponse),
        (status = 400, description = "`invalid_field` (`org`, `cursor`, `limit`).", body = ErrorBody),
        (status = 403, description = "`forbidden`.", body = ErrorBody),
    )
)]
async fn grants(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<GrantListQuery>,
) -> Result<Json<AccessListResponse>, ApiError> {
    let filter = AccessFilter {
        states: if q.active.unwrap_or(false) {
            vec![AccessState::Active]
        } else {
            Vec::new()
        },
        org: parse_org(q.org.as_deref())?,
        mine: q.mine.unwrap_or(false),
        grants_only: true,
        needs_review: false,
        cursor: q.cursor,
        limit: parse_limit(q.limit)?,
    };
    let page = state
        .services
        .access
        .list(&caller, Action::ListAccessGrants, &filter)
        .await?;
    Ok(Json(AccessListResponse {
        requests: page.requests,
        next_cursor: page.next_cursor,
    }))
}

/// Show an access request
#[utoipa::path(
    get, path = "/api/access-requests/{id}", operation_id = "show_access_request", tag = "access",
    params(("id" = String, Path, description = "The request's id.")),
    responses(
        (status = 200, description = "The request, in its state as of now.", body = AccessRequestRecord),
        (status = 403, description = "`forbidden`.", body = ErrorBody),
        (status = 404, description = "`not_found` (also for a request the caller may not see).", body = ErrorBody),
    )
)]
async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<AccessRequestRecord>, ApiError> {
    Ok(Json(state.services.access.get(&caller, &id).await?))
}

/// What a decision route does: the four transitions, or the review of a break-glass grant.
#[derive(Debug, Clone, Copy)]
enum Verb {
    Decide(Decision),
    Review,
}

/// The one decision handler: every `POST /api/access-requests/{id}/<verb>` has this shape
/// (the route's declared action has already admitted the caller; the service decides the
/// rest and audits it).
async fn decision(
    state: &AppState,
    caller: &Caller,
    id: &str,
    verb: Verb,
    comment: Option<&str>,
) -> Result<Json<AccessRequestRecord>, ApiError> {
    let access = &state.services.access;
    Ok(Json(match verb {
        Verb::Decide(d) => access.decide(caller, id, d, comment).await?,
        Verb::Review => access.review(caller, id, comment).await?,
    }))
}

/// Declares one documented decision route (its `utoipa::path` and doc comment go first) as
/// a call of [`decision`] with its verb.
macro_rules! decision_route {
    ($(#[$attr:meta])* $name:ident => $verb:expr) => {
        decision_route!($(#[$attr])* $name(req = DecisionRequest) => $verb);
    };
    ($(#[$attr:meta])* $name:ident($body:ident = $ty:ty) => $verb:expr) => {
        $(#[$attr])*
        async fn $name(
            State(state): State<AppState>,
            caller: Caller,
            Path(id): Path<String>,
            ApiJson($body): ApiJson<$ty>,
        ) -> Result<Json<AccessRequestRecord>, ApiError> {
            decision(&state, &caller, &id, $verb, $body.comment.as_deref()).await
        }
    };
}

decision_route! {
    /// Approve a request
    ///
    /// One approval by one of the rule's approvers (never the requester). When the rule's
    /// `min_approvals` are reached the request becomes a grant: `approved`, then `active` at
    /// its start.
    #[utoipa::path(
        post, path = "/api/access-requests/{id}/approve", operation_id = "approve_access_request", tag = "access",
        params(("id" = String, Path, description = "The request's id.")),
        request_body(content = DecisionRequest, description = "An optional comment."),
        responses(
            (status = 200, description = "The request after the approval.", body = AccessRequestRecord),
            (status = 400, description = "`invalid_field` (`comment`).", body = ErrorBody),
            (status = 403, description = "`self_approval`, `not_an_approver`, `forbidden`.", body = ErrorBody),
            (status = 404, description = "`not_found`.", body = ErrorBody),
            (status = 409, description = "`invalid_transition` (not pending, or already approved by this caller).", body = ErrorBody),
        )
    )]
    approve => Verb::Decide(Decision::Approve)
}

decision_route! {
    /// Deny a request
    #[utoipa::path(
        post, path = "/api/access-requests/{id}/deny", operation_id = "deny_access_request", tag = "access",
        params(("id" = String, Path, description = "The request's id.")),
        request_body(content = DecisionRequest, description = "An optional comment."),
        responses(
            (status = 200, description = "Denied.", body = AccessRequestRecord),
            (status = 400, description = "`invalid_field` (`comment`).", body = ErrorBody),
            (status = 403, description = "`self_approval`, `not_an_approver`, `forbidden`.", body = ErrorBody),
            (status = 404, description = "`not_found`.", body = ErrorBody),
            (status = 409, description = "`invalid_transition`.", body = ErrorBody),
        )
    )]
    deny => Verb::Decide(Decision::Deny)
}

decision_route! {
    /// Cancel one's own pending request
    #[utoipa::path(
        post, path = "/api/access-requests/{id}/cancel", operation_id = "cancel_access_request", tag = "access",
        params(("id" = String, Path, description = "The request's id.")),
        request_body(content = DecisionRequest, description = "An optional comment."),
        responses(
            (status = 200, description = "Cancelled.", body = AccessRequestRecord),
            (status = 400, description = "`invalid_field` (`comment`).", body = ErrorBody),
            (status = 403, description = "`forbidden` (not the requester).", body = ErrorBody),
            (status = 404, description = "`not_found`.", body = ErrorBody),
            (status = 409, description = "`invalid_transition`.", body = ErrorBody),
        )
    )]
    cancel => Verb::Decide(Decision::Cancel)
}

decision_route! {
    /// Revoke a grant now
    ///
    /// An approved or active grant ends at once on every replica (each use reads the grant
    /// from the store), and the org's cached credentials are dropped. The holder cannot
    /// revoke its own grant; the rule's approvers (and admins, where the rule admits them)
    /// can. Jobs created under the grant stop between steps (`grant_ended`). With
    /// `access.revoke_sessions` on for the org, the credentials already handed out are
    /// denied too, by a statement in the customer role's `rolegate-revocations` policy.
    #[utoipa::path(
        post, path = "/api/access-requests/{id}/revoke", operation_id = "revoke_access_grant", tag = "access",
        params(("id" = String, Path, description = "The request's id.")),
        request_body(content = DecisionRequest, description = "An optional comment."),
        responses(
            (status = 200, description = "Revoked.", body = AccessRequestRecord),
            (status = 400, description = "`invalid_field` (`comment`).", body = ErrorBody),
            (status = 403, description = "`self_approval`, `not_an_approver`, `forbidden`.", body = ErrorBody),
            (status = 404, description = "`not_found`.", body = ErrorBody),
            (status = 409, description = "`invalid_transition` (not approved or active).", body = ErrorBody),
        )
    )]
    revoke => Verb::Decide(Decision::Revoke)
}

decision_route! {
    /// Review a break-glass grant
    ///
    /// An admin other than the grant's holder marks a grant taken through break-glass as
    /// reviewed, with a comment (required); audited as `access.review`. Unreviewed ones are
    /// listed by `GET /api/access-requests?needs_review=true`.
    #[utoipa::path(
        post, path = "/api/access-requests/{id}/review", operation_id = "review_access_grant", tag = "access",
        params(("id" = String, Path, description = "The request's id.")),
        request_body(content = ReviewRequest, description = "The review's comment."),
        responses(
            (status = 200, description = "Reviewed.", body = AccessRequestRecord),
            (status = 400, description = "`invalid_field` (`comment`: missing or too long).", body = ErrorBody),
            (status = 403, description = "`self_approval` (the holder), `forbidden` (not an admin).", body = ErrorBody),
            (status = 404, description = "`not_found`.", body = ErrorBody),
            (status = 409, description = "`review_not_needed` (not break-glass, or reviewed already).", body = ErrorBody),
        )
    )]
    review(req = ReviewRequest) => Verb::Review
}
