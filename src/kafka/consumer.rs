//! The consumer: group membership, the rebalance context, and the border where rdkafka messages
//! become owned [`RawEvent`]s (nothing past this module imports `rdkafka::message`).
//!
//! Offsets are stored only by the sink (`enable.auto.offset.store=false`); the background
//! auto-commit commits what was stored. On revoke the context commits what is finished and
//! forgets the revoked partitions. The context stays tiny because it runs on the polling task.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, TopicPartitionList};

use crate::kafka::offsets::OffsetTracker;
use crate::kafka::{apply_passthrough, base_client_config, error_kind};
use crate::model::{Origin, RawEvent};
use crate::settings::{Settings, SettingsError};
use crate::telemetry::events::{KafkaClientError, OffsetsCommitted, PartitionsRebalanced};
use crate::telemetry::Metrics;

/// The consumer type used by the daemon.
pub type EventConsumer = rdkafka::consumer::StreamConsumer<PipelineConsumerContext>;

/// Rebalance, commit, statistics and error callbacks.
pub struct PipelineConsumerContext {
    metrics: Arc<Metrics>,
    tracker: Arc<Mutex<OffsetTracker>>,
    assigned: Arc<AtomicBool>,
}

impl PipelineConsumerContext {
    /// A context sharing the tracker with the sink and the assignment flag with `/readyz`.
    pub fn new(
        metrics: Arc<Metrics>,
        tracker: Arc<Mutex<OffsetTracker>>,
        assigned: Arc<AtomicBool>,
    ) -> Self {
        PipelineConsumerContext {
            metrics,
            tracker,
            assigned,
        }
    }
}

impl ClientContext for PipelineConsumerContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        log_librdkafka(level, fac, message);
    }

    fn stats(&self, statistics: Statistics) {
        for (topic, stats) in &statistics.topics {
            for (partition, p) in &stats.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    self.metrics
                        .consumer_lag
                        .with_label_values(&[topic.as_str(), &partition.to_string()])
                        .set(p.consumer_lag);
                }
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        KafkaClientError {
            kind: error_kind(&error),
            error: reason,
        }
        .emit(&self.metrics);
    }
}

impl ConsumerContext for PipelineConsumerContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            // Commit what is finished before the partitions move. Async: this callback runs
            // on the polling task, which must not wait for a coordinator round trip.
            match consumer.commit_consumer_state(CommitMode::Async) {
                Ok(()) => OffsetsCommitted { error: None }.emit(&self.metrics),
                Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
                Err(e) => OffsetsCommitted {
                    error: Some(&e.to_string()),
                }
                .emit(&self.metrics),
            }
            let mut tracker = self.tracker.lock().unwrap_or_else(|p| p.into_inner());
            for element in partitions.elements() {
                tracker.forget(element.topic(), element.partition());
            }
            self.assigned.store(false, Ordering::Relaxed);
            PartitionsRebalanced {
                kind: "revoke",
                partitions: partitions.count(),
            }
            .emit(&self.metrics);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(partitions) => {
                self.assigned
                    .store(partitions.count() > 0, Ordering::Relaxed);
                PartitionsRebalanced {
                    kind: "assign",
                    partitions: partitions.count(),
                }
                .emit(&self.metrics);
            }
            Rebalance::Error(e) => KafkaClientError {
                kind: "rebalance",
                error: &e.to_string(),
            }
            .emit(&self.metrics),
            Rebalance::Revoke(_) => {}
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        match result {
            Ok(()) => OffsetsCommitted { error: None }.emit(&self.metrics),
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => OffsetsCommitted {
                error: Some(&e.to_string()),
            }
            .emit(&self.metrics),
        }
    }
}

/// Creates the consumer and subscribes it to the input topics.
pub fn create_consumer(
    settings: &Settings,
    context: PipelineConsumerContext,
) -> Result<EventConsumer, ConsumerError> {
    let k = &settings.kafka;
    let mut config = base_client_config(settings)?;
    config
        .set("group.id", &k.group_id)
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set(
            "auto.commit.interval.ms",
            k.auto_commit_interval.as_millis().to_string(),
        )
        .set("auto.offset.reset", "earliest")
        .set(
            "session.timeout.ms",
            k.session_timeout.as_millis().to_string(),
        )
        // Backpressure can pause consumption for as long as the producer is stalled.
        .set("max.poll.interval.ms", "600000");
    apply_passthrough(&mut config, settings);
    let consumer: EventConsumer = config.create_with_context(context)?;
    let topics: Vec<&str> = k.input_topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    Ok(consumer)
}

/// Takes an owned copy of a message; `topic` is the interned topic name.
pub fn raw_event_from(message: &BorrowedMessage<'_>, topic: Arc<str>) -> RawEvent {
    RawEvent {
        payload: Bytes::copy_from_slice(message.payload().unwrap_or_default()),
        key: message.key().map(Bytes::copy_from_slice),
        origin: Origin {
            topic,
            partition: message.partition(),
            offset: message.offset(),
        },
        timestamp_ms: message.timestamp().to_millis(),
    }
}

/// Commits stored offsets synchronously; `NoOffset` (nothing new) is success.
pub fn commit_stored(consumer: &EventConsumer, metrics: &Metrics) -> KafkaResult<()> {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => {
            OffsetsCommitted { error: None }.emit(metrics);
            Ok(())
        }
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
        Err(e) => {
            OffsetsCommitted {
                error: Some(&e.to_string()),
            }
            .emit(metrics);
            Err(e)
        }
    }
}

/// Why the consumer could not be created.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    /// Bad settings (secret file unreadable…).
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// librdkafka refused the configuration or the subscription.
    #[error("kafka consumer: {0}")]
    Kafka(#[from] KafkaError),
}

/// Forwards librdkafka's own log lines to tracing.
pub(crate) fn log_librdkafka(level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
    use rdkafka::config::RDKafkaLogLevel as L;
    match level {
        L::Emerg | L::Alert | L::Critical | L::Error => {
            tracing::error!(target: "librdkafka", fac, "{message}")
        }
        L::Warning => tracing::warn!(target: "librdkafka", fac, "{message}"),
        L::Notice | L::Info => tracing::info!(target: "librdkafka", fac, "{message}"),
        L::Debug => tracing::debug!(target: "librdkafka", fac, "{message}"),
    }
}
