//! Jobs: `POST /api/orgs/{org}/jobs` (202, `Idempotency-Key` required), reading and listing
//! them, cancelling, the one-time secret, and a Server-Sent Events stream of a job's steps.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream, StreamExt as _};
use rolegate_core::jobs::CreateJobCommand;
use rolegate_core::model::{JobRecord, JobState};
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
use crate::routes::no_store;
use crate::state::AppState;

/// How often an event stream reads its job when this replica reports no change (another
/// replica may be running it).
const REREAD: Duration = Duration::from_secs(1);

pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(idempotent(
            authorized(routes!(create), Action::CreateJob, state),
            Mode::Required,
            state,
        ))
        .routes(authorized(routes!(list), Action::ListJobs, state))
        .routes(authorized(routes!(show), Action::ReadJob, state))
        .routes(authorized(routes!(events), Action::ReadJob, state))
        .routes(idempotent(
            authorized(routes!(cancel), Action::CancelJob, state),
            Mode::Optional,
            state,
        ))
        .routes(authorized(routes!(secret), Action::ReadJobSecret, state))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateJobRequest {
    /// `keypair.create`, `keypair.import`, `keypair.delete`, `stack.apply`, `stack.delete`,
    /// `stack.inspect` or `inventory`.
    #[schema(required = true, nullable = false, example = "keypair.import")]
    kind: Option<String>,
    /// The kind's fields:
    /// - `keypair.create`: `{name, type: ed25519|rsa}`; `keypair.import`: `{name,
    ///   public_key}` (the recommended path: the private key never exists on the server);
    ///   `keypair.delete`: `{name}`. Key pair names are 1 to 255 of `[A-Za-z0-9._-]`.
    /// - `stack.apply`: `{blueprint: vpc|ec2|rds|workload, name, parameters: {Name: value},
    ///   replace_failed?: false}` creates or updates the stack `rolegate-<org>-<name>` and
    ///   ends with its outputs; parameters are checked against the blueprint's declared
    ///   ones (unknown or missing: `invalid_field` naming `spec.parameters.<Name>`);
    ///   `replace_failed: true` deletes and recreates a `ROLLBACK_COMPLETE` stack.
    /// - `stack.delete`, `stack.inspect`: `{name}`. Stack names are 1 to 64 of
    ///   `[A-Za-z0-9-]`.
    /// - `inventory`: `{}`: VPCs, EC2 instances, RDS instances, key pairs and the org's
    ///   rolegate stacks, with tags.
    #[schema(value_type = Object, example = json!({"name": "deploy", "public_key": "ssh-ed25519 AAAA… me@host"}))]
    #[serde(default)]
    spec: serde_json::Value,
    /// An access level granted to the caller (the default level when absent). Its managed
    /// session policies narrow the job's session further.
    #[schema(example = "operator")]
    access_level: Option<String>,
    /// Why: at most 256 characters, the `rolegate:reason` session tag.
    reason: Option<String>,
}

/// One page of jobs.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobListResponse {
    jobs: Vec<JobRecord>,
    /// Pass as `cursor` for the next page; `null` on the last.
    next_cursor: Option<String>,
}

/// A created key pair's private key.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobSecretResponse {
    /// The private key (PEM for RSA, OpenSSH format for ed25519). Shown once.
    private_key: String,
}

/// Start a job
///
/// Queues a job in the organisation's AWS account and answers at once. A worker runs it
/// with a session whose policy allows only what the job's kind needs.
#[utoipa::path(
    post, path = "/api/orgs/{org}/jobs", operation_id = "create_job", tag = "jobs",
    params(("org" = String, Path, description = "The organisation's name.")),
    request_body = CreateJobRequest,
    responses(
        (status = 202, description = "Queued; `Location` names the job.", body = JobRecord),
        (status = 400, description = "`invalid_field` (naming `kind`, `spec.name`, …), `idempotency_key_required`.", body = ErrorBody),
        (status = 403, description = "`forbidden` (another org's key or operator), `access_level_not_allowed`.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such organisation.", body = ErrorBody),
        (status = 412, description = "`org_not_validated`.", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many jobs from this caller (`rate_limits.jobs_per_principal`).", body = ErrorBody),
    )
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    ApiJson(req): ApiJson<CreateJobRequest>,
) -> Result<Response, ApiError> {
    crate::ratelimit::step(
        &state,
        "jobs_per_principal",
        rolegate_core::keyspace::rate::jobs_per_principal(&caller.principal.actor()),
        state.settings.rate_limits.jobs_per_principal,
    )
    .await?;
    let cmd = CreateJobCommand::parse(
        &org,
        req.kind.as_deref(),
        &req.spec,
        req.access_level.as_deref(),
        req.reason.as_deref(),
    )?;
    let job = state.services.jobs.create(&caller, &cmd).await?;
    let mut res = (StatusCode::ACCEPTED, Json(&job)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/jobs/{}", job.id)) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobListQuery {
    /// Only jobs in this state.
    #[param(pattern = "^(queued|running|cancelling|succeeded|failed|cancelled)$")]
    state: Option<String>,
    /// Only jobs of this kind.
    #[param(
        pattern = r"^(keypair\.(create|import|delete)|stack\.(apply|delete|inspect)|inventory)$"
    )]
    kind: Option<String>,
    /// `next_cursor` from the previous page (an opaque token).
    #[param(pattern = "^[A-Za-z0-9]{1,64}$")]
    cursor: Option<String>,
    /// 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// List an organisation's jobs
