//! Settings: a TOML file (`--config`), then `ROLEGATE_*` environment variables, then flags,
//! in increasing precedence. Every secret can be given inline or as a `*_file` path. An
//! invalid setting stops start-up with an error naming it.

/// `[access]` and each level's approval rules.
pub mod access;
/// `[aws]` and `[onboarding]`.
pub mod aws;
/// `[credentials]` (access levels, cache) and `[console]`.
pub mod credentials;
/// `[jobs]`: the worker pool and one-time secrets.
pub mod jobs;
/// `[notify]`: notification sinks and approve-from-Slack.
pub mod notify;
/// `[oidc]`: portal sign-in through the identity provider.
pub mod oidc;
/// `[portal]`: the operator portal's sessions.
pub mod portal;
/// `[smtp]`: the mail server for customer approvers reached by email.
pub mod smtp;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rolegate_core::ports::RateLimit;
use secrecy::SecretString;
use serde::Deserialize;

/// A setting that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting `{setting}`: {reason}")]
pub struct ConfigError {
    pub setting: String,
    pub reason: String,
}

pub(crate) fn bad(setting: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        setting: setting.to_owned(),
        reason: reason.into(),
    }
}

/// One rate limit as written in the config: `burst` requests per `period_secs`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawLimit {
    pub burst: u32,
    pub period_secs: u64,
}

impl RawLimit {
    fn parse(self, setting: &str) -> Result<RateLimit, ConfigError> {
        if self.burst == 0 {
            return Err(bad(setting, "burst must be at least 1"));
        }
        if self.period_secs == 0 || self.period_secs > 86_400 {
            return Err(bad(setting, "period_secs must be between 1 and 86400"));
        }
        Ok(RateLimit {
            burst: self.burst,
            period: Duration::from_secs(self.period_secs),
        })
    }
}

/// The `[rate_limits]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimits {
    pub auth_failures_per_ip: Option<RawLimit>,
    pub callback_per_ip: Option<RawLimit>,
    pub callback_per_org: Option<RawLimit>,
    pub credentials_per_principal: Option<RawLimit>,
    pub credentials_per_org: Option<RawLimit>,
    pub validate_per_principal: Option<RawLimit>,
    pub jobs_per_principal: Option<RawLimit>,
    pub sessions_per_ip: Option<RawLimit>,
}

/// The config file's shape; every field optional so that layers can overlay.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub store: Option<String>,
    pub store_file: Option<PathBuf>,
    pub master_key: Option<String>,
    pub master_key_file: Option<PathBuf>,
    pub log_format: Option<String>,
    pub log_level: Option<String>,
    pub idempotency_ttl_secs: Option<u64>,
    pub trust_forwarded_for: Option<bool>,
    pub metrics_enabled: Option<bool>,
    pub metrics_token: Option<String>,
    pub metrics_token_file: Option<PathBuf>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub allow_plain_http: Option<bool>,
    pub header_read_timeout_secs: Option<u64>,
    pub body_read_timeout_secs: Option<u64>,
    pub request_timeout_secs: Option<u64>,
    pub store_allow_volatile_redis: Option<bool>,
    #[serde(default)]
    pub rate_limits: RawRateLimits,
    #[serde(default)]
    pub aws: aws::RawAws,
    #[serde(default)]
    pub onboarding: aws::RawOnboarding,
    #[serde(default)]
    pub credentials: credentials::RawCredentials,
    #[serde(default)]
    pub console: credentials::RawConsole,
    #[serde(default)]
    pub jobs: jobs::RawJobs,
    #[serde(default)]
    pub portal: portal::RawPortal,
    #[serde(default)]
    pub oidc: oidc::RawOidc,
    #[serde(default)]
    pub access: access::RawAccess,
    #[serde(default)]
    pub notify: notify::RawNotify,
    #[serde(default)]
    pub smtp: Option<smtp::RawSmtp>,
}

