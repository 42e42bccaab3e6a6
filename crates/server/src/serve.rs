//! The accept loop: HTTP/1.1 over plain TCP or rustls, every connection behind the
//! header-read deadline ([`HeadDeadline`]), and a graceful shutdown that lets requests in
//! flight finish.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::timeouts::HeadDeadline;

/// How long a shutdown waits for open connections before it stops anyway.
const DRAIN: Duration = Duration::from_secs(30);

/// Connections the kernel queues for the accept loop (capped by `net.core.somaxconn`).
/// tokio's default of 1024 overflows under a burst of thousands of connections (the fault
/// suite opens 10,000 idle ones): the kernel then drops SYNs, and every new client, a health
/// probe included, waits a full second for its retransmission.
const BACKLOG: u32 = 4096;

/// Binds the listener with [`BACKLOG`] (and `SO_REUSEADDR`, as `TcpListener::bind` does).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Serves `router` on `listener` until `shutdown` completes. With `tls`, every connection
/// must complete a TLS handshake (within `header_timeout`) first.
pub async fn run(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let acceptor = tls.map(TlsAcceptor::from);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors or a connection reset before accept: wait a
                    // moment rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let router = router.clone();
        let acceptor = acceptor.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let Some(acceptor) = acceptor else {
                serve_connection(
                    HeadDeadline::new(tcp, header_timeout),
                    router,
                    peer,
                    watcher,
                )
                .await;
                return;
            };
            match tokio::time::timeout(header_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    serve_connection(
                        HeadDeadline::new(stream, header_timeout),
                        router,
                        peer,
                        watcher,
                    )
                    .await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake too slow"),
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "connections still open after {} s; stopping",
            DRAIN.as_secs()
        );
    }
    Ok(())
}

async fn serve_connection<I>(
    io: I,
    router: Router,
    peer: SocketAddr,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(req)
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
