//! The consume loop: takes what one poll has ready as a batch (each offset registered with the
//! tracker as it is taken), and hands each partition's messages, in order, to the worker that
//! owns the partition; a full worker channel is backpressure (waited out, and counted).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::kafka::consumer::{next_batch, EventConsumer, TopicNames};
use crate::kafka::error_kind;
use crate::kafka::offsets::OffsetTracker;
use crate::model::RawEvent;
use crate::settings::PipelineSettings;
use crate::telemetry::events::{BackpressureWaited, KafkaClientError};
use crate::telemetry::Metrics;

/// Messages of one poll for one worker, and when they were received.
#[derive(Debug)]
pub(super) struct RawBatch {
    pub(super) events: Vec<RawEvent>,
    pub(super) received: Instant,
}

/// The worker that owns `(topic, partition)`: a partition's messages always go to one worker,
/// in order (stream header directives and per-partition offsets depend on it).
fn owner(topic: &str, partition: i32, workers: usize) -> usize {
    let mut hash = DefaultHasher::new();
    (topic, partition).hash(&mut hash);
    (hash.finish() % workers as u64) as usize
}

pub(super) async fn consume_loop(
    consumer: Arc<EventConsumer>,
    tracker: Arc<Mutex<OffsetTracker>>,
    workers: Vec<mpsc::Sender<RawBatch>>,
    limits: PipelineSettings,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let mut topics = TopicNames::default();
    loop {
        // Biased towards shutdown so a busy topic cannot delay it; `next_batch` is
        // cancellation-safe (it awaits only the first message).
        let polled = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            polled = next_batch(&consumer, &tracker, &mut topics, limits.batch_max_messages, limits.batch_max_bytes) => polled,
        };
        if let Some(error) = &polled.error {
            KafkaClientError {
                kind: error_kind(error),
                error: &error.to_string(),
            }
            .emit(&metrics);
        }
        if polled.events.is_empty() {
            // Only an error: give the client a moment before polling again.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let received = Instant::now();
        let mut shares: Vec<Vec<RawEvent>> = workers.iter().map(|_| Vec::new()).collect();
        for raw in polled.events {
            let index = owner(&raw.origin.topic, raw.origin.partition, workers.len());
            shares[index].push(raw);
        }
        let mut shares = workers.iter().zip(shares);
        while let Some((worker, events)) = shares.next() {
            if events.is_empty() {
                continue;
            }
            let batch = RawBatch { events, received };
            if let Err(unsent) = hand_on(worker, batch, &metrics, &shutdown).await {
                // Shutdown came (or a worker is gone) with this share and the rest of the
                // poll unsent: abandoned, so their offsets are never stored and the next owner
                // reads them again; they are not unfinished work.
                let rest = shares.flat_map(|(_, events)| events);
                abandon(&tracker, unsent.into_iter().chain(rest));
                return;
            }
        }
    }
}

/// Sends `batch` to its worker, waiting while the worker is behind; gives the messages back
/// when the worker is gone or shutdown came while waiting.
async fn hand_on(
    worker: &mpsc::Sender<RawBatch>,
    batch: RawBatch,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> Result<(), Vec<RawEvent>> {
    let batch = match worker.try_send(batch) {
        Ok(()) => return Ok(()),
        Err(mpsc::error::TrySendError::Closed(batch)) => return Err(batch.events),
        Err(mpsc::error::TrySendError::Full(batch)) => batch,
    };
    let waited_from = Instant::now();
    // `reserve` keeps the batch here until there is room, so shutdown can give it back.
    let sent = tokio::select! {
        biased;
        _ = shutdown.cancelled() => Err(batch.events),
        permit = worker.reserve() => match permit {
            Ok(permit) => {
                permit.send(batch);
                Ok(())
            }
            Err(_) => Err(batch.events),
        },
    };
    BackpressureWaited {
        stage: "consume",
        waited: waited_from.elapsed(),
    }
    .emit(metrics);
    sent
}

/// Forgets begun messages that never reached a worker. The tracker only lets the newest begun
/// offset of a partition go, and these are the newest of theirs, so they go newest first.
fn abandon(tracker: &Mutex<OffsetTracker>, events: impl Iterator<Item = RawEvent>) {
    let mut origins: Vec<_> = events.map(|raw| raw.origin).collect();
    origins.sort_by_key(|origin| std::cmp::Reverse(origin.offset));
    let mut tracker = tracker.lock().unwrap_or_else(|p| p.into_inner());
    for origin in &origins {
        tracker.abandon(&origin.topic, origin.partition, origin.offset);
    }
}