/// Environment variable names, one per scalar setting.
const ENV: &[(&str, &str)] = &[
    ("listen", "ROLEGATE_LISTEN"),
    ("data_dir", "ROLEGATE_DATA_DIR"),
    ("store", "ROLEGATE_STORE"),
    ("store_file", "ROLEGATE_STORE_FILE"),
    ("master_key", "ROLEGATE_MASTER_KEY"),
    ("master_key_file", "ROLEGATE_MASTER_KEY_FILE"),
    ("log_format", "ROLEGATE_LOG_FORMAT"),
    ("log_level", "ROLEGATE_LOG_LEVEL"),
    ("idempotency_ttl_secs", "ROLEGATE_IDEMPOTENCY_TTL_SECS"),
    ("trust_forwarded_for", "ROLEGATE_TRUST_FORWARDED_FOR"),
    ("aws.region", "ROLEGATE_AWS_REGION"),
    ("aws.endpoint_url", "ROLEGATE_AWS_ENDPOINT_URL"),
    (
        "onboarding.callback_url",
        "ROLEGATE_ONBOARDING_CALLBACK_URL",
    ),
    ("metrics_enabled", "ROLEGATE_METRICS_ENABLED"),
    ("metrics_token", "ROLEGATE_METRICS_TOKEN"),
    ("metrics_token_file", "ROLEGATE_METRICS_TOKEN_FILE"),
    ("tls_cert_file", "ROLEGATE_TLS_CERT_FILE"),
    ("tls_key_file", "ROLEGATE_TLS_KEY_FILE"),
    ("allow_plain_http", "ROLEGATE_ALLOW_PLAIN_HTTP"),
    (
        "header_read_timeout_secs",
        "ROLEGATE_HEADER_READ_TIMEOUT_SECS",
    ),
    ("body_read_timeout_secs", "ROLEGATE_BODY_READ_TIMEOUT_SECS"),
    ("request_timeout_secs", "ROLEGATE_REQUEST_TIMEOUT_SECS"),
    (
        "store_allow_volatile_redis",
        "ROLEGATE_STORE_ALLOW_VOLATILE_REDIS",
    ),
];

fn parse_bool(var: &str, v: &str) -> Result<bool, ConfigError> {
    v.parse().map_err(|_| bad(var, "must be true or false"))
}

fn parse_secs(var: &str, v: &str) -> Result<u64, ConfigError> {
    v.parse()
        .map_err(|_| bad(var, "must be a whole number of seconds"))
}

