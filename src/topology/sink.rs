//! The sink: publishes what each message produced, at most `pipeline.max_in_flight` messages
//! awaiting delivery; when all of a message's outputs are delivered its offset is completed
//! and, once contiguous, stored. Delivered records go on to the scheduled report, then the
//! message's addresses to the remote queues (so a revision never overtakes its first record).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::consumer::Consumer;
use tokio::sync::mpsc;

use super::process::ProcessedBatch;
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
    /// The index of published records (withdrawals, the blocklist).
    pub(super) published: crate::stages::published::PublishedIndex,
}

pub(super) async fn sink_loop(
    mut processed_rx: mpsc::Receiver<ProcessedBatch>,
    targets: SinkTargets,
    consumer: Arc<EventConsumer>,
    tracker: Arc<Mutex<OffsetTracker>>,
    window: DeliveryWindow,
    metrics: Arc<Metrics>,
) {
    let mut in_flight = FuturesUnordered::new();
    // Messages and bytes whose outputs await delivery reports.
    let mut waiting = window;
    let mut input_open = true;
    let fatal = targets.publisher.fatal().clone();
    loop {
        if !input_open && in_flight.is_empty() {
            break;
        }
        // Biased towards completions so the window drains before it grows; both branches are
        // cancellation-safe (`next` on FuturesUnordered and `recv` keep their state).
        tokio::select! {
            biased;
            // Nothing more can be delivered: stop with the messages in flight unfinished (their
            // offsets are not stored), which stops the daemon with exit 1.
            () = fatal.raised() => {
                tracing::error!(unfinished = waiting.messages, "sink stopped by the fatal producer error");
                break;
            }
            Some((origins, received, bytes)) = in_flight.next(), if !in_flight.is_empty() => {
                let origins: Vec<Origin> = origins;
                waiting.remove(origins.len(), bytes);
                finish(&origins, received, &tracker, &consumer, &metrics);
            }
            next = processed_rx.recv(), if input_open && waiting.has_room() => {
                let Some(batch) = next else {
                    input_open = false;
                    continue;
                };
                let Some(received) = batch.first().map(|p| p.received) else {
                    continue;
                };
                // A message that produced nothing to publish or look up is finished now.
                let (busy, quiet): (Vec<Processed>, Vec<Processed>) = batch
                    .into_iter()
                    .partition(|p| !p.outputs.is_empty() || !p.remote.is_empty());
                let quiet: Vec<Origin> = quiet.into_iter().map(|p| p.origin).collect();
                finish(&quiet, received, &tracker, &consumer, &metrics);
                if !busy.is_empty() {
                    let bytes = busy.iter().map(weight).sum();
                    waiting.add(busy.len(), bytes);
                    let delivered = deliver(busy, targets.clone());
                    in_flight.push(async move {
                        let (origins, received) = delivered.await;
                        (origins, received, bytes)
                    });
                }
            }
        }
    }
}

/// What a queued remote lookup is taken to cost (its record, evidence and queue entry).
const LOOKUP_BYTES: usize = 2048;

/// The bytes a message holds until it is delivered: its outputs and its lookups.
fn weight(processed: &Processed) -> usize {
    processed
        .outputs
        .iter()
        .map(|o| o.payload.len() + o.key.as_ref().map_or(0, Vec::len))
        .sum::<usize>()
        + processed.remote.len() * LOOKUP_BYTES
}

/// The delivery window: messages and bytes awaiting delivery reports, each with a limit
/// (`pipeline.max_in_flight`, `pipeline.max_in_flight_bytes`). More is taken in only while
/// both are below their limits, so one batch may pass the byte limit and none is stuck.
#[derive(Debug, Clone)]
pub(super) struct DeliveryWindow {
    messages: usize,
    bytes: usize,
    max_messages: usize,
    max_bytes: usize,
}

impl DeliveryWindow {
    pub(super) fn new(max_messages: usize, max_bytes: usize) -> Self {
        DeliveryWindow {
            messages: 0,
            bytes: 0,
            max_messages,
            max_bytes,
        }
    }

    fn has_room(&self) -> bool {
        self.messages < self.max_messages && self.bytes < self.max_bytes
    }

    fn add(&mut self, messages: usize, bytes: usize) {
        self.messages += messages;
        self.bytes += bytes;
    }

    fn remove(&mut self, messages: usize, bytes: usize) {
        self.messages -= messages;
        self.bytes -= bytes;
    }
}

