//! The generic webhook: the notification as JSON, signed with
//! `X-Rolegate-Signature: t=<unix seconds>,v1=<HMAC-SHA256 over "<t>.<body>">`
//! (`rolegate_crypto::webhook::sign`), so the receiver can check origin and freshness.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rolegate_core::clock::Clock;
use rolegate_core::ports::notify::{DeliveryError, Notification, Notifier};
use secrecy::{ExposeSecret as _, SecretString};

use crate::webhook::HttpWebhooks;

/// A signed generic webhook, sent through the one signed-webhook sender.
pub struct SignedWebhook {
    http: HttpWebhooks,
    url: SecretString,
    secret: SecretString,
    clock: Arc<dyn Clock>,
    timeout: Duration,
}

impl std::fmt::Debug for SignedWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignedWebhook { url: [redacted], secret: [redacted] }")
    }
}

impl SignedWebhook {
    #[must_use]
    pub fn new(
        http: HttpWebhooks,
        url: SecretString,
        secret: SecretString,
        clock: Arc<dyn Clock>,
        timeout: Duration,
    ) -> Self {
        Self {
            http,
            url,
            secret,
            clock,
            timeout,
        }
    }
}

#[async_trait]
impl Notifier for SignedWebhook {
    fn name(&self) -> &'static str {
        "webhook"
    }

    async fn deliver(&self, n: &Notification) -> Result<(), DeliveryError> {
        let body = serde_json::to_vec(n)
            .map_err(|_| DeliveryError("the notification could not be encoded".to_owned()))?;
        let now = self.clock.now().unix_timestamp();
        self.http
            .post_signed(
                self.url.expose_secret(),
                self.secret.expose_secret().as_bytes(),
                now,
                body,
                self.timeout,
            )
            .await
            .map_err(DeliveryError)
    }
}
