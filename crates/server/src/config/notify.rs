//! The `[notify]` table: where notifications go, and the Slack app's signing secret for
//! approve-from-Slack. Webhook URLs (a Slack incoming-webhook URL is itself a credential)
//! and secrets are read from files, never given inline.
//!
//! ```toml
//! [notify]
//! slack_webhook_url_file = "/etc/rolegate/slack-webhook-url"
//! webhook_url_file = "/etc/rolegate/webhook-url"
//! webhook_secret_file = "/etc/rolegate/webhook-secret"       # signs X-Rolegate-Signature
//! slack_signing_secret_file = "/etc/rolegate/slack-signing-secret"
//! public_url = "https://rolegate.example.com"                # for links in messages
//! max_attempts = 5            # then a dead letter
//! backoff_base_ms = 5000      # doubles per retry, up to backoff_max_ms
//! ```

use std::path::PathBuf;
use std::time::Duration;

use rolegate_core::notify::NotifySettings;
use secrecy::SecretString;
use serde::Deserialize;

use super::{ConfigError, bad, read_secret_file};

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    pub slack_webhook_url_file: Option<PathBuf>,
    pub webhook_url_file: Option<PathBuf>,
    pub webhook_secret_file: Option<PathBuf>,
    pub slack_signing_secret_file: Option<PathBuf>,
    /// `response_url`s of Slack interactions must start with this (default
    /// `https://hooks.slack.com/`), so a signed payload cannot point rolegate elsewhere.
    pub slack_response_url_prefix: Option<String>,
    pub public_url: Option<String>,
    pub poll_interval_ms: Option<u64>,
    pub lease_secs: Option<u64>,
    pub max_attempts: Option<u32>,
    pub backoff_base_ms: Option<u64>,
    pub backoff_max_ms: Option<u64>,
    pub failed_login_burst: Option<u64>,
    pub timeout_ms: Option<u64>,
}

/// A signed generic webhook's address and secret.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    pub url: SecretString,
    pub secret: SecretString,
}

/// The validated `[notify]` table.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    pub slack_webhook_url: Option<SecretString>,
    pub webhook: Option<WebhookTarget>,
    pub slack_signing_secret: Option<SecretString>,
    pub slack_response_url_prefix: String,
    /// Each delivery's (and `response_url` update's) time limit.
    pub timeout: Duration,
    pub settings: NotifySettings,
}

/// Reads a URL from `setting`'s file; refuses anything but http(s) without quoting it.
fn url_file(setting: &str, path: &std::path::Path) -> Result<SecretString, ConfigError> {
    let url = read_secret_file(setting, path)?;
    if !(url.starts_with("https://") || url.starts_with("http://"))
        || url.contains(char::is_whitespace)
    {
        return Err(bad(
            setting,
            format!("{} must hold one http(s) URL", path.display()),
        ));
    }
    Ok(SecretString::from(url))
}

