//! The customer's say (ADR 0013): `PUT|GET|DELETE /api/orgs/{org}/customer-approvers` (only
//! the org's API key names approvers; an admin may only clear them), and the public,
//! single-use decision links `GET|POST /api/customer-approvals?token=…` (the token is in the
//! query, which request logs never show). A GET only shows; only a POST decides.

use axum::Json;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rolegate_core::RequestContext;
use rolegate_core::access::{CustomerApproverView, CustomerLinkView};
use rolegate_core::ids::OrgName;
use rolegate_core::keyspace;
use rolegate_core::model::ApproverChannel;
use rolegate_core::policy::Action;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Caller, request_id, source_ip};
use crate::authorize::authorized;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::state::AppState;

pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(authorized(
            routes!(set),
            Action::SetCustomerApprovers,
            state,
        ))
        .routes(authorized(routes!(list), Action::ReadOrg, state))
        .routes(authorized(
            routes!(clear),
            Action::ClearCustomerApprovers,
            state,
        ))
}

/// The links: no login, the token is the credential.
pub fn public_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show_link, use_link))
}

/// The org's customer approvers: webhooks and email addresses that receive each request on
/// a level with `customer_approval`. 1 to 5 in all; they replace any named before.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetCustomerApproversRequest {
    /// Distinct `https://` URLs (`http://` only to a loopback address), each at most 512
    /// characters.
    #[schema(
        nullable = false, max_items = 5,
        example = json!(["https://approvals.acme.example/rolegate"])
    )]
    webhooks: Option<Vec<String>>,
    /// Distinct plain addresses (`name@example.com`: ASCII, a dot-atom before the `@`, a
    /// DNS name after it; no display names), each at most 254 characters. Needs the
    /// server's `[smtp]`: without it, 412 `email_not_configured`.
    #[schema(
        nullable = false, max_items = 5,
        example = json!(["security@acme.example"])
    )]
    emails: Option<Vec<String>>,
}

/// A customer approver just named. A webhook comes with the secret its deliveries are
/// signed with, shown only now; an email approver has none.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewCustomerApproverResponse {
    id: String,
    /// `webhook` or `email`.
    kind: ApproverChannel,
    /// A webhook approver's URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    /// An email approver's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    /// Webhooks only: the HMAC-SHA256 key of `X-Rolegate-Signature` (`t=<unix>,v1=<hex of
    /// HMAC over "<t>.<body>">`) on every delivery; the approver's system may sign its
    /// decision POST with it too.
    #[serde(skip_serializing_if = "Option::is_none")]
    signing_secret: Option<String>,
}

/// The org's customer approvers.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerApproversResponse {
    approvers: Vec<CustomerApproverView>,
}

/// The approvers just named, with their secrets.
#[derive(Debug, Serialize, ToSchema)]
pub struct SetCustomerApproversResponse {
    approvers: Vec<NewCustomerApproverResponse>,
}

/// Name the org's customer approvers
///
/// Only the org's own API key: the provider's staff cannot name themselves. Each webhook
/// approver gets a new signing secret, shown in this answer only; email approvers are
/// mailed each request's links through the server's `[smtp]`.
#[utoipa::path(
    put, path = "/api/orgs/{org}/customer-approvers", operation_id = "set_customer_approvers", tag = "orgs",
    params(("org" = String, Path, description = "The organisation's name.")),
    request_body = SetCustomerApproversRequest,
    responses(
        (status = 200, description = "The approvers, with their signing secrets (`Cache-Control: no-store`).", body = SetCustomerApproversResponse),
        (status = 400, description = "`invalid_field` (`webhooks`, `emails`).", body = ErrorBody),
        (status = 403, description = "`forbidden` (not this org's key).", body = ErrorBody),
        (status = 404, description = "`not_found`.", body = ErrorBody),
        (status = 409, description = "`org_offboarded`.", body = ErrorBody),
        (status = 412, description = "`email_not_configured`: emails named, and the server has no `[smtp]`.", body = ErrorBody),
    )
)]
async fn set(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    ApiJson(req): ApiJson<SetCustomerApproversRequest>,
) -> Result<Response, ApiError> {
    let org = OrgName::parse(&org)?;
    if req.webhooks.is_none() && req.emails.is_none() {
        return Err(ApiError::invalid_field(
            "webhooks",
            "webhooks or emails is required",
        ));
    }
    let urls = req.webhooks.unwrap_or_default();
    let emails = req.emails.unwrap_or_default();
    let made = state
        .services
        .access
        .set_customer_approvers(&caller, &org, &urls, &emails)
        .await?;
    let body = SetCustomerApproversResponse {
        approvers: made
            .into_iter()
            .map(|a| {
                let email = a.channel == ApproverChannel::Email;
                NewCustomerApproverResponse {
                    id: a.id,
                    kind: a.channel,
                    url: (!email).then(|| a.url.clone()),
                    email: email.then_some(a.url),
                    signing_secret: a.signing_secret.map(|s| s.expose().to_owned()),
                }
            })
            .collect(),
    };
    Ok(super::no_store(Json(body).into_response()))
}

