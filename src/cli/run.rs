//! `threatsift run`: loads the settings, starts the metrics and the daemon, and turns how the
//! run ended into the exit code (0 drained, 1 runtime failure or drain deadline passed, 2
//! configuration).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{config_error, fail, load_settings};
use crate::telemetry::Metrics;
use crate::topology;

/// `threatsift run`: the daemon until SIGTERM/SIGINT, then the drain; the exit code says
/// whether it drained.
pub fn run_command(config: Option<&Path>) -> ExitCode {
    let settings = match load_settings(config) {
        Ok(settings) => settings,
        Err(e) => return config_error(&e),
    };
    let registry = match prometheus::Registry::new_custom(None, None) {
        Ok(registry) => registry,
        Err(e) => return fail(&e),
    };
    let metrics = match Metrics::new(&registry) {
        Ok(metrics) => Arc::new(metrics),
        Err(e) => return fail(&e),
    };
    let result = match topology::block_on(async move {
        let shutdown = CancellationToken::new();
        topology::watch_signals(shutdown.clone());
        topology::run(settings, registry, metrics, shutdown).await
    }) {
        Ok(result) => result,
        Err(e) => return fail(&e),
    };
    match result {
        Ok(summary) if summary.drained => ExitCode::SUCCESS,
        Ok(summary) if summary.stage_failed => {
            eprintln!("threatsift: a pipeline stage failed; see the log");
            ExitCode::from(1)
        }
        Ok(summary) => {
            eprintln!(
                "threatsift: drain deadline passed with {} message(s) unfinished; they will be read again",
                summary.unfinished
            );
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("threatsift: {e}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}