fn ms_in(
    setting: &str,
    v: Option<u64>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Duration, ConfigError> {
    let ms = v.unwrap_or(default);
    if !range.contains(&ms) {
        return Err(bad(
            setting,
            format!("must be between {} and {}", range.start(), range.end()),
        ));
    }
    Ok(Duration::from_millis(ms))
}

impl RawNotify {
    pub fn validate(self) -> Result<NotifyConfig, ConfigError> {
        let d = NotifySettings::default();
        let slack_webhook_url = self
            .slack_webhook_url_file
            .as_deref()
            .map(|p| url_file("notify.slack_webhook_url_file", p))
            .transpose()?;
        let webhook = match (&self.webhook_url_file, &self.webhook_secret_file) {
            (None, None) => None,
            (Some(u), Some(s)) => Some(WebhookTarget {
                url: url_file("notify.webhook_url_file", u)?,
                secret: SecretString::from(read_secret_file("notify.webhook_secret_file", s)?),
            }),
            (Some(_), None) => {
                return Err(bad(
                    "notify.webhook_secret_file",
                    "webhook_url_file needs webhook_secret_file (deliveries are always signed)",
                ));
            }
            (None, Some(_)) => {
                return Err(bad(
                    "notify.webhook_url_file",
                    "webhook_secret_file needs webhook_url_file",
                ));
            }
        };
        let slack_signing_secret = self
            .slack_signing_secret_file
            .as_deref()
            .map(|p| {
                read_secret_file("notify.slack_signing_secret_file", p).map(SecretString::from)
            })
            .transpose()?;
        let prefix = self
            .slack_response_url_prefix
            .unwrap_or_else(|| "https://hooks.slack.com/".to_owned());
        if !(prefix.starts_with("https://") || prefix.starts_with("http://"))
            || !prefix.ends_with('/')
        {
            return Err(bad(
                "notify.slack_response_url_prefix",
                "must be an http(s) URL ending in /",
            ));
        }
        if let Some(u) = &self.public_url
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            return Err(bad("notify.public_url", "must be an http(s) URL"));
        }
        let max_attempts = self.max_attempts.unwrap_or(d.max_attempts);
        if !(1..=50).contains(&max_attempts) {
            return Err(bad("notify.max_attempts", "must be between 1 and 50"));
        }
        let failed_login_burst = self.failed_login_burst.unwrap_or(d.failed_login_burst);
        if !(2..=100_000).contains(&failed_login_burst) {
            return Err(bad(
                "notify.failed_login_burst",
                "must be between 2 and 100000",
            ));
        }
        let backoff_base = ms_in(
            "notify.backoff_base_ms",
            self.backoff_base_ms,
            5_000,
            10..=3_600_000,
        )?;
        let backoff_max = ms_in(
            "notify.backoff_max_ms",
            self.backoff_max_ms,
            900_000,
            10..=86_400_000,
        )?;
        if backoff_max < backoff_base {
            return Err(bad(
                "notify.backoff_max_ms",
                "must not be below backoff_base_ms",
            ));
        }
        Ok(NotifyConfig {
            slack_webhook_url,
            webhook,
            slack_signing_secret,
            slack_response_url_prefix: prefix,
            timeout: ms_in("notify.timeout_ms", self.timeout_ms, 5_000, 100..=30_000)?,
            settings: NotifySettings {
                poll_interval: ms_in(
                    "notify.poll_interval_ms",
                    self.poll_interval_ms,
                    1_000,
                    20..=60_000,
                )?,
                lease: Duration::from_secs(
                    ms_in(
                        "notify.lease_secs",
                        self.lease_secs.map(|s| s.saturating_mul(1000)),
                        30_000,
                        5_000..=600_000,
                    )?
                    .as_secs(),
                ),
                max_attempts,
                backoff_base,
                backoff_max,
                failed_login_burst,
                base_url: self.public_url.map(|u| u.trim_end_matches('/').to_owned()),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn secrets_come_from_files_and_errors_never_quote_them() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("url");
        std::fs::write(&url, "not a url but a secret\n").unwrap();
        let raw = RawNotify {
            slack_webhook_url_file: Some(url.clone()),
            ..RawNotify::default()
        };
        let e = raw.validate().unwrap_err().to_string();
        assert!(!e.contains("secret"), "{e}");
        std::fs::write(&url, "https://hooks.slack.com/services/T/B/x\n").unwrap();
        let raw = RawNotify {
            webhook_url_file: Some(url.clone()),
            ..RawNotify::default()
        };
        assert!(
            raw.validate()
                .unwrap_err()
                .to_string()
                .contains("webhook_secret_file")
        );
        let ok = RawNotify {
            slack_webhook_url_file: Some(url),
            ..RawNotify::default()
        }
        .validate()
        .unwrap();
        assert!(ok.slack_webhook_url.is_some());
        assert_eq!(ok.settings.max_attempts, 5);
        assert!(toml::from_str::<RawNotify>("slack_webhook_url = \"x\"").is_err());
    }
}
