//! The consume loop: takes what one poll has ready as a batch (each offset registered with the
//! tracker as it is taken), and hands each partition's messages, in order, to the worker that
//! owns the partition; a full worker channel is backpressure (waited out, and counted).
//!
//! While it waits, the assigned partitions are paused and the consumer is still polled, so the
//! group protocol is served (a rebalance completes, a revoke commits) however long the wait;
//! anything a poll still returns (fetched before the pause, or from partitions assigned
//! meanwhile) is begun with the tracker as usual and kept, in order, for the next round. The
//! partitions are resumed when the worker has room.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use rdkafka::consumer::Consumer;

use crate::kafka::consumer::{next_batch, EventConsumer, Polled, TopicNames};
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
    // Messages polled while waiting on backpressure, handed on next.
    let mut kept: Vec<RawEvent> = Vec::new();
    loop {
        // Biased towards shutdown so a busy topic cannot delay it; `next_batch` is
        // cancellation-safe (it awaits only the first message).
        let polled = if kept.is_empty() {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                polled = next_batch(&consumer, &tracker, &mut topics, limits.batch_max_messages, limits.batch_max_bytes) => polled,
            }
        } else {
            Polled {
                events: std::mem::take(&mut kept),
                error: None,
            }
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
            let mut polling = Polling {
                consumer: &consumer,
                tracker: &tracker,
                topics: &mut topics,
                limits: &limits,
                kept: &mut kept,
            };
            if let Err(unsent) = hand_on(worker, batch, &mut polling, &metrics, &shutdown).await {
                // Shutdown came (or a worker is gone) with this share and the rest of the
                // poll unsent: abandoned, so their offsets are never stored and the next owner
                // reads them again; they are not unfinished work.
                let rest = shares.flat_map(|(_, events)| events);
                let kept = std::mem::take(&mut kept);
                abandon(&tracker, unsent.into_iter().chain(rest).chain(kept));
                return;
            }
        }
    }
}

/// What the consume loop polls with while it waits on backpressure.
struct Polling<'a> {
    consumer: &'a EventConsumer,
    tracker: &'a Mutex<OffsetTracker>,
    topics: &'a mut TopicNames,
    limits: &'a PipelineSettings,
    /// Messages polled meanwhile, in order, for the next round.
    kept: &'a mut Vec<RawEvent>,
}

impl Polling<'_> {
    /// Pauses every assigned partition (those assigned since the last call included).
    fn pause_assigned(&self) {
        if let Ok(assigned) = self.consumer.assignment() {
            if let Err(error) = self.consumer.pause(&assigned) {
                tracing::debug!(%error, "pausing the partitions under backpressure");
            }
        }
    }

    fn resume_assigned(&self) {
        if let Ok(assigned) = self.consumer.assignment() {
            if let Err(error) = self.consumer.resume(&assigned) {
                tracing::warn!(%error, "resuming the partitions after backpressure");
            }
        }
    }
}

/// Sends `batch` to its worker, waiting while the worker is behind with the partitions paused
/// and the consumer polled (see the module contract); gives the messages back when the worker
/// is gone or shutdown came while waiting.
async fn hand_on(
    worker: &mpsc::Sender<RawBatch>,
    batch: RawBatch,
    polling: &mut Polling<'_>,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> Result<(), Vec<RawEvent>> {
    let batch = match worker.try_send(batch) {
        Ok(()) => return Ok(()),
        Err(mpsc::error::TrySendError::Closed(batch)) => return Err(batch.events),
        Err(mpsc::error::TrySendError::Full(batch)) => batch,
    };
    let waited_from = Instant::now();
    polling.pause_assigned();
    // `reserve` keeps the batch here until there is room, so shutdown can give it back. Each
    // arm is cancellation-safe (`next_batch` awaits only its first message).
    let sent = loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break Err(batch.events),
            permit = worker.reserve() => break match permit {
                Ok(permit) => {
                    permit.send(batch);
                    Ok(())
                }
                Err(_) => Err(batch.events),
            },
            polled = next_batch(
                polling.consumer,
                polling.tracker,
                polling.topics,
                polling.limits.batch_max_messages,
                polling.limits.batch_max_bytes,
            ) => {
                if let Some(error) = &polled.error {
                    KafkaClientError {
                        kind: error_kind(error),
                        error: &error.to_string(),
                    }
                    .emit(metrics);
                    if polled.events.is_empty() {
                        // Only an error: give the client a moment before polling again.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                polling.kept.extend(polled.events);
                // A rebalance may have assigned partitions that are not paused yet.
                polling.pause_assigned();
            }
        }
    };
    polling.resume_assigned();
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
