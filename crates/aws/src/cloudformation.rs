//! CloudFormation calls with a job's own credentials; SDK errors go through `ec2::map_err`.

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_cloudformation::operation::RequestId as _;
use aws_sdk_cloudformation::primitives::DateTime;
use aws_sdk_cloudformation::types::{Parameter, Stack, Tag};
use rolegate_core::ports::aws::TemporaryCredentials;
use rolegate_core::ports::aws::cloudformation::{
    StackEvent, StackInfo, StackRequest, StackResource, Submitted,
};
use rolegate_core::ports::aws::ec2::AwsError;

use crate::ec2::map_err;

/// CloudFormation through the official SDK.
#[derive(Debug, Clone)]
pub struct SdkCloudFormation {
    config: SdkConfig,
}

impl SdkCloudFormation {
    #[must_use]
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            config: config.clone(),
        }
    }

    fn client(&self, creds: &TemporaryCredentials) -> aws_sdk_cloudformation::Client {
        let conf = aws_sdk_cloudformation::config::Builder::from(&self.config)
            .credentials_provider(crate::job_credentials(creds))
            .build();
        aws_sdk_cloudformation::Client::from_conf(conf)
    }
}

fn rfc3339(t: Option<&DateTime>) -> String {
    t.and_then(|t| t.fmt(aws_smithy_types::date_time::Format::DateTime).ok())
        .unwrap_or_default()
}

fn info(s: Stack) -> StackInfo {
    StackInfo {
        stack_id: s.stack_id.unwrap_or_default(),
        name: s.stack_name.unwrap_or_default(),
        status: s
            .stack_status
            .map(|st| st.as_str().to_owned())
            .unwrap_or_default(),
        status_reason: s.stack_status_reason,
        outputs: s
            .outputs
            .unwrap_or_default()
            .into_iter()
            .map(|o| {
                (
                    o.output_key.unwrap_or_default(),
                    o.output_value.unwrap_or_default(),
                )
            })
            .collect(),
        tags: s
            .tags
            .unwrap_or_default()
            .into_iter()
            .map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default()))
            .collect(),
    }
}

/// "Stack with id X does not exist" is how CloudFormation says "no such stack".
fn missing(e: &AwsError) -> bool {
    matches!(e, AwsError::Service { code, message, .. }
        if code == "ValidationError" && message.contains("does not exist"))
}

fn parts(req: &StackRequest<'_>) -> (Vec<Parameter>, Vec<Tag>) {
    let params = req
        .parameters
        .iter()
        .map(|(k, v)| {
            Parameter::builder()
                .parameter_key(k)
                .parameter_value(v)
                .build()
        })
        .collect();
    let tags = req
        .tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect();
    (params, tags)
}

#[async_trait]
impl rolegate_core::ports::aws::cloudformation::CloudFormation for SdkCloudFormation {
    #[tracing::instrument(skip_all, fields(stack = %name))]
    async fn describe_stack(
        &self,
        creds: &TemporaryCredentials,
        name: &str,
    ) -> Result<Option<StackInfo>, AwsError> {
        match self
            .client(creds)
            .describe_stacks()
            .stack_name(name)
            .send()
            .await
        {
            Ok(out) => Ok(out
                .stacks
                .unwrap_or_default()
                .into_iter()
                .map(info)
                .find(|s| s.status != "DELETE_COMPLETE")),
            Err(e) => match map_err(e) {
                e if missing(&e) => Ok(None),
                e => Err(e),
            },
        }
    }

