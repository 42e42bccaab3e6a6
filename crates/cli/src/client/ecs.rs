//! A local endpoint in the ECS container-credentials format, which every AWS SDK and the AWS
//! CLI read from `AWS_CONTAINER_CREDENTIALS_FULL_URI`, sending
//! `AWS_CONTAINER_AUTHORIZATION_TOKEN` as the `Authorization` header on every call.
//!
//! It listens on loopback only and answers only requests that carry its token (compared in
//! constant time): other local users and web pages (DNS rebinding) can reach a loopback port
//! but do not know the token. The token is random for each run and is handed over only on
//! stdout or in a child's environment. Each request goes through the same local cache as
//! `creds --format credential-process`, so credentials are refreshed ahead of expiry.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rolegate_core::clock::Clock;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;

use super::Source;
use super::format::{expiration, shell_quote};
use super::http::Credentials;

/// The environment variables an SDK reads.
pub const FULL_URI: &str = "AWS_CONTAINER_CREDENTIALS_FULL_URI";
pub const AUTH_TOKEN: &str = "AWS_CONTAINER_AUTHORIZATION_TOKEN";

/// Parses `--listen`: an IP address and port on loopback (`localhost:PORT` means
/// 127.0.0.1). Anything else is refused: the endpoint hands out credentials.
pub fn listen_addr(raw: &str) -> Result<SocketAddr, String> {
    let raw = raw.trim();
    let addr = match raw.strip_prefix("localhost:") {
        Some(port) => port
            .parse::<u16>()
            .map(|p| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), p))
            .map_err(|_| format!("--listen {raw:?}: the port must be a number"))?,
        None => raw.parse::<SocketAddr>().map_err(|_| {
            format!("--listen {raw:?} is not an address such as 127.0.0.1:0 or [::1]:9911")
        })?,
    };
    if addr.ip().is_loopback() {
        Ok(addr)
    } else {
        Err(format!(
            "--listen {raw:?} is not a loopback address: the endpoint serves credentials, so it \
             listens on 127.0.0.1 or ::1 only"
        ))
    }
}

/// The ECS container-credentials answer.
pub fn body(c: &Credentials) -> serde_json::Value {
    json!({
        "AccessKeyId": c.access_key_id,
        "SecretAccessKey": c.secret_access_key.expose_secret(),
        "Token": c.session_token.expose_secret(),
        "Expiration": expiration(c),
    })
}

/// What the handler needs.
struct Shared {
    source: Arc<Source>,
    clock: Arc<dyn Clock>,
    token: SecretString,
    /// One refresh at a time: concurrent SDK calls near expiry share one server round trip
    /// (the second finds the first's result in the cache).
    refresh: tokio::sync::Mutex<()>,
}

/// A running endpoint. Dropping it does not stop it; call [`Server::stop`].
#[derive(Debug)]
pub struct Server {
    url: String,
    token: SecretString,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Binds `addr` (loopback, checked by [`listen_addr`]) and serves in a task.
    pub async fn start(
        source: Arc<Source>,
        clock: Arc<dyn Clock>,
        addr: SocketAddr,
    ) -> anyhow::Result<Self> {
        if !addr.ip().is_loopback() {
            anyhow::bail!("refusing to serve credentials on {addr}: not a loopback address");
        }
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        let local = listener.local_addr()?;
        let token = rolegate_crypto::secret_token("rgl_");
        let shared = Arc::new(Shared {
            source,
            clock,
            token: token.clone(),
            refresh: tokio::sync::Mutex::new(()),
        });
        let app = axum::Router::new()
            .route("/", axum::routing::get(credentials))
            .with_state(shared);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        // `SocketAddr`'s Display brackets IPv6 addresses, as a URL wants.
        Ok(Self {
            url: format!("http://{local}/"),
            token,
            stop,
            task,
        })
    }