impl RawSettings {
    /// Reads a TOML config file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad("config", format!("cannot read {}: {e}", path.display())))?;
        toml::from_str(&text)
            .map_err(|e| bad("config", format!("{}: {}", path.display(), e.message())))
    }

    /// Overlays `ROLEGATE_*` variables from `lookup` (the process environment in production).
    pub fn overlay_env(
        mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        for (setting, var) in ENV {
            let Some(v) = lookup(var) else { continue };
            match *setting {
                "listen" => self.listen = Some(v),
                "data_dir" => self.data_dir = Some(v.into()),
                // A higher layer that sets one form of a paired secret replaces the other
                // form from the lower layers.
                "store" => {
                    self.store = Some(v);
                    self.store_file = None;
                }
                "store_file" => {
                    self.store_file = Some(v.into());
                    self.store = None;
                }
                "master_key" => {
                    self.master_key = Some(v);
                    self.master_key_file = None;
                }
                "master_key_file" => {
                    self.master_key_file = Some(v.into());
                    self.master_key = None;
                }
                "log_format" => self.log_format = Some(v),
                "log_level" => self.log_level = Some(v),
                "idempotency_ttl_secs" => {
                    self.idempotency_ttl_secs = Some(
                        v.parse()
                            .map_err(|_| bad(var, "must be a whole number of seconds"))?,
                    );
                }
                "aws.region" => self.aws.region = Some(v),
                "aws.endpoint_url" => self.aws.endpoint_url = Some(v),
                "onboarding.callback_url" => self.onboarding.callback_url = Some(v),
                "trust_forwarded_for" => {
                    self.trust_forwarded_for =
                        Some(v.parse().map_err(|_| bad(var, "must be true or false"))?);
                }
                "metrics_token" => {
                    self.metrics_token = Some(v);
                    self.metrics_token_file = None;
                }
                "metrics_token_file" => {
                    self.metrics_token_file = Some(v.into());
                    self.metrics_token = None;
                }
                "metrics_enabled" => {
                    self.metrics_enabled =
                        Some(v.parse().map_err(|_| bad(var, "must be true or false"))?);
                }
                "tls_cert_file" => self.tls_cert_file = Some(v.into()),
                "tls_key_file" => self.tls_key_file = Some(v.into()),
                "allow_plain_http" => self.allow_plain_http = Some(parse_bool(var, &v)?),
                "header_read_timeout_secs" => {
                    self.header_read_timeout_secs = Some(parse_secs(var, &v)?);
                }
                "body_read_timeout_secs" => {
                    self.body_read_timeout_secs = Some(parse_secs(var, &v)?);
                }
                "request_timeout_secs" => self.request_timeout_secs = Some(parse_secs(var, &v)?),
                "store_allow_volatile_redis" => {
                    self.store_allow_volatile_redis = Some(parse_bool(var, &v)?);
                }
                _ => {}
            }
        }
        Ok(self)
    }

    /// Overlays values given as flags (highest precedence).
    #[must_use]
    pub fn overlay(mut self, flags: RawSettings) -> Self {
        // Setting one form of a paired secret replaces the other form.
        if flags.store.is_some() || flags.store_file.is_some() {
            self.store = None;
            self.store_file = None;
        }
        if flags.master_key.is_some() || flags.master_key_file.is_some() {
            self.master_key = None;
            self.master_key_file = None;
        }
        macro_rules! take {
            ($($f:ident),*) => { $( if flags.$f.is_some() { self.$f = flags.$f; } )* };
        }
        take!(
            listen,
            data_dir,
            store,
            store_file,
            master_key,
            master_key_file,
            log_format,
            log_level,
            idempotency_ttl_secs,
            trust_forwarded_for,
            metrics_enabled,
            tls_cert_file,
            tls_key_file,
            allow_plain_http,
            header_read_timeout_secs,
            body_read_timeout_secs,
            request_timeout_secs,
            store_allow_volatile_redis
        );
        self
    }

    /// Validates every setting.
    pub fn validate(self) -> Result<Settings, ConfigError> {
        let listen: SocketAddr = self
            .listen
            .as_deref()
            .unwrap_or("127.0.0.1:8080")
            .parse()
            .map_err(|_| bad("listen", "must be an address like 127.0.0.1:8080"))?;
        let data_dir = self.data_dir.unwrap_or_else(|| PathBuf::from("./data"));
        let store = match (self.store, self.store_file) {
            (Some(_), Some(_)) => {
                return Err(bad("store", "set either store or store_file, not both"));
            }
            (Some(s), None) => s,
            (None, Some(f)) => read_secret_file("store_file", &f)?,
            (None, None) => "sqlite".to_owned(),
        };
        let scheme_ok = store == "sqlite"
            || store.starts_with("sqlite://")
            || rolegate_store::is_postgres(&store)
            || store.starts_with("redis://")
            || store.starts_with("rediss://");
        if !scheme_ok {
            return Err(bad(
                "store",
                "must be \"sqlite\", \"sqlite:///path\", \"postgres://user@host/db\", \"redis://host:port\" or \"rediss://...\"",
            ));
        }
        let master_key = match (self.master_key, self.master_key_file) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "master_key",
                    "set either master_key or master_key_file, not both",
                ));
            }
            (Some(k), None) => MasterKeySource::Inline(SecretString::from(k)),
            (None, Some(f)) => MasterKeySource::File(f),
            (None, None) => MasterKeySource::Generated,
        };
        let log_format = match self.log_format.as_deref().unwrap_or("auto") {
            "auto" => LogFormat::Auto,
            "json" => LogFormat::Json,
            "pretty" => LogFormat::Pretty,
            _ => return Err(bad("log_format", "must be auto, json or pretty")),
        };
        let log_level = self.log_level.unwrap_or_else(|| "info".to_owned());
        if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
            return Err(bad(
                "log_level",
                "must be a level (error, warn, info, debug, trace) or a filter directive",
            ));
        }
        let ttl = self.idempotency_ttl_secs.unwrap_or(86_400);
        if !(60..=7 * 86_400).contains(&ttl) {
            return Err(bad("idempotency_ttl_secs", "must be between 60 and 604800"));
        }
        let limits = RateLimits {
            auth_failures_per_ip: self
                .rate_limits
                .auth_failures_per_ip
                .unwrap_or(RawLimit {
                    burst: 20,
                    period_secs: 60,
                })
                .parse("rate_limits.auth_failures_per_ip")?,
            callback_per_ip: self
                .rate_limits
                .callback_per_ip
                .unwrap_or(RawLimit {
                    burst: 30,
                    period_secs: 60,
                })
                .parse("rate_limits.callback_per_ip")?,
            sessions_per_ip: self
                .rate_limits
                .sessions_per_ip
                .unwrap_or(RawLimit {
                    burst: 120,
                    period_secs: 60,
                })
                .parse("rate_limits.sessions_per_ip")?,
            callback_per_org: self
                .rate_limits
                .callback_per_org
                .unwrap_or(RawLimit {
                    burst: 10,
                    period_secs: 60,
                })
                .parse("rate_limits.callback_per_org")?,
            credentials_per_principal: self
                .rate_limits
                .credentials_per_principal
                .unwrap_or(RawLimit {
                    burst: 120,
                    period_secs: 60,
                })
                .parse("rate_limits.credentials_per_principal")?,
            credentials_per_org: self
                .rate_limits
                .credentials_per_org
                .unwrap_or(RawLimit {
                    burst: 600,
                    period_secs: 60,
                })
                .parse("rate_limits.credentials_per_org")?,
            validate_per_principal: self
                .rate_limits
                .validate_per_principal
                .unwrap_or(RawLimit {
                    burst: 60,
                    period_secs: 60,
                })
                .parse("rate_limits.validate_per_principal")?,
            jobs_per_principal: self
                .rate_limits
                .jobs_per_principal
                .unwrap_or(RawLimit {
                    burst: 30,
                    period_secs: 60,
                })
                .parse("rate_limits.jobs_per_principal")?,
        };
        let metrics_token = match (self.metrics_token, self.metrics_token_file) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "metrics_token",
                    "set either metrics_token or metrics_token_file, not both",
                ));
            }
            (Some(t), None) => Some(t),
            (None, Some(f)) => Some(read_secret_file("metrics_token_file", &f)?),
            (None, None) => None,
        };
        if let Some(t) = &metrics_token
            && (t.len() < 32 || t.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(bad(
                "metrics_token",
                "must be at least 32 characters with no whitespace (e.g. `openssl rand -hex 32`)",
            ));
        }
        let tls = match (self.tls_cert_file, self.tls_key_file) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => return Err(bad("tls_key_file", "tls_cert_file needs tls_key_file")),
            (None, Some(_)) => {
                return Err(bad("tls_cert_file", "tls_key_file needs tls_cert_file"));
            }
        };
        let allow_plain_http = self.allow_plain_http.unwrap_or(false);
        if tls.is_none() && !listen.ip().is_loopback() && !allow_plain_http {
            return Err(bad(
                "listen",
                format!(
                    "{listen} is not a loopback address and TLS is off: set tls_cert_file and \
                     tls_key_file, or allow_plain_http = true when a TLS-terminating proxy sits \
                     in front of rolegate"
                ),
            ));
        }
        let timeouts = Timeouts {
            header_read: secs_in(
                "header_read_timeout_secs",
                self.header_read_timeout_secs.unwrap_or(10),
                300,
            )?,
            body_read: secs_in(
                "body_read_timeout_secs",
                self.body_read_timeout_secs.unwrap_or(30),
                600,
            )?,
            request: secs_in(
                "request_timeout_secs",
                self.request_timeout_secs.unwrap_or(60),
                600,
            )?,
        };
        let aws = self.aws.validate()?;
        let onboarding = self.onboarding.validate(&aws.settings.region)?;
        let credentials = self.credentials.validate(
            &onboarding.partition,
            &aws.settings.region,
            &self.access.groups,
        )?;
        let access = self.access.validate()?;
        let console = self.console.validate()?;
        let jobs = self.jobs.validate()?;
        let portal = self.portal.validate()?;
        let oidc = self.oidc.validate()?;
        let notify = self.notify.validate()?;
        let smtp = self.smtp.map(smtp::RawSmtp::validate).transpose()?;
        Ok(Settings {
            listen,
            data_dir,
            store: SecretString::from(store),
            master_key,
            log_format,
            log_level,
            idempotency_ttl: Duration::from_secs(ttl),
            trust_forwarded_for: self.trust_forwarded_for.unwrap_or(false),
            metrics_enabled: self.metrics_enabled.unwrap_or(true),
            metrics_token: metrics_token.map(SecretString::from),
            tls,
            allow_plain_http,
            timeouts,
            store_allow_volatile_redis: self.store_allow_volatile_redis.unwrap_or(false),
            rate_limits: limits,
            aws,
            onboarding,
            credentials,
            console,
            jobs,
            portal,
            oidc,
            access,
            notify,
            smtp,
        })
    }
}

