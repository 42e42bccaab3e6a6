//! The notification sinks (adapters of `core::ports::notify::Notifier`): a Slack incoming
//! webhook with Block Kit messages, and a generic webhook signed with
//! `X-Rolegate-Signature`. Both post JSON with a time limit, and report failures by status
//! or kind only: a webhook URL is a secret and never reaches a log or a dead letter.

use std::sync::Arc;

use rolegate_core::clock::Clock;
use rolegate_core::ports::notify::{DeliveryError, Notifier};

use crate::config::notify::NotifyConfig;

/// Block Kit messages and the Slack incoming webhook.
pub mod slack;
/// The signed generic webhook.
pub mod webhook;

/// An HTTP client for sinks: bounded time, no redirects (a redirect could carry the signed
/// body elsewhere).
pub fn client(config: &NotifyConfig) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(config.timeout)
        .connect_timeout(config.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

/// The sinks `config` names.
pub fn sinks(
    config: &NotifyConfig,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Vec<Arc<dyn Notifier>>> {
    let http = client(config)?;
    let mut out: Vec<Arc<dyn Notifier>> = Vec::new();
    if let Some(url) = &config.slack_webhook_url {
        out.push(Arc::new(slack::SlackWebhook::new(
            http.clone(),
            url.clone(),
        )));
    }
    if let Some(target) = &config.webhook {
        out.push(Arc::new(webhook::SignedWebhook::new(
            http,
            target.url.clone(),
            target.secret.clone(),
            clock,
        )));
    }
    Ok(out)
}

/// Posts `body` as JSON; a non-2xx answer or a transport failure is an error that names
/// the status or the kind of failure only.
pub(crate) async fn post(req: reqwest::RequestBuilder) -> Result<(), DeliveryError> {
    match req.send().await {
        Ok(res) if res.status().is_success() => Ok(()),
        Ok(res) => Err(DeliveryError(format!("HTTP {}", res.status().as_u16()))),
        Err(e) => Err(DeliveryError(describe(&e))),
    }
}

/// A transport failure by kind, without the URL reqwest would put in its message.
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_redirect() {
        "redirected (not followed)"
    } else if e.is_body() || e.is_decode() {
        "the answer could not be read"
    } else {
        "the request failed"
    };
    kind.to_owned()
}
