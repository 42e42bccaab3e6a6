//! Approve from Slack: `POST /api/chat/slack/interactions` (Slack's signed, form-encoded
//! `payload=`), and the admin's link from a Slack user to an operator,
//! `PUT /api/users/{user_id}/chat-links/slack`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use rolegate_core::access::Decision;
use rolegate_core::ids::UserId;
use rolegate_core::keyspace;
use rolegate_core::notify::{ChatAction, ChatLinkView};
use rolegate_core::policy::Action;
use rolegate_core::{Code, RequestContext};
use rolegate_crypto::webhook::{SignatureError, verify_slack};
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Caller, request_id, source_ip};
use crate::authorize::authorized;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::notify::slack;
use crate::state::AppState;

/// Slack's interactions: authenticated by Slack's signature, not a bearer token; replays
/// are refused by `action_ts`.
pub fn public_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(slack_interaction))
}

pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(authorized(routes!(link_slack), Action::LinkChatUser, state))
        .routes(authorized(
            routes!(unlink_slack),
            Action::LinkChatUser,
            state,
        ))
}

/// Slack's form body: one `payload` field holding JSON.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SlackInteractionForm {
    /// The interaction as JSON (`type = block_actions`, `user.id`, `actions[0]`, `response_url`).
    #[schema(max_length = 16384)]
    payload: String,
}

#[derive(Debug, Deserialize)]
struct Payload {
    #[serde(rename = "type")]
    kind: String,
    user: SlackUser,
    #[serde(default)]
    actions: Vec<SlackButton>,
    response_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SlackUser {
    id: String,
}

#[derive(Debug, Deserialize)]
struct SlackButton {
    action_id: String,
    value: Option<String>,
    action_ts: String,
}

/// What the press did.
#[derive(Debug, Serialize, ToSchema)]
pub struct SlackInteractionResponse {
    /// A line for the person who pressed.
    text: String,
    /// The request's state now (`pending` while a quorum is incomplete, `approved`, `denied`).
    state: String,
    /// The operator the Slack user is linked to.
    operator: String,
}

fn header(h: &HeaderMap, name: &str) -> String {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// A Slack interaction (Approve / Deny)
///
/// Verified with the Slack app's signing secret (`X-Slack-Signature` v0 over
/// `v0:<timestamp>:<body>`, timestamps within 300 s), refused when replayed (the same user's
/// `action_ts`), mapped to an operator through a link an admin made, and decided as that
/// operator, so self-approval, approver checks and quorum apply as in the API. Requests longer
/// than the rule's `chat_approval_max_duration_secs` are refused here. The original message
/// is updated through `response_url` (only under `notify.slack_response_url_prefix`).
#[utoipa::path(
    post, path = "/api/chat/slack/interactions", operation_id = "slack_interaction", tag = "notifications",
    params(
        ("X-Slack-Request-Timestamp" = String, Header, description = "Unix seconds; within 300 s of the server's clock."),
        ("X-Slack-Signature" = String, Header, description = "`v0=` and the hex HMAC-SHA256."),
    ),
    request_body(content = SlackInteractionForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Decided.", body = SlackInteractionResponse),
        (status = 400, description = "`invalid_field` (`payload`): not a button press rolegate sent.", body = ErrorBody),
        (status = 401, description = "`invalid_signature`, `stale_timestamp`.", body = ErrorBody),
        (status = 403, description = "`chat_user_not_linked`, `chat_approval_not_allowed`, `self_approval`, `not_an_approver`.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such request.", body = ErrorBody),
        (status = 409, description = "`interaction_replayed`, `invalid_transition`, `user_disabled`.", body = ErrorBody),
        (status = 429, description = "`rate_limited` (per source IP).", body = ErrorBody),
    )
)]
async fn slack_interaction(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<SlackInteractionResponse>, ApiError> {
    let ip = source_ip(&state, &headers, Some(peer));
    crate::ratelimit::step(
        &state,
        "callback_per_ip",
        keyspace::rate::callback_per_ip(&ip),
        state.settings.rate_limits.callback_per_ip,
    )
    .await?;
    let ctx = RequestContext {
        request_id: request_id(&headers),
        source_ip: Some(ip),
        actor: "slack".to_owned(),
    };
    let Some(secret) = &state.settings.notify.slack_signing_secret else {
        return Err(ApiError::new(
            Code::NotConfigured,
            "Slack interactions need notify.slack_signing_secret_file",
        ));
    };
    let now = state.clock.now().unix_timestamp();
    if let Err(e) = verify_slack(
        secret.expose_secret().as_bytes(),
        &header(&headers, "x-slack-request-timestamp"),
        &header(&headers, "x-slack-signature"),
        &body,
        now,
    ) {
        let code = match e {
            SignatureError::Stale => Code::StaleTimestamp,
            SignatureError::Malformed | SignatureError::Mismatch => Code::InvalidSignature,
        };
        let audit =
            rolegate_core::audit::AuditRecord::new("chat.slack.action").failure(code.as_str());
        if let Err(err) = state
            .services
            .records
            .record_unauthenticated(&ctx, audit)
            .await
        {
            tracing::error!(error = %err, "could not audit a refused Slack signature");
        }
        return Err(ApiError::new(code, format!("Slack signature refused: {e}")));
    }
    let (press, response_url) = parse(&body)?;
    let outcome = state.services.notify.slack_action(ctx, &press).await;
    let verb = match press.decision {
        Decision::Approve => "Approved",
        _ => "Denied",
    };
    let text = match &outcome {
        Ok(o) => format!(
            "{verb} from Slack by {}: request {} is now {}",
            o.operator,
            press.request_id,
            o.request.state.as_str()
        ),
        Err(e) if e.code().status() < 500 => {
            format!("Not done ({}): {e}", e.code().as_str())
        }
        Err(_) => "Not done: rolegate could not decide; try the API".to_owned(),
    };
    if let Some(url) = response_url {
        update_message(&state, url, text.clone(), outcome.is_ok());
    }
    let o = outcome?;
    Ok(Json(SlackInteractionResponse {
        text,
        state: o.request.state.as_str().to_owned(),
        operator: o.operator.to_string(),
    }))
}

/// The button press in `body`, and where to update the message.
fn parse(body: &[u8]) -> Result<(ChatAction, Option<String>), ApiError> {
    let bad = |m: &str| ApiError::invalid_field("payload", m);
    let form: SlackInteractionForm = serde_urlencoded::from_bytes(body)
        .map_err(|_| bad("the body must be a form with a payload field"))?;
    let p: Payload = serde_json::from_str(&form.payload)
        .map_err(|_| bad("payload is not a Slack block_actions interaction"))?;
    let [button] = p.actions.as_slice() else {
        return Err(bad("payload must carry exactly one action"));
    };
    if p.kind != "block_actions" {
        return Err(bad("payload must be a block_actions interaction"));
    }
    let decision = match button.action_id.as_str() {
        slack::APPROVE => Decision::Approve,
        slack::DENY => Decision::Deny,
        _ => return Err(bad("the action is not one of rolegate's buttons")),
    };
    let short = |s: &str| !s.is_empty() && s.len() <= 64 && !s.chars().any(char::is_control);
    let request_id = button.value.clone().unwrap_or_default();
    if !short(&request_id) || !short(&button.action_ts) || !short(&p.user.id) {
        return Err(bad(
            "payload's user, action_ts or value is missing or too long",
        ));
    }
    Ok((
        ChatAction {
            chat_user: p.user.id,
            decision,
            request_id,
            action_ts: button.action_ts.clone(),
        },
        p.response_url,
    ))
}

/// Replaces the original Slack message, in the background (the interaction is answered
/// within Slack's 3 s regardless), and only under the configured prefix.
fn update_message(state: &AppState, url: String, text: String, decided: bool) {
    let config = &state.settings.notify;
    if !url.starts_with(&config.slack_response_url_prefix) {
        tracing::warn!("a Slack response_url outside notify.slack_response_url_prefix was ignored");
        return;
    }
    let Ok(http) = crate::notify::client(config) else {
        return;
    };
    tokio::spawn(async move {
        let sent = crate::notify::post(http.post(url).json(&slack::reply(&text, decided))).await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, "could not update the Slack message");
        }
    });
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SlackLinkRequest {
    /// The Slack user id (`U…` or `W…`), from the user's Slack profile.
    #[schema(
        required = true,
        nullable = false,
        pattern = "^[UW][A-Z0-9]{2,20}$",
        example = "U024BE7LH"
    )]
    slack_user_id: Option<String>,
}

