//! The producer: delivers records to the output topic and entries to the DLQ topic.
//!
//! * Retriable errors (queue full, timeouts, broker or leader unavailable, unknown topic while
//!   metadata catches up) are retried with capped exponential backoff, forever: a broker outage
//!   stalls the pipeline (bounded channels stop the consumer) and nothing is lost.
//! * A fatal error (`RDKafkaErrorCode::Fatal`: the idempotent producer lost its guarantee,
//!   e.g. ClusterAuthorizationFailed on InitProducerId or OutOfOrderSequence) is never retried:
//!   it is logged at `error`, counted (`kafka_errors_total{kind="fatal"}`), fails `/readyz`
//!   and stops the sink, so the daemon exits 1 for its orchestrator to restart it. The outputs
//!   it stopped are never reported delivered: their offsets are not stored and the next run
//!   reads them again.
//! * Permanent errors (message too large, invalid record) turn a record into a
//!   `publish_failed` DLQ entry; a DLQ entry that fails permanently is counted and logged at
//!   `error` as lost, the one path where data is given up, and only for broker-refused data.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::statistics::Statistics;
use rdkafka::util::Timeout;
use rdkafka::ClientContext;

use crate::kafka::consumer::log_librdkafka;
use crate::kafka::{apply_passthrough, base_client_config, error_kind};
use crate::model::DlqEntry;
use crate::model::Origin;
use crate::model::{Output, OutputKind};
use crate::publish::Format;
use crate::settings::{Settings, SettingsError};
use crate::telemetry::events::{
    DlqEntryPublished, KafkaClientError, OutputLostError, ProduceFailedError, ProducerFatalRaised,
    RecordPublished,
};
use crate::telemetry::Metrics;

/// The producer's fatal error, once it had one: shared by its error callback, the publisher,
/// `/readyz` and the sink (which stops on it).
#[derive(Debug, Clone, Default)]
pub(crate) struct ProducerFatal {
    reason: Arc<OnceLock<String>>,
    raised: tokio_util::sync::CancellationToken,
}

impl ProducerFatal {
    /// Records the fatal error (the first one wins), logs it and counts it.
    pub(crate) fn raise(&self, reason: &str, metrics: &Metrics) {
        if self.reason.set(reason.to_owned()).is_ok() {
            ProducerFatalRaised { error: reason }.emit(metrics);
            self.raised.cancel();
        }
    }

    /// The fatal error, if there was one.
    pub(crate) fn reason(&self) -> Option<&str> {
        self.reason.get().map(String::as_str)
    }

    /// Resolves once there is a fatal error. Cancellation-safe.
    pub(crate) async fn raised(&self) {
        self.raised.cancelled().await;
    }
}

/// Statistics and error callbacks of the producer.
pub(crate) struct ProducerStatsContext {
    metrics: Arc<Metrics>,
    connected: Arc<AtomicBool>,
    fatal: ProducerFatal,
}

impl ProducerStatsContext {
    /// A context that reports broker connectivity to `/readyz` through `connected`, and a
    /// fatal error through `fatal`.
    pub(crate) fn new(
        metrics: Arc<Metrics>,
        connected: Arc<AtomicBool>,
        fatal: ProducerFatal,
    ) -> Self {
        ProducerStatsContext {
            metrics,
            connected,
            fatal,
        }
    }
}

impl ClientContext for ProducerStatsContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        log_librdkafka(level, fac, message);
    }

    fn stats(&self, statistics: Statistics) {
        let up = statistics.brokers.values().any(|b| b.state == "UP");
        self.connected.store(up, Ordering::Relaxed);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.connected.store(false, Ordering::Relaxed);
        }
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) {
            self.fatal.raise(reason, &self.metrics);
            return;
        }
        KafkaClientError {
            kind: error_kind(&error),
            error: reason,
        }
        .emit(&self.metrics);
    }
}

/// The producer type used by the daemon.
pub(crate) type OutputProducer = FutureProducer<ProducerStatsContext>;

/// Creates the producer.
pub(crate) fn create_producer(
    settings: &Settings,
    context: ProducerStatsContext,
) -> Result<OutputProducer, ProducerError> {
    let mut config = base_client_config(settings)?;
    // Idempotence: librdkafka's internal retries can neither duplicate nor reorder records.
    config
        .set("linger.ms", "5")
        .set("acks", "all")
        .set("enable.idempotence", "true");
    apply_passthrough(&mut config, settings);
    Ok(config.create_with_context(context)?)
}

/// Why the producer could not be created.
#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    /// Bad settings.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// librdkafka refused the configuration.
    #[error("kafka producer: {0}")]
    Kafka(#[from] KafkaError),
}

/// Delivers outputs with the retry policy of this module.
#[derive(Clone)]
pub(crate) struct OutputPublisher {
    producer: OutputProducer,
    output_topic: Arc<str>,
    dlq_topic: Arc<str>,
    dlq_max_payload_bytes: usize,
    metrics: Arc<Metrics>,
    fatal: ProducerFatal,
    /// `publish.format`: the shape records take on the output topic.
    format: Format,
}

