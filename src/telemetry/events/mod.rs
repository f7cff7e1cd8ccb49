//! Typed internal events, named `<Noun><Verb>[Error]`. Each `emit` updates the metric and writes
//! the log line together. Per-event outcomes log at `debug`; errors that an operator must see
//! log at `warn`, rate-limited per kind, or at `error` when data could not be delivered.

use std::time::Duration;

use tracing::{debug, error, info, warn};

use super::{warnings, Metrics};
use crate::model::Verdict;
use crate::model::{Origin, Role};
use crate::stages::filter::FilterReason;

/// A Kafka message was received.
pub struct MessageConsumed<'a> {
    /// Its topic.
    pub topic: &'a str,
}
impl MessageConsumed<'_> {
    /// Counts it.
    pub fn emit(&self, m: &Metrics) {
        m.events_consumed.with_label_values(&[self.topic]).inc();
    }
}

/// A line was parsed.
pub struct LineParsed {
    /// Format that parsed it.
    pub format: &'static str,
}
impl LineParsed {
    /// Counts it.
    pub fn emit(&self, m: &Metrics) {
        m.events_parsed.with_label_values(&[self.format]).inc();
    }
}

/// A line could not be parsed; it goes to the DLQ.
pub struct LineParseError<'a> {
    /// Bounded kind.
    pub kind: &'static str,
    /// The error text.
    pub error: &'a str,
    /// Where the message came from.
    pub origin: &'a Origin,
}
impl LineParseError<'_> {
    /// Counts it and warns (rate-limited).
    pub fn emit(&self, m: &Metrics) {
        m.parse_errors.with_label_values(&[self.kind]).inc();
        if let Some(suppressed) = warnings().allow("parse_error") {
            warn!(
                kind = self.kind,
                error = self.error,
                topic = %self.origin.topic,
                partition = self.origin.partition,
                offset = self.origin.offset,
                suppressed,
                "unparseable input sent to the dlq"
            );
        }
    }
}

/// A parsed event had no address that could be enriched.
pub struct EventWithoutIp;
impl EventWithoutIp {
    /// Counts it.
    pub fn emit(&self, m: &Metrics) {
        m.events_without_ip.inc();
    }
}

/// Addresses were extracted from an event.
pub struct IpsExtracted<'a> {
    /// The role of each valid address.
    pub roles: &'a [Role],
    /// Address fields whose value was not an address.
    pub invalid_tokens: u64,
}
impl IpsExtracted<'_> {
    /// Counts them.
    pub fn emit(&self, m: &Metrics) {
        for role in self.roles {
            m.ips_extracted.with_label_values(&[role.label()]).inc();
        }
        if self.invalid_tokens > 0 {
            m.ip_tokens_invalid.inc_by(self.invalid_tokens);
        }
    }
}

/// An address was dropped before enrichment.
pub struct IpFiltered {
    /// Why.
    pub reason: FilterReason,
}
impl IpFiltered {
    /// Counts it.
    pub fn emit(&self, m: &Metrics) {
        m.ips_filtered
            .with_label_values(&[self.reason.label()])
            .inc();
    }
}

/// An address was looked up in the dedup window.
pub struct IpDeduplicated {
    /// True for the first sighting in the window.
    pub first: bool,
}
impl IpDeduplicated {
    /// Counts a hit or a miss.
    pub fn emit(&self, m: &Metrics) {
        if self.first {
            m.dedup_misses.inc();
        } else {
            m.dedup_hits.inc();
        }
    }
}

/// A first sighting was listed by a feed.
pub struct FeedMatched<'a> {
    /// Feed name.
    pub feed: &'a str,
}
impl FeedMatched<'_> {
    /// Counts it.
    pub fn emit(&self, m: &Metrics) {
        m.feed_matches.with_label_values(&[self.feed]).inc();
    }
}

/// A record was below `publish.min_verdict` and was not published.
pub struct RecordWithheld {
    /// Its verdict.
    pub verdict: Verdict,
}
impl RecordWithheld {
    /// Counts it.
    pub fn emit(&self, m: &Metrics) {
        m.records_withheld
            .with_label_values(&[self.verdict.label()])
            .inc();
    }
}

/// A threat record was delivered.
pub struct RecordPublished {
    /// Its verdict.
    pub verdict: Verdict,
}
impl RecordPublished {
    /// Counts it.
    pub fn emit(&self, m: &Metrics) {
        m.records_published
            .with_label_values(&[self.verdict.label()])
            .inc();
    }
}

