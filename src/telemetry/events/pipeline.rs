//! Pipeline events: messages consumed, lines parsed or not, addresses extracted, filtered and
//! deduplicated, records published or withheld, DLQ entries, backpressure and latency.

use std::time::Duration;

use tracing::{debug, warn};

use crate::model::FilterReason;
use crate::model::{Origin, Role, Verdict};
use crate::telemetry::handles::{filter_index, role_index, verdict_index};
use crate::telemetry::{warnings, Metrics};

/// Kafka messages of one topic were received.
pub(crate) struct MessageConsumed<'a> {
    /// Its topic.
    pub topic: &'a str,
    /// How many messages of that topic.
    pub count: u64,
}
impl MessageConsumed<'_> {
    /// Counts it.
    pub(crate) fn emit(&self, m: &Metrics) {
        m.handles
            .events_consumed
            .with(self.topic, |c| c.inc_by(self.count));
    }
}

/// Lines of one format were parsed.
pub(crate) struct LineParsed {
    /// Format name.
    pub format: &'static str,
    /// How many lines (counted per batch).
    pub count: u64,
}
impl LineParsed {
    /// Counts them.
    pub(crate) fn emit(&self, m: &Metrics) {
        m.handles
            .events_parsed
            .with(self.format, |c| c.inc_by(self.count));
    }
}

/// A line could not be parsed; it goes to the DLQ.
pub(crate) struct LineParseError<'a> {
    /// Bounded kind.
    pub kind: &'static str,
    /// The error text.
    pub error: &'a str,
    /// Where the message came from.
    pub origin: &'a Origin,
}
impl LineParseError<'_> {
    /// Counts it, without a log line (an error past its message's DLQ limit: the summary entry
    /// speaks for it).
    pub(crate) fn count(&self, m: &Metrics) {
        m.handles.parse_errors.with(self.kind, |c| c.inc());
    }

    /// Counts it and warns (rate-limited).
    pub(crate) fn emit(&self, m: &Metrics) {
        m.handles.parse_errors.with(self.kind, |c| c.inc());
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

/// A line its format rejected was read by the IP scanner instead of going to the DLQ.
pub(crate) struct LineFellBack<'a> {
    /// The format that rejected it.
    pub format: &'static str,
    /// The rejection's bounded kind (`malformed`, `invalid_json`, …).
    pub reason: &'static str,
    /// The rejection (what was wrong; never the line itself), formatted only when logged.
    pub error: &'a dyn std::fmt::Display,
    /// Where the message came from.
    pub origin: &'a Origin,
}
impl LineFellBack<'_> {
    /// Counts it and logs the rejection at debug level (rate-limited): the line was not lost,
    /// but what was wrong with it stays visible.
    pub(crate) fn emit(&self, m: &Metrics) {
        m.handles
            .parse_fallbacks
            .with(self.format, self.reason, |c| c.inc());
        if let Some(suppressed) = warnings().allow("parse_fallback") {
            debug!(
                format = self.format,
                reason = self.reason,
                error = %self.error,
                topic = %self.origin.topic,
                partition = self.origin.partition,
                offset = self.origin.offset,
                suppressed,
                "line rejected by its format was read by the ip scanner"
            );
        }
    }
}

/// A parsed event had no address that could be enriched.
pub(crate) struct EventWithoutIp;
impl EventWithoutIp {
    /// Counts it.
    pub(crate) fn emit(&self, m: &Metrics) {
        m.events_without_ip.inc();
    }
}

/// Addresses were extracted from an event.
pub(crate) struct IpsExtracted<'a> {
    /// The role of each valid address.
    pub roles: &'a [Role],
    /// Address fields whose value was not an address.
    pub invalid_tokens: u64,
}
impl IpsExtracted<'_> {
    /// Counts them.
    pub(crate) fn emit(&self, m: &Metrics) {
        for role in self.roles {
            m.handles.ips_extracted.at(role_index(*role)).inc();
        }
        if self.invalid_tokens > 0 {
            m.ip_tokens_invalid.inc_by(self.invalid_tokens);
        }
    }
}

/// An address was dropped before enrichment.
pub(crate) struct IpFiltered {
    /// Why.
    pub reason: FilterReason,
}
impl IpFiltered {
    /// Counts it.
    pub(crate) fn emit(&self, m: &Metrics) {
        m.handles.ips_filtered.at(filter_index(self.reason)).inc();
    }
}

/// An address was looked up in the dedup window.
pub(crate) struct IpDeduplicated {
    /// True for the first sighting in the window.
    pub first: bool,
}
impl IpDeduplicated {
    /// Counts a hit or a miss.
    pub(crate) fn emit(&self, m: &Metrics) {
        if self.first {
            m.dedup_misses.inc();
        } else {
            m.dedup_hits.inc();
        }
    }
}

/// Repeats of an address folded into one sighting (scaled mode): each a dedup hit, as in
/// single mode.
pub(crate) struct RepeatsFolded {
    /// The repeats beyond the first.
    pub count: u64,
}
impl RepeatsFolded {
    /// Counts them as dedup hits.
    pub(crate) fn emit(&self, m: &Metrics) {
        m.dedup_hits.inc_by(self.count);
    }
}