/// List the org's customer approvers
#[utoipa::path(
    get, path = "/api/orgs/{org}/customer-approvers", operation_id = "list_customer_approvers", tag = "orgs",
    params(("org" = String, Path, description = "The organisation's name.")),
    responses(
        (status = 200, description = "The approvers (never their secrets).", body = CustomerApproversResponse),
        (status = 403, description = "`forbidden`.", body = ErrorBody),
        (status = 404, description = "`not_found`.", body = ErrorBody),
    )
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Json<CustomerApproversResponse>, ApiError> {
    let org = OrgName::parse(&org)?;
    Ok(Json(CustomerApproversResponse {
        approvers: state
            .services
            .access
            .customer_approvers(&caller, &org)
            .await?,
    }))
}

/// Remove the org's customer approvers
///
/// The org's key, or an admin (audited). Levels that need the customer's approval then
/// refuse new requests (412 `no_customer_approvers`) until the key names approvers again:
/// clearing never lets the provider skip the customer.
#[utoipa::path(
    delete, path = "/api/orgs/{org}/customer-approvers", operation_id = "clear_customer_approvers", tag = "orgs",
    params(("org" = String, Path, description = "The organisation's name.")),
    responses(
        (status = 204, description = "Removed."),
        (status = 403, description = "`forbidden`.", body = ErrorBody),
        (status = 404, description = "`not_found`.", body = ErrorBody),
        (status = 409, description = "`org_offboarded`.", body = ErrorBody),
    )
)]
async fn clear(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<StatusCode, ApiError> {
    let org = OrgName::parse(&org)?;
    state
        .services
        .access
        .clear_customer_approvers(&caller, &org)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LinkQuery {
    /// The link's token, as delivered to the customer approver.
    #[param(pattern = "^rga_[A-Za-z0-9_-]{16,124}$")]
    token: String,
}

fn token(q: &LinkQuery) -> Result<&str, ApiError> {
    Ok(q.token.as_str())
}

async fn limit(state: &AppState, ip: &str) -> Result<(), ApiError> {
    crate::ratelimit::step(
        state,
        "callback_per_ip",
        keyspace::rate::customer_links_per_ip(ip),
        state.settings.rate_limits.callback_per_ip,
    )
    .await
}

/// Show what a customer approval link decides
///
/// No login: the link is the credential. Shows the request and what a POST to the same
/// URL would do (`approve` or `deny`); changes nothing, so mail scanners that prefetch
/// links decide nothing. A browser (`Accept: text/html`) gets the same as a page with one
/// button that POSTs back; errors are pages too, with the same status.
#[utoipa::path(
    get, path = "/api/customer-approvals", operation_id = "show_customer_approval_link", tag = "access",
    params(LinkQuery),
    responses(
        (status = 200, description = "What the link decides.", body = CustomerLinkView),
        (status = 400, description = "`invalid_field` (`token`).", body = ErrorBody),
        (status = 404, description = "`not_found`: no such link.", body = ErrorBody),
        (status = 409, description = "`approval_link_used`.", body = ErrorBody),
        (status = 410, description = "`approval_link_expired`.", body = ErrorBody),
        (status = 429, description = "`rate_limited` (per source IP).", body = ErrorBody),
    )
)]
async fn show_link(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<LinkQuery>,
) -> Result<Response, ApiError> {
    let html = wants_html(&headers);
    let shown = async {
        limit(&state, &source_ip(&state, &headers, Some(peer))).await?;
        Ok::<_, ApiError>(state.services.access.show_link(token(&q)?).await?)
    }
    .await;
    match (shown, html) {
        (Ok(view), true) => Ok(rolegate_portal::customer_link_page(&view, &q.token, false)),
        (Ok(view), false) => Ok(super::no_store(Json(view).into_response())),
        (Err(e), true) => Ok(error_page(e)),
        (Err(e), false) => Err(e),
    }
}