fn secs_in(setting: &str, secs: u64, max: u64) -> Result<Duration, ConfigError> {
    if secs == 0 || secs > max {
        return Err(bad(setting, format!("must be between 1 and {max} seconds")));
    }
    Ok(Duration::from_secs(secs))
}

/// Reads a secret from a `*_file` setting, trimming the trailing newline.
pub fn read_secret_file(setting: &str, path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| bad(setting, format!("cannot read {}: {e}", path.display())))?;
    let text = text.trim().to_owned();
    if text.is_empty() {
        return Err(bad(setting, format!("{} is empty", path.display())));
    }
    Ok(text)
}

/// Where the master keys come from.
#[derive(Debug, Clone)]
pub enum MasterKeySource {
    /// Base64 keys, comma-separated, oldest first.
    Inline(SecretString),
    /// A file with one base64 key per line, oldest first.
    File(PathBuf),
    /// `<data_dir>/master.key`, created (mode 0600) when missing.
    Generated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Auto,
    Json,
    Pretty,
}

#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    pub auth_failures_per_ip: RateLimit,
    pub callback_per_ip: RateLimit,
    pub callback_per_org: RateLimit,
    pub credentials_per_principal: RateLimit,
    pub credentials_per_org: RateLimit,
    pub validate_per_principal: RateLimit,
    /// `POST /api/orgs/{org}/jobs`, per caller.
    pub jobs_per_principal: RateLimit,
    /// Workload `POST /sessions`, per source, before any verification.
    pub sessions_per_ip: RateLimit,
}