/// Link a Slack user to an operator
///
/// Approve/Deny presses from that Slack user then act as this operator (a later link of the
/// same Slack user replaces it). Admins only; audited as `user.chat_link`.
#[utoipa::path(
    put, path = "/api/users/{user_id}/chat-links/slack", operation_id = "link_slack_user", tag = "users",
    params(("user_id" = String, Path, description = "The operator's id.")),
    request_body = SlackLinkRequest,
    responses(
        (status = 200, description = "The link.", body = ChatLinkView),
        (status = 400, description = "`invalid_field` (`slack_user_id`).", body = ErrorBody),
        (status = 403, description = "`forbidden` (admins only).", body = ErrorBody),
        (status = 404, description = "`not_found`.", body = ErrorBody),
    )
)]
async fn link_slack(
    State(state): State<AppState>,
    caller: Caller,
    Path(user_id): Path<String>,
    ApiJson(req): ApiJson<SlackLinkRequest>,
) -> Result<Json<ChatLinkView>, ApiError> {
    let id = UserId::parse(&user_id)?;
    let slack = req
        .slack_user_id
        .ok_or_else(|| ApiError::invalid_field("slack_user_id", "slack_user_id is required"))?;
    Ok(Json(
        state
            .services
            .notify
            .link_slack(&caller, &id, &slack)
            .await?,
    ))
}

/// Remove a Slack user's link to an operator
///
/// Presses from that Slack user are refused (403 `chat_user_not_linked`) from then on.
/// Admins only; audited as `user.chat_link` with `removed`.
#[utoipa::path(
    delete, path = "/api/users/{user_id}/chat-links/slack/{slack_user_id}", operation_id = "unlink_slack_user", tag = "users",
    params(
        ("user_id" = String, Path, description = "The operator's id."),
        ("slack_user_id" = String, Path, description = "The linked Slack user id."),
    ),
    responses(
        (status = 204, description = "Removed."),
        (status = 403, description = "`forbidden` (admins only).", body = ErrorBody),
        (status = 404, description = "`not_found`: no such link for this operator.", body = ErrorBody),
    )
)]
async fn unlink_slack(
    State(state): State<AppState>,
    caller: Caller,
    Path((user_id, slack_user_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = UserId::parse(&user_id)?;
    state
        .services
        .notify
        .unlink_slack(&caller, &id, &slack_user_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
