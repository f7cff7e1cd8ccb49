//! The sink: publishes what each message produced, at most `pipeline.max_in_flight` messages
//! awaiting delivery; when all of a message's outputs are delivered its offset is completed
//! and, once contiguous, stored. Delivered records go on to the scheduled report, then the
//! message's addresses to the remote queues (so a revision never overtakes its first record).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::consumer::Consumer;
use tokio::sync::mpsc;

use crate::kafka::consumer::EventConsumer;
use crate::kafka::offsets::OffsetTracker;
use crate::kafka::producer::OutputPublisher;
use crate::model::Origin;
use crate::remote::{RemoteJob, RemoteStage};
use crate::report::scheduled::ReportFeed;
use crate::stages::process::Processed;
use crate::telemetry::events::{MessageCompleted, OffsetStored};
use crate::telemetry::Metrics;

/// Where the sink hands what it delivered: the producer, then the scheduled report and the
/// remote stage.
#[derive(Clone)]
pub(super) struct SinkTargets {
    pub(super) publisher: OutputPublisher,
    pub(super) report_feed: Option<ReportFeed>,
    pub(super) remote: Option<Arc<RemoteStage>>,
}

pub(super) async fn sink_loop(
    mut processed_rx: mpsc::Receiver<Processed>,
    targets: SinkTargets,
    consumer: Arc<EventConsumer>,
    tracker: Arc<Mutex<OffsetTracker>>,
    max_in_flight: usize,
    metrics: Arc<Metrics>,
) {
    let mut in_flight = FuturesUnordered::new();
    let mut input_open = true;
    loop {
        if !input_open && in_flight.is_empty() {
            break;
        }
        // Biased towards completions so the window drains before it grows; both branches are
        // cancellation-safe (`next` on FuturesUnordered and `recv` keep their state).
        tokio::select! {
            biased;
            Some((origin, received)) = in_flight.next(), if !in_flight.is_empty() => {
                let origin: Origin = origin;
                MessageCompleted { elapsed: Instant::elapsed(&received) }.emit(&metrics);
                let store = tracker
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .complete(&origin.topic, origin.partition, origin.offset);
                if let Some(offset) = store {
                    match consumer.store_offset(&origin.topic, origin.partition, offset) {
                        Ok(()) => OffsetStored.emit(&metrics),
                        // The partition was revoked meanwhile; its new owner re-reads it.
                        Err(e) => tracing::debug!(error = %e, "offset not stored"),
                    }
                }
            }
            next = processed_rx.recv(), if input_open && in_flight.len() < max_in_flight => {
                match next {
                    Some(processed) => {
                        let SinkTargets { publisher, report_feed, remote } = targets.clone();
                        in_flight.push(async move {
                            let Processed { origin, received, outputs, remote: jobs } = processed;
                            let deliveries = outputs.into_iter().map(|o| publisher.deliver(o, &origin));
                            let published = futures::future::join_all(deliveries).await;
                            if let Some(feed) = &report_feed {
                                for payload in published.into_iter().flatten() {
                                    feed.offer(payload);
                                }
                            }
                            // Queued only now: a revision can never overtake its first record.
                            if let Some(remote) = &remote {
                                for job in jobs {
                                    // An eviction whose record is locked runs on its own, so
                                    // the sink never waits for an unrelated address.
                                    for eviction in remote.offer(RemoteJob::from(job)).await {
                                        tokio::spawn(eviction);
                                    }
                                }
                            }
                            (origin, received)
                        });
                    }
                    None => input_open = false,
                }
            }
        }
    }
}