/// Backoff between retries of one output.
const RETRY_START: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How long `send` waits for room in librdkafka's queue before counting a retry.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(5);

impl OutputPublisher {
    /// A publisher over `producer`.
    pub(crate) fn new(
        producer: OutputProducer,
        settings: &Settings,
        metrics: Arc<Metrics>,
        fatal: ProducerFatal,
    ) -> Self {
        OutputPublisher {
            fatal,
            producer,
            output_topic: settings.kafka.output_topic.as_str().into(),
            dlq_topic: settings.kafka.dlq_topic.as_str().into(),
            dlq_max_payload_bytes: settings.dlq.max_payload_bytes,
            metrics,
            format: settings.publish.format,
        }
    }

    /// Delivers one output of the message at `origin` (whose timestamp is `message_time_ms`,
    /// when known); returns once it has a successful delivery report, or once it has been
    /// given up (counted and logged). Returns the record's payload when a threat record
    /// reached the output topic (for scheduled reports).
    pub(crate) async fn deliver(
        &self,
        output: Output,
        origin: &Origin,
        message_time_ms: Option<i64>,
    ) -> Option<Vec<u8>> {
        let mut output = output;
        // Records travel inside the daemon as threatsift.threat/1 (the scheduled report, the
        // published index and the state read them back); they take `publish.format` only here.
        let mut mapped = None;
        if matches!(output.kind, OutputKind::Record(_)) && self.format != Format::Threatsift {
            match self.format.rewrite(&output.payload) {
                Ok(bytes) => mapped = Some(bytes),
                Err(error) => {
                    let text = format!("cannot map the record to {}: {error}", self.format.label());
                    output = self.publish_failed_entry(&output, origin, message_time_ms, &text);
                }
            }
        }
        let mut backoff = RETRY_START;
        loop {
            let topic = match output.kind {
                OutputKind::Record(_) | OutputKind::Tombstone => &self.output_topic,
                OutputKind::Dlq(_) => &self.dlq_topic,
            };
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic);
            // A tombstone's payload is null, not empty: that is what compaction deletes.
            match (output.kind, &mapped) {
                (OutputKind::Tombstone, _) => {}
                (OutputKind::Record(_), Some(mapped)) => record = record.payload(&mapped[..]),
                _ => record = record.payload(&output.payload[..]),
            }
            if let Some(key) = &output.key {
                record = record.key(&key[..]);
            }
            let error = match self
                .producer
                .send(record, Timeout::After(QUEUE_TIMEOUT))
                .await
            {
                Ok(_) => {
                    return match output.kind {
                        OutputKind::Record(verdict) => {
                            RecordPublished { verdict }.emit(&self.metrics);
                            Some(std::mem::take(&mut output.payload))
                        }
                        OutputKind::Dlq(reason) => {
                            DlqEntryPublished { reason }.emit(&self.metrics);
                            None
                        }
                        OutputKind::Tombstone => None,
                    };
                }
                Err((error, _message)) => error,
            };
            if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) {
                // No retry can succeed and the output must not count as delivered: this
                // delivery never ends; the sink stops on the fatal error.
                let reason = self.producer.client().fatal_error().map(|(_, why)| why);
                self.fatal.raise(
                    reason.as_deref().unwrap_or(&error.to_string()),
                    &self.metrics,
                );
                std::future::pending::<()>().await;
            }
            let permanent = is_permanent(&error);
            let text = error.to_string();
            ProduceFailedError {
                kind: error_kind(&error),
                permanent,
                topic,
                error: &text,
            }
            .emit(&self.metrics);
            if permanent {
                match output.kind {
                    OutputKind::Record(_) => {
                        output = self.publish_failed_entry(&output, origin, message_time_ms, &text);
                        backoff = RETRY_START;
                        continue;
                    }
                    OutputKind::Dlq(_) | OutputKind::Tombstone => {
                        OutputLostError {
                            origin,
                            error: &text,
                        }
                        .emit(&self.metrics);
                        return None;
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RETRY_MAX);
        }
    }

    /// The producer's fatal error state.
    pub(crate) fn fatal(&self) -> &ProducerFatal {
        &self.fatal
    }

    fn publish_failed_entry(
        &self,
        output: &Output,
        origin: &Origin,
        message_time_ms: Option<i64>,
        error: &str,
    ) -> Output {
        let entry = DlqEntry::new(
            "publish_failed",
            format!("threat record refused by the broker: {error}"),
            origin,
            None,
            message_time_ms,
            &output.payload,
            self.dlq_max_payload_bytes,
            SystemTime::now(),
        );
        Output {
            kind: OutputKind::Dlq("publish_failed"),
            key: output.key.clone(),
            payload: serde_json::to_vec(&entry).unwrap_or_default(),
        }
    }
}

/// Errors that no retry can fix: the broker refuses this message as it is.
fn is_permanent(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidRecord
        )
    )
}
