//! The accept loop and the per-connection limits, so that one client cannot hold the API.
//!
//! `axum::serve` sets no timer: a connection that sends half a header, or nothing at all, is kept
//! for ever, and each one costs a file descriptor until `accept` fails with `EMFILE` and health
//! checks go unanswered. Here, instead:
//! - the request head must arrive within [`HttpLimits::header_timeout`]; hyper starts that timer
//!   whenever it waits for a head, so it also closes a kept-alive connection left idle that long
//!   between requests (the idle keep-alive timeout is the same timer);
//! - the whole body must arrive within [`HttpLimits::body_timeout`] of the head (see
//!   [`body_deadline`]): 408 `request_timeout`, then the connection is closed;
//! - at most [`HttpLimits::max_connections`] connections are served at once; the next ones wait
//!   in the kernel's backlog (costing this process no descriptor) until one ends, which the
//!   timeouts above bound;
//! - a failing `accept` (e.g. `EMFILE`) is logged once per streak and retried after a short
//!   pause instead of ending the server or spinning.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use http_body::{Frame, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::sync::{watch, Semaphore};

use crate::ApiError;

/// Default [`HttpLimits::header_timeout`]: long enough for any real client on a slow link, short
/// enough that a slow-header client frees its slot soon.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`HttpLimits::body_timeout`]: a 16 MiB deploy at well under 1 MB/s still fits.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// Default [`HttpLimits::max_connections`]: well below systemd's default `ulimit -n` of 1024, so
/// the store's connections, log files and the listener itself always find a descriptor.
pub const MAX_CONNECTIONS: usize = 512;
/// Pause after a failed `accept`, so a full descriptor table does not turn into a busy loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Largest cap accepted (the semaphore's permits are counted in `u32` when draining).
const MAX_CAP: usize = 1 << 20;

/// Limits of the HTTP server (`OPENVLE_HTTP_*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Time for a request head to arrive, and for an idle kept-alive connection to send its next.
    pub header_timeout: Duration,
    /// Time for a whole request body to arrive, counted from its head.
    pub body_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_timeout: HEADER_TIMEOUT,
            body_timeout: BODY_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
        }
    }
}

/// Serves `app` on `listener` under `limits` until `shutdown` completes, then lets the
/// connections finish the requests in flight.
pub(crate) async fn run(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let cap = limits.max_connections.clamp(1, MAX_CAP);
    let permits = Arc::new(Semaphore::new(cap));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut failing = false;
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    if failing {
                        tracing::info!("accepting connections again");
                        failing = false;
                    }
                    stream
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "accept failed; retrying every {ACCEPT_BACKOFF:?}");
                        failing = true;
                    }
                    drop(permit);
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let service = TowerToHyperService::new(app.clone());
        let mut stop = stop_rx.clone();
        let header_timeout = limits.header_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            let done = tokio::select! {
                done = conn.as_mut() => done,
                _ = async { stop.wait_for(|stop| *stop).await.map(|_| ()) } => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = done {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
    let _ = stop_tx.send(true);
    // Every connection holds a permit: all of them back means all connections have ended.
    let _ = permits.acquire_many(cap as u32).await;
    Ok(())
}

/// Why a body read failed once its deadline passed (found by [`body_deadline`]).
#[derive(Debug)]
struct BodyTimedOut;

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body did not arrive in time")
    }
}

impl std::error::Error for BodyTimedOut {}

/// A body that fails once its deadline passes: the deadline is for the whole body, not for each
/// chunk, so a client dripping one byte at a time cannot stretch it.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    fired: Arc<AtomicBool>,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.fired.store(true, Ordering::SeqCst);
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Middleware: gives the request body [`HttpLimits::body_timeout`] to arrive whole; past it, the
/// answer is 408 `request_timeout` (whatever the handler made of the failed read) and the
/// connection is closed, since the rest of the body may still be on its way.
pub(crate) async fn body_deadline(
    State(limit): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    let fired = Arc::new(AtomicBool::new(false));
    let (parts, body) = request.into_parts();
    let body = Body::new(DeadlineBody {
        inner: body,
        deadline: Box::pin(tokio::time::sleep(limit)),
        fired: fired.clone(),
    });
    let response = next.run(Request::from_parts(parts, body)).await;
    if !fired.load(Ordering::SeqCst) {
        return response;
    }
    let mut response = ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        "the request body did not arrive in time",
    )
    .with_details(json!({ "body_timeout_secs": limit.as_secs() }))
    .into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
