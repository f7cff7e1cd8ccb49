//! The pipeline (`topology::run`, the daemon's own code) on a task, with fresh metrics.

use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;
use crate::telemetry::Metrics;
use crate::topology::{AppError, RunSummary};

/// Runs `topology::run` on a task; returns its metrics, its shutdown token and its handle.
pub fn spawn_pipeline(
    settings: Settings,
) -> (
    Arc<Metrics>,
    CancellationToken,
    JoinHandle<Result<RunSummary, AppError>>,
) {
    let registry = prometheus::Registry::new();
    let metrics = Arc::new(Metrics::new(&registry).expect("metrics"));
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(crate::topology::run(
        settings,
        registry,
        metrics.clone(),
        shutdown.clone(),
    ));
    (metrics, shutdown, run)
}