/// A record was below `publish.min_verdict` and was not published.
pub(crate) struct RecordWithheld {
    /// Its verdict.
    pub verdict: Verdict,
}
impl RecordWithheld {
    /// Counts it.
    pub(crate) fn emit(&self, m: &Metrics) {
        m.handles
            .records_withheld
            .at(verdict_index(self.verdict))
            .inc();
    }
}

/// A threat record was delivered.
pub(crate) struct RecordPublished {
    /// Its verdict.
    pub verdict: Verdict,
}
impl RecordPublished {
    /// Counts it.
    pub(crate) fn emit(&self, m: &Metrics) {
        m.handles
            .records_published
            .at(verdict_index(self.verdict))
            .inc();
    }
}

/// A DLQ entry was delivered.
pub(crate) struct DlqEntryPublished<'a> {
    /// Its reason label.
    pub reason: &'a str,
}
impl DlqEntryPublished<'_> {
    /// Counts it.
    pub(crate) fn emit(&self, m: &Metrics) {
        m.handles.dlq_messages.with(self.reason, |c| c.inc());
    }
}

/// Every output of these input messages was delivered.
pub(crate) struct MessageCompleted {
    /// How many messages finished together.
    pub count: u64,
    /// Time from consumption to the last delivery report of the oldest of them (one
    /// observation per batch: latency is sampled, not timed per message).
    pub elapsed: Duration,
}
impl MessageCompleted {
    /// Counts them and observes the latency once.
    pub(crate) fn emit(&self, m: &Metrics) {
        m.messages_completed.inc_by(self.count);
        m.event_to_record.observe(self.elapsed.as_secs_f64());
    }
}

/// A stage waited on a full downstream channel.
pub(crate) struct BackpressureWaited {
    /// The waiting stage.
    pub stage: &'static str,
    /// How long.
    pub waited: Duration,
}
impl BackpressureWaited {
    /// Adds the time.
    pub(crate) fn emit(&self, m: &Metrics) {
        m.handles
            .backpressure_seconds
            .with(self.stage, |c| c.inc_by(self.waited.as_secs_f64()));
        debug!(
            stage = self.stage,
            waited_ms = self.waited.as_millis() as u64,
            "backpressure"
        );
    }
}

