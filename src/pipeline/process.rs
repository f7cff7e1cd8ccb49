//! Process: one Kafka message → the records and DLQ entries it yields. Synchronous.
//!
//! * In: a [`RawEvent`]. A payload is one event per line (a multi-line payload that is one
//!   JSON document counts as one event); a gzip payload is decompressed first, up to
//!   `parse.max_decompressed_bytes`. A line may hold a batch (`records`, `logEvents`).
//! * Out: a [`Processed`] holding zero or more [`Output`]s: one threat record per address seen
//!   for the first time in the dedup window whose verdict reaches `publish.min_verdict`, and one
//!   DLQ entry per line (or batch item) that could not be parsed (the whole message when it is
//!   empty, not UTF-8, or bad gzip).
//! * Dropped and counted, never silently: non-public addresses (`ips_filtered_total{reason}`),
//!   repeat sightings (`dedup_hits_total`), events without addresses
//!   (`events_without_ip_total`), records below the publish threshold
//!   (`records_withheld_total{verdict}`), address fields that are not addresses
//!   (`ip_tokens_invalid_total`).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::intel::feeds::{FeedMatch, LocalFeeds};
use crate::model::{Event, IpObservation, Observed, Origin, RawEvent, Role};
use crate::pipeline::dedup::{DedupCache, Sighting};
use crate::pipeline::extract::extract_ip_observations;
use crate::pipeline::filter::IpFilter;
use crate::pipeline::parse::{FormatRegistry, ParseError, StreamId};
use crate::pipeline::score::assess;
use crate::pipeline::{Output, OutputKind, Processed};
use crate::record::{
    rfc3339, DlqEntry, Network, ProviderIntel, ProviderStatus, Reason, ThreatRecord, Verdict,
    THREAT_SCHEMA,
};
use crate::telemetry::events::{
    EventWithoutIp, FeedMatched, IpDeduplicated, IpFiltered, IpsExtracted, LineParseError,
    LineParsed, MessageConsumed, RecordWithheld,
};
use crate::telemetry::Metrics;

/// How far in the future a message timestamp may be before processing time is used instead.
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(24 * 3600);
/// Input keys longer than this are left out of DLQ entries (the entry must stay producible).
const MAX_DLQ_KEY_BYTES: usize = 1024;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Decompresses a gzip payload, refusing to produce more than `limit` bytes.
fn inflate(payload: &[u8], limit: usize) -> Result<Vec<u8>, ParseError> {
    use std::io::Read;
    let mut out = Vec::with_capacity(payload.len().saturating_mul(4).min(limit));
    let mut decoder = flate2::read::MultiGzDecoder::new(payload).take(limit as u64 + 1);
    decoder
        .read_to_end(&mut out)
        .map_err(|e| ParseError::InvalidGzip(e.to_string()))?;
    if out.len() > limit {
        return Err(ParseError::InvalidGzip(format!(
            "decompresses to more than parse.max_decompressed_bytes ({limit} bytes)"
        )));
    }
    Ok(out)
}

/// Options of the processor that come from configuration.
#[derive(Debug, Clone)]
pub struct ProcessorOptions {
    /// Lines longer than this go to the DLQ.
    pub max_line_bytes: usize,
    /// A gzip payload may decompress to at most this many bytes.
    pub max_decompressed_bytes: usize,
    /// Bytes of the original kept in a DLQ entry.
    pub dlq_max_payload_bytes: usize,
    /// Lowest verdict published.
    pub min_verdict: Verdict,
    /// Score weight of a listing, by feed name.
    pub feed_weights: HashMap<String, u8>,
    /// `intel` entries of providers not queried by this build.
    pub unqueried_providers: BTreeMap<String, ProviderIntel>,
}

/// Chains parse → extract → filter → dedup → local intel → score for one message.
pub struct Processor {
    registry: FormatRegistry,
    filter: IpFilter,
    dedup: DedupCache,
    feeds: Arc<LocalFeeds>,
    options: ProcessorOptions,
    metrics: Arc<Metrics>,
}

impl Processor {
    /// Assembles a processor from its stages.
    pub fn new(
        registry: FormatRegistry,
        filter: IpFilter,
        dedup: DedupCache,
        feeds: Arc<LocalFeeds>,
        options: ProcessorOptions,
        metrics: Arc<Metrics>,
    ) -> Self {
        Processor {
            registry,
            filter,
            dedup,
            feeds,
            options,
            metrics,
        }
    }