/// A DLQ entry was delivered.
pub struct DlqEntryPublished<'a> {
    /// Its reason label.
    pub reason: &'a str,
}
impl DlqEntryPublished<'_> {
    /// Counts it.
    pub fn emit(&self, m: &Metrics) {
        m.dlq_messages.with_label_values(&[self.reason]).inc();
    }
}

/// A produce attempt failed.
pub struct ProduceFailedError<'a> {
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
    pub fn emit(&self, m: &Metrics) {
        m.produce_errors.with_label_values(&[self.kind]).inc();
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
pub struct OutputLostError<'a> {
    /// Where the message came from.
    pub origin: &'a Origin,
    /// Error text.
    pub error: &'a str,
}
impl OutputLostError<'_> {
    /// Counts and logs it at `error`: an operator must act.
    pub fn emit(&self, m: &Metrics) {
        m.produce_errors.with_label_values(&["output_lost"]).inc();
        error!(
            topic = %self.origin.topic,
            partition = self.origin.partition,
            offset = self.origin.offset,
            error = self.error,
            "output could not be delivered to the output topic nor to the dlq"
        );
    }
}

/// Every output of an input message was delivered.
pub struct MessageCompleted {
    /// From consumption to the last delivery report.
    pub elapsed: Duration,
}
impl MessageCompleted {
    /// Counts it and observes the latency.
    pub fn emit(&self, m: &Metrics) {
        m.messages_completed.inc();
        m.event_to_record.observe(self.elapsed.as_secs_f64());
    }
}

/// An offset was stored for the next commit.
pub struct OffsetStored;
impl OffsetStored {
    /// Counts it.
    pub fn emit(&self, m: &Metrics) {
        m.offsets_stored.inc();
    }
}

/// An offset commit finished.
pub struct OffsetsCommitted<'a> {
    /// The error, when it failed.
    pub error: Option<&'a str>,
}
impl OffsetsCommitted<'_> {
    /// Counts a success or warns on failure.
    pub fn emit(&self, m: &Metrics) {
        match self.error {
            None => m.offsets_committed.inc(),
            Some(error) => {
                m.kafka_errors.with_label_values(&["commit"]).inc();
                if let Some(suppressed) = warnings().allow("commit") {
                    warn!(error, suppressed, "offset commit failed");
                }
            }
        }
    }
}

/// Partitions were assigned or revoked.
pub struct PartitionsRebalanced {
    /// `assign`, `revoke` or `error`.
    pub kind: &'static str,
    /// Number of partitions.
    pub partitions: usize,
}
impl PartitionsRebalanced {
    /// Counts it and logs at info.
    pub fn emit(&self, m: &Metrics) {
        m.rebalances.with_label_values(&[self.kind]).inc();
        info!(
            kind = self.kind,
            partitions = self.partitions,
            "consumer group rebalance"
        );
    }
}

/// The Kafka client reported an error.
pub struct KafkaClientError<'a> {
    /// Bounded kind.
    pub kind: &'static str,
    /// Error text.
    pub error: &'a str,
}
impl KafkaClientError<'_> {
    /// Counts it and warns (rate-limited).
    pub fn emit(&self, m: &Metrics) {
        m.kafka_errors.with_label_values(&[self.kind]).inc();
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

/// A feed was (re)loaded.
pub struct FeedLoaded<'a> {
    /// Feed name.
    pub feed: &'a str,
    /// Prefixes loaded.
    pub entries: usize,
    /// Lines that were not an address or CIDR.
    pub skipped_lines: usize,
    /// First skipped line, for the operator.
    pub first_skipped: Option<&'a (usize, String)>,
}
impl FeedLoaded<'_> {
    /// Sets the gauge and logs.
    pub fn emit(&self, m: &Metrics) {
        let entries = i64::try_from(self.entries).unwrap_or(i64::MAX);
        m.feed_entries.with_label_values(&[self.feed]).set(entries);
        info!(
            feed = self.feed,
            entries = self.entries,
            skipped_lines = self.skipped_lines,
            "feed loaded"
        );
        if let Some((line, text)) = self.first_skipped {
            let text: String = text.chars().take(80).collect();
            warn!(
                feed = self.feed,
                line, text, "feed lines skipped: not an address or cidr"
            );
        }
    }
}

/// A feed reload was attempted.
pub struct FeedReloadFinished<'a> {
    /// The error, when it failed (the old feeds stay in use).
    pub error: Option<&'a str>,
}
impl FeedReloadFinished<'_> {
    /// Counts it; warns on failure.
    pub fn emit(&self, m: &Metrics) {
        match self.error {
            None => m.feed_reloads.with_label_values(&["ok"]).inc(),
            Some(error) => {
                m.feed_reloads.with_label_values(&["error"]).inc();
                warn!(error, "feed reload failed; keeping the feeds loaded before");
            }
        }
    }
}

