//! Workload identity (issue 14): trust anchors and workload profiles (the org's owner and
//! admins), and `POST /sessions`, Roles Anywhere's CreateSession, which authenticates
//! itself with the request's X.509 signature and so sits in the open router.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rolegate_core::RequestContext;
use rolegate_core::error::Error as CoreError;
use rolegate_core::ids::OrgName;
use rolegate_core::policy::Action;
use rolegate_core::workload::{NewProfile, SessionRequest, TrustAnchor, WorkloadProfile};
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Caller, request_id, source_ip};
use crate::authorize::authorized;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::idempotency::{Mode, idempotent};
use crate::routes::no_store;
use crate::state::AppState;

pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(idempotent(
            authorized(routes!(create_anchor), Action::CreateTrustAnchor, state),
            Mode::Optional,
            state,
        ))
        .routes(authorized(
            routes!(list_anchors),
            Action::ListTrustAnchors,
            state,
        ))
        .routes(authorized(
            routes!(delete_anchor),
            Action::DeleteTrustAnchor,
            state,
        ))
        .routes(authorized(routes!(put_crl), Action::UploadCrl, state))
        .routes(idempotent(
            authorized(
                routes!(create_profile),
                Action::CreateWorkloadProfile,
                state,
            ),
            Mode::Optional,
            state,
        ))
        .routes(authorized(
            routes!(list_profiles),
            Action::ListWorkloadProfiles,
            state,
        ))
        .routes(authorized(
            routes!(delete_profile),
            Action::DeleteWorkloadProfile,
            state,
        ))
}

/// `POST /sessions`: authenticated by its own signature, like the onboarding callback.
pub fn public_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_session))
}

fn org_name(raw: &str) -> Result<OrgName, ApiError> {
    Ok(OrgName::parse(raw)?)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAnchorRequest {
    /// 1 to 64 characters, no control characters.
    #[schema(
        example = "build-ca",
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\x00-\x1f\x7f]+$"
    )]
    name: String,
    /// One or more PEM `CERTIFICATE` blocks: the CA certificates workloads chain to.
    #[schema(min_length = 1, pattern = "-----BEGIN CERTIFICATE-----")]
    certificate_bundle_pem: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AnchorList {
    trust_anchors: Vec<TrustAnchor>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileList {
    workload_profiles: Vec<WorkloadProfile>,
}

/// Register a trust anchor
///
/// A CA bundle whose certificates may name the org's workloads. The org's owner or an admin.
#[utoipa::path(
    post, path = "/api/orgs/{org}/trust-anchors", operation_id = "create_trust_anchor", tag = "workload identity",
    params(("org" = String, Path, description = "The organisation's name.")),
    request_body = CreateAnchorRequest,
    responses(
        (status = 201, description = "The anchor, with its ARN.", body = TrustAnchor),
        (status = 400, description = "`invalid_field`: not a PEM bundle of CA certificates.", body = ErrorBody),
        (status = 404, description = "`not_found`.", body = ErrorBody),
    )
)]
async fn create_anchor(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    ApiJson(req): ApiJson<CreateAnchorRequest>,
) -> Result<Response, ApiError> {
    let a = state
        .services
        .workloads
        .create_anchor(
            &caller,
            &org_name(&org)?,
            &req.name,
            &req.certificate_bundle_pem,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(a)).into_response())
}