    /// The dedup window (for the entry-count gauge).
    pub fn dedup(&self) -> &DedupCache {
        &self.dedup
    }

    /// Processes one message.
    pub fn process_message(&self, raw: &RawEvent, received: Instant) -> Processed {
        MessageConsumed {
            topic: &raw.origin.topic,
        }
        .emit(&self.metrics);
        let now = SystemTime::now();
        let mut outputs = Vec::new();
        let inflated;
        let payload: &[u8] = if raw.payload.starts_with(&GZIP_MAGIC) {
            // CloudWatch Logs subscriptions and some shippers deliver gzip'd batches.
            match inflate(&raw.payload, self.options.max_decompressed_bytes) {
                Ok(bytes) => {
                    inflated = bytes;
                    &inflated
                }
                Err(error) => {
                    outputs.push(self.dead_letter(raw, None, &raw.payload, &error, now));
                    return self.finish(raw, received, outputs);
                }
            }
        } else {
            &raw.payload
        };
        let text = match std::str::from_utf8(payload) {
            Ok(text) => text,
            Err(e) => {
                let error = ParseError::InvalidUtf8 {
                    at: e.valid_up_to(),
                };
                outputs.push(self.dead_letter(raw, None, payload, &error, now));
                return self.finish(raw, received, outputs);
            }
        };
        if text.trim().is_empty() {
            outputs.push(self.dead_letter(raw, None, payload, &ParseError::Empty, now));
            return self.finish(raw, received, outputs);
        }
        // The producer's timestamp, unless it is absent or implausibly far in the future.
        let seen_at = raw
            .timestamp_ms
            .and_then(|ms| u64::try_from(ms).ok())
            .map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
            .filter(|t| *t <= now + MAX_CLOCK_SKEW)
            .unwrap_or(now);
        let stream = StreamId {
            topic: &raw.origin.topic,
            partition: raw.origin.partition,
            key: raw.key.as_deref(),
        };
        let lines = split_events(text);
        let multi = lines.len() > 1;
        for (index, line) in lines.into_iter().enumerate() {
            let line_no = multi.then_some(index);
            if multi && line.trim().is_empty() {
                continue;
            }
            if line.len() > self.options.max_line_bytes {
                let error = ParseError::TooLarge {
                    len: line.len(),
                    limit: self.options.max_line_bytes,
                };
                outputs.push(self.dead_letter(raw, line_no, line.as_bytes(), &error, now));
                continue;
            }
            match self.registry.parse_line(line, stream) {
                Ok(parsed) => {
                    if parsed.events.is_empty() {
                        LineParsed {
                            format: parsed.format,
                        }
                        .emit(&self.metrics);
                    }
                    for event in &parsed.events {
                        LineParsed {
                            format: event.format,
                        }
                        .emit(&self.metrics);
                        self.enrich_event(event, &raw.origin, seen_at, now, &mut outputs);
                    }
                    for item in &parsed.errors {
                        let bytes = if item.text.is_empty() {
                            line.as_bytes()
                        } else {
                            item.text.as_bytes()
                        };
                        outputs.push(self.dead_letter(raw, line_no, bytes, &item.error, now));
                    }
                }
                Err(error) => {
                    outputs.push(self.dead_letter(raw, line_no, line.as_bytes(), &error, now));
                }
            }
        }
        self.finish(raw, received, outputs)
    }

    /// The DLQ entry for a message whose processing panicked: a bug, but the stream goes on.
    pub fn dead_letter_internal_error(&self, raw: &RawEvent, received: Instant) -> Processed {
        let output = self.dead_letter(
            raw,
            None,
            &raw.payload,
            &ParseError::Internal,
            SystemTime::now(),
        );
        self.finish(raw, received, vec![output])
    }

    fn finish(&self, raw: &RawEvent, received: Instant, outputs: Vec<Output>) -> Processed {
        Processed {
            origin: raw.origin.clone(),
            received,
            outputs,
        }
    }

    fn dead_letter(
        &self,
        raw: &RawEvent,
        line: Option<usize>,
        bytes: &[u8],
        error: &ParseError,
        now: SystemTime,
    ) -> Output {
        let reason = error.kind();
        let message = error.to_string();
        LineParseError {
            kind: reason,
            error: &message,
            origin: &raw.origin,
        }
        .emit(&self.metrics);
        let entry = DlqEntry::new(
            reason,
            message,
            &raw.origin,
            line,
            raw.timestamp_ms,
            bytes,
            self.options.dlq_max_payload_bytes,
            now,
        );
        Output {
            kind: OutputKind::Dlq(reason),
            key: raw
                .key
                .as_ref()
                .filter(|k| k.len() <= MAX_DLQ_KEY_BYTES)
                .map(|k| k.to_vec()),
            payload: serde_json::to_vec(&entry).unwrap_or_default(),
        }
    }

