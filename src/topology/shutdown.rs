//! Shutdown. Signals: the first SIGTERM or SIGINT cancels the token (graceful drain); a second
//! one exits the process at once with status 130. Then [`drain`] runs a short ordered list of
//! steps, each bounded by what is left of the one `shutdown.drain_timeout` deadline (at least
//! a moment, so a drain that used it all still commits what is finished):
//!
//! 1. the sink drains: the consumer stopped on the token and dropped its sender, each later
//!    stage ends when its input closes, the sink when every delivery has its report; past the
//!    deadline the three are aborted (scaled mode: the owner pipeline drains the same way, at
//!    the same time, within the same deadline; sightings produced meanwhile wait in their
//!    topic for the next owner);
//! 2. housekeeping stops;
//! 3. lookups already sent get up to 5 s to land their revisions; queued ones are abandoned
//!    (their records keep `pending`);
//! 4. the producer is flushed, 5. the stored offsets committed (both consumers');
//! 6. the last scheduled report is written (its narrative bounded by its own timeout and by
//!    what is left of the deadline), after the commit so it can never cost it;
//! 7. the group is left; 8. the metrics server stops.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use rdkafka::consumer::Consumer;
use rdkafka::producer::Producer;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::kafka::consumer::{commit_stored, EventConsumer};
use crate::kafka::offsets::OffsetTracker;
use crate::kafka::producer::OutputProducer;
use crate::remote::RemoteStage;
use crate::settings::Settings;
use crate::telemetry::Metrics;
use crate::topology::remote::{finish_lookups, remote_grace};

/// The least time a step gets, even past the deadline.
const MOMENT: Duration = Duration::from_millis(500);

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    /// True when every consumed message was finished and committed before the deadline.
    pub drained: bool,
    /// Messages consumed but not finished when the run ended.
    pub unfinished: usize,
    /// True when a stage stopped on its own (a bug) and forced the shutdown.
    pub stage_failed: bool,
}

impl RunSummary {
    /// Shutdown was requested before the brokers answered: nothing consumed, nothing owed.
    pub const STOPPED_BEFORE_START: RunSummary = RunSummary {
        drained: true,
        unfinished: 0,
        stage_failed: false,
    };
}

/// The tokens that stop the tasks beside the data path, each at its step.
#[derive(Default)]
pub(super) struct Stops {
    pub(super) server: CancellationToken,
    pub(super) reports: CancellationToken,
    pub(super) remote: CancellationToken,
    pub(super) housekeeping: CancellationToken,
}

/// Every task of the running system.
pub(super) struct Tasks {
    pub(super) server: JoinHandle<std::io::Result<()>>,
    pub(super) reports: Option<JoinHandle<()>>,
    pub(super) remote: Option<JoinSet<()>>,
    pub(super) consume: JoinHandle<()>,
    pub(super) process: Vec<JoinHandle<()>>,
    pub(super) sink: JoinHandle<()>,
    pub(super) watchdog: JoinHandle<()>,
    pub(super) housekeeping: JoinHandle<()>,
    /// Scaled mode: the owner pipeline (sightings in, records out).
    pub(super) owner: Option<Pipeline>,
}

/// One consume → process → sink pipeline's tasks (the owner side of scaled mode).
pub(super) struct Pipeline {
    pub(super) consume: JoinHandle<()>,
    pub(super) process: Vec<JoinHandle<()>>,
    pub(super) sink: JoinHandle<()>,
}

/// What the drain flushes, commits and closes.
pub(super) struct Clients {
    pub(super) producer: OutputProducer,
    pub(super) consumer: Arc<EventConsumer>,
    pub(super) tracker: Arc<Mutex<OffsetTracker>>,
    pub(super) remote: Option<Arc<RemoteStage>>,
    /// Scaled mode: the owner consumer and its tracker.
    pub(super) owner: Option<(Arc<EventConsumer>, Arc<Mutex<OffsetTracker>>)>,
}

/// Spawns the data-path stages. A stage that ends before shutdown was requested, or panics, is
/// a bug: it is logged, marked, and shuts the daemon down so that an orchestrator restarts it.
pub(super) struct StageFailed {
    shutdown: CancellationToken,
    failed: Arc<AtomicBool>,
}

impl StageFailed {
    pub(super) fn new(shutdown: &CancellationToken) -> Self {
        StageFailed {
            shutdown: shutdown.clone(),
            failed: Arc::new(AtomicBool::new(false)),
        }
    }

    pub(super) fn spawn(
        &self,
        name: &'static str,
        stage: impl Future<Output = ()> + Send + 'static,
    ) -> JoinHandle<()> {
        let shutdown = self.shutdown.clone();
        let failed = self.failed.clone();
        tokio::spawn(async move {
            let result = std::panic::AssertUnwindSafe(stage).catch_unwind().await;
            if result.is_err() || !shutdown.is_cancelled() {
                tracing::error!(
                    stage = name,
                    panicked = result.is_err(),
                    "pipeline stage stopped unexpectedly; shutting down"
                );
                failed.store(true, Ordering::Relaxed);
                shutdown.cancel();
            }
        })
    }

    /// Runs a blocking stage on a thread of its own, watched like the others.
    pub(super) fn spawn_thread(
        &self,
        name: &'static str,
        stage: impl FnOnce() + Send + 'static,
    ) -> JoinHandle<()> {
        let thread = tokio::task::spawn_blocking(stage);
        self.spawn(name, async move {
            if let Err(error) = thread.await {
                if error.is_panic() {
                    std::panic::resume_unwind(error.into_panic());
                }
            }
        })
    }

