//! Kafka events: produce failures and lost outputs, offsets, rebalances and client errors.

use tracing::{error, info, warn};

use crate::model::Origin;
use crate::telemetry::{warnings, Metrics};

/// A produce attempt failed.
pub(crate) struct ProduceFailedError<'a> {
    /// Bounded kind (the librdkafka error code name).
    pub kind: &'static str,
    /// Whether it will be retried.
    pub permanent: bool,
    /// Destination topic.
    pub topic: &'a str,
    /// Error text.
    pub error: &'a str,
}
impl ProduceFailedError<'_> {
    /// Counts it; warns (rate-limited) while retrying, errors when permanent.
    pub(crate) fn emit(&self, m: &Metrics) {
        m.handles.produce_errors.with(self.kind, |c| c.inc());
        if self.permanent {
            error!(
                kind = self.kind,
                topic = self.topic,
                error = self.error,
                "produce failed permanently"
            );
        } else if let Some(suppressed) = warnings().allow("produce_retry") {
            warn!(
                kind = self.kind,
                topic = self.topic,
                error = self.error,
                suppressed,
                "produce failed, retrying"
            );
        }
    }
}

/// A record could not be delivered anywhere, not even to the DLQ.
pub(crate) struct OutputLostError<'a> {
    /// Where the message came from.
    pub origin: &'a Origin,
    /// Error text.
    pub error: &'a str,
}
impl OutputLostError<'_> {
    /// Counts and logs it at `error`: an operator must act.
    pub(crate) fn emit(&self, m: &Metrics) {
        m.handles.produce_errors.with("output_lost", |c| c.inc());
        error!(
            topic = %self.origin.topic,
            partition = self.origin.partition,
            offset = self.origin.offset,
            error = self.error,
            "output could not be delivered to the output topic nor to the dlq"
        );
    }
}

/// An offset was stored for the next commit.
pub(crate) struct OffsetStored;
impl OffsetStored {
    /// Counts it.
    pub(crate) fn emit(&self, m: &Metrics) {
        m.offsets_stored.inc();
    }
}

/// An offset commit finished.
pub(crate) struct OffsetsCommitted<'a> {
    /// The error, when it failed.
    pub error: Option<&'a str>,
}
impl OffsetsCommitted<'_> {
    /// Counts a success or warns on failure.
    pub(crate) fn emit(&self, m: &Metrics) {
        match self.error {
            None => m.offsets_committed.inc(),
            Some(error) => {
                m.handles.kafka_errors.with("commit", |c| c.inc());
                if let Some(suppressed) = warnings().allow("commit") {
                    warn!(error, suppressed, "offset commit failed");
                }
            }
        }
    }
}

/// Partitions were assigned or revoked.
pub(crate) struct PartitionsRebalanced {
    /// `assign`, `revoke` or `error`.
    pub kind: &'static str,
    /// Number of partitions.
    pub partitions: usize,
}
impl PartitionsRebalanced {
    /// Counts it and logs at info.
    pub(crate) fn emit(&self, m: &Metrics) {
        // Once per rebalance, next to an info line: not worth a cached handle.
        m.rebalances.with_label_values(&[self.kind]).inc();
        info!(
            kind = self.kind,
            partitions = self.partitions,
            "consumer group rebalance"
        );
    }
}

/// The Kafka client reported an error.
pub(crate) struct KafkaClientError<'a> {
    /// Bounded kind.
    pub kind: &'static str,
    /// Error text.
    pub error: &'a str,
}
impl KafkaClientError<'_> {
    /// Counts it and warns (rate-limited).
    pub(crate) fn emit(&self, m: &Metrics) {
        m.handles.kafka_errors.with(self.kind, |c| c.inc());
        if let Some(suppressed) = warnings().allow("kafka_client") {
            warn!(
                kind = self.kind,
                error = self.error,
                suppressed,
                "kafka client error"
            );
        }
    }
}

/// The producer hit a fatal error: it cannot deliver any more and the daemon stops (exit 1).
pub(crate) struct ProducerFatalRaised<'a> {
    /// Error text.
    pub error: &'a str,
}
impl ProducerFatalRaised<'_> {
    /// Counts it as `kafka_errors_total{kind="fatal"}` and logs it (once per run).
    pub(crate) fn emit(&self, m: &Metrics) {
        m.handles.kafka_errors.with("fatal", |c| c.inc());
        tracing::error!(
            error = self.error,
            "fatal producer error: the producer cannot deliver any more; stopping (exit 1) \
             so that a restart gets a new producer; unfinished messages are read again"
        );
    }
}

/// librdkafka's statistics gave a partition's consumer lag (once per statistics interval).
pub(crate) struct ConsumerLagSampled<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Messages behind the high watermark.
    pub lag: i64,
}
impl ConsumerLagSampled<'_> {
    /// Sets the gauge (rare: once per partition per interval).
    pub(crate) fn emit(&self, m: &Metrics) {
        m.consumer_lag
            .with_label_values(&[self.topic, &self.partition.to_string()])
            .set(self.lag);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::events::tests::{metrics, sample};

    #[test]
    fn produce_and_client_errors_reach_the_registry() {
        let (registry, m) = metrics();
        let origin = Origin {
            topic: "in".into(),
            partition: 0,
            offset: 1,
        };
        for _ in 0..3 {
            ProduceFailedError {
                kind: "msg_timed_out",
                permanent: false,
                topic: "out",
                error: "timed out",
            }
            .emit(&m);
        }
        OutputLostError {
            origin: &origin,
            error: "gone",
        }
        .emit(&m);
        KafkaClientError {
            kind: "transport",
            error: "down",
        }
        .emit(&m);
        OffsetsCommitted {
            error: Some("no coordinator"),
        }
        .emit(&m);
        OffsetsCommitted { error: None }.emit(&m);
        PartitionsRebalanced {
            kind: "assign",
            partitions: 3,
        }
        .emit(&m);
        let produce = |kind| sample(&registry, "produce_errors_total", &[("kind", kind)]);
        assert_eq!(produce("msg_timed_out"), Some(3.0));
        assert_eq!(produce("output_lost"), Some(1.0));
        let kafka = |kind| sample(&registry, "kafka_errors_total", &[("kind", kind)]);
        assert_eq!(
            (kafka("transport"), kafka("commit")),
            (Some(1.0), Some(1.0))
        );
        assert_eq!(sample(&registry, "offsets_committed_total", &[]), Some(1.0));
        let assign = sample(&registry, "rebalances_total", &[("kind", "assign")]);
        assert_eq!(assign, Some(1.0));
        assert_eq!(
            m.produce_errors.with_label_values(&["output_lost"]).get(),
            1
        );
    }
}
