//! RDS calls with a job's own credentials; SDK errors go through `ec2::map_err`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_config::SdkConfig;
use rolegate_core::ports::aws::TemporaryCredentials;
use rolegate_core::ports::aws::ec2::{AwsError, InventoryItem};
use serde_json::json;

use crate::ec2::map_err;

/// RDS through the official SDK.
#[derive(Debug, Clone)]
pub struct SdkRds {
    config: SdkConfig,
}

impl SdkRds {
    #[must_use]
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            config: config.clone(),
        }
    }
}

#[async_trait]
impl rolegate_core::ports::aws::rds::Rds for SdkRds {
    #[tracing::instrument(skip_all)]
    async fn describe_db_instances(
        &self,
        creds: &TemporaryCredentials,
    ) -> Result<Vec<InventoryItem>, AwsError> {
        let conf = aws_sdk_rds::config::Builder::from(&self.config)
            .credentials_provider(crate::job_credentials(creds))
            .build();
        let client = aws_sdk_rds::Client::from_conf(conf);
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = client
                .describe_db_instances()
                .set_marker(marker.take())
                .send()
                .await
                .map_err(map_err)?;
            for d in page.db_instances.unwrap_or_default() {
                let tags: BTreeMap<String, String> = d
                    .tag_list
                    .unwrap_or_default()
                    .into_iter()
                    .map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default()))
                    .collect();
                out.push(InventoryItem {
                    id: d.db_instance_identifier.unwrap_or_default(),
                    state: d.db_instance_status,
                    tags,
                    details: json!({
                        "engine": d.engine,
                        "instance_class": d.db_instance_class,
                        "endpoint": d.endpoint.as_ref().and_then(|e| e.address.clone()),
                        "storage_encrypted": d.storage_encrypted,
                        "publicly_accessible": d.publicly_accessible,
                        "deletion_protection": d.deletion_protection,
                        "vpc_id": d.db_subnet_group.as_ref().and_then(|g| g.vpc_id.clone()),
                    }),
                });
            }
            match page.marker {
                Some(m) if !m.is_empty() => marker = Some(m),
                _ => return Ok(out),
            }
        }
    }
}