    fn any(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }
}

/// Runs the shutdown steps in order (see the module contract) and says how the run ended.
pub(super) async fn drain(
    tasks: Tasks,
    stops: Stops,
    clients: Clients,
    failed: StageFailed,
    settings: &Settings,
    metrics: &Arc<Metrics>,
) -> RunSummary {
    let deadline = Instant::now() + settings.shutdown.drain_timeout;
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(MOMENT)
    };
    info!(
        deadline_secs = settings.shutdown.drain_timeout.as_secs_f64(),
        "draining"
    );
    let Tasks {
        server,
        reports,
        remote,
        consume,
        process,
        mut sink,
        watchdog,
        housekeeping,
        mut owner,
    } = tasks;
    // 1. The sink finishes last: its end means every consumed message was delivered or given up.
    // In scaled mode both pipelines drain at once, within the one deadline.
    let drained = timeout(settings.shutdown.drain_timeout, async {
        let _ = (&mut sink).await;
        if let Some(owner) = &mut owner {
            let _ = (&mut owner.sink).await;
        }
    })
    .await
    .is_ok();
    if !drained {
        warn!("drain deadline passed; committing what is finished");
        for task in process.iter().chain([&consume, &sink]) {
            task.abort();
        }
        if let Some(owner) = &owner {
            for task in owner.process.iter().chain([&owner.consume, &owner.sink]) {
                task.abort();
            }
        }
    }
    if let Some(owner) = owner {
        let _ = owner.consume.await;
        for worker in owner.process {
            let _ = worker.await;
        }
        if !drained {
            let _ = owner.sink.await;
        }
    }
    // Aborted tasks release their clients (consumer and producer handles) once joined.
    let _ = consume.await;
    // Workers end when the consumer's senders or the sink's receiver are gone.
    for worker in process {
        let _ = worker.await;
    }
    if !drained {
        let _ = sink.await;
    }
    // 2.
    stops.housekeeping.cancel();
    // 3.
    stops.remote.cancel();
    if let Some(lookups) = remote {
        let grace = remote_grace(deadline.saturating_duration_since(Instant::now()));
        finish_lookups(lookups, grace, clients.remote.as_deref()).await;
    }
    // 4–5. Flush, then commit (blocking librdkafka calls, off the runtime), before the report:
    // a slow narrative can never cost the commit.
    let (producer, flush_for) = (clients.producer.clone(), left());
    let _ = timeout(
        flush_for,
        tokio::task::spawn_blocking(move || producer.flush(flush_for)),
    )
    .await;
    let (consumer, commit_metrics) = (clients.consumer.clone(), metrics.clone());
    let owner_consumer = clients.owner.as_ref().map(|(c, _)| c.clone());
    let commit = tokio::task::spawn_blocking(move || {
        let _ = commit_stored(&consumer, &commit_metrics);
        if let Some(owner) = owner_consumer {
            let _ = commit_stored(&owner, &commit_metrics);
        }
    });
    let _ = timeout(left(), commit).await;
    // 6. The last interval's report holds every record the sink published.
    stops.reports.cancel();
    if let Some(task) = reports {
        let wait = (settings.report.narrative.timeout + Duration::from_secs(10)).min(left());
        if timeout(wait, task).await.is_err() {
            warn!("the last scheduled report was not finished in time");
        }
    }
    let in_flight = |tracker: &Mutex<OffsetTracker>| {
        tracker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .in_flight()
    };
    let unfinished =
        in_flight(&clients.tracker) + clients.owner.as_ref().map_or(0, |(_, t)| in_flight(t));
    // 7. Leave the group now rather than at drop, so a restarted daemon is assigned at once.
    let consumer = clients.consumer;
    let owner_consumer = clients.owner.map(|(c, _)| c);
    let close = tokio::task::spawn_blocking(move || {
        consumer.unsubscribe();
        drop(consumer);
        if let Some(owner) = owner_consumer {
            owner.unsubscribe();
            drop(owner);
        }
    });
    let _ = timeout(left(), close).await;
    // 8.
    stops.server.cancel();
    let _ = timeout(Duration::from_secs(1), server).await;
    let _ = housekeeping.await;
    let _ = watchdog.await;
    let stage_failed = failed.any();
    info!(drained, unfinished, stage_failed, "stopped");
    RunSummary {
        drained: drained && unfinished == 0 && !stage_failed,
        unfinished,
        stage_failed,
    }
}

/// Spawns the signal watcher; returns immediately.
pub fn watch_signals(token: CancellationToken) {
    tokio::spawn(async move {
        // The listeners live across both waits: one made after the first signal would miss a
        // second that arrived before it existed (the handler stays installed, so that signal
        // would be swallowed and the drain could not be cut short).
        let mut signals = Signals::new();
        signals.recv().await;
        tracing::info!("shutdown requested: draining (send the signal again to exit now)");
        token.cancel();
        signals.recv().await;
        tracing::warn!("second signal: exiting without draining");
        std::process::exit(130);
    });
}

/// SIGTERM and SIGINT (Ctrl-C where there are no Unix signals).
struct Signals {
    #[cfg(unix)]
    streams: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let streams = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                (Ok(term), Ok(int)) => Some((term, int)),
                _ => None,
            };
            Signals { streams }
        }
        #[cfg(not(unix))]
        {
            Signals {}
        }
    }

    /// The next SIGTERM or SIGINT, including one that arrived since the last call.
    async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some((term, int)) = &mut self.streams {
            // Either signal will do; both futures are cancellation-safe.
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