/// Publishes every output of a batch's messages; then hands the delivered records to the
/// scheduled report and the messages' addresses to the remote queues (only now: a revision can
/// never overtake its first record). Returns the messages, all finished.
async fn deliver(mut batch: Vec<Processed>, targets: SinkTargets) -> (Vec<Origin>, Instant) {
    let SinkTargets {
        publisher,
        report_feed,
        remote,
        published: index,
    } = targets;
    let received = batch.first().map_or_else(Instant::now, |p| p.received);
    let publisher = &publisher;
    let deliveries = batch.iter_mut().flat_map(|processed| {
        let outputs = std::mem::take(&mut processed.outputs);
        let processed: &Processed = processed;
        outputs.into_iter().map(move |output| {
            publisher.deliver(output, &processed.origin, processed.message_time_ms)
        })
    });
    let published = futures::future::join_all(deliveries).await;
    let now = std::time::SystemTime::now();
    for payload in published.iter().flatten() {
        index.record_delivered(payload, now);
    }
    if let Some(feed) = &report_feed {
        for payload in published.into_iter().flatten() {
            feed.offer(payload);
        }
    }
    let mut origins = Vec::with_capacity(batch.len());
    for processed in batch {
        if let Some(remote) = &remote {
            for job in processed.remote {
                // An eviction whose record is locked runs on its own, so the sink never
                // waits for an unrelated address.
                for eviction in remote.offer(RemoteJob::from(job)).await {
                    tokio::spawn(eviction);
                }
            }
        }
        origins.push(processed.origin);
    }
    (origins, received)
}

/// Completes `origins` with the tracker under one lock and stores each partition's new
/// contiguous offset.
fn finish(
    origins: &[Origin],
    received: Instant,
    tracker: &Mutex<OffsetTracker>,
    consumer: &EventConsumer,
    metrics: &Metrics,
) {
    if origins.is_empty() {
        return;
    }
    MessageCompleted {
        count: origins.len() as u64,
        elapsed: received.elapsed(),
    }
    .emit(metrics);
    let mut stores: Vec<(&Origin, i64)> = Vec::new();
    {
        let mut tracker = tracker.lock().unwrap_or_else(|p| p.into_inner());
        for origin in origins {
            if let Some(offset) = tracker.complete(&origin.topic, origin.partition, origin.offset) {
                // Offsets only grow: keep the newest per partition.
                match stores
                    .iter_mut()
                    .find(|(o, _)| o.partition == origin.partition && o.topic == origin.topic)
                {
                    Some(stored) => stored.1 = stored.1.max(offset),
                    None => stores.push((origin, offset)),
                }
            }
        }
    }
    for (origin, offset) in stores {
        match consumer.store_offset(&origin.topic, origin.partition, offset) {
            Ok(()) => OffsetStored.emit(metrics),
            // The partition was revoked meanwhile; its new owner re-reads it.
            Err(e) => tracing::debug!(error = %e, "offset not stored"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Output, OutputKind};

    fn dlq_output(len: usize) -> Output {
        Output {
            kind: OutputKind::Dlq("unrecognized_format"),
            key: Some(vec![b'k'; 10]),
            payload: vec![b'x'; len],
        }
    }

    #[test]
    fn the_window_closes_on_bytes_as_well_as_messages() {
        let mut window = DeliveryWindow::new(10_000, 1_000_000);
        assert!(window.has_room());
        // Two messages of 600 kB each: the first leaves room, the second closes the window
        // although 9,998 more messages would fit.
        window.add(1, 600_000);
        assert!(window.has_room());
        window.add(1, 600_000);
        assert!(!window.has_room(), "{window:?}");
        window.remove(1, 600_000);
        assert!(window.has_room());
        let mut by_count = DeliveryWindow::new(2, usize::MAX);
        by_count.add(2, 2);
        assert!(!by_count.has_room());
    }

    #[test]
    fn a_message_weighs_its_outputs_and_lookups() {
        let processed = Processed {
            origin: Origin {
                topic: "t".into(),
                partition: 0,
                offset: 0,
            },
            message_time_ms: None,
            received: Instant::now(),
            outputs: vec![dlq_output(1000), dlq_output(90)],
            remote: Vec::new(),
        };
        assert_eq!(weight(&processed), 1000 + 90 + 20);
    }
}
