//! Notification dead letters (admins): `GET /api/notifications/dead-letters` and
//! `POST /api/notifications/dead-letters/{id}/retry`.

use axum::Json;
use axum::extract::{Path, State};
use rolegate_core::notify::DeadLetter;
use rolegate_core::policy::Action;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::authorize::authorized;
use crate::error::{ApiError, ErrorBody};
use crate::idempotency::{Mode, idempotent};
use crate::state::AppState;

pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(authorized(
            routes!(list_dead_letters),
            Action::ListNotificationDeadLetters,
            state,
        ))
        .routes(idempotent(
            authorized(
                routes!(retry_dead_letter),
                Action::RetryNotificationDeadLetter,
                state,
            ),
            Mode::Optional,
            state,
        ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterList {
    /// Oldest first; at most 500.
    items: Vec<DeadLetter>,
}

/// List notifications given up after their last retry
///
/// A notification whose sink failed `notify.max_attempts` times (with exponential backoff)
/// is kept here until an admin sends it back to the outbox.
#[utoipa::path(
    get, path = "/api/notifications/dead-letters", operation_id = "list_notification_dead_letters", tag = "notifications",
    responses(
        (status = 200, description = "The dead letters.", body = DeadLetterList),
        (status = 403, description = "`forbidden` (admins only).", body = ErrorBody),
    )
)]
async fn list_dead_letters(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<DeadLetterList>, ApiError> {
    Ok(Json(DeadLetterList {
        items: state.services.notify.dead_letters(&caller).await?,
    }))
}

/// Send a dead letter back to the outbox
///
/// Its attempts start again from zero; the follower delivers it on its next round.
/// Audited as `notify.dead_letter.retry`.
#[utoipa::path(
    post, path = "/api/notifications/dead-letters/{id}/retry", operation_id = "retry_notification_dead_letter", tag = "notifications",
    params(("id" = String, Path, description = "The dead letter's id (`<seq>-<n>.<sink>`).")),
    responses(
        (status = 200, description = "The dead letter as it was; now queued again.", body = DeadLetter),
        (status = 403, description = "`forbidden` (admins only).", body = ErrorBody),
        (status = 404, description = "`not_found`.", body = ErrorBody),
    )
)]
async fn retry_dead_letter(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<DeadLetter>, ApiError> {
    Ok(Json(
        state
            .services
            .notify
            .retry_dead_letter(&caller, &id)
            .await?,
    ))
}
