//! The running system, and the only tokio code: build the stages, spawn them, wait, drain.
//!
//! ```text
//! consume ──raw (channel_capacity)──▶ process ──processed (channel_capacity)──▶ sink ──▶ Kafka
//!    ▲                                                     ≤ max_in_flight awaiting delivery │
//!    └──── offsets stored only when every output of a message is delivered ◀────────────────┤
//!                           remote dispatchers ◀── lookups, queued once delivered ◀──────────┘
//!                              └──▶ revised records through the same publisher
//! ```
//!
//! Scaled mode (`[scale] mode = "scaled"`, design §10) runs that pipeline twice with the same
//! loops: the input pipeline runs the processor's ingest half and its sink produces sightings
//! to `<output_topic>.sightings` (input offsets stored once they are delivered); the owner
//! pipeline consumes that topic in group `<group_id>.owners`, runs the owner half, and its sink
//! publishes records and queues lookups (sightings offsets stored once the records are
//! delivered). `owner.rs` reacts to the owner consumer's rebalances.
//!
//! Beside the data path: the metrics server, scheduled reports, housekeeping (reloads, cache
//! gauge) and the assignment watchdog. Shutdown runs in `shutdown.rs`:
//! an ordered list of steps, each bounded by the one drain deadline.

mod blocklist;
mod build;
mod consume;
mod housekeeping;
mod owner;
mod process;
mod remote;
mod reports;
mod runtime;
pub(crate) mod server;
mod shutdown;
mod sink;
mod withdraw;

use std::sync::Arc;

use prometheus::Registry;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use build::{build_processor, AppError};
pub(crate) use build::{build_processor_with, build_providers, build_remote_stage};
pub use remote::finish_lookups;
pub use remote::spawn_dispatchers;
pub(crate) use runtime::{block_on, blocking};
pub use shutdown::{watch_signals, RunSummary};
#[allow(unused_imports)] // for the allow-list hook, wired by the lead
pub(crate) use withdraw::{WithdrawReason, Withdrawals};

use crate::settings::Settings;
use crate::telemetry::Metrics;

/// The allow-list reload's hook: withdraws, off the housekeeping task, every published
/// verdict of an address the newly active entries cover.
fn withdraw_allowlisted(withdrawals: Arc<withdraw::Withdrawals>) -> housekeeping::AllowlistHook {
    Arc::new(move |added: &[crate::stages::filter::AllowEntry]| {
        let nets: Vec<_> = added.iter().map(|entry| entry.net).collect();
        let withdrawals = withdrawals.clone();
        tokio::spawn(async move {
            let now = std::time::SystemTime::now();
            for (ip, _) in withdrawals.index().entries() {
                if nets.iter().any(|net| net.contains(&ip)) {
                    withdrawals
                        .withdraw(ip, withdraw::WithdrawReason::Allowlisted, now)
                        .await;
                }
            }
        });
    })
}