/// A browser (its `Accept` names `text/html` before any JSON) gets the approver's page
/// instead of JSON: what the link decides and one button that POSTs back.
fn wants_html(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match (accept.find("text/html"), accept.find("application/json")) {
        (Some(h), Some(j)) => h < j,
        (Some(_), None) => true,
        _ => false,
    }
}

/// A refused link as a page: the API's status and message, and the rate-limit headers.
fn error_page(e: ApiError) -> Response {
    let mut res = rolegate_portal::customer_link_error(e.status, &e.message);
    for (k, v) in e.headers {
        res.headers_mut().insert(k, v);
    }
    res
}

/// Decide through a customer approval link
///
/// Approves or denies (as the link says) for its customer approver, once. With the
/// provider's approvals already in, an approval makes the grant; a deny denies. A system
/// that POSTs back may sign the (possibly empty) body with the approver's signing secret in
/// `X-Rolegate-Signature`; a signature that does not verify is refused (401). A browser's
/// form post (`Accept: text/html`) gets the outcome as a page.
#[utoipa::path(
    post, path = "/api/customer-approvals", operation_id = "use_customer_approval_link", tag = "access",
    params(
        LinkQuery,
        ("X-Rolegate-Signature" = Option<String>, Header, description = "Optional: `t=<unix>,v1=<hex HMAC-SHA256 over \"<t>.<body>\">` under the approver's signing secret."),
    ),
    responses(
        (status = 200, description = "Decided.", body = CustomerLinkView),
        (status = 400, description = "`invalid_field` (`token`).", body = ErrorBody),
        (status = 401, description = "`invalid_signature`, `stale_timestamp`.", body = ErrorBody),
        (status = 403, description = "`forbidden`: the approver was removed.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such link.", body = ErrorBody),
        (status = 409, description = "`approval_link_used`.", body = ErrorBody),
        (status = 410, description = "`approval_link_expired`.", body = ErrorBody),
        (status = 429, description = "`rate_limited` (per source IP).", body = ErrorBody),
    )
)]
async fn use_link(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<LinkQuery>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let html = wants_html(&headers);
    let decided = async {
        let ip = source_ip(&state, &headers, Some(peer));
        limit(&state, &ip).await?;
        let ctx = RequestContext {
            request_id: request_id(&headers),
            source_ip: Some(ip),
            actor: "customer".to_owned(),
        };
        let signature = headers
            .get(rolegate_crypto::webhook::SIGNATURE_HEADER)
            .map(|v| v.to_str().unwrap_or_default());
        Ok::<_, ApiError>(
            state
                .services
                .access
                .decide_by_link(&ctx, token(&q)?, signature.map(|s| (s, &body[..])))
                .await?,
        )
    }
    .await;
    match (decided, html) {
        (Ok(view), true) => Ok(rolegate_portal::customer_link_page(&view, &q.token, true)),
        (Ok(view), false) => Ok(super::no_store(Json(view).into_response())),
        (Err(e), true) => Ok(error_page(e)),
        (Err(e), false) => Err(e),
    }
}
