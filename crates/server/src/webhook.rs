//! The signed-webhook adapter (`core::ports::webhook::WebhookSender`) over the workspace's
//! HTTP client: no redirects (a receiver cannot bounce rolegate elsewhere), bounded time,
//! only the status read. Errors name the status or the kind of failure, never the URL's
//! query, the body or the signature.

use async_trait::async_trait;
use rolegate_core::ports::webhook::{WebhookError, WebhookSender};
use std::time::Duration;

/// Sends customer approvers' webhooks.
#[derive(Debug, Clone)]
pub struct HttpWebhooks {
    client: Option<reqwest::Client>,
}

impl HttpWebhooks {
    #[must_use]
    pub fn new() -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("rolegate/", env!("CARGO_PKG_VERSION")))
            .build();
        match client {
            Ok(c) => Self { client: Some(c) },
            Err(e) => {
                tracing::error!(error = %e, "cannot build the webhook client; deliveries will wait");
                Self { client: None }
            }
        }
    }
}

impl Default for HttpWebhooks {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl WebhookSender for HttpWebhooks {
    async fn post(&self, url: &str, body: &[u8], signature: &str) -> Result<(), WebhookError> {
        let Some(client) = &self.client else {
            return Err(WebhookError("no HTTP client".into()));
        };
        let res = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(rolegate_crypto::webhook::SIGNATURE_HEADER, signature)
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| {
                WebhookError(if e.is_timeout() {
                    "timed out".into()
                } else if e.is_connect() {
                    "could not connect".into()
                } else {
                    "request failed".into()
                })
            })?;
        if res.status().is_success() {
            Ok(())
        } else {
            Err(WebhookError(format!("answered {}", res.status().as_u16())))
        }
    }
}