/// The certificate chain and private key of the native TLS listener (PEM files, re-read on
/// SIGHUP).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// How long a client may take to send its request, and a handler to answer it.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// From connection (or the previous response) to the end of the request headers: 408.
    pub header_read: Duration,
    /// To receive the whole request body once the headers are in: 408.
    pub body_read: Duration,
    /// For a handler to produce its response: 503.
    pub request: Duration,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// The store URL may carry a password, so it is kept secret.
    pub store: SecretString,
    pub master_key: MasterKeySource,
    pub log_format: LogFormat,
    pub log_level: String,
    pub idempotency_ttl: Duration,
    pub trust_forwarded_for: bool,
    /// Serve `GET /metrics` (to the `metrics_token` or an admin's token).
    pub metrics_enabled: bool,
    /// The bearer token a scraper presents on `GET /metrics`.
    pub metrics_token: Option<SecretString>,
    /// Serve HTTPS with these files (`tls_cert_file`, `tls_key_file`); plain HTTP without.
    pub tls: Option<TlsFiles>,
    /// Plain HTTP on a non-loopback address, for a TLS-terminating proxy in front.
    pub allow_plain_http: bool,
    pub timeouts: Timeouts,
    /// Start on a Redis whose persistence can lose acknowledged writes (then `degraded`).
    pub store_allow_volatile_redis: bool,
    pub rate_limits: RateLimits,
    pub aws: aws::AwsConfig,
    pub onboarding: aws::OnboardingConfig,
    /// Access levels and the credential cache.
    pub credentials: rolegate_core::levels::CredentialPolicy,
    /// Console sign-in.
    pub console: rolegate_core::credentials::ConsoleSettings,
    /// The job engine's workers and secrets.
    pub jobs: rolegate_core::jobs::JobSettings,
    /// The operator portal (`[portal]`).
    pub portal: portal::PortalSettings,
    /// Portal sign-in through the identity provider (`[oidc]`), when configured.
    pub oidc: Option<rolegate_portal::oidc::OidcConfig>,
    /// Just-in-time access: the sweeper's interval.
    pub access: access::AccessSettings,
    /// Notification sinks and approve-from-Slack (`[notify]`).
    pub notify: notify::NotifyConfig,
    /// The mail server for email customer approvers (`[smtp]`); none: they are refused.
    pub smtp: Option<smtp::SmtpConfig>,
}

impl Settings {
    /// Settings with every default (used by tests and `serve` without config).
    pub fn defaults() -> Result<Self, ConfigError> {
        RawSettings::default().validate()
    }
}

/// Layering, defaults and validation of settings.
#[cfg(test)]
mod tests;
