//! Parsing a `postgres://` URL: rolegate's own options (`sslmode`, `sslrootcert`,
//! `pool_size`) are taken out of the query, and tokio-postgres parses the rest. No message
//! produced here contains the URL or its password.

use std::sync::Arc;
use std::time::Duration;

use rolegate_core::ports::StoreError;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use tokio_postgres::config::{Host, SslMode};

use crate::redis::secret::{percent_decode, scrub_secret, url_password};

/// Connections a replica keeps to the database when the URL does not say `pool_size=`.
pub(crate) const DEFAULT_POOL_SIZE: usize = 16;
const MAX_POOL_SIZE: usize = 256;

/// How rolegate talks TLS to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tls {
    /// Plain TCP or a Unix socket (`sslmode=disable`, or no `sslmode`).
    Disable,
    /// TLS required; the server's certificate chain and host name are verified
    /// (`require`, `verify-ca` and `verify-full` all mean this: rolegate never talks TLS to a
    /// server it has not authenticated).
    Verify,
}

/// A parsed store URL.
#[derive(Debug)]
pub(crate) struct PgTarget {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) tls: Tls,
    pub(crate) root_cert: Option<String>,
    pub(crate) pool_size: usize,
}

impl PgTarget {
    /// Parses `postgres://…` or `postgresql://…`.
    pub(crate) fn parse(url: &str) -> Result<Self, StoreError> {
        let secret = url_password(url);
        let invalid = |msg: String| StoreError::Invalid(scrub_secret(msg, secret));
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(invalid(
                "a PostgreSQL store URL starts with postgres:// or postgresql://".into(),
            ));
        }
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, q),
            None => (url, ""),
        };
        let mut tls = Tls::Disable;
        let mut root_cert = None;
        let mut pool_size = DEFAULT_POOL_SIZE;
        let mut kept = Vec::new();
        let has = |name: &str| query.split('&').any(|p| p.split('=').next() == Some(name));
        let (has_app_name, has_connect_timeout) = (has("application_name"), has("connect_timeout"));
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "sslmode" => {
                    tls = match value {
                        "disable" => Tls::Disable,
                        "require" | "verify-ca" | "verify-full" => Tls::Verify,
                        "allow" | "prefer" => {
                            return Err(invalid(format!(
                                "sslmode={value} is not supported: it may fall back to an \
                                 unencrypted or unauthenticated connection; use \
                                 sslmode=verify-full (or disable on a trusted local socket)"
                            )));
                        }
                        _ => {
                            return Err(invalid(
                                "sslmode must be disable, require, verify-ca or verify-full".into(),
                            ));
                        }
                    };
                }
                "sslrootcert" => root_cert = Some(percent_decode(value)),
                "pool_size" => {
                    pool_size = value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=MAX_POOL_SIZE).contains(n))
                        .ok_or_else(|| {
                            invalid(format!(
                                "pool_size must be an integer in 1..={MAX_POOL_SIZE}"
                            ))
                        })?;
                }
                _ => kept.push(pair),
            }
        }
        let mut rest = base.to_owned();
        if !kept.is_empty() {
            rest.push('?');
            rest.push_str(&kept.join("&"));
        }
        let mut config: tokio_postgres::Config = rest
            .parse()
            .map_err(|e| invalid(format!("postgres URL rejected: {e}")))?;
        config.ssl_mode(match tls {
            Tls::Disable => SslMode::Disable,
            Tls::Verify => SslMode::Require,
        });
        if !has_app_name {
            config.application_name("rolegate");
        }
        if !has_connect_timeout {
            config.connect_timeout(Duration::from_secs(5));
        }
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        if config.get_hosts().is_empty() {
            return Err(invalid("postgres URL names no host".into()));
        }
        if root_cert.is_some() && tls == Tls::Disable {
            return Err(invalid(
                "sslrootcert needs sslmode=verify-full (or require / verify-ca)".into(),
            ));
        }
        Ok(Self {
            config,
            tls,
            root_cert,
            pool_size,
        })
    }

    /// True when every host is a Unix socket or a loopback address.
    pub(crate) fn is_local(&self) -> bool {
        self.config.get_hosts().iter().all(|h| match h {
            Host::Tcp(name) => {
                name == "localhost"
                    || name
                        .trim_matches(['[', ']'])
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
            #[cfg(unix)]
            Host::Unix(_) => true,
        })
    }

    /// Host names and database, for logs and `Debug` (never the user's password).
    pub(crate) fn describe(&self) -> String {
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .map(|h| match h {
                Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        format!(
            "{}/{}",
            hosts.join(","),
            self.config.get_dbname().unwrap_or("")
        )
    }

    /// The rustls client configuration for [`Tls::Verify`]: the PEM bundle of `sslrootcert`
    /// when given, otherwise the Web PKI roots.
    pub(crate) fn rustls_config(&self) -> Result<rustls::ClientConfig, StoreError> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.root_cert {
            Some(path) => {
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                    .and_then(|it| it.collect::<Result<_, _>>())
                    .map_err(|e| {
                        StoreError::Invalid(format!("sslrootcert {path} is not a PEM bundle: {e}"))
                    })?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(StoreError::Invalid(format!(
                        "sslrootcert {path} holds no usable certificate"
                    )));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| StoreError::Invalid(format!("TLS setup failed: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(config)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn err(url: &str) -> String {
        match PgTarget::parse(url) {
            Err(StoreError::Invalid(m)) => m,
            other => panic!("expected Invalid for {url}: {other:?}"),
        }
    }

    #[test]
    fn rolegate_options_are_taken_out() {
        let t = PgTarget::parse(
            "postgres://rg:s3cret@db.example:6432/prod?sslmode=verify-full&pool_size=4&application_name=x",
        )
        .unwrap();
        assert_eq!(t.tls, Tls::Verify);
        assert_eq!(t.pool_size, 4);
        assert_eq!(t.config.get_user(), Some("rg"));
        assert_eq!(t.config.get_password(), Some(&b"s3cret"[..]));
        assert_eq!(t.config.get_dbname(), Some("prod"));
        assert_eq!(t.config.get_ports(), [6432]);
        assert_eq!(t.config.get_application_name(), Some("x"));
        assert_eq!(t.describe(), "db.example/prod");
        assert!(!t.is_local());
        let local = PgTarget::parse("postgresql://rg@127.0.0.1:5/db").unwrap();
        assert_eq!(local.tls, Tls::Disable);
        assert_eq!(local.pool_size, DEFAULT_POOL_SIZE);
        assert_eq!(local.config.get_application_name(), Some("rolegate"));
        assert!(local.is_local());
    }

    #[test]
    fn bad_urls_are_refused_without_the_password() {
        for (url, needle) in [
            ("postgres://u:hunter2@h/db?sslmode=prefer", "not supported"),
            ("postgres://u:hunter2@h/db?sslmode=bogus", "sslmode must be"),
            ("postgres://u:hunter2@h/db?pool_size=0", "pool_size"),
            ("postgres://u:hunter2@h/db?pool_size=x", "pool_size"),
            ("postgres://u:hunter2@h/db?nonsense=1", "rejected"),
            ("postgres://u:hunter2@h:notaport/db", "rejected"),
            ("postgres://u:hunter2@h/db?sslrootcert=/x", "sslrootcert"),
            ("mysql://u:hunter2@h/db", "postgres://"),
        ] {
            let msg = err(url);
            assert!(msg.contains(needle), "{url}: {msg}");
            assert!(!msg.contains("hunter2"), "{url}: {msg}");
        }
    }

    #[test]
    fn missing_root_bundle_is_a_clear_error() {
        let t = PgTarget::parse(
            "postgres://u@h/db?sslmode=verify-full&sslrootcert=%2Fnonexistent%2Fca.pem",
        )
        .unwrap();
        assert_eq!(t.root_cert.as_deref(), Some("/nonexistent/ca.pem"));
        match t.rustls_config() {
            Err(StoreError::Invalid(m)) => assert!(m.contains("/nonexistent/ca.pem"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(
            PgTarget::parse("postgres://u@h/db?sslmode=require")
                .unwrap()
                .rustls_config()
                .is_ok()
        );
    }
}
