//! Request timeouts, so that a slow or stalled client cannot hold a connection and a task
//! forever, and a stuck handler cannot hold its client forever:
//!
//! * **header read** (`header_read_timeout_secs`): enforced on the connection by
//!   [`HeadDeadline`], which answers 408 `request_timeout` when a request's headers are not
//!   complete in time (and closes an idle keep-alive connection silently);
//! * **body read** (`body_read_timeout_secs`): [`limit`] reads the whole body (at most
//!   64 KiB) before any handler runs, and answers 408 `request_timeout` when it is too slow;
//! * **handler** (`request_timeout_secs`): [`limit`] answers 503 `handler_timeout` when the
//!   handler has not answered in time. Work that must finish (an idempotent registration,
//!   a credential fill) runs in its own task and completes anyway.
//!
//! Every answer has the one error shape.

use rolegate_core::Code;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::error::ApiError;
use crate::state::AppState;

/// The largest request body rolegate reads (as `DefaultBodyLimit`).
pub const BODY_LIMIT: usize = 64 * 1024;

/// Middleware on every route: the body-read and handler timeouts.
pub async fn limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let timeouts = state.settings.timeouts;
    let (parts, body) = req.into_parts();
    let bytes = match tokio::time::timeout(timeouts.body_read, to_bytes(body, BODY_LIMIT)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => {
            return ApiError::new(Code::PayloadTooLarge, "request body exceeds 64 KiB")
                .into_response();
        }
        Err(_) => {
            return ApiError::new(
                Code::RequestTimeout,
                format!(
                    "the request body did not arrive within {} s",
                    timeouts.body_read.as_secs()
                ),
            )
            .with_header(header::CONNECTION, HeaderValue::from_static("close"))
            .into_response();
        }
    };
    let req = Request::from_parts(parts, Body::from(bytes));
    match tokio::time::timeout(timeouts.request, next.run(req)).await {
        Ok(res) => res,
        Err(_) => {
            tracing::warn!(
                timeout_secs = timeouts.request.as_secs(),
                "a handler did not answer in time"
            );
            ApiError::new(
                Code::HandlerTimeout,
                format!(
                    "the server did not answer within {} s; retry later",
                    timeouts.request.as_secs()
                ),
            )
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
            .into_response()
        }
    }
}

/// Where a connection is in its current request, as far as the header deadline cares.
#[derive(Debug)]
enum Phase {
    /// Waiting for a request's headers; `seen` bytes of them arrived so far.
    Head { seen: bool },
    /// The headers are in: the body and the handler have their own timeouts.
    Rest,
    /// The deadline passed mid-headers: writing the 408, then closing.
    Rejecting { pos: usize },
    /// Closed by the deadline: reads see end of stream.
    Closed,
}

/// A connection wrapper that enforces the header-read deadline below hyper: from the start of
/// the connection, and from each response, the next request's headers (up to the blank line)
/// must arrive within `limit`. When they do not, a client that sent part of them gets a 408
/// in the error shape and the connection is closed; an idle keep-alive connection is closed.
///
/// (hyper's own `header_read_timeout` closes the connection without an answer.)
#[derive(Debug)]
pub struct HeadDeadline<I> {
    io: I,
    limit: Duration,
    sleep: Pin<Box<Sleep>>,
    phase: Phase,
    /// The last four bytes read in the `Head` phase, to find the end of the headers.
    tail: [u8; 4],
    rejection: Vec<u8>,
}

impl<I> HeadDeadline<I> {
    pub fn new(io: I, limit: Duration) -> Self {
        Self {
            io,
            limit,
            sleep: Box::pin(tokio::time::sleep(limit)),
            phase: Phase::Head { seen: false },
            tail: [0; 4],
            rejection: Vec::new(),
        }
    }

    fn restart(&mut self) {
        self.phase = Phase::Head { seen: false };
        self.tail = [0; 4];
        self.sleep.as_mut().reset(Instant::now() + self.limit);
    }

    /// Feeds bytes read during the `Head` phase; moves to `Rest` at the blank line.
    fn scan(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        for &b in bytes {
            self.tail = [self.tail[1], self.tail[2], self.tail[3], b];
            // httparse accepts bare LF line endings too.
            if self.tail == *b"\r\n\r\n" || self.tail[2..] == *b"\n\n" {
                self.phase = Phase::Rest;
                return;
            }
        }
        self.phase = Phase::Head { seen: true };
    }

