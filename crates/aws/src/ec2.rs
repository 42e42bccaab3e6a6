//! EC2 calls with a job's own credentials (never the provider's), and the one place their
//! SDK errors are mapped to `AwsError`.

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::operation::RequestId as _;
use aws_sdk_ec2::primitives::Blob;
use aws_sdk_ec2::types::{KeyFormat, ResourceType, Tag, TagSpecification};
use rolegate_core::model::Secret;
use rolegate_core::ports::aws::TemporaryCredentials;
use rolegate_core::ports::aws::ec2::{AwsError, CreatedKeyPair, KeyPairInfo, KeyType};
use secrecy::ExposeSecret as _;

use crate::sts::context;

/// EC2 through the official SDK.
#[derive(Debug, Clone)]
pub struct SdkEc2 {
    config: SdkConfig,
}

impl SdkEc2 {
    #[must_use]
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            config: config.clone(),
        }
    }

    fn client(&self, creds: &TemporaryCredentials) -> aws_sdk_ec2::Client {
        let creds = Credentials::new(
            &creds.access_key_id,
            creds.secret_access_key.expose_secret(),
            Some(creds.session_token.expose_secret().to_owned()),
            None,
            "rolegate-job",
        );
        let conf = aws_sdk_ec2::config::Builder::from(&self.config)
            .credentials_provider(creds)
            .build();
        aws_sdk_ec2::Client::from_conf(conf)
    }
}

/// Maps any SDK error to `AwsError`: the service's code decides; transport failures are
/// `Unavailable` (detail for the log only).
fn map_err<E, R>(err: SdkError<E, R>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    match &err {
        SdkError::ServiceError(se) => {
            let e = se.err();
            let code = e.code().unwrap_or("Unknown").to_owned();
            let message = e.message().unwrap_or_default().to_owned();
            let request_id = e.meta().request_id().map(str::to_owned);
            match code.as_str() {
                "UnauthorizedOperation"
                | "AccessDenied"
                | "AccessDeniedException"
                | "AuthFailure" => AwsError::AccessDenied {
                    code,
                    message,
                    request_id,
                },
                "Throttling" | "RequestLimitExceeded" | "ThrottlingException" => {
                    AwsError::Throttled { code }
                }
                _ => AwsError::Service {
                    code,
                    message,
                    request_id,
                },
            }
        }
        _ => AwsError::Unavailable(context(&err)),
    }
}

fn tag_spec(tags: &[(String, String)]) -> TagSpecification {
    let mut spec = TagSpecification::builder().resource_type(ResourceType::KeyPair);
    for (k, v) in tags {
        spec = spec.tags(Tag::builder().key(k).value(v).build());
    }
    spec.build()
}

#[async_trait]
impl rolegate_core::ports::aws::ec2::Ec2 for SdkEc2 {
    #[tracing::instrument(skip_all, fields(key_name = %name))]
    async fn create_key_pair(
        &self,
        creds: &TemporaryCredentials,
        name: &str,
        key_type: KeyType,
        tags: &[(String, String)],
    ) -> Result<CreatedKeyPair, AwsError> {
        let kt = match key_type {
            KeyType::Ed25519 => aws_sdk_ec2::types::KeyType::Ed25519,
            KeyType::Rsa => aws_sdk_ec2::types::KeyType::Rsa,
        };
        let out = self
            .client(creds)
            .create_key_pair()
            .key_name(name)
            .key_type(kt)
            .key_format(KeyFormat::Pem)
            .tag_specifications(tag_spec(tags))
            .send()
            .await
            .map_err(map_err)?;
        let request_id = out.request_id().map(str::to_owned);
        let private_key = Secret::new(out.key_material.clone().unwrap_or_default());
        if private_key.expose().is_empty() {
            return Err(AwsError::Service {
                code: "EmptyResponse".into(),
                message: "CreateKeyPair returned no key material".into(),
                request_id,
            });
        }
        Ok(CreatedKeyPair {
            info: KeyPairInfo {
                name: out.key_name.clone().unwrap_or_else(|| name.to_owned()),
                key_pair_id: out.key_pair_id.clone().unwrap_or_default(),
                fingerprint: out.key_fingerprint.clone().unwrap_or_default(),
                tags: tags.to_vec(),
            },
            private_key,
            request_id,
        })
    }

    #[tracing::instrument(skip_all, fields(key_name = %name))]
    async fn import_key_pair(
        &self,
        creds: &TemporaryCredentials,
        name: &str,
        public_key: &str,
        tags: &[(String, String)],
    ) -> Result<(KeyPairInfo, Option<String>), AwsError> {
        let out = self
            .client(creds)
            .import_key_pair()
            .key_name(name)
            .public_key_material(Blob::new(public_key.as_bytes()))
            .tag_specifications(tag_spec(tags))
            .send()
            .await
            .map_err(map_err)?;
        let info = KeyPairInfo {
            name: out.key_name.clone().unwrap_or_else(|| name.to_owned()),
            key_pair_id: out.key_pair_id.clone().unwrap_or_default(),
            fingerprint: out.key_fingerprint.clone().unwrap_or_default(),
            tags: tags.to_vec(),
        };
        Ok((info, out.request_id().map(str::to_owned)))
    }

    #[tracing::instrument(skip_all, fields(key_name = %name))]
    async fn find_key_pair(
        &self,
        creds: &TemporaryCredentials,
        name: &str,
    ) -> Result<Option<KeyPairInfo>, AwsError> {
        let out = match self
            .client(creds)
            .describe_key_pairs()
            .key_names(name)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                return match map_err(e) {
                    AwsError::Service { code, .. } if code == "InvalidKeyPair.NotFound" => Ok(None),
                    other => Err(other),
                };
            }
        };
        Ok(out
            .key_pairs
            .unwrap_or_default()
            .into_iter()
            .find(|k| k.key_name.as_deref() == Some(name))
            .map(|k| KeyPairInfo {
                name: name.to_owned(),
                key_pair_id: k.key_pair_id.unwrap_or_default(),
                fingerprint: k.key_fingerprint.unwrap_or_default(),
                tags: k
                    .tags
                    .unwrap_or_default()
                    .into_iter()
                    .map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default()))
                    .collect(),
            }))
    }

    #[tracing::instrument(skip_all, fields(key_name = %name))]
    async fn delete_key_pair(
        &self,
        creds: &TemporaryCredentials,
        name: &str,
    ) -> Result<Option<String>, AwsError> {
        let out = self
            .client(creds)
            .delete_key_pair()
            .key_name(name)
            .send()
            .await
            .map_err(map_err)?;
        Ok(out.request_id().map(str::to_owned))
    }
}