/// List an organisation's trust anchors
#[utoipa::path(
    get, path = "/api/orgs/{org}/trust-anchors", operation_id = "list_trust_anchors", tag = "workload identity",
    params(("org" = String, Path, description = "The organisation's name.")),
    responses(
        (status = 200, description = "The anchors, with their CRLs' dates.", body = AnchorList),
        (status = 404, description = "`not_found`.", body = ErrorBody),
    )
)]
async fn list_anchors(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Json<AnchorList>, ApiError> {
    let trust_anchors = state
        .services
        .workloads
        .list_anchors(&caller, &org_name(&org)?)
        .await?;
    Ok(Json(AnchorList { trust_anchors }))
}

/// Delete a trust anchor
#[utoipa::path(
    delete, path = "/api/orgs/{org}/trust-anchors/{id}", operation_id = "delete_trust_anchor", tag = "workload identity",
    params(
        ("org" = String, Path, description = "The organisation's name."),
        ("id" = String, Path, pattern = r"^(arn:aws[a-z-]*:rolesanywhere:[a-z0-9-]+:[0-9]{12}:trust-anchor/)?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", description = "The anchor's id (UUID) or ARN."),
    ),
    responses(
        (status = 204, description = "Deleted: its certificates get no more sessions."),
        (status = 404, description = "`not_found`.", body = ErrorBody),
    )
)]
async fn delete_anchor(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .workloads
        .delete_anchor(&caller, &org_name(&org)?, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Upload a trust anchor's CRL
///
/// PEM (`X509 CRL`) or DER. It replaces the previous one; once past its `nextUpdate` plus
/// the grace period the anchor refuses every certificate until a fresh one comes.
#[utoipa::path(
    put, path = "/api/trust-anchors/{id}/crl", operation_id = "upload_crl", tag = "workload identity",
    params(("id" = String, Path, pattern = r"^(arn:aws[a-z-]*:rolesanywhere:[a-z0-9-]+:[0-9]{12}:trust-anchor/)?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", description = "The anchor's id (UUID) or ARN.")),
    request_body(content = String, content_type = "application/pkix-crl", description = "The CRL, PEM or DER."),
    responses(
        (status = 200, description = "The anchor with its new CRL.", body = TrustAnchor),
        (status = 400, description = "`invalid_field`: not a CRL, or not issued by the anchor.", body = ErrorBody),
        (status = 404, description = "`not_found`.", body = ErrorBody),
    )
)]
async fn put_crl(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<TrustAnchor>, ApiError> {
    Ok(Json(
        state
            .services
            .workloads
            .put_crl(&caller, &id, &body)
            .await?,
    ))
}

/// Create a workload profile
///
/// What a certificate must say (`require`), which access level it gets (the level must
/// grant `workloads`), for how long, and which certificate fields become session tags.
#[utoipa::path(
    post, path = "/api/orgs/{org}/workload-profiles", operation_id = "create_workload_profile", tag = "workload identity",
    params(("org" = String, Path, description = "The organisation's name.")),
    request_body = NewProfile,
    responses(
        (status = 201, description = "The profile, with its ARN.", body = WorkloadProfile),
        (status = 400, description = "`invalid_field`.", body = ErrorBody),
        (status = 404, description = "`not_found`.", body = ErrorBody),
    )
)]
async fn create_profile(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    ApiJson(req): ApiJson<NewProfile>,
) -> Result<Response, ApiError> {
    let p = state
        .services
        .workloads
        .create_profile(&caller, &org_name(&org)?, req)
        .await?;
    Ok((StatusCode::CREATED, Json(p)).into_response())
}