///
/// Oldest first.
#[utoipa::path(
    get, path = "/api/orgs/{org}/jobs", operation_id = "list_jobs", tag = "jobs",
    params(("org" = String, Path, description = "The organisation's name."), JobListQuery),
    responses(
        (status = 200, description = "One page.", body = JobListResponse),
        (status = 400, description = "`invalid_field` (`state`, `kind`, `cursor`, `limit`).", body = ErrorBody),
        (status = 403, description = "`forbidden`.", body = ErrorBody),
        (status = 404, description = "`not_found`.", body = ErrorBody),
    )
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Query(q): Query<JobListQuery>,
) -> Result<Json<JobListResponse>, ApiError> {
    let org = rolegate_core::ids::OrgName::parse(&org)?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 500 {
        return Err(ApiError::invalid_field(
            "limit",
            "limit must be between 1 and 500",
        ));
    }
    let job_state = q.state.as_deref().map(JobState::parse).transpose()?;
    if let Some(c) = &q.cursor
        && (c.is_empty() || c.len() > 64 || !c.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        return Err(ApiError::invalid_field(
            "cursor",
            "cursor is not one this server returned",
        ));
    }
    let page = state
        .services
        .jobs
        .list(
            &caller,
            &org,
            job_state,
            q.kind.as_deref(),
            q.cursor.as_deref(),
            limit,
        )
        .await?;
    Ok(Json(JobListResponse {
        jobs: page.jobs,
        next_cursor: page.next_cursor,
    }))
}

/// Show a job
#[utoipa::path(
    get, path = "/api/jobs/{id}", operation_id = "show_job", tag = "jobs",
    params(("id" = String, Path, description = "The job's id.")),
    responses(
        (status = 200, description = "The job.", body = JobRecord),
        (status = 403, description = "`forbidden`.", body = ErrorBody),
        (status = 404, description = "`not_found`.", body = ErrorBody),
    )
)]
async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<JobRecord>, ApiError> {
    Ok(Json(state.services.jobs.get(&caller, &id).await?))
}

/// Cancel a job
///
/// A job that has not called AWS yet becomes `cancelled`; otherwise 409 `not_cancellable`.
#[utoipa::path(
    post, path = "/api/jobs/{id}/cancel", operation_id = "cancel_job", tag = "jobs",
    params(("id" = String, Path, description = "The job's id.")),
    responses(
        (status = 200, description = "Cancelled.", body = JobRecord),
        (status = 403, description = "`forbidden`.", body = ErrorBody),
        (status = 404, description = "`not_found`.", body = ErrorBody),
        (status = 409, description = "`not_cancellable`.", body = ErrorBody),
    )
)]
async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<JobRecord>, ApiError> {
    Ok(Json(state.services.jobs.cancel(&caller, &id).await?))
}

/// Read a job's secret, once
///
/// The private key a `keypair.create` job made, for the principal that asked for the job.
/// The read deletes it; an unread key is purged after `jobs.secret_ttl_secs`.
#[utoipa::path(
    get, path = "/api/jobs/{id}/secret", operation_id = "read_job_secret", tag = "jobs",
    params(("id" = String, Path, description = "The job's id.")),
    responses(
        (status = 200, description = "The private key (`Cache-Control: no-store`).", body = JobSecretResponse),
        (status = 403, description = "`forbidden` (only the job's requester may read it).", body = ErrorBody),
        (status = 404, description = "`not_found` (no such job, or a job without a secret).", body = ErrorBody),
        (status = 409, description = "`job_not_finished`.", body = ErrorBody),
        (status = 410, description = "`secret_already_retrieved`, `secret_purged`.", body = ErrorBody),
    )
)]
async fn secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let s = state.services.jobs.take_secret(&caller, &id).await?;
    let body = JobSecretResponse {
        private_key: s.private_key.expose().to_owned(),
    };
    Ok(no_store(Json(body).into_response()))
}

