use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_sdk_sts::error::SdkError;
use aws_sdk_sts::types::{PolicyDescriptorType, Tag};
use rolegate_core::ports::aws::{
    AssumeRoleRequest, CallerIdentity, StsError, TemporaryCredentials,
};
use secrecy::{ExposeSecret as _, SecretString};
use time::OffsetDateTime;

/// STS through the official SDK.
#[derive(Debug, Clone)]
pub struct SdkSts {
    config: SdkConfig,
    client: aws_sdk_sts::Client,
}

impl SdkSts {
    #[must_use]
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            config: config.clone(),
            client: aws_sdk_sts::Client::new(config),
        }
    }
}

/// Maps any SDK error to `StsError`. Service error codes decide; transport failures are
/// `Unavailable`; failures to find or use the provider's own credentials are
/// `ProviderCredentials` (their detail is for the log only).
fn map_err<E, R>(err: SdkError<E, R>) -> StsError
where
    E: aws_sdk_sts::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    match &err {
        SdkError::ServiceError(se) => {
            let e = se.err();
            let code = e.code().unwrap_or("Unknown").to_owned();
            let message = e.message().unwrap_or_default().to_owned();
            match code.as_str() {
                "AccessDenied" | "AccessDeniedException" => StsError::AccessDenied(message),
                "Throttling"
                | "ThrottlingException"
                | "RequestLimitExceeded"
                | "TooManyRequestsException" => StsError::Throttled,
                "PackedPolicyTooLarge" => StsError::PolicyTooLarge(message),
                "ValidationError" if message.contains("DurationSeconds") => StsError::Invalid {
                    field: "duration_seconds",
                    message: format!("AWS refused the duration: {message}"),
                },
                "InvalidClientTokenId"
                | "SignatureDoesNotMatch"
                | "ExpiredToken"
                | "MissingAuthenticationToken"
                | "UnrecognizedClientException"
                | "IncompleteSignature" => {
                    StsError::ProviderCredentials(format!("{code}: {message}"))
                }
                _ => StsError::Other { code, message },
            }
        }
        SdkError::TimeoutError(_) => StsError::Unavailable("timed out".to_owned()),
        SdkError::DispatchFailure(d) => {
            if d.is_io() || d.is_timeout() {
                StsError::Unavailable(context(&err))
            } else {
                classify_other(&err)
            }
        }
        SdkError::ResponseError(_) => StsError::Unavailable(context(&err)),
        _ => classify_other(&err),
    }
}

fn classify_other<E: std::error::Error + 'static, R: std::fmt::Debug + 'static>(
    err: &SdkError<E, R>,
) -> StsError {
    let detail = context(err);
    let lower = detail.to_ascii_lowercase();
    if lower.contains("credential") || lower.contains("identity") {
        StsError::ProviderCredentials(detail)
    } else {
        StsError::Unavailable(detail)
    }
}

/// The error and its sources, as text. Never `Debug`: that would dump the raw HTTP
/// response, whose body can hold credentials.
pub(crate) fn context<E: std::error::Error + 'static>(err: &E) -> String {
    aws_smithy_types::error::display::DisplayErrorContext(err).to_string()
}

fn expiration(dt: aws_smithy_types::DateTime) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(dt.secs()).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[async_trait]
impl rolegate_core::ports::aws::Sts for SdkSts {
    #[tracing::instrument(skip_all, fields(role_arn = %req.role_arn, session = %req.session_name))]
    async fn assume_role(&self, req: &AssumeRoleRequest) -> Result<TemporaryCredentials, StsError> {
        let mut call = self
            .client
            .assume_role()
            .role_arn(&req.role_arn)
            .role_session_name(&req.session_name)
            .duration_seconds(req.duration_seconds)
            .set_external_id(req.external_id.clone())
            .set_source_identity(req.source_identity.clone())
            .set_policy(req.policy.clone());
        for (k, v) in &req.tags {
            let tag = Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| StsError::Other {
                    code: "InvalidTag".into(),
                    message: e.to_string(),
                })?;
            call = call.tags(tag);
        }
        for arn in &req.policy_arns {
            call = call.policy_arns(PolicyDescriptorType::builder().arn(arn).build());
        }
        let out = call.send().await.map_err(map_err)?;
        let creds = out.credentials.ok_or_else(|| StsError::Other {
            code: "EmptyResponse".into(),
            message: "AssumeRole returned no credentials".into(),
        })?;
        let assumed_role_arn = out.assumed_role_user.map(|u| u.arn).unwrap_or_default();
        Ok(TemporaryCredentials {
            access_key_id: creds.access_key_id,
            secret_access_key: SecretString::from(creds.secret_access_key),
            session_token: SecretString::from(creds.session_token),
            expiration: expiration(creds.expiration),
            assumed_role_arn,
        })
    }

    #[tracing::instrument(skip_all)]
    async fn own_identity(&self) -> Result<CallerIdentity, StsError> {
        let out = self
            .client
            .get_caller_identity()
            .send()
            .await
            .map_err(map_err)?;
        Ok(CallerIdentity {
            arn: out.arn.unwrap_or_default(),
            account: out.account.unwrap_or_default(),
        })
    }

    #[tracing::instrument(skip_all)]
    async fn caller_identity(
        &self,
        access_key_id: &str,
        secret_access_key: &SecretString,
        session_token: Option<&SecretString>,
    ) -> Result<CallerIdentity, StsError> {
        let creds = Credentials::new(
            access_key_id,
            secret_access_key.expose_secret(),
            session_token.map(|t| t.expose_secret().to_owned()),
            None,
            "rolegate-validate",
        );
        let conf = aws_sdk_sts::config::Builder::from(&self.config)
            .credentials_provider(creds)
            .build();
        let client = aws_sdk_sts::Client::from_conf(conf);
        let out = client
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| match map_err(e) {
                // Here the credentials under test are the subject, not the provider's.
                StsError::ProviderCredentials(m) | StsError::AccessDenied(m) => {
                    StsError::InvalidCredentials(m)
                }
                other => other,
            })?;
        Ok(CallerIdentity {
            arn: out.arn.unwrap_or_default(),
            account: out.account.unwrap_or_default(),
        })
    }
}
