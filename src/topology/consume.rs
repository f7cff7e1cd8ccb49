//! The consume loop: takes what one poll has ready as a batch, registers its offsets with the
//! tracker under one lock, and hands each partition's messages, in order, to the worker that
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
            polled = next_batch(&consumer, &mut topics, limits.batch_max_messages, limits.batch_max_bytes) => polled,
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
        {
            let mut tracker = tracker.lock().unwrap_or_else(|p| p.into_inner());
            for raw in &polled.events {
                tracker.begin(&raw.origin.topic, raw.origin.partition, raw.origin.offset);
            }
        }
        let mut shares: Vec<Vec<RawEvent>> = workers.iter().map(|_| Vec::new()).collect();
        for raw in polled.events {
            let index = owner(&raw.origin.topic, raw.origin.partition, workers.len());
            shares[index].push(raw);
        }
        for (worker, events) in workers.iter().zip(shares) {
            if events.is_empty() {
                continue;
            }
            let batch = RawBatch { events, received };
            if !hand_on(worker, batch, &tracker, &metrics, &shutdown).await {
                return;
            }
        }
    }
}

/// Sends `batch` to its worker, waiting while the worker is behind. `false` when the loop
/// must end: the worker is gone, or shutdown came while waiting (the batch is then
/// abandoned: its offsets are never stored and the next owner reads them again).
async fn hand_on(
    worker: &mpsc::Sender<RawBatch>,
    batch: RawBatch,
    tracker: &Mutex<OffsetTracker>,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> bool {
    let batch = match worker.try_send(batch) {
        Ok(()) => return true,
        Err(mpsc::error::TrySendError::Closed(_)) => return false,
        Err(mpsc::error::TrySendError::Full(batch)) => batch,
    };
    let waited_from = Instant::now();
    let origins: Vec<_> = batch.events.iter().map(|raw| raw.origin.clone()).collect();
    let sent = tokio::select! {
        biased;
        _ = shutdown.cancelled() => false,
        result = worker.send(batch) => result.is_ok(),
    };
    if !sent {
        let mut tracker = tracker.lock().unwrap_or_else(|p| p.into_inner());
        for origin in &origins {
            tracker.abandon(&origin.topic, origin.partition, origin.offset);
        }
    }
    BackpressureWaited {
        stage: "consume",
        waited: waited_from.elapsed(),
    }
    .emit(metrics);
    sent
}
