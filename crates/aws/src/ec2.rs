//! EC2 calls with a job's own credentials (never the provider's), and the one place their
//! SDK errors are mapped to `AwsError`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::operation::RequestId as _;
use aws_sdk_ec2::primitives::Blob;
use aws_sdk_ec2::types::{KeyFormat, ResourceType, Tag, TagSpecification};
use rolegate_core::model::Secret;
use rolegate_core::ports::aws::TemporaryCredentials;
use rolegate_core::ports::aws::ec2::{
    AwsError, CreatedKeyPair, InventoryItem, KeyPairInfo, KeyType,
};
use serde_json::json;

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
        let conf = aws_sdk_ec2::config::Builder::from(&self.config)
            .credentials_provider(crate::job_credentials(creds))
            .build();
        aws_sdk_ec2::Client::from_conf(conf)
    }
}

/// Maps any SDK error to `AwsError`: the service's code decides; transport failures are
/// `Unavailable` (detail for the log only).
pub(crate) fn map_err<E, R>(err: SdkError<E, R>) -> AwsError
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

fn tag_map(tags: Option<Vec<Tag>>) -> BTreeMap<String, String> {
    tags.unwrap_or_default()
        .into_iter()
        .map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default()))
        .collect()
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

    #[tracing::instrument(skip_all)]
    async fn describe_vpcs(
        &self,
        creds: &TemporaryCredentials,
    ) -> Result<Vec<InventoryItem>, AwsError> {
        let client = self.client(creds);
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = client
                .describe_vpcs()
                .set_next_token(next.take())
                .send()
                .await
                .map_err(map_err)?;
            out.extend(
                page.vpcs
                    .unwrap_or_default()
                    .into_iter()
                    .map(|v| InventoryItem {
                        id: v.vpc_id.unwrap_or_default(),
                        state: v.state.map(|s| s.as_str().to_owned()),
                        tags: tag_map(v.tags),
                        details: json!({"cidr_block": v.cidr_block, "is_default": v.is_default}),
                    }),
            );
            match page.next_token {
                Some(t) if !t.is_empty() => next = Some(t),
                _ => return Ok(out),
            }
        }
    }

    #[tracing::instrument(skip_all)]
    async fn describe_instances(
        &self,
        creds: &TemporaryCredentials,
        ids: &[String],
    ) -> Result<Vec<InventoryItem>, AwsError> {
        let client = self.client(creds);
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = client
                .describe_instances()
                .set_instance_ids((!ids.is_empty()).then(|| ids.to_vec()))
                .set_next_token(next.take())
                .send()
                .await
                .map_err(map_err)?;
            for i in page
                .reservations
                .unwrap_or_default()
                .into_iter()
                .flat_map(|r| r.instances.unwrap_or_default())
            {
                let state = i
                    .state
                    .as_ref()
                    .and_then(|s| s.name.as_ref())
                    .map(|n| n.as_str().to_owned());
                if state.as_deref() == Some("terminated") {
                    continue;
                }
                let tokens = i
                    .metadata_options
                    .as_ref()
                    .and_then(|m| m.http_tokens.as_ref())
                    .map(|t| t.as_str().to_owned());
                out.push(InventoryItem {
                    id: i.instance_id.clone().unwrap_or_default(),
                    state,
                    tags: tag_map(i.tags.clone()),
                    details: json!({
                        "instance_type": i.instance_type.as_ref().map(|t| t.as_str().to_owned()),
                        "vpc_id": i.vpc_id, "subnet_id": i.subnet_id,
                        "private_ip": i.private_ip_address, "public_ip": i.public_ip_address,
                        "key_name": i.key_name, "image_id": i.image_id,
                        "http_tokens": tokens,
                    }),
                });
            }
            match page.next_token {
                Some(t) if !t.is_empty() => next = Some(t),
                _ => return Ok(out),
            }
        }
    }

    #[tracing::instrument(skip_all)]
    async fn list_key_pairs(
        &self,
        creds: &TemporaryCredentials,
    ) -> Result<Vec<InventoryItem>, AwsError> {
        let out = self
            .client(creds)
            .describe_key_pairs()
            .send()
            .await
            .map_err(map_err)?;
        Ok(out
            .key_pairs
            .unwrap_or_default()
            .into_iter()
            .map(|k| InventoryItem {
                id: k.key_pair_id.unwrap_or_default(),
                state: None,
                tags: tag_map(k.tags),
                details: json!({
                    "name": k.key_name, "fingerprint": k.key_fingerprint,
                    "type": k.key_type.map(|t| t.as_str().to_owned()),
                }),
            })
            .collect())
    }

    #[tracing::instrument(skip_all, fields(instance = %instance_id))]
    async fn require_imdsv2(
        &self,
        creds: &TemporaryCredentials,
        instance_id: &str,
    ) -> Result<Option<String>, AwsError> {
        let out = self
            .client(creds)
            .modify_instance_metadata_options()
            .instance_id(instance_id)
            .http_tokens(aws_sdk_ec2::types::HttpTokensState::Required)
            .send()
            .await
            .map_err(map_err)?;
        Ok(out.request_id().map(str::to_owned))
    }
}
