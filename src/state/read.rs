//! Reading the state topic to its end: a dedicated consumer outside any group (assigned, not
//! subscribed), from the beginning of each given partition until librdkafka reports the
//! partition's end. The end is the high watermark of the broker's Fetch answers
//! (`enable.partition.eof`), not a ListOffsets answer: tansu answers ListOffsets with the last
//! batch's base offset + 1, which would stop the read inside the last batch. Blocking.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::kafka::{apply_passthrough, base_client_config};
use crate::settings::{state_topic, Settings, SettingsError};
use crate::state::warm::WarmState;

/// Why the state topic could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StateReadError {
    /// The client could not be configured.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The state topic does not exist.
    #[error(
        "state topic `{topic}` does not exist on {brokers}; create it (compacted, as many \
         partitions as the sightings topic) or set [scale] changelog = false"
    )]
    MissingTopic {
        /// The topic.
        topic: String,
        /// The configured brokers.
        brokers: String,
    },
    /// A partition the caller named is not in the topic.
    #[error("state topic `{topic}` has no partition {partition}")]
    NoPartition {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },
    /// The read panicked (a bug).
    #[error("the state topic read panicked: {0}")]
    Panicked(String),
    /// The Kafka client failed.
    #[error("state topic `{topic}`: {error}")]
    Kafka {
        /// The topic.
        topic: String,
        /// The error.
        #[source]
        error: KafkaError,
    },
}

/// Reads `partitions` (every partition when `None`) of the state topic into `warm`, until each
/// one's end. Returns `Ok(false)` when `stop` was cancelled first.
pub(crate) fn read_state_topic(
    settings: &Settings,
    partitions: Option<&[i32]>,
    warm: &mut WarmState,
    stop: &CancellationToken,
) -> Result<bool, StateReadError> {
    let started = Instant::now();
    let topic = state_topic(&settings.kafka.output_topic);
    let kafka = |error| StateReadError::Kafka {
        topic: topic.clone(),
        error,
    };
    let mut config = base_client_config(settings)?;
    apply_passthrough(&mut config, settings);
    // Assigned partitions only: the group id is never joined and nothing is committed.
    config
        .set(
            "group.id",
            format!("{}.state-reader", settings.kafka.group_id),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest");
    let consumer: BaseConsumer = config.create().map_err(kafka)?;
    let metadata = consumer
        .fetch_metadata(Some(&topic), Duration::from_secs(10))
        .map_err(kafka)?;
    let known: BTreeSet<i32> = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    if known.is_empty() {
        return Err(StateReadError::MissingTopic {
            topic,
            brokers: settings.kafka.brokers.clone(),
        });
    }
    let wanted: BTreeSet<i32> = match partitions {
        Some(list) => list.iter().copied().collect(),
        None => known.clone(),
    };
    if let Some(&partition) = wanted.iter().find(|p| !known.contains(p)) {
        return Err(StateReadError::NoPartition { topic, partition });
    }
    let mut assignment = TopicPartitionList::new();
    for &partition in &wanted {
        assignment
            .add_partition_offset(&topic, partition, Offset::Beginning)
            .map_err(kafka)?;
    }
    consumer.assign(&assignment).map_err(kafka)?;
    let mut open = wanted;
    while !open.is_empty() {
        if stop.is_cancelled() {
            return Ok(false);
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(message)) => warm.offer(message.key(), message.payload()),
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                open.remove(&partition);
            }
            // Transient (a broker restarting, a leader moving): librdkafka retries.
            Some(Err(error)) => tracing::debug!(error = %error, "state topic read"),
        }
    }
    warm.elapsed = started.elapsed();
    Ok(true)
}
