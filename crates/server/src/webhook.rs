//! The one signed-webhook sender, used by both queues that POST to webhooks: the
//! notification sinks (`notify::webhook`, and the Slack sink's client) and the customer
//! approvers' deliveries (`core::ports::webhook::WebhookSender`). One HTTP client (its
//! connection pool shared), one signing path (`rolegate_crypto::webhook::sign`, the
//! `X-Rolegate-Signature` format), one policy: no redirects (a receiver cannot bounce the
//! signed body elsewhere), a time limit per POST, only the status read. Errors name the
//! status or the kind of failure, never the URL (it may be a credential, or hold a query),
//! the body or the signature. Which URLs are allowed is checked where they are named
//! (`access::parse_webhook_url` for a customer's, `[notify]` for the operator's).

use std::time::Duration;

use async_trait::async_trait;
use rolegate_core::ports::webhook::{WebhookError, WebhookSender};

/// A customer approver's delivery may take this long.
pub const CUSTOMER_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends signed webhooks (and the Slack sink's unsigned JSON) over one client.
#[derive(Debug, Clone)]
pub struct HttpWebhooks {
    client: reqwest::Client,
}

impl HttpWebhooks {
    /// The shared client: no redirects, 5 s to connect; each POST sets its own time limit.
    pub fn new() -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("rolegate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| anyhow::anyhow!("cannot build the webhook HTTP client: {e}"))?;
        Ok(Self { client })
    }

    /// POSTs `body` (JSON) to `url`, signed with `secret` at `now` (unix seconds);
    /// `Ok` on a 2xx.
    pub async fn post_signed(
        &self,
        url: &str,
        secret: &[u8],
        now: i64,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<(), String> {
        let signature = rolegate_crypto::webhook::sign(secret, now, &body);
        send(
            self.client
                .post(url)
                .timeout(timeout)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(rolegate_crypto::webhook::SIGNATURE_HEADER, signature)
                .body(body),
        )
        .await
    }

    /// POSTs `body` as JSON, unsigned (Slack's incoming webhooks take no signature).
    pub async fn post_json<T: serde::Serialize + ?Sized>(
        &self,
        url: &str,
        body: &T,
        timeout: Duration,
    ) -> Result<(), String> {
        send(self.client.post(url).timeout(timeout).json(body)).await
    }
}

/// Sends `req`; a non-2xx answer or a transport failure is an error naming the status or
/// the kind of failure only.
pub(crate) async fn send(req: reqwest::RequestBuilder) -> Result<(), String> {
    match req.send().await {
        Ok(res) if res.status().is_success() => Ok(()),
        Ok(res) => Err(format!("HTTP {}", res.status().as_u16())),
        Err(e) => Err(describe(&e)),
    }
}

/// A transport failure by kind, without the URL reqwest would put in its message.
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_redirect() {
        "redirected (not followed)"
    } else if e.is_body() || e.is_decode() {
        "the answer could not be read"
    } else {
        "the request failed"
    }
    .to_owned()
}

#[async_trait]
impl WebhookSender for HttpWebhooks {
    async fn post(
        &self,
        url: &str,
        secret: &[u8],
        now: i64,
        body: &[u8],
    ) -> Result<(), WebhookError> {
        self.post_signed(url, secret, now, body.to_vec(), CUSTOMER_TIMEOUT)
            .await
            .map_err(WebhookError)
    }
}