/// A cache's size was sampled.
pub(crate) struct CacheSampled {
    /// Cache name (`dedup`).
    pub cache: &'static str,
    /// Entries held.
    pub entries: u64,
}
impl CacheSampled {
    /// Sets the gauge.
    pub(crate) fn emit(&self, m: &Metrics) {
        let entries = i64::try_from(self.entries).unwrap_or(i64::MAX);
        // Once per sampling interval: not worth a cached handle.
        m.cache_entries
            .with_label_values(&[self.cache])
            .set(entries);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PARSE_ERROR_KINDS;
    use crate::telemetry::events::tests::{metrics, sample};
    use crate::telemetry::handles::DLQ_PUBLISH_FAILED;

    fn origin() -> Origin {
        Origin {
            topic: "fw".into(),
            partition: 0,
            offset: 7,
        }
    }

    #[test]
    fn consumed_and_parsed_count_per_topic_and_format() {
        let (registry, m) = metrics();
        for topic in ["fw", "proxy", "fw"] {
            MessageConsumed { topic, count: 1 }.emit(&m);
        }
        for format in ["kv", "cef", "kv", "kv"] {
            LineParsed { format, count: 1 }.emit(&m);
        }
        let consumed = |topic| sample(&registry, "events_consumed_total", &[("topic", topic)]);
        assert_eq!((consumed("fw"), consumed("proxy")), (Some(2.0), Some(1.0)));
        let parsed = |format| sample(&registry, "events_parsed_total", &[("format", format)]);
        assert_eq!((parsed("kv"), parsed("cef")), (Some(3.0), Some(1.0)));
        assert_eq!(m.events_parsed.with_label_values(&["kv"]).get(), 3);
    }

    // i12-fallback: the scanner's reads of rejected lines are counted by format and reason.
    #[test]
    fn fallbacks_count_per_format_and_reason() {
        let (registry, m) = metrics();
        let origin = origin();
        for (format, reason) in [
            ("paloalto", "malformed"),
            ("json", "invalid_json"),
            ("paloalto", "malformed"),
        ] {
            LineFellBack {
                format,
                reason,
                error: &"x",
                origin: &origin,
            }
            .emit(&m);
        }
        let fell_back = |format, reason| {
            sample(
                &registry,
                "parse_fallbacks_total",
                &[("format", format), ("reason", reason)],
            )
        };
        assert_eq!(fell_back("paloalto", "malformed"), Some(2.0));
        assert_eq!(fell_back("json", "invalid_json"), Some(1.0));
        assert_eq!(fell_back("json", "malformed"), None);
        assert_eq!(
            sample(&registry, "parse_errors_total", &[("kind", "malformed")]),
            None,
            "a fallback is not a parse error"
        );
    }

    #[test]
    fn every_role_and_filter_reason_has_its_own_handle() {
        let (registry, m) = metrics();
        for role in Role::ALL {
            assert_eq!(
                sample(&registry, "ips_extracted_total", &[("role", role.label())]),
                Some(0.0),
                "{role:?} exports 0 before the first event"
            );
        }
        for (i, role) in Role::ALL.into_iter().enumerate() {
            let roles = vec![role; i + 1];
            IpsExtracted {
                roles: &roles,
                invalid_tokens: 2,
            }
            .emit(&m);
        }
        for (i, role) in Role::ALL.into_iter().enumerate() {
            let got = sample(&registry, "ips_extracted_total", &[("role", role.label())]);
            assert_eq!(got, Some((i + 1) as f64), "{role:?}");
        }
        assert_eq!(
            sample(&registry, "ip_tokens_invalid_total", &[]),
            Some(12.0)
        );
        for (i, reason) in FilterReason::ALL.into_iter().enumerate() {
            for _ in 0..=i {
                IpFiltered { reason }.emit(&m);
            }
        }
        for (i, reason) in FilterReason::ALL.into_iter().enumerate() {
            let got = sample(
                &registry,
                "ips_filtered_total",
                &[("reason", reason.label())],
            );
            assert_eq!(got, Some((i + 1) as f64), "{reason:?}");
        }
    }

    #[test]
    fn verdicts_published_are_eager_and_withheld_appear_on_first_use() {
        let (registry, m) = metrics();
        for verdict in Verdict::ALL {
            let labels = [("verdict", verdict.label())];
            assert_eq!(
                sample(&registry, "records_published_total", &labels),
                Some(0.0)
            );
            assert_eq!(sample(&registry, "records_withheld_total", &labels), None);
        }
        for (i, verdict) in Verdict::ALL.into_iter().enumerate() {
            for _ in 0..=i {
                RecordPublished { verdict }.emit(&m);
            }
            RecordWithheld { verdict }.emit(&m);
        }
        for (i, verdict) in Verdict::ALL.into_iter().enumerate() {
            let labels = [("verdict", verdict.label())];
            let published = sample(&registry, "records_published_total", &labels);
            assert_eq!(published, Some((i + 1) as f64), "{verdict:?}");
            assert_eq!(
                sample(&registry, "records_withheld_total", &labels),
                Some(1.0)
            );
        }
    }

    #[test]
    fn parse_error_kinds_and_dlq_reasons_have_handles_and_strangers_still_count() {
        // That every `ParseError` variant's kind is in the list is tested beside `ParseError`.
        let every = PARSE_ERROR_KINDS;
        let (registry, m) = metrics();
        assert_eq!(
            sample(&registry, "parse_errors_total", &[("kind", "empty")]),
            None
        );
        let origin = origin();
        for (i, kind) in every.into_iter().enumerate() {
            for _ in 0..=i {
                LineParseError {
                    kind,
                    error: "x",
                    origin: &origin,
                }
                .emit(&m);
                DlqEntryPublished { reason: kind }.emit(&m);
            }
        }
        DlqEntryPublished {
            reason: DLQ_PUBLISH_FAILED,
        }
        .emit(&m);
        DlqEntryPublished { reason: "novel" }.emit(&m);
        for (i, kind) in PARSE_ERROR_KINDS.into_iter().enumerate() {
            let want = Some((i + 1) as f64);
            assert_eq!(
                sample(&registry, "parse_errors_total", &[("kind", kind)]),
                want
            );
            assert_eq!(
                sample(&registry, "dlq_messages_total", &[("reason", kind)]),
                want
            );
        }
        let dlq = |reason| sample(&registry, "dlq_messages_total", &[("reason", reason)]);
        assert_eq!(
            (dlq("publish_failed"), dlq("novel")),
            (Some(1.0), Some(1.0))
        );
    }

    #[test]
    fn dedup_backpressure_latency_and_cache_size_are_counted() {
        let (registry, m) = metrics();
        IpDeduplicated { first: true }.emit(&m);
        IpDeduplicated { first: false }.emit(&m);
        IpDeduplicated { first: false }.emit(&m);
        EventWithoutIp.emit(&m);
        for _ in 0..2 {
            BackpressureWaited {
                stage: "process",
                waited: Duration::from_millis(250),
            }
            .emit(&m);
        }
        MessageCompleted {
            count: 1,
            elapsed: Duration::from_millis(3),
        }
        .emit(&m);
        CacheSampled {
            cache: "dedup",
            entries: 5,
        }
        .emit(&m);
        assert_eq!(sample(&registry, "dedup_misses_total", &[]), Some(1.0));
        assert_eq!(sample(&registry, "dedup_hits_total", &[]), Some(2.0));
        assert_eq!(sample(&registry, "events_without_ip_total", &[]), Some(1.0));
        let waited = sample(
            &registry,
            "backpressure_seconds_total",
            &[("stage", "process")],
        );
        assert_eq!(waited, Some(0.5));
        assert_eq!(
            sample(&registry, "messages_completed_total", &[]),
            Some(1.0)
        );
        let entries = sample(&registry, "cache_entries", &[("cache", "dedup")]);
        assert_eq!(entries, Some(5.0));
    }
}
