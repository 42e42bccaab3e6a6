use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use rolegate_core::ports::aws::{StsError, TemplateStore};

/// Publishes onboarding templates to an S3 bucket.
#[derive(Debug, Clone)]
pub struct S3TemplateStore {
    client: aws_sdk_s3::Client,
    bucket: String,
    /// When set, the bucket is public and templates are linked by this base URL.
    public_base_url: Option<String>,
}

impl S3TemplateStore {
    #[must_use]
    pub fn new(
        config: &SdkConfig,
        bucket: &str,
        path_style: bool,
        public_base_url: Option<String>,
    ) -> Self {
        let conf = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(path_style)
            .build();
        Self {
            client: aws_sdk_s3::Client::from_conf(conf),
            bucket: bucket.to_owned(),
            public_base_url,
        }
    }
}

fn s3_err<E: std::error::Error + 'static>(e: E) -> StsError {
    StsError::Unavailable(format!("S3: {}", crate::sts::context(&e)))
}

#[async_trait]
impl TemplateStore for S3TemplateStore {
    #[tracing::instrument(skip_all, fields(bucket = %self.bucket, key))]
    async fn publish(
        &self,
        key: &str,
        body: &[u8],
        expires_in: Duration,
    ) -> Result<String, StsError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/x-yaml")
            .body(ByteStream::from(body.to_vec()))
            .send()
            .await
            .map_err(s3_err)?;
        if let Some(base) = &self.public_base_url {
            return Ok(format!("{}/{key}", base.trim_end_matches('/')));
        }
        let presign = PresigningConfig::expires_in(expires_in).map_err(s3_err)?;
        let req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(presign)
            .await
            .map_err(s3_err)?;
        Ok(req.uri().to_owned())
    }
}