    #[tracing::instrument(skip_all, fields(prefix = %prefix))]
    async fn list_stacks(
        &self,
        creds: &TemporaryCredentials,
        prefix: &str,
    ) -> Result<Vec<StackInfo>, AwsError> {
        let client = self.client(creds);
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = client
                .describe_stacks()
                .set_next_token(next.take())
                .send()
                .await
                .map_err(map_err)?;
            out.extend(
                page.stacks
                    .unwrap_or_default()
                    .into_iter()
                    .map(info)
                    .filter(|s| s.name.starts_with(prefix) && s.status != "DELETE_COMPLETE"),
            );
            match page.next_token {
                Some(t) if !t.is_empty() => next = Some(t),
                _ => return Ok(out),
            }
        }
    }

    #[tracing::instrument(skip_all, fields(stack = %req.name))]
    async fn create_stack(
        &self,
        creds: &TemporaryCredentials,
        req: &StackRequest<'_>,
    ) -> Result<Submitted, AwsError> {
        let (params, tags) = parts(req);
        let out = self
            .client(creds)
            .create_stack()
            .stack_name(req.name)
            .template_body(req.template_body)
            .set_parameters(Some(params))
            .set_tags(Some(tags))
            .client_request_token(req.token)
            .send()
            .await
            .map_err(map_err)?;
        Ok(Submitted::Started {
            request_id: out.request_id().map(str::to_owned),
        })
    }

    #[tracing::instrument(skip_all, fields(stack = %req.name))]
    async fn update_stack(
        &self,
        creds: &TemporaryCredentials,
        req: &StackRequest<'_>,
    ) -> Result<Submitted, AwsError> {
        let (params, tags) = parts(req);
        let sent = self
            .client(creds)
            .update_stack()
            .stack_name(req.name)
            .template_body(req.template_body)
            .set_parameters(Some(params))
            .set_tags(Some(tags))
            .client_request_token(req.token)
            .send()
            .await;
        match sent {
            Ok(out) => Ok(Submitted::Started {
                request_id: out.request_id().map(str::to_owned),
            }),
            Err(e) => match map_err(e) {
                AwsError::Service { code, message, .. }
                    if code == "ValidationError"
                        && message.contains("No updates are to be performed") =>
                {
                    Ok(Submitted::NoChanges)
                }
                e => Err(e),
            },
        }
    }

    #[tracing::instrument(skip_all, fields(stack = %name))]
    async fn delete_stack(
        &self,
        creds: &TemporaryCredentials,
        name: &str,
        token: &str,
    ) -> Result<Option<String>, AwsError> {
        let out = self
            .client(creds)
            .delete_stack()
            .stack_name(name)
            .client_request_token(token)
            .send()
            .await
            .map_err(map_err)?;
        Ok(out.request_id().map(str::to_owned))
    }

    #[tracing::instrument(skip_all, fields(stack = %name))]
    async fn cancel_update_stack(
        &self,
        creds: &TemporaryCredentials,
        name: &str,
        token: &str,
    ) -> Result<Option<String>, AwsError> {
        let out = self
            .client(creds)
            .cancel_update_stack()
            .stack_name(name)
            .client_request_token(token)
            .send()
            .await
            .map_err(map_err)?;
        Ok(out.request_id().map(str::to_owned))
    }

    #[tracing::instrument(skip_all, fields(stack = %name))]
    async fn stack_events(
        &self,
        creds: &TemporaryCredentials,
        name: &str,
        limit: usize,
    ) -> Result<Vec<StackEvent>, AwsError> {
        let client = self.client(creds);
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = client
                .describe_stack_events()
                .stack_name(name)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(map_err)?;
            for e in page.stack_events.unwrap_or_default() {
                if out.len() == limit {
                    return Ok(out);
                }
                out.push(StackEvent {
                    event_id: e.event_id.unwrap_or_default(),
                    logical_id: e.logical_resource_id.unwrap_or_default(),
                    resource_type: e.resource_type.unwrap_or_default(),
                    status: e
                        .resource_status
                        .map(|s| s.as_str().to_owned())
                        .unwrap_or_default(),
                    reason: e.resource_status_reason,
                    timestamp: rfc3339(e.timestamp.as_ref()),
                    token: e.client_request_token,
                });
            }
            match page.next_token {
                Some(t) if !t.is_empty() && out.len() < limit => next = Some(t),
                _ => return Ok(out),
            }
        }
    }

    #[tracing::instrument(skip_all, fields(stack = %name))]
    async fn stack_resources(
        &self,
        creds: &TemporaryCredentials,
        name: &str,
    ) -> Result<Vec<StackResource>, AwsError> {
        let client = self.client(creds);
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = client
                .list_stack_resources()
                .stack_name(name)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(map_err)?;
            out.extend(
                page.stack_resource_summaries
                    .unwrap_or_default()
                    .into_iter()
                    .map(|r| StackResource {
                        logical_id: r.logical_resource_id.unwrap_or_default(),
                        physical_id: r.physical_resource_id,
                        resource_type: r.resource_type.unwrap_or_default(),
                        status: r
                            .resource_status
                            .map(|s| s.as_str().to_owned())
                            .unwrap_or_default(),
                    }),
            );
            match page.next_token {
                Some(t) if !t.is_empty() => next = Some(t),
                _ => return Ok(out),
            }
        }
    }
}