    fn enrich_event(
        &self,
        event: &Event<'_>,
        origin: &Origin,
        seen_at: SystemTime,
        now: SystemTime,
        outputs: &mut Vec<Output>,
    ) {
        let mut observations = Vec::with_capacity(event.addresses.len());
        let invalid_tokens = extract_ip_observations(event, &mut observations);
        let roles: Vec<Role> = observations.iter().map(|o| o.role).collect();
        IpsExtracted {
            roles: &roles,
            invalid_tokens,
        }
        .emit(&self.metrics);
        let mut enriched_any = false;
        let mut done: Vec<IpAddr> = Vec::with_capacity(observations.len());
        for observation in &observations {
            if done.contains(&observation.ip) {
                continue;
            }
            done.push(observation.ip);
            if let Err(reason) = self.filter.check(observation.ip) {
                IpFiltered { reason }.emit(&self.metrics);
                continue;
            }
            enriched_any = true;
            let seen = self.dedup.observe(observation.ip, seen_at);
            IpDeduplicated { first: seen.first }.emit(&self.metrics);
            if !seen.first {
                continue;
            }
            let record = self.build_record(
                observation.ip,
                event,
                &observations,
                origin,
                &seen.sighting,
                now,
            );
            if record.verdict < self.options.min_verdict {
                RecordWithheld {
                    verdict: record.verdict,
                }
                .emit(&self.metrics);
                continue;
            }
            outputs.push(Output {
                kind: OutputKind::Record(record.verdict),
                key: Some(record.ip.clone().into_bytes()),
                payload: serde_json::to_vec(&record).unwrap_or_default(),
            });
        }
        if !enriched_any {
            EventWithoutIp.emit(&self.metrics);
        }
    }

    fn build_record(
        &self,
        ip: IpAddr,
        event: &Event<'_>,
        observations: &[IpObservation],
        origin: &Origin,
        sighting: &Sighting,
        now: SystemTime,
    ) -> ThreatRecord {
        let feeds = self.feeds.current();
        let matches = feeds.lookup(ip);
        let mut reasons = Vec::with_capacity(matches.len());
        for hit in &matches {
            FeedMatched { feed: &hit.feed }.emit(&self.metrics);
            reasons.push(Reason {
                source: "feeds".to_owned(),
                detail: describe_match(hit),
                weight: u32::from(
                    self.options
                        .feed_weights
                        .get(&*hit.feed)
                        .copied()
                        .unwrap_or(0),
                ),
            });
        }
        let assessment = assess(&reasons);
        let mut roles: Vec<Role> = observations
            .iter()
            .filter(|o| o.ip == ip)
            .map(|o| o.role)
            .collect();
        roles.sort();
        roles.dedup();
        let mut intel = self.options.unqueried_providers.clone();
        intel.insert(
            "feeds".to_owned(),
            feeds_entry(feeds.feeds().next().is_some(), &matches),
        );
        ThreatRecord {
            schema: THREAT_SCHEMA.to_owned(),
            ip: ip.to_string(),
            ip_version: if ip.is_ipv4() { 4 } else { 6 },
            verdict: assessment.verdict,
            severity: assessment.severity,
            score: assessment.score,
            reasons,
            indicator: assessment.indicator.to_owned(),
            first_seen: rfc3339(sighting.first_seen()),
            last_seen: rfc3339(sighting.last_seen()),
            sightings: sighting.count(),
            roles: roles.clone(),
            observed: Observed {
                format: event.format.to_owned(),
                vendor: event.vendor.as_deref().map(str::to_owned),
                product: event.product.as_deref().map(str::to_owned),
                action: event.action.as_deref().map(str::to_owned),
                peer_ip: peer_of(ip, &roles, observations).map(|p| p.to_string()),
                rule: event.rule.as_deref().map(str::to_owned),
                topic: origin.topic.to_string(),
                partition: origin.partition,
                offset: origin.offset,
            },
            network: Network::default(),
            intel,
            revision: 1,
            generated_at: rfc3339(now),
        }
    }
}