    /// The value for `AWS_CONTAINER_CREDENTIALS_FULL_URI`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The value for `AWS_CONTAINER_AUTHORIZATION_TOKEN`.
    pub fn token(&self) -> &SecretString {
        &self.token
    }

    /// The two `export` lines for a POSIX shell.
    pub fn exports(&self) -> String {
        format!(
            "export {FULL_URI}={}\nexport {AUTH_TOKEN}={}\n",
            shell_quote(&self.url),
            shell_quote(self.token.expose_secret())
        )
    }

    /// Stops accepting connections and waits for open requests to finish.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await??;
        Ok(())
    }
}

fn no_store(mut res: Response) -> Response {
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

async fn credentials(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let given = headers
        .get(header::AUTHORIZATION)
        .map_or(&[][..], HeaderValue::as_bytes);
    if !rolegate_crypto::ct_eq(given, shared.token.expose_secret().as_bytes()) {
        let body =
            json!({"code": "unauthorized", "message": "missing or wrong Authorization token"});
        return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    }
    let _one_at_a_time = shared.refresh.lock().await;
    match shared.source.get(&*shared.clock, false).await {
        Ok(c) => no_store((StatusCode::OK, Json(body(&c))).into_response()),
        Err(e) => {
            // The error names a code and a request id, never a secret.
            super::warn(&format!("cannot get credentials for the SDK: {e}"));
            let body = json!({"code": "unavailable", "message": e.to_string()});
            (StatusCode::BAD_GATEWAY, Json(body)).into_response()
        }
    }
}

/// `rolegate creds serve`: gets credentials once (so that a refusal fails here, before
/// anything is printed), serves, prints the exports, and runs until SIGINT or SIGTERM.
pub async fn serve(
    args: &super::args::ServeArgs,
    env: super::settings::Env<'_>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<()> {
    use std::io::Write as _;
    let addr = listen_addr(&args.listen).map_err(anyhow::Error::msg)?;
    let source = Arc::new(Source::new(&args.connection, &args.target, env)?);
    source.get(&*clock, false).await?;
    let server = Server::start(Arc::clone(&source), clock, addr).await?;
    let mut out = std::io::stdout().lock();
    out.write_all(server.exports().as_bytes())?;
    out.flush()?;
    drop(out);
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "rolegate: serving credentials for org {} on {}; Ctrl-C stops",
            source.org(),
            server.url()
        );
    }
    until_stopped().await?;
    server.stop().await
}

/// Resolves on SIGINT or SIGTERM.
fn until_stopped() -> impl Future<Output = std::io::Result<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let streams = signal(SignalKind::interrupt())
        .and_then(|i| signal(SignalKind::terminate()).map(|t| (i, t)));
    async move {
        let (mut int, mut term) = streams?;
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_loopback_addresses_are_accepted() {
        assert_eq!(
            listen_addr("127.0.0.1:0").unwrap(),
            "127.0.0.1:0".parse().unwrap()
        );
        assert_eq!(
            listen_addr("[::1]:9911").unwrap(),
            "[::1]:9911".parse().unwrap()
        );
        assert_eq!(
            listen_addr("localhost:80").unwrap(),
            "127.0.0.1:80".parse().unwrap()
        );
        assert!(listen_addr("127.8.9.10:1").is_ok());
        for bad in ["0.0.0.0:0", "[::]:0", "192.168.1.2:80", "10.0.0.1:1"] {
            assert!(
                listen_addr(bad).unwrap_err().contains("not a loopback"),
                "{bad}"
            );
        }
        for bad in ["", "127.0.0.1", "localhost:x", "example.com:80"] {
            assert!(listen_addr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_body_is_the_ecs_format_in_utc() {
        let c = crate::client::format::tests::sample(None);
        assert_eq!(
            body(&c),
            json!({"AccessKeyId": "ASIAEXAMPLE", "SecretAccessKey": "se'cr$et`x",
                   "Token": "tok/+=", "Expiration": "2026-12-01T17:00:00Z"})
        );
    }
}