/// A stage waited on a full downstream channel.
pub struct BackpressureWaited {
    /// The waiting stage.
    pub stage: &'static str,
    /// How long.
    pub waited: Duration,
}
impl BackpressureWaited {
    /// Adds the time.
    pub fn emit(&self, m: &Metrics) {
        m.backpressure_seconds
            .with_label_values(&[self.stage])
            .inc_by(self.waited.as_secs_f64());
        debug!(
            stage = self.stage,
            waited_ms = self.waited.as_millis() as u64,
            "backpressure"
        );
    }
}

/// A cache's size was sampled.
pub struct CacheSampled {
    /// Cache name (`dedup`).
    pub cache: &'static str,
    /// Entries held.
    pub entries: u64,
}
impl CacheSampled {
    /// Sets the gauge.
    pub fn emit(&self, m: &Metrics) {
        let entries = i64::try_from(self.entries).unwrap_or(i64::MAX);
        m.cache_entries
            .with_label_values(&[self.cache])
            .set(entries);
    }
}

/// A scheduled report was written, or could not be.
pub struct ScheduledReportWritten<'a> {
    /// The file.
    pub path: &'a str,
    /// Addresses in it.
    pub records: usize,
    /// Why it failed.
    pub error: Option<&'a str>,
}
impl ScheduledReportWritten<'_> {
    /// Counts it; logs the file, or the error.
    pub fn emit(&self, m: &Metrics) {
        match self.error {
            None => {
                m.reports_written.with_label_values(&["ok"]).inc();
                info!(
                    path = self.path,
                    records = self.records,
                    "scheduled report written"
                );
            }
            Some(error) => {
                m.reports_written.with_label_values(&["error"]).inc();
                warn!(path = self.path, error, "scheduled report not written");
            }
        }
    }
}

/// A published record could not be kept for the scheduled report (the report task is behind,
/// or the record did not parse back). The record itself was published.
pub struct ReportRecordDropped<'a> {
    /// Why.
    pub why: &'a str,
}
impl ReportRecordDropped<'_> {
    /// Counts it; warns (rate-limited by the caller's volume: one line per drop is fine here
    /// because drops mean the report task is stuck).
    pub fn emit(&self, m: &Metrics) {
        m.report_records_dropped.inc();
        warn!(
            why = self.why,
            "a published record was left out of the scheduled report"
        );
    }
}

/// The scheduled report's narrative failed; the report was written without it.
pub struct ReportNarrativeFailed<'a> {
    /// The error kind.
    pub kind: &'static str,
    /// The error.
    pub error: &'a str,
}
impl ReportNarrativeFailed<'_> {
    /// Warns.
    pub fn emit(&self) {
        warn!(
            kind = self.kind,
            error = self.error,
            "report written without the narrative"
        );
    }
}

/// A request to a provider finished (one HTTP request; retries are separate requests).
pub struct ProviderRequested<'a> {
    /// Provider name.
    pub provider: &'a str,
    /// Status label of the outcome (`ok`, `not_found`, `timeout`, …).
    pub status: &'static str,
    /// How long it took.
    pub elapsed: Duration,
}
impl ProviderRequested<'_> {
    /// Counts it, observes the latency, logs at debug.
    pub fn emit(&self, m: &Metrics) {
        m.enrich_requests
            .with_label_values(&[self.provider, self.status])
            .inc();
        m.enrich_duration
            .with_label_values(&[self.provider])
            .observe(self.elapsed.as_secs_f64());
        debug!(
            provider = self.provider,
            status = self.status,
            "provider request finished"
        );
    }
}

/// A provider request failed for a reason an operator should see (timeout, 5xx, throttled,
/// unreadable answer).
pub struct ProviderRequestError<'a> {
    /// Provider name.
    pub provider: &'static str,
    /// Status label.
    pub status: &'static str,
    /// The error text (never holds a key: provider errors are redacted at the source).
    pub error: &'a str,
}
impl ProviderRequestError<'_> {
    /// Warns, rate-limited per provider and status.
    pub fn emit(&self, _m: &Metrics) {
        if let Some(suppressed) = warnings().allow_each(self.provider, self.status) {
            warn!(
                provider = self.provider,
                status = self.status,
                error = self.error,
                suppressed,
                "provider request failed"
            );
        }
    }
}