/// Splits a payload into events: one per line, unless the whole payload is one JSON document
/// spread over several lines.
fn split_events(text: &str) -> Vec<&str> {
    let trimmed = text.trim_end_matches(['\n', '\r']);
    if !trimmed.contains('\n') {
        return vec![trimmed];
    }
    if trimmed.trim_start().starts_with('{')
        && serde_json::from_str::<serde::de::IgnoredAny>(trimmed).is_ok()
    {
        return vec![trimmed];
    }
    trimmed
        .split('\n')
        .map(|l| l.trim_end_matches('\r'))
        .collect()
}

/// The other end of the connection: a destination for a source, a source for a destination.
fn peer_of(ip: IpAddr, roles: &[Role], observations: &[IpObservation]) -> Option<IpAddr> {
    let wanted: &[Role] = if roles
        .iter()
        .any(|r| matches!(r, Role::Source | Role::Client))
    {
        &[Role::Destination]
    } else if roles.contains(&Role::Destination) {
        &[Role::Source, Role::Client]
    } else {
        &[]
    };
    observations
        .iter()
        .find(|o| o.ip != ip && wanted.contains(&o.role))
        .map(|o| o.ip)
}

fn describe_match(hit: &FeedMatch) -> String {
    if hit.exact {
        format!("listed by feed {}", hit.feed)
    } else {
        format!("inside {} listed by feed {}", hit.cidr, hit.feed)
    }
}

