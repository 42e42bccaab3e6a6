//! The native TLS listener's certificate: read from `tls_cert_file` and `tls_key_file`
//! (PEM) at start-up, and again on SIGHUP. A reload swaps the certificate that new
//! handshakes get; connections already open keep theirs, so none is dropped. A reload that
//! fails (a missing file, a key that does not match) is logged and the old certificate stays.

use std::sync::{Arc, PoisonError, RwLock};

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::{ConfigError, TlsFiles, bad};

/// `Strict-Transport-Security` when TLS is on: one year, subdomains not included (they may
/// be other services).
pub const HSTS: HeaderValue = HeaderValue::from_static("max-age=31536000");

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The current certificate, swapped on reload.
#[derive(Debug)]
pub struct Certificates {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl Certificates {
    /// Reads both files.
    ///
    /// # Errors
    /// A [`ConfigError`] naming `tls_cert_file` or `tls_key_file` when a file cannot be read
    /// or parsed, or the key does not belong to the certificate.
    pub fn load(files: &TlsFiles) -> Result<Arc<Self>, ConfigError> {
        let provider = provider();
        let key = read(files, &provider)?;
        Ok(Arc::new(Self {
            files: files.clone(),
            provider,
            current: RwLock::new(Arc::new(key)),
        }))
    }

    /// Reads the files again and, when they are good, serves them to new handshakes.
    ///
    /// # Errors
    /// As [`Certificates::load`]; the previous certificate stays in use.
    pub fn reload(&self) -> Result<(), ConfigError> {
        let key = Arc::new(read(&self.files, &self.provider)?);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = key;
        Ok(())
    }

    /// The rustls server configuration serving these certificates (HTTP/1.1 by ALPN).
    ///
    /// # Errors
    /// When the crypto provider offers no safe protocol version (not expected).
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| bad("tls_cert_file", format!("cannot set up TLS: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Reloads on every SIGHUP, for as long as the process runs.
    pub fn reload_on_sighup(self: &Arc<Self>) {
        let certs = self.clone();
        tokio::spawn(async move {
            let Ok(mut hup) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                tracing::warn!("cannot listen for SIGHUP: the TLS certificate will not reload");
                return;
            };
            while hup.recv().await.is_some() {
                match certs.reload() {
                    Ok(()) => tracing::info!(
                        cert = %certs.files.cert.display(),
                        "SIGHUP: reloaded the TLS certificate for new connections"
                    ),
                    Err(e) => tracing::error!(
                        error = %e,
                        "SIGHUP: could not reload the TLS certificate; keeping the current one"
                    ),
                }
            }
        });
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

fn read(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, ConfigError> {
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| {
            bad(
                "tls_cert_file",
                format!(
                    "cannot read certificates from {}: {e}",
                    files.cert.display()
                ),
            )
        })?;
    if certs.is_empty() {
        return Err(bad(
            "tls_cert_file",
            format!("{} holds no PEM certificate", files.cert.display()),
        ));
    }
    // The error names the file only: never its content.
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        bad(
            "tls_key_file",
            format!(
                "cannot read a private key from {}: {e}",
                files.key.display()
            ),
        )
    })?;
    CertifiedKey::from_der(certs, key, provider).map_err(|e| {
        bad(
            "tls_key_file",
            format!(
                "{} does not fit the certificate in {}: {e}",
                files.key.display(),
                files.cert.display()
            ),
        )
    })
}

/// Middleware: when TLS is `on`, every response carries `Strict-Transport-Security`.
pub async fn hsts(on: bool, req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    if on {
        res.headers_mut()
            .insert(header::STRICT_TRANSPORT_SECURITY, HSTS);
    }
    res
}