/// A lookup was not made.
pub struct ProviderSkipped<'a> {
    /// Provider name.
    pub provider: &'a str,
    /// Bounded reason (`budget_day`, `queue_full`, `provider_down`, …).
    pub reason: &'static str,
}
impl ProviderSkipped<'_> {
    /// Counts it.
    pub fn emit(&self, m: &Metrics) {
        m.enrich_skipped
            .with_label_values(&[self.provider, self.reason])
            .inc();
    }
}

/// A lookup was answered from the provider's answer cache.
pub struct ProviderCacheHit<'a> {
    /// Provider name.
    pub provider: &'a str,
}
impl ProviderCacheHit<'_> {
    /// Counts it.
    pub fn emit(&self, m: &Metrics) {
        m.enrich_cache_hits
            .with_label_values(&[self.provider])
            .inc();
    }
}

/// A provider refused our credentials (401/403): no further requests until restart.
pub struct ProviderDown<'a> {
    /// Provider name.
    pub provider: &'a str,
    /// Status label (`unauthorized`, `forbidden`).
    pub status: &'static str,
    /// What it said (redacted).
    pub error: &'a str,
}
impl ProviderDown<'_> {
    /// Sets `provider_up` to 0 and logs once at error.
    pub fn emit(&self, m: &Metrics) {
        m.provider_up.with_label_values(&[self.provider]).set(0);
        error!(
            provider = self.provider,
            status = self.status,
            error = self.error,
            "provider refused the credentials; no further requests to it until restart \
             (this says nothing about any address)"
        );
    }
}

/// A provider is configured and usable, or its budget changed.
pub struct ProviderState<'a> {
    /// Provider name.
    pub provider: &'a str,
    /// Lookups left in its budget (today, else this minute), when it has one.
    pub quota_remaining: Option<u32>,
}
impl ProviderState<'_> {
    /// Sets `provider_up` to 1 and the quota gauge.
    pub fn emit_up(&self, m: &Metrics) {
        m.provider_up.with_label_values(&[self.provider]).set(1);
        self.emit_quota(m);
    }

    /// Sets the quota gauge.
    pub fn emit_quota(&self, m: &Metrics) {
        if let Some(left) = self.quota_remaining {
            m.provider_quota_remaining
                .with_label_values(&[self.provider])
                .set(i64::from(left));
        }
    }
}

/// Addresses waiting for remote providers changed.
pub struct RemoteQueueChanged {
    /// Addresses with at least one lookup outstanding.
    pub depth: i64,
}
impl RemoteQueueChanged {
    /// Sets the gauge.
    pub fn emit(&self, m: &Metrics) {
        m.remote_queue_depth.set(self.depth);
    }
}

/// An updated record (a new revision) was handed to the producer.
pub struct RecordRevised<'a> {
    /// Provider whose answer changed the record.
    pub provider: &'a str,
    /// The new revision.
    pub revision: u32,
}
impl RecordRevised<'_> {
    /// Counts it.
    pub fn emit(&self, m: &Metrics) {
        m.record_revisions.inc();
        debug!(
            provider = self.provider,
            revision = self.revision,
            "record revised by a provider answer"
        );
    }
}

/// A revised record could not be serialised (a bug): logged, nothing published.
pub struct RevisionNotEncoded<'a> {
    /// Provider whose answer revised the record.
    pub provider: &'a str,
    /// The error.
    pub error: &'a dyn std::error::Error,
}
impl RevisionNotEncoded<'_> {
    /// Logs it.
    pub fn emit(&self, _m: &Metrics) {
        tracing::error!(
            provider = self.provider,
            error = %self.error,
            "a revised record could not be serialised; nothing published (a bug)"
        );
    }
}

/// A lookup waits for its provider's budget, hold or circuit (one-shot `enrich`, mostly: the
/// daemon's queues wait before they start a lookup).
pub struct ProviderBudgetWaiting<'a> {
    /// Provider name.
    pub provider: &'static str,
    /// How long.
    pub wait: Duration,
    /// Until when, RFC 3339.
    pub until: &'a str,
}
impl ProviderBudgetWaiting<'_> {
    /// Logs at info when the wait is noticeable (≥ 1 s), at most once per 10 s per provider.
    pub fn emit(&self, _m: &Metrics) {
        if self.wait < Duration::from_secs(1) {
            return;
        }
        if let Some(suppressed) = warnings().allow_each(self.provider, "budget_wait") {
            info!(
                provider = self.provider,
                wait_secs = self.wait.as_secs(),
                until = self.until,
                suppressed,
                "waiting for the provider's budget"
            );
        }
    }
}