fn feeds_entry(configured: bool, matches: &[FeedMatch]) -> ProviderIntel {
    if !configured {
        return ProviderIntel::status(ProviderStatus::Disabled, "no feeds configured");
    }
    let listed: Vec<serde_json::Value> = matches
        .iter()
        .map(|m| {
            serde_json::json!({
                "feed": &*m.feed,
                "cidr": m.cidr.to_string(),
                "match": if m.exact { "exact" } else { "covering" },
            })
        })
        .collect();
    let mut facts = serde_json::Map::new();
    facts.insert("matches".to_owned(), serde_json::Value::Array(listed));
    ProviderIntel {
        status: ProviderStatus::Ok,
        detail: None,
        facts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitting_keeps_one_json_document_whole() {
        assert_eq!(split_events("a=1\n"), vec!["a=1"]);
        assert_eq!(split_events("a=1\r\nb=2\n"), vec!["a=1", "b=2"]);
        assert_eq!(split_events("{\n \"a\": 1\n}\n").len(), 1);
        assert_eq!(split_events("{\"a\":1}\n{\"b\":2}").len(), 2);
    }

    fn processor(overrides: &str) -> (Processor, Arc<Metrics>) {
        let settings = crate::settings::Settings::from_toml_overrides(overrides).unwrap();
        let metrics = Arc::new(Metrics::new(&prometheus::Registry::new()).unwrap());
        let feeds = Arc::new(LocalFeeds::load(Vec::new()).unwrap());
        let processor = crate::app::build_processor(&settings, feeds, metrics.clone()).unwrap();
        (processor, metrics)
    }

    fn message(topic: &str, offset: i64, line: &str) -> RawEvent {
        RawEvent {
            payload: bytes::Bytes::copy_from_slice(line.as_bytes()),
            key: None,
            origin: Origin {
                topic: topic.into(),
                partition: 0,
                offset,
            },
            timestamp_ms: None,
        }
    }

    fn records(processed: &Processed) -> Vec<serde_json::Value> {
        processed
            .outputs
            .iter()
            .filter(|o| matches!(o.kind, OutputKind::Record(_)))
            .map(|o| serde_json::from_slice(&o.payload).unwrap())
            .collect()
    }

    #[test]
    fn topic_hint_overrides_detection_and_names_the_format() {
        let (processor, metrics) = processor(
            "[filter]\nallow_documentation_ranges = true\n[publish]\nmin_verdict = \"unknown\"\n\
             [parse.topic_formats]\n\"raw-text\" = \"ip_scan\"\n",
        );
        let line = "src=203.0.113.7 dst=198.51.100.2";
        let detected = processor.process_message(&message("fw", 0, line), Instant::now());
        let hinted = processor.process_message(
            &message("raw-text", 0, "seen 203.0.113.8 and 198.51.100.3"),
            Instant::now(),
        );
        let detected = records(&detected);
        let hinted = records(&hinted);
        assert_eq!(detected.len(), 2);
        assert_eq!(detected[0]["observed"]["format"], "kv");
        assert_eq!(detected[0]["roles"], serde_json::json!(["source"]));
        assert_eq!(hinted.len(), 2);
        assert_eq!(hinted[0]["observed"]["format"], "ip_scan");
        assert_eq!(hinted[0]["roles"], serde_json::json!(["unknown"]));
        let parsed = |format: &str| metrics.events_parsed.with_label_values(&[format]).get();
        assert_eq!((parsed("kv"), parsed("ip_scan")), (1, 1));
    }

    #[test]
    fn a_batch_message_yields_every_event_and_directives_are_counted() {
        let (processor, metrics) = processor(
            "[filter]\nallow_documentation_ranges = true\n[publish]\nmin_verdict = \"unknown\"\n",
        );
        let batch = r#"{"logEvents":[{"message":"src=203.0.113.21 dst=198.51.100.21"},{"message":"src=203.0.113.22"}]}"#;
        let out = processor.process_message(&message("fw", 0, batch), Instant::now());
        let ips: Vec<_> = records(&out)
            .iter()
            .map(|r| r["ip"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ips, ["203.0.113.21", "198.51.100.21", "203.0.113.22"]);
        let out = processor.process_message(&message("fw", 1, "#Version: 1.0"), Instant::now());
        assert!(out.outputs.is_empty());
        assert_eq!(
            metrics
                .events_parsed
                .with_label_values(&["directive"])
                .get(),
            1
        );
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn dlq_reasons(processed: &Processed) -> Vec<&'static str> {
        processed
            .outputs
            .iter()
            .filter_map(|o| match o.kind {
                OutputKind::Dlq(reason) => Some(reason),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn gzip_cloudwatch_batches_are_read_item_by_item() {
        let (processor, _) = processor(
            "[filter]\nallow_documentation_ranges = true\n[publish]\nmin_verdict = \"unknown\"\n\
             [parse]\nmax_line_bytes = 1024\nmax_decompressed_bytes = 4096\n",
        );
        let batch = r#"{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1","message":"2 123456789012 eni-0a1b2c3d4e5f60001 203.0.113.31 198.51.100.31 51544 443 6 9 3920 1709294400 1709294460 ACCEPT OK"},{"id":"2","message":"no address in this one"}]}"#;
        let mut raw = message("fw", 0, "");
        raw.payload = gzip(batch.as_bytes()).into();
        let out = processor.process_message(&raw, Instant::now());
        let ips: Vec<_> = records(&out)
            .iter()
            .map(|r| r["ip"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ips, ["203.0.113.31", "198.51.100.31"]);
        assert_eq!(dlq_reasons(&out), ["unrecognized_format"]);
        let dlq: serde_json::Value = serde_json::from_slice(
            &out.outputs
                .iter()
                .find(|o| matches!(o.kind, OutputKind::Dlq(_)))
                .unwrap()
                .payload,
        )
        .unwrap();
        assert!(dlq.to_string().contains("no address in this one"), "{dlq}");

        let control = r#"{"messageType":"CONTROL_MESSAGE","logEvents":[{"id":"","message":"CWL CONTROL MESSAGE: Checking health of destination Kinesis stream."}]}"#;
        raw.payload = gzip(control.as_bytes()).into();
        let out = processor.process_message(&raw, Instant::now());
        assert!(out.outputs.is_empty());

        // A compression bomb: 1 MiB of zeros in a few bytes.
        raw.payload = gzip(&vec![b'0'; 1 << 20]).into();
        let out = processor.process_message(&raw, Instant::now());
        assert_eq!(dlq_reasons(&out), ["invalid_gzip"]);
        raw.payload = bytes::Bytes::from_static(&[0x1f, 0x8b, 8, 0, 1, 2]);
        let out = processor.process_message(&raw, Instant::now());
        assert_eq!(dlq_reasons(&out), ["invalid_gzip"]);
    }

    #[test]
    fn peer_is_the_other_end() {
        let src: IpAddr = "203.0.113.7".parse().unwrap();
        let dst: IpAddr = "10.0.0.1".parse().unwrap();
        let obs = [
            IpObservation {
                ip: src,
                role: Role::Source,
            },
            IpObservation {
                ip: dst,
                role: Role::Destination,
            },
        ];
        assert_eq!(peer_of(src, &[Role::Source], &obs), Some(dst));
        assert_eq!(peer_of(dst, &[Role::Destination], &obs), Some(src));
        assert_eq!(peer_of(src, &[Role::Unknown], &obs), None);
    }
}
