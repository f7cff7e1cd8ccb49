//! The consume loop: takes messages from the consumer, registers each offset with the tracker
//! and hands the message on; a full channel is backpressure (waited out, and counted).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::kafka::consumer::{next_event, EventConsumer, TopicNames};
use crate::kafka::error_kind;
use crate::kafka::offsets::OffsetTracker;
use crate::model::RawEvent;
use crate::telemetry::events::{BackpressureWaited, KafkaClientError};
use crate::telemetry::Metrics;

pub(super) async fn consume_loop(
    consumer: Arc<EventConsumer>,
    tracker: Arc<Mutex<OffsetTracker>>,
    raw_tx: mpsc::Sender<(RawEvent, Instant)>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let mut topics = TopicNames::default();
    loop {
        // Biased towards shutdown so a busy topic cannot delay it; `recv` is cancellation-safe.
        let message = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            message = next_event(&consumer, &mut topics) => message,
        };
        let raw = match message {
            Ok(raw) => raw,
            Err(error) => {
                KafkaClientError {
                    kind: error_kind(&error),
                    error: &error.to_string(),
                }
                .emit(&metrics);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        tracker.lock().unwrap_or_else(|p| p.into_inner()).begin(
            &raw.origin.topic,
            raw.origin.partition,
            raw.origin.offset,
        );
        let item = (raw, Instant::now());
        match raw_tx.try_send(item) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Closed(_)) => break,
            Err(mpsc::error::TrySendError::Full(item)) => {
                let waited_from = Instant::now();
                let origin = item.0.origin.clone();
                let sent = tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => false,
                    result = raw_tx.send(item) => result.is_ok(),
                };
                if !sent {
                    // Dropped on shutdown: abandoned, so its offset is never stored and the
                    // next owner reads it again; it is not unfinished work.
                    tracker.lock().unwrap_or_else(|p| p.into_inner()).abandon(
                        &origin.topic,
                        origin.partition,
                        origin.offset,
                    );
                }
                BackpressureWaited {
                    stage: "consume",
                    waited: waited_from.elapsed(),
                }
                .emit(&metrics);
                if !sent {
                    break;
                }
            }
        }
    }
}
