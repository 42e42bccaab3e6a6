//! Outgoing webhooks: one signed JSON POST to a URL a customer named. The adapter (in the
//! server, the same sender the notification webhook uses) signs it, follows no redirects,
//! waits a bounded time and reads nothing of the answer but its status.

use async_trait::async_trait;

/// Why a delivery did not land; never holds the body or the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WebhookError(pub String);

/// Sends a signed webhook.
#[async_trait]
pub trait WebhookSender: Send + Sync + std::fmt::Debug {
    /// POSTs `body` (JSON) to `url` with `X-Rolegate-Signature` made with `secret` at
    /// `now` (unix seconds, the injected clock's); `Ok` on a 2xx.
    async fn post(
        &self,
        url: &str,
        secret: &[u8],
        now: i64,
        body: &[u8],
    ) -> Result<(), WebhookError>;
}
