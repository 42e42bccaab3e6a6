//! The notification sinks (adapters of `core::ports::notify::Notifier`): a Slack incoming
//! webhook with Block Kit messages, and a generic webhook signed with
//! `X-Rolegate-Signature`. Both post JSON through the one webhook sender
//! (`crate::webhook::HttpWebhooks`, shared with customer approvers' deliveries) with the
//! `[notify]` time limit, and report failures by status or kind only: a webhook URL is a
//! secret and never reaches a log or a dead letter.

use std::sync::Arc;

use rolegate_core::clock::Clock;
use rolegate_core::ports::notify::{DeliveryError, Notifier};

use crate::config::notify::NotifyConfig;
use crate::webhook::HttpWebhooks;

/// Block Kit messages and the Slack incoming webhook.
pub mod slack;
/// The signed generic webhook.
pub mod webhook;

/// An HTTP client for Slack's `response_url` updates: bounded time, no redirects.
pub fn client(config: &NotifyConfig) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(config.timeout)
        .connect_timeout(config.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

/// The sinks `config` names, sending through `http`.
pub fn sinks(
    config: &NotifyConfig,
    clock: Arc<dyn Clock>,
    http: &HttpWebhooks,
) -> Vec<Arc<dyn Notifier>> {
    let mut out: Vec<Arc<dyn Notifier>> = Vec::new();
    if let Some(url) = &config.slack_webhook_url {
        out.push(Arc::new(slack::SlackWebhook::new(
            http.clone(),
            url.clone(),
            config.timeout,
        )));
    }
    if let Some(target) = &config.webhook {
        out.push(Arc::new(webhook::SignedWebhook::new(
            http.clone(),
            target.url.clone(),
            target.secret.clone(),
            clock,
            config.timeout,
        )));
    }
    out
}

/// Posts `req`; a non-2xx answer or a transport failure is an error that names the status
/// or the kind of failure only.
pub(crate) async fn post(req: reqwest::RequestBuilder) -> Result<(), DeliveryError> {
    crate::webhook::send(req).await.map_err(DeliveryError)
}
