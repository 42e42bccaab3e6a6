//! The `[smtp]` table: the mail server that customer approvers reached by email are sent
//! through (ADR 0025). Without it, email approvers are refused (412 `email_not_configured`).
//! The password is read from a file, never given inline, and `Debug` redacts it.
//!
//! ```toml
//! [smtp]
//! host = "smtp.example.com"
//! port = 587                     # default: 587 (starttls), 465 (tls), 25 (none)
//! tls = "starttls"               # "starttls" | "tls" | "none" (none: a loopback host only)
//! username = "rolegate"          # with password_file, or neither
//! password_file = "/etc/rolegate/smtp-password"
//! from = "rolegate@example.com"
//! timeout_ms = 10000
//! ```

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use super::{ConfigError, bad, read_secret_file};

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSmtp {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub tls: Option<String>,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub from: Option<String>,
    pub timeout_ms: Option<u64>,
}

/// How the connection to the mail server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connect, then `STARTTLS` (required: a server that does not offer it fails).
    StartTls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
    /// No TLS: only to a loopback host (a local relay).
    None,
}

/// The validated `[smtp]` table.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// `username` and the password from `password_file` (redacted in `Debug`).
    pub credentials: Option<(String, SecretString)>,
    /// The envelope sender and `From:`.
    pub from: String,
    /// Connecting and each SMTP command's time limit.
    pub timeout: Duration,
}

/// Whether `host` names this machine (a name or a loopback address).
fn loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl RawSmtp {
    pub fn validate(self) -> Result<SmtpConfig, ConfigError> {
        let host = self
            .host
            .filter(|h| !h.trim().is_empty())
            .ok_or_else(|| bad("smtp.host", "is required in [smtp]"))?;
        if host
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "/@?#".contains(c))
        {
            return Err(bad("smtp.host", "must be a host name or an IP address"));
        }
        let tls = match self.tls.as_deref().unwrap_or("starttls") {
            "starttls" => SmtpTls::StartTls,
            "tls" => SmtpTls::Tls,
            "none" => SmtpTls::None,
            _ => {
                return Err(bad("smtp.tls", "must be \"starttls\", \"tls\" or \"none\""));
            }
        };
        if tls == SmtpTls::None && !loopback(&host) {
            return Err(bad(
                "smtp.tls",
                "\"none\" sends mail (and its single-use links) in the clear, so it is allowed only to a loopback smtp.host (localhost, 127.0.0.1, ::1); use \"starttls\" or \"tls\"",
            ));
        }
        let port = self.port.unwrap_or(match tls {
            SmtpTls::StartTls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        });
        if port == 0 {
            return Err(bad("smtp.port", "must be between 1 and 65535"));
        }
        let credentials = match (self.username, self.password_file) {
            (None, None) => None,
            (Some(u), Some(p)) if !u.is_empty() && !u.chars().any(char::is_control) => Some((
                u,
                SecretString::from(read_secret_file("smtp.password_file", &p)?),
            )),
            (Some(_), Some(_)) => {
                return Err(bad(
                    "smtp.username",
                    "must not be empty or hold control characters",
                ));
            }
            (Some(_), None) => {
                return Err(bad(
                    "smtp.password_file",
                    "smtp.username needs smtp.password_file",
                ));
            }
            (None, Some(_)) => {
                return Err(bad(
                    "smtp.username",
                    "smtp.password_file needs smtp.username",
                ));
            }
        };
        let from = self
            .from
            .ok_or_else(|| bad("smtp.from", "is required in [smtp]: the sender's address"))?;
        let from = rolegate_core::access::parse_email_address(&from)
            .map_err(|_| bad("smtp.from", "must be one plain address (name@example.com)"))?;
        let ms = self.timeout_ms.unwrap_or(10_000);
        if !(100..=120_000).contains(&ms) {
            return Err(bad("smtp.timeout_ms", "must be between 100 and 120000"));
        }
        Ok(SmtpConfig {
            host,
            port,
            tls,
            credentials,
            from,
            timeout: Duration::from_millis(ms),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn raw(toml: &str) -> RawSmtp {
        toml::from_str(toml).unwrap()
    }

    #[test]
    fn tls_none_only_to_loopback_and_errors_name_the_field() {
        let ok =
            raw("host = \"127.0.0.1\"\ntls = \"none\"\nport = 2525\nfrom = \"rg@example.com\"")
                .validate()
                .unwrap();
        assert_eq!((ok.tls, ok.port), (SmtpTls::None, 2525));
        for host in ["localhost", "::1", "[::1]"] {
            let t = format!("host = \"{host}\"\ntls = \"none\"\nfrom = \"rg@example.com\"");
            assert_eq!(raw(&t).validate().unwrap().port, 25);
        }
        let e = raw("host = \"smtp.example.com\"\ntls = \"none\"\nfrom = \"rg@example.com\"")
            .validate()
            .unwrap_err();
        assert_eq!(e.setting, "smtp.tls");
        let d = raw("host = \"smtp.example.com\"\nfrom = \"rg@example.com\"")
            .validate()
            .unwrap();
        assert_eq!((d.tls, d.port), (SmtpTls::StartTls, 587));
        for (t, field) in [
            (
                "tls = \"ssl\"\nhost = \"h.example\"\nfrom = \"a@b.example\"",
                "smtp.tls",
            ),
            ("from = \"a@b.example\"", "smtp.host"),
            ("host = \"h.example\"", "smtp.from"),
            (
                "host = \"h.example\"\nfrom = \"x <a@b.example>\"",
                "smtp.from",
            ),
            (
                "host = \"h.example\"\nfrom = \"a@b.example\"\nusername = \"u\"",
                "smtp.password_file",
            ),
            (
                "host = \"h.example\"\nfrom = \"a@b.example\"\ntimeout_ms = 5",
                "smtp.timeout_ms",
            ),
        ] {
            assert_eq!(raw(t).validate().unwrap_err().setting, field, "{t}");
        }
        assert!(toml::from_str::<RawSmtp>("password = \"inline\"").is_err());
    }

    #[test]
    fn the_password_comes_from_a_file_and_debug_redacts_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "hunter2-smtp\n").unwrap();
        let c = RawSmtp {
            host: Some("smtp.example.com".into()),
            username: Some("rolegate".into()),
            password_file: Some(p),
            from: Some("rolegate@example.com".into()),
            ..RawSmtp::default()
        }
        .validate()
        .unwrap();
        let (user, pw) = c.credentials.as_ref().unwrap();
        assert_eq!(user, "rolegate");
        assert_eq!(secrecy::ExposeSecret::expose_secret(pw), "hunter2-smtp");
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