/// List an organisation's workload profiles
#[utoipa::path(
    get, path = "/api/orgs/{org}/workload-profiles", operation_id = "list_workload_profiles", tag = "workload identity",
    params(("org" = String, Path, description = "The organisation's name.")),
    responses(
        (status = 200, description = "The profiles.", body = ProfileList),
        (status = 404, description = "`not_found`.", body = ErrorBody),
    )
)]
async fn list_profiles(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Json<ProfileList>, ApiError> {
    let workload_profiles = state
        .services
        .workloads
        .list_profiles(&caller, &org_name(&org)?)
        .await?;
    Ok(Json(ProfileList { workload_profiles }))
}

/// Delete a workload profile
#[utoipa::path(
    delete, path = "/api/orgs/{org}/workload-profiles/{id}", operation_id = "delete_workload_profile", tag = "workload identity",
    params(
        ("org" = String, Path, description = "The organisation's name."),
        ("id" = String, Path, pattern = r"^(arn:aws[a-z-]*:rolesanywhere:[a-z0-9-]+:[0-9]{12}:profile/)?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", description = "The profile's id (UUID) or ARN."),
    ),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "`not_found`.", body = ErrorBody),
    )
)]
async fn delete_profile(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .workloads
        .delete_profile(&caller, &org_name(&org)?, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// CreateSession's body (Roles Anywhere).
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // Only describes the body; the handler verifies the raw bytes.
#[schema(rename_all = "camelCase")]
pub struct CreateSessionRequest {
    duration_seconds: Option<i64>,
    profile_arn: String,
    /// Must be the org's bound role.
    role_arn: Option<String>,
    trust_anchor_arn: String,
    /// Only when the profile accepts one.
    role_session_name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionCredentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    expiration: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssumedRoleUser {
    arn: String,
    assumed_role_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialSetItem {
    assumed_role_user: AssumedRoleUser,
    credentials: SessionCredentials,
    packed_policy_size: u32,
    role_arn: String,
    source_identity: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateSessionResponse {
    credential_set: Vec<CredentialSetItem>,
    subject_arn: String,
}

/// CreateSession's error shape (a REST-JSON AWS error).
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionError {
    #[serde(rename = "__type")]
    kind: String,
    message: String,
}

fn session_error(status: StatusCode, kind: &str, message: String) -> Response {
    let mut res = (
        status,
        Json(SessionError {
            kind: kind.to_owned(),
            message,
        }),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(kind) {
        res.headers_mut().insert("x-amzn-errortype", v);
    }
    res
}

/// Create a workload session (Roles Anywhere's CreateSession)
///
/// Signed `AWS4-X509-RSA-SHA256` or `AWS4-X509-ECDSA-SHA256` with the certificate's key;
/// the certificate in `X-Amz-X509`, its chain in `X-Amz-X509-Chain`. Answers the org's bound
/// customer role's credentials, assumed with its ExternalId. See docs/workload-identity.md.
#[utoipa::path(
    post, path = "/sessions", operation_id = "create_session", tag = "workload identity",
    params(
        ("Authorization" = String, Header, description = "`AWS4-X509-… Credential=SERIAL/DATE/REGION/rolesanywhere/aws4_request, SignedHeaders=…, Signature=…`"),
        ("X-Amz-Date" = String, Header, description = "`YYYYMMDDTHHMMSSZ`, within 5 minutes of the server's clock."),
        ("X-Amz-X509" = String, Header, description = "The leaf certificate, base64 DER."),
        ("X-Amz-X509-Chain" = Option<String>, Header, description = "Intermediates, base64 DER, comma-separated."),
    ),
    request_body = CreateSessionRequest,
    responses(
        (status = 201, description = "The credentials.", body = CreateSessionResponse),
        (status = 403, description = "`AccessDeniedException`: the reason is in `message` and the audit log.", body = SessionError),
        (status = 429, description = "`rate_limited` (per source IP, `rate_limits.sessions_per_ip`).", body = ErrorBody),
    )
)]
async fn create_session(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ip = source_ip(&state, &headers, Some(peer));
    // Before any parsing or signature check, so that junk cannot buy unbounded work.
    if let Err(e) = crate::ratelimit::step(
        &state,
        "sessions_per_ip",
        rolegate_core::keyspace::rate::sessions_per_ip(&ip),
        state.settings.rate_limits.sessions_per_ip,
    )
    .await
    {
        return e.into_response();
    }
    let ctx = RequestContext {
        request_id: request_id(&headers),
        source_ip: Some(ip),
        actor: "workload".to_owned(),
    };
    let req = SessionRequest {
        query: query.unwrap_or_default(),
        headers: headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect(),
        body: body.to_vec(),
    };
    match state.services.workloads.create_session(&ctx, &req).await {
        Ok(s) => {
            let c = &s.issued.credentials;
            let assumed = c.assumed_role_arn.clone();
            let res = CreateSessionResponse {
                credential_set: vec![CredentialSetItem {
                    assumed_role_user: AssumedRoleUser {
                        assumed_role_id: assumed.rsplit('/').next().unwrap_or_default().to_owned(),
                        arn: assumed,
                    },
                    credentials: SessionCredentials {
                        access_key_id: c.access_key_id.clone(),
                        secret_access_key: c.secret_access_key.expose_secret().to_owned(),
                        session_token: c.session_token.expose_secret().to_owned(),
                        expiration: rolegate_core::clock::rfc3339(c.expiration),
                    },
                    packed_policy_size: 0,
                    role_arn: s.role_arn,
                    source_identity: s.issued.source_identity.clone(),
                }],
                subject_arn: s.subject_arn,
            };
            no_store((StatusCode::CREATED, Json(res)).into_response())
        }
        Err(CoreError::Forbidden { message, .. }) => {
            session_error(StatusCode::FORBIDDEN, "AccessDeniedException", message)
        }
        Err(other) => ApiError::from(other).into_response(),
    }
}
