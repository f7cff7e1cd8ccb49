//! `/metrics`, `/healthz` and `/readyz` on `server.listen`.
//!
//! `/healthz` answers 200 while the process serves requests. `/readyz` answers 200 only when
//! the consumer has partitions assigned and the producer is connected to a broker, 503
//! otherwise, naming what is missing; after a fatal producer error it answers 503 naming it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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
    axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
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
