//! The consumer: group membership, the rebalance context, and the border where rdkafka messages
//! become owned [`RawEvent`]s (nothing past this module imports `rdkafka::message`).
//!
//! Offsets are stored only by the sink (`enable.auto.offset.store=false`); the background
//! auto-commit commits what was stored. On revoke the context commits what is finished and
//! forgets the revoked partitions. The context stays tiny because it runs on the polling task.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, RebalanceProtocol,
};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, TopicPartitionList};

use crate::kafka::offsets::OffsetTracker;
use crate::kafka::{apply_passthrough, base_client_config, error_kind};
use crate::model::{Origin, RawEvent};
use crate::settings::{Settings, SettingsError};
use crate::telemetry::events::{
    ConsumerLagSampled, KafkaClientError, OffsetsCommitted, PartitionsRebalanced,
};
use crate::telemetry::Metrics;

/// The consumer type used by the daemon.
pub(crate) type EventConsumer = rdkafka::consumer::StreamConsumer<PipelineConsumerContext>;

/// Rebalance, commit, statistics and error callbacks.
pub(crate) struct PipelineConsumerContext {
    metrics: Arc<Metrics>,
    tracker: Arc<Mutex<OffsetTracker>>,
    assigned: Arc<AtomicBool>,
    /// Set while the latest assignment was empty (see [`rejoin_if_sole_member_unassigned`]).
    assigned_nothing: Arc<AtomicBool>,
    /// The partitions held now: only they have a lag gauge (a revoked partition's gauge is
    /// removed, and a late statistics sample cannot bring it back).
    held: Mutex<HashSet<(String, i32)>>,
    /// Told of each assignment (the owner side of scaled mode).
    hooks: Option<Arc<dyn RebalanceHooks>>,
}

// s1-scaled: the owner side's rebalance hooks.
/// What the owner side of scaled mode does when its assignment changes. Called on the polling
/// task, synchronously: it must be quick.
pub(crate) trait RebalanceHooks: Send + Sync {
    /// The consumer now holds exactly `partitions` (after each assignment, and after an
    /// incremental revoke).
    fn assigned(&self, partitions: &[i32]);

    /// `partitions` are being revoked: their messages still in the pipeline are no longer
    /// this consumer's to act on.
    fn revoking(&self, partitions: &[i32]);
}

impl PipelineConsumerContext {
    /// A context sharing the tracker with the sink and the assignment flag with `/readyz`.
    pub(crate) fn new(
        metrics: Arc<Metrics>,
        tracker: Arc<Mutex<OffsetTracker>>,
        assigned: Arc<AtomicBool>,
    ) -> Self {
        PipelineConsumerContext {
            metrics,
            tracker,
            assigned,
            assigned_nothing: Arc::new(AtomicBool::new(false)),
            held: Mutex::new(HashSet::new()),
            hooks: None,
        }
    }