/// Runs the daemon until `stop` is cancelled, then drains within `shutdown.drain_timeout`.
pub async fn run(
    settings: Settings,
    registry: Registry,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) -> Result<RunSummary, AppError> {
    let stops = shutdown::Stops::default();
    let Some(parts) = build::assemble(&settings, &metrics, registry, &stops.server, &stop).await?
    else {
        return Ok(RunSummary::STOPPED_BEFORE_START);
    };
    let failed = shutdown::StageFailed::new(&stop);
    // Capacities bound memory; a full channel stops the stage before it.
    let batches = settings.pipeline.channel_batches();
    let (worker_txs, worker_rxs): (Vec<_>, Vec<_>) = (0..settings.pipeline.worker_count())
        .map(|_| mpsc::channel(batches))
        .unzip();
    let (processed_tx, processed_rx) = mpsc::channel(batches);
    let processor = Arc::new(parts.processor);
    let (report_feed, report_rx) = parts.reports.unzip();
    // Scaled mode: this pipeline is the ingest half, its sink produces sightings; the records,
    // the report and the lookups come from the owner pipeline.
    let scaled = parts.owner.is_some();
    let owner = parts.owner.as_ref().map(|owner| {
        spawn_owner_pipeline(
            owner,
            &processor,
            sink::SinkTargets {
                publisher: parts.publisher.clone(),
                report_feed: report_feed.clone(),
                remote: parts.remote.clone(),
                published: parts.withdrawals.index().clone(),
            },
            &settings,
            &metrics,
            &failed,
            &stop,
        )
    });
    if !scaled {
        // Single mode spends the whole budget: the gauges say so.
        for slot in parts.remote.iter().flat_map(|r| r.slots()) {
            slot.emit_share();
        }
    }
    let half = if scaled {
        process::Half::Ingest
    } else {
        process::Half::Whole
    };
    let tasks = shutdown::Tasks {
        server: parts.server,
        reports: report_rx.map(|rx| {
            tokio::spawn(reports::run_scheduled_reports(
                settings.report.clone(),
                rx,
                stops.reports.clone(),
                metrics.clone(),
            ))
        }),
        remote: (parts.remote.as_ref()).map(|r| remote::spawn_dispatchers(r, &stops.remote)),
        consume: failed.spawn(
            "consume",
            consume::consume_loop(
                parts.consumer.clone(),
                parts.tracker.clone(),
                worker_txs,
                settings.pipeline.clone(),
                metrics.clone(),
                stop.clone(),
            ),
        ),
        process: worker_rxs
            .into_iter()
            .map(|rx| {
                let (tx, metrics) = (processed_tx.clone(), metrics.clone());
                let processor = Arc::new(process::ProcessorHalf {
                    processor: processor.clone(),
                    half,
                    owner: None,
                });
                failed.spawn_thread("process", move || {
                    process::worker_loop(processor, rx, tx, metrics)
                })
            })
            .collect(),
        sink: failed.spawn(
            "sink",
            sink::sink_loop(
                processed_rx,
                sink::SinkTargets {
                    publisher: parts.publisher,
                    report_feed: report_feed.filter(|_| !scaled),
                    remote: parts.remote.clone().filter(|_| !scaled),
                    published: parts.withdrawals.index().clone(),
                },
                parts.consumer.clone(),
                parts.tracker.clone(),
                sink::DeliveryWindow::new(
                    settings.pipeline.max_in_flight,
                    settings.pipeline.max_in_flight_bytes,
                ),
                metrics.clone(),
            ),
        ),
        watchdog: tokio::spawn(housekeeping::assignment_watchdog(
            parts.consumer.clone(),
            settings.clone(),
            parts.assigned_nothing,
            stops.housekeeping.clone(),
        )),
        housekeeping: tokio::spawn(housekeeping::housekeeping_loop(
            housekeeping::Housekept {
                feeds: parts.feeds,
                local: parts.local,
                allowlist: parts.allowlist.map(|file| housekeeping::AllowlistReload {
                    file,
                    // The entries a reload newly allow-listed: the published verdicts of the
                    // addresses they cover are withdrawn (`allowlisted`).
                    on_added: withdraw_allowlisted(parts.withdrawals.clone()),
                }),
                dedup: parts.dedup,
                withdrawals: parts.withdrawals.clone(),
                reload_every: settings.intel.feeds_reload_interval,
            },
            metrics.clone(),
            stops.housekeeping.clone(),
        )),
        owner,
    };
    // s2-state: lookups a warm start found pending, once the dispatchers run.
    if let Some(remote) = &parts.remote {
        tokio::spawn(crate::state::requeue(remote.clone(), parts.requeue));
    }
    // The workers hold the sink's senders now: the sink ends when the last worker does.
    drop(processed_tx);
    stop.cancelled().await;
    let clients = shutdown::Clients {
        producer: parts.producer,
        consumer: parts.consumer,
        tracker: parts.tracker,
        remote: parts.remote,
        owner: parts.owner.map(|o| (o.consumer, o.tracker)),
    };
    Ok(shutdown::drain(tasks, stops, clients, failed, &settings, &metrics).await)
}

// s1-scaled: the owner pipeline of scaled mode.
/// Spawns the owner side of scaled mode: its consumer (group `<group_id>.owners`, the sightings
/// topic) → workers running the owner half → a sink publishing records, then queueing
/// lookups; sightings offsets are stored once a message's records are delivered. The same
/// loops as the input pipeline, each with its own channels, consumer and tracker.
fn spawn_owner_pipeline(
    owner: &build::OwnerParts,
    processor: &Arc<crate::stages::process::Processor>,
    targets: sink::SinkTargets,
    settings: &Settings,
    metrics: &Arc<Metrics>,
    failed: &shutdown::StageFailed,
    stop: &CancellationToken,
) -> shutdown::Pipeline {
    let batches = settings.pipeline.channel_batches();
    let (worker_txs, worker_rxs): (Vec<_>, Vec<_>) = (0..settings.pipeline.worker_count())
        .map(|_| mpsc::channel(batches))
        .unzip();
    let (processed_tx, processed_rx) = mpsc::channel(batches);
    let consume = failed.spawn(
        "owner consume",
        consume::consume_loop(
            owner.consumer.clone(),
            owner.tracker.clone(),
            worker_txs,
            settings.pipeline.clone(),
            metrics.clone(),
            stop.clone(),
        ),
    );
    let process = worker_rxs
        .into_iter()
        .map(|rx| {
            let (tx, metrics) = (processed_tx.clone(), metrics.clone());
            let processor = Arc::new(process::ProcessorHalf {
                processor: processor.clone(),
                half: process::Half::Owner,
                owner: Some(owner.hooks.clone()),
            });
            failed.spawn_thread("owner process", move || {
                process::worker_loop(processor, rx, tx, metrics)
            })
        })
        .collect();
    drop(processed_tx);
    let sink = failed.spawn(
        "owner sink",
        sink::sink_loop(
            processed_rx,
            targets,
            owner.consumer.clone(),
            owner.tracker.clone(),
            sink::DeliveryWindow::new(
                settings.pipeline.max_in_flight,
                settings.pipeline.max_in_flight_bytes,
            ),
            metrics.clone(),
        ),
    );
    shutdown::Pipeline {
        consume,
        process,
        sink,
    }
}