/// What a stream has told its client so far.
struct Seen {
    steps: Vec<(String, String)>,
    progress: Option<u8>,
    state: Option<JobState>,
    done: bool,
}

fn event(name: &str, data: &serde_json::Value) -> Result<Event, std::convert::Infallible> {
    Ok(Event::default().event(name).data(data.to_string()))
}

/// The events between what was seen and `job`.
fn changes(seen: &mut Seen, job: &JobRecord) -> Vec<Result<Event, std::convert::Infallible>> {
    let mut out = Vec::new();
    for (i, s) in job.steps.iter().enumerate() {
        let now = (
            s.name.clone(),
            serde_json::to_string(&s.state).unwrap_or_default(),
        );
        if seen.steps.get(i) != Some(&now) {
            let mut v = serde_json::to_value(s).unwrap_or_default();
            v["index"] = i.into();
            out.push(event("step", &v));
            if i < seen.steps.len() {
                seen.steps[i] = now;
            } else {
                seen.steps.push(now);
            }
        }
    }
    if seen.progress != Some(job.progress) {
        seen.progress = Some(job.progress);
        out.push(event(
            "progress",
            &serde_json::json!({"progress": job.progress}),
        ));
    }
    if seen.state != Some(job.state) {
        seen.state = Some(job.state);
        out.push(event("state", &serde_json::json!({"state": job.state})));
    }
    if job.state.is_final() {
        seen.done = true;
        out.push(event("end", &serde_json::to_value(job).unwrap_or_default()));
    }
    out
}

/// Follow a job
///
/// Server-Sent Events: `step` (a step with its `index`), `progress`, `state`, and finally
/// `end` with the whole job, after which the stream closes. Every step is sent once in its
/// current state when the stream opens, then every change this replica makes (changes made
/// by another replica's worker are seen by reading the job at least once a second).
#[utoipa::path(
    get, path = "/api/jobs/{id}/events", operation_id = "job_events", tag = "jobs",
    params(("id" = String, Path, description = "The job's id.")),
    responses(
        (status = 200, description = "`text/event-stream` of the job's changes.", content_type = "text/event-stream", body = String),
        (status = 403, description = "`forbidden`.", body = ErrorBody),
        (status = 404, description = "`not_found`.", body = ErrorBody),
    )
)]
async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>>, ApiError> {
    // Subscribe before the first read, so that no change falls between the two.
    let rx = state.services.jobs.subscribe();
    let first = state.services.jobs.get(&caller, &id).await?;
    let seen = Seen {
        steps: Vec::new(),
        progress: None,
        state: None,
        done: false,
    };
    let follow = Follow {
        state,
        caller,
        id,
        rx,
    };
    let stream = stream::unfold(
        (follow, Some(first), seen),
        |(mut follow, next, mut seen)| async move {
            if seen.done {
                return None;
            }
            let job = match next {
                Some(j) => j,
                None => follow.next().await?,
            };
            let out = changes(&mut seen, &job);
            Some((stream::iter(out), (follow, None, seen)))
        },
    )
    .flatten();
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Where a stream's next view of its job comes from.
struct Follow {
    state: AppState,
    caller: Caller,
    id: String,
    rx: tokio::sync::broadcast::Receiver<JobRecord>,
}

impl Follow {
    /// The job after its next change here, or as read after a while. `None` when the job or
    /// the caller's right to see it went away (the stream ends).
    async fn next(&mut self) -> Option<JobRecord> {
        let mut wait = self.state.clock.sleep(REREAD);
        loop {
            tokio::select! {
                got = self.rx.recv() => match got {
                    Ok(job) if job.id == self.id => return Some(job),
                    Ok(_) => {}
                    // Missed some: read the record instead.
                    Err(_) => break,
                },
                () = &mut wait => break,
            }
        }
        self.state
            .services
            .jobs
            .get(&self.caller, &self.id)
            .await
            .ok()
    }
}