    /// Tells `hooks` of each assignment.
    pub(crate) fn with_hooks(mut self, hooks: Arc<dyn RebalanceHooks>) -> Self {
        self.hooks = Some(hooks);
        self
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashSet<(String, i32)>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Partitions were assigned: their lag is sampled from now on.
    fn hold(&self, partitions: &TopicPartitionList) {
        let mut held = self.held();
        for element in partitions.elements() {
            held.insert((element.topic().to_owned(), element.partition()));
        }
    }

    /// Partitions were revoked: their lag gauges go.
    fn release(&self, partitions: &TopicPartitionList) {
        let mut held = self.held();
        for element in partitions.elements() {
            held.remove(&(element.topic().to_owned(), element.partition()));
            let _ = self
                .metrics
                .consumer_lag
                .remove_label_values(&[element.topic(), &element.partition().to_string()]);
        }
    }

    /// A statistics sample of one partition's lag, kept only while the partition is held.
    fn lag_sampled(&self, topic: &str, partition: i32, lag: i64) {
        if partition >= 0 && lag >= 0 && self.held().contains(&(topic.to_owned(), partition)) {
            ConsumerLagSampled {
                topic,
                partition,
                lag,
            }
            .emit(&self.metrics);
        }
    }

    /// The flag that is set while the latest assignment was empty.
    pub(crate) fn assigned_nothing(&self) -> Arc<AtomicBool> {
        self.assigned_nothing.clone()
    }
}

impl ClientContext for PipelineConsumerContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        log_librdkafka(level, fac, message);
    }

    fn stats(&self, statistics: Statistics) {
        for (topic, stats) in &statistics.topics {
            for (partition, p) in &stats.partitions {
                self.lag_sampled(topic, *partition, p.consumer_lag);
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
            drop(tracker);
            if let Some(hooks) = &self.hooks {
                let ids: Vec<i32> = partitions
                    .elements()
                    .iter()
                    .map(|e| e.partition())
                    .collect();
                hooks.revoking(&ids);
            }
            self.release(partitions);
            self.assigned.store(false, Ordering::Relaxed);
            self.assigned_nothing.store(false, Ordering::Relaxed);
            PartitionsRebalanced {
                kind: "revoke",
                partitions: partitions.count(),
            }
            .emit(&self.metrics);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(partitions) => {
                self.hold(partitions);
                self.tell_hooks(consumer);
                self.assigned
                    .store(partitions.count() > 0, Ordering::Relaxed);
                self.assigned_nothing
                    .store(partitions.count() == 0, Ordering::Relaxed);
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
            // An incremental (cooperative) revoke is not followed by an assignment: the hooks
            // hear of the smaller set now. An eager one is, and the set is empty meanwhile.
            Rebalance::Revoke(_) => {
                if matches!(
                    consumer.rebalance_protocol(),
                    RebalanceProtocol::Cooperative
                ) {
                    self.tell_hooks(consumer);
                }
            }
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

impl PipelineConsumerContext {
    /// Tells the hooks, if any, of the whole assignment now held (an incremental rebalance's
    /// event lists only what changed).
    fn tell_hooks(&self, consumer: &BaseConsumer<Self>) {
        if let Some(hooks) = &self.hooks {
            let held: Vec<i32> = consumer
                .assignment()
                .map(|list| list.elements().iter().map(|e| e.partition()).collect())
                .unwrap_or_default();
            hooks.assigned(&held);
        }
    }
}

/// Creates the consumer and subscribes it to the input topics. Blocks for up to a few seconds
/// per topic (metadata); call it from a blocking context.
pub(crate) fn create_consumer(
    settings: &Settings,
    context: PipelineConsumerContext,
) -> Result<EventConsumer, ConsumerError> {
    create_consumer_of(
        settings,
        &settings.kafka.group_id,
        &settings.kafka.input_topics,
        context,
    )
}

/// Like [`create_consumer`], in group `group` on `topics` (the owner side of scaled mode reads
/// the sightings topic in `<group_id>.owners`).
pub(crate) fn create_consumer_of(
    settings: &Settings,
    group: &str,
    topics: &[String],
    context: PipelineConsumerContext,
) -> Result<EventConsumer, ConsumerError> {
    let k = &settings.kafka;
    let mut config = base_client_config(settings)?;
    config
        .set("group.id", group)
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set(
            "auto.commit.interval.ms",
            k.auto_commit_interval.as_millis().to_string(),
        )
        // Only for a group without a committed offset on a partition (`kafka.start_from`).
        .set("auto.offset.reset", k.start_from.auto_offset_reset())
        .set(
            "session.timeout.ms",
            k.session_timeout.as_millis().to_string(),
        )
        // Backpressure can pause consumption for as long as the producer is stalled.
        .set("max.poll.interval.ms", "600000")
        // A topic created or grown later is noticed within seconds, not five minutes.
        .set("topic.metadata.refresh.interval.ms", "10000")
        // When the local fetch queue is full (the pipeline is behind the broker), librdkafka
        // waits this long before fetching that partition again: its default of 1 s left the
        // pipeline idle for most of each second once it had caught up (measured: 120 k vs
        // 480 k events/s end to end).
        .set("fetch.queue.backoff.ms", "10");
    apply_passthrough(&mut config, settings);
    if group != k.group_id {
        // The owner side of scaled mode reads every sighting ever produced for its partitions
        // (whatever `kafka.start_from` says of the input): a fresh owner group must not skip
        // the sightings made before it first joined.
        config.set("auto.offset.reset", "earliest");
    }
    let consumer: EventConsumer = config.create_with_context(context)?;
    // Blocking: warm the metadata of the input topics before joining, so the first assignment
    // sees their partitions (otherwise a join can complete with an empty assignment).
    for topic in topics {
        if let Err(e) = consumer.fetch_metadata(Some(topic), std::time::Duration::from_secs(5)) {
            tracing::warn!(topic = %topic, error = %e, "no metadata for input topic yet");
        }
    }
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    Ok(consumer)
}

/// Re-joins the group when this consumer is its only member, holds no partitions, and the
/// input topics have some: no assignor would choose that, so the coordinator lost the
/// assignment (seen with tansu right after a burst of produce requests). With other members
/// present an empty assignment is legitimate and nothing is done. Blocking (metadata and group
/// requests); returns whether it re-subscribed.
pub(crate) fn rejoin_if_sole_member_unassigned(
    consumer: &EventConsumer,
    settings: &Settings,
) -> bool {
    let timeout = std::time::Duration::from_secs(5);
    let Ok(groups) = consumer.fetch_group_list(Some(&settings.kafka.group_id), timeout) else {
        return false;
    };
    let members = groups.groups().first().map_or(0, |g| g.members().len());
    if members > 1 {
        return false;
    }
    let partitions: usize = settings
        .kafka
        .input_topics
        .iter()
        .filter_map(|t| consumer.fetch_metadata(Some(t), timeout).ok())
        .map(|m| {
            m.topics()
                .iter()
                .map(|t| t.partitions().len())
                .sum::<usize>()
        })
        .sum();
    if partitions == 0 {
        return false;
    }
    tracing::warn!(
        members,
        partitions,
        "sole group member was assigned nothing; rejoining"
    );
    consumer.unsubscribe();
    let topics: Vec<&str> = settings
        .kafka
        .input_topics
        .iter()
        .map(String::as_str)
        .collect();
    consumer.subscribe(&topics).is_ok()
}

/// Topic names, interned: every event of a topic shares one `Arc<str>`.
#[derive(Debug, Default)]
pub(crate) struct TopicNames {
    names: std::collections::HashMap<String, Arc<str>>,
    /// The last one asked for: a poll's messages mostly share their topic, so most lookups
    /// are one comparison, not a hash.
    last: Option<Arc<str>>,
}

impl TopicNames {
    /// The shared name of `topic`.
    pub(crate) fn intern(&mut self, topic: &str) -> Arc<str> {
        if let Some(last) = self.last.as_ref().filter(|last| ***last == *topic) {
            return last.clone();
        }
        let name = match self.names.get(topic) {
            Some(name) => name.clone(),
            None => {
                let name: Arc<str> = Arc::from(topic);
                self.names.insert(topic.to_owned(), name.clone());
                name
            }
        };
        self.last = Some(name.clone());
        name
    }
}

/// What one poll had ready: owned copies of the messages, and the error that ended the batch
/// early, if one did.
#[derive(Debug, Default)]
pub(crate) struct Polled {
    /// The messages, in the order the consumer gave them.
    pub(crate) events: Vec<RawEvent>,
    /// A consumer error met while taking them (after the messages before it).
    pub(crate) error: Option<KafkaError>,
}

/// Waits for the next message, then takes every message already waiting behind it, up to
/// `max_messages` and `max_bytes` of payload, without waiting again. Each message is begun with
/// `tracker` before the next poll: a poll can serve a rebalance, and a revoke must find every
/// message of the partition it forgets already begun. Cancellation-safe: the only await is for
/// the first message.
pub(crate) async fn next_batch(
    consumer: &EventConsumer,
    tracker: &Mutex<OffsetTracker>,
    topics: &mut TopicNames,
    max_messages: usize,
    max_bytes: usize,
) -> Polled {
    use futures::FutureExt;
    let mut polled = Polled::default();
    let mut bytes = 0;
    let mut next = consumer.recv().await;
    loop {
        match next {
            Ok(message) => {
                let topic = topics.intern(message.topic());
                let raw = raw_event_from(&message, topic);
                tracker.lock().unwrap_or_else(|p| p.into_inner()).begin(
                    &raw.origin.topic,
                    raw.origin.partition,
                    raw.origin.offset,
                );
                bytes += raw.payload.len();
                polled.events.push(raw);
            }
            Err(error) => {
                polled.error = Some(error);
                break;
            }
        }
        if polled.events.len() >= max_messages || bytes >= max_bytes {
            break;
        }
        match consumer.recv().now_or_never() {
            Some(message) => next = message,
            None => break,
        }
    }
    polled
}

/// Takes an owned copy of a message; `topic` is the interned topic name.
pub(crate) fn raw_event_from(message: &BorrowedMessage<'_>, topic: Arc<str>) -> RawEvent {
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
pub(crate) fn commit_stored(consumer: &EventConsumer, metrics: &Metrics) -> KafkaResult<()> {
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

#[cfg(test)]
mod topic_name_tests {
    use super::*;

    #[test]
    fn a_topic_is_interned_once_whatever_the_order() {
        let mut names = TopicNames::default();
        let fw = names.intern("firewall");
        let proxy = names.intern("proxy");
        assert!(Arc::ptr_eq(&fw, &names.intern("firewall")));
        assert!(Arc::ptr_eq(&fw, &names.intern("firewall")));
        assert!(Arc::ptr_eq(&proxy, &names.intern("proxy")));
        assert_eq!((&*fw, &*proxy), ("firewall", "proxy"));
        assert_eq!(names.names.len(), 2);
    }
}

#[cfg(test)]
mod lag_gauge_tests {
    use super::*;

    fn partitions(topic: &str, ids: &[i32]) -> TopicPartitionList {
        let mut list = TopicPartitionList::new();
        for id in ids {
            list.add_partition(topic, *id);
        }
        list
    }

    #[test]
    fn a_revoked_partition_loses_its_lag_gauge_and_late_samples_do_not_bring_it_back() {
        let registry = prometheus::Registry::new();
        let metrics = Arc::new(Metrics::new(&registry).unwrap());
        let context = PipelineConsumerContext::new(
            metrics.clone(),
            Arc::new(Mutex::new(OffsetTracker::new())),
            Arc::new(AtomicBool::new(false)),
        );
        let gauges = || {
            let mut labels: Vec<String> = registry
                .gather()
                .iter()
                .filter(|f| f.name().ends_with("consumer_lag_messages"))
                .flat_map(|f| f.get_metric().to_vec())
                .map(|m| {
                    let l = m.get_label();
                    format!("{}/{}", l[1].value(), l[0].value())
                })
                .collect();
            labels.sort();
            labels
        };
        context.hold(&partitions("fw", &[0, 1]));
        context.lag_sampled("fw", 0, 5);
        context.lag_sampled("fw", 1, 7);
        context.lag_sampled("other", 0, 9);
        assert_eq!(gauges(), ["fw/0", "fw/1"]);
        context.release(&partitions("fw", &[1]));
        assert_eq!(gauges(), ["fw/0"]);
        context.lag_sampled("fw", 1, 7);
        assert_eq!(gauges(), ["fw/0"], "a late sample of a revoked partition");
    }
}