    /// Called on every write: a response (not a `100 Continue`) starts the next request's
    /// header deadline.
    fn on_write(&mut self, first: &[u8]) {
        if matches!(self.phase, Phase::Rest)
            && !first.is_empty()
            && !first.starts_with(b"HTTP/1.1 1")
        {
            self.restart();
        }
    }
}

/// The raw 408 written when the headers are too slow (hyper never saw a request).
fn rejection(limit: Duration) -> Vec<u8> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let body = serde_json::json!({"error": {
        "code": "request_timeout",
        "message": format!("the request headers did not arrive within {} s", limit.as_secs()),
        "request_id": request_id,
    }})
    .to_string();
    format!(
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\ncache-control: no-store\r\nx-request-id: {request_id}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

impl<I: AsyncRead + AsyncWrite + Unpin> HeadDeadline<I> {
    /// Writes the 408, then shuts the connection down.
    fn poll_reject(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Phase::Rejecting { pos } = self.phase {
            if pos < self.rejection.len() {
                let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.rejection[pos..]))?;
                if n == 0 {
                    self.phase = Phase::Closed;
                    break;
                }
                self.phase = Phase::Rejecting { pos: pos + n };
            } else {
                ready!(Pin::new(&mut self.io).poll_flush(cx))?;
                let _ = ready!(Pin::new(&mut self.io).poll_shutdown(cx));
                self.phase = Phase::Closed;
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> AsyncRead for HeadDeadline<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match this.phase {
                Phase::Closed => return Poll::Ready(Ok(())),
                Phase::Rejecting { .. } => {
                    // A failed write of the 408 ends the connection just the same.
                    let _ = ready!(this.poll_reject(cx));
                    this.phase = Phase::Closed;
                    continue;
                }
                Phase::Head { .. } | Phase::Rest => {}
            }
            let before = buf.filled().len();
            match Pin::new(&mut this.io).poll_read(cx, buf) {
                Poll::Ready(Ok(())) => {
                    if matches!(this.phase, Phase::Head { .. }) {
                        let fresh = buf.filled()[before..].to_vec();
                        this.scan(&fresh);
                    }
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    let Phase::Head { seen } = this.phase else {
                        return Poll::Pending;
                    };
                    ready!(this.sleep.as_mut().poll(cx));
                    if seen {
                        tracing::info!(
                            timeout_secs = this.limit.as_secs(),
                            "request headers too slow; answering 408"
                        );
                        this.rejection = rejection(this.limit);
                        this.phase = Phase::Rejecting { pos: 0 };
                    } else {
                        this.phase = Phase::Closed;
                    }
                }
            }
        }
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> AsyncWrite for HeadDeadline<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if matches!(this.phase, Phase::Rejecting { .. } | Phase::Closed) {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        this.on_write(buf);
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if matches!(this.phase, Phase::Rejecting { .. } | Phase::Closed) {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if let Some(first) = bufs.iter().find(|b| !b.is_empty()) {
            this.on_write(first);
        }
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    #[tokio::test]
    async fn slow_headers_get_a_408_and_fast_ones_pass() {
        let (client, server) = tokio::io::duplex(4096);
        let mut wrapped = HeadDeadline::new(server, Duration::from_millis(200));
        let (mut cr, mut cw) = tokio::io::split(client);
        cw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let n = wrapped.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(matches!(wrapped.phase, Phase::Rest));
        wrapped.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        assert!(matches!(wrapped.phase, Phase::Head { seen: false }));
        let mut got = [0u8; 19];
        cr.read_exact(&mut got).await.unwrap();
        // Now a slow second request: part of a header, then nothing.
        cw.write_all(b"GET / HT").await.unwrap();
        let n = wrapped.read(&mut buf).await.unwrap();
        assert_eq!(n, 8);
        assert_eq!(
            wrapped.read(&mut buf).await.unwrap(),
            0,
            "closed after the 408"
        );
        let mut answer = String::new();
        cr.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
        assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed_silently() {
        let (client, server) = tokio::io::duplex(4096);
        let mut wrapped = HeadDeadline::new(server, Duration::from_millis(100));
        let mut buf = [0u8; 8];
        assert_eq!(wrapped.read(&mut buf).await.unwrap(), 0);
        drop(wrapped);
        let mut client = client;
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    }
}
