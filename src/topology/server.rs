//! `/metrics`, `/healthz` and `/readyz` on `server.listen`.
//!
//! `/healthz` answers 200 while the process serves requests. `/readyz` answers 200 only when
//! the consumer has partitions assigned and the producer is connected to a broker, 503
//! otherwise, naming what is missing; after a fatal producer error it answers 503 naming it.
//!
//! At most 64 connections are served at once, and a client has 10 s from connecting (or from
//! its last response) to send a whole request.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus::Registry;
use tokio_util::sync::CancellationToken;

/// What readiness depends on.
#[derive(Debug, Default, Clone)]
pub(crate) struct Health {
    /// The consumer holds at least one partition.
    pub consumer_assigned: Arc<AtomicBool>,
    /// The producer has a connection to a broker.
    pub producer_connected: Arc<AtomicBool>,
    /// The producer's fatal error, once it had one: never ready again.
    pub producer_fatal: crate::kafka::producer::ProducerFatal,
}

impl Health {
    /// `Ok` when ready, else what is missing.
    pub(crate) fn readiness(&self) -> Result<(), String> {
        if let Some(reason) = self.producer_fatal.reason() {
            return Err(format!("producer fatal error: {reason}"));
        }
        let missing = match (
            self.consumer_assigned.load(Ordering::Relaxed),
            self.producer_connected.load(Ordering::Relaxed),
        ) {
            (true, true) => Ok(()),
            (false, true) => Err("consumer has no partitions assigned"),
            (true, false) => Err("producer is not connected to a broker"),
            (false, false) => Err("consumer not assigned and producer not connected"),
        };
        missing.map_err(str::to_owned)
    }
}

#[derive(Clone)]
struct ServerState {
    registry: Registry,
    health: Health,
}

/// Binds the listener; fails at start-up when the address is taken.
pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

/// Connections served at once; more wait in the kernel's backlog (the listener may be bound
/// to 0.0.0.0, so a flood of idle connections must not exhaust file descriptors).
pub(super) const MAX_CONNECTIONS: usize = 64;
/// Time a client has, from connecting or from the last response, to send a whole request
/// (a slow-headers client cannot hold a connection; an idle keep-alive one is closed too).
pub(super) const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until `stop` is cancelled.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    registry: Registry,
    health: Health,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(ServerState { registry, health });
    let listener = GuardedListener::new(listener, MAX_CONNECTIONS, REQUEST_READ_TIMEOUT);
    axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
}

/// A TCP listener that serves at most `max` connections at once and gives each connection's
/// client `read_timeout` to send a request (see [`GuardedIo`]).
pub(super) struct GuardedListener {
    inner: tokio::net::TcpListener,
    permits: Arc<Semaphore>,
    read_timeout: Duration,
}

impl GuardedListener {
    pub(super) fn new(inner: tokio::net::TcpListener, max: usize, read_timeout: Duration) -> Self {
        GuardedListener {
            inner,
            permits: Arc::new(Semaphore::new(max)),
            read_timeout,
        }
    }
}

impl axum::serve::Listener for GuardedListener {
    type Io = GuardedIo<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // A slot first: past the limit, connections wait in the backlog, not in memory.
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (io, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        (GuardedIo::new(io, self.read_timeout, Some(permit)), addr)
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection whose client must send its request within `timeout` of connecting or of the
/// last bytes written to it: a read that would wait past that fails with `TimedOut`, and hyper
/// closes the connection. Holds its slot of the listener's limit until dropped.
pub(super) struct GuardedIo<T> {
    io: T,
    timeout: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
    _slot: Option<OwnedSemaphorePermit>,
}

impl<T> GuardedIo<T> {
    fn new(io: T, timeout: Duration, slot: Option<OwnedSemaphorePermit>) -> Self {
        GuardedIo {
            io,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            _slot: slot,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for GuardedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Pending if this.deadline.as_mut().poll(cx).is_ready() => Poll::Ready(Err(
                std::io::Error::new(std::io::ErrorKind::TimedOut, "request not sent in time"),
            )),
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for GuardedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(_)) = written {
            // A response went out: the next request gets a fresh allowance.
            let next = tokio::time::Instant::now() + this.timeout;
            this.deadline.as_mut().reset(next);
        }
        written
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

async fn metrics(State(state): State<ServerState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::telemetry::Metrics::render(&state.registry),
    )
}

async fn readyz(State(state): State<ServerState>) -> impl IntoResponse {
    match state.health.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(missing) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {missing}\n"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_client_that_does_not_send_its_request_in_time_is_cut_off() {
        let (client, server) = tokio::io::duplex(1024);
        let mut server = GuardedIo::new(server, Duration::from_millis(100), None);
        let mut client = client;
        // Half a request, then nothing ever again: the read fails once the allowance is spent
        // (whenever that is; the outcome does not depend on the machine's speed).
        client
            .write_all(b"GET /metrics HTTP/1.1\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let n = server.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"GET /metrics HTTP/1.1\r\n");
        let error = tokio::time::timeout(Duration::from_secs(600), server.read(&mut buf))
            .await
            .expect("the half-sent request was waited on for 10 minutes")
            .unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
        // A response renews the allowance; bytes already there are read whatever the clock.
        server.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        client
            .write_all(b"GET /healthz HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let n = server.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"GET /healthz"));
    }

    #[tokio::test]
    async fn connections_past_the_limit_wait_for_a_slot() {
        let inner = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = inner.local_addr().unwrap();
        let mut listener = GuardedListener::new(inner, 1, Duration::from_secs(10));
        let _first_client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (first, _) = axum::serve::Listener::accept(&mut listener).await;
        // The second client's handshake completes in the kernel's backlog...
        let _second_client = tokio::net::TcpStream::connect(addr).await.unwrap();
        // ...but it is not taken while the only slot is held.
        assert!(axum::serve::Listener::accept(&mut listener)
            .now_or_never()
            .is_none());
        drop(first);
        let second = tokio::time::timeout(
            Duration::from_secs(60),
            axum::serve::Listener::accept(&mut listener),
        )
        .await;
        assert!(
            second.is_ok(),
            "the freed slot was not given to the waiting client"
        );
    }

    #[test]
    fn a_fatal_producer_error_makes_readyz_fail_naming_it() {
        let health = Health::default();
        health.consumer_assigned.store(true, Ordering::Relaxed);
        health.producer_connected.store(true, Ordering::Relaxed);
        assert_eq!(health.readiness(), Ok(()));
        let metrics = crate::telemetry::Metrics::new(&Registry::new()).unwrap();
        health.producer_fatal.raise(
            "Fatal idempotent producer error: ClusterAuthorizationFailed",
            &metrics,
        );
        let error = health.readiness().unwrap_err();
        assert!(
            error.contains("producer fatal error") && error.contains("ClusterAuthorizationFailed"),
            "{error}"
        );
    }
}
