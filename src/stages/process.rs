//! Process: one Kafka message → the records and DLQ entries it yields, and the addresses for
//! the remote providers. Synchronous; chains the stages in data-path order:
//! frame → parse → extract → filter → dedup → local intel → score → record.
//!
//! * In: a [`RawEvent`]. A payload is one event per line (a multi-line payload that is one
//!   JSON document counts as one event); a gzip payload is decompressed first, up to
//!   `parse.max_decompressed_bytes`. A line may hold a batch (`records`, `logEvents`).
//! * Out: a [`Processed`] holding zero or more [`Output`]s: one threat record per address seen
//!   for the first time in the dedup window whose verdict reaches `publish.min_verdict`, and one
//!   DLQ entry per line (or batch item) that could not be parsed (the whole message when it is
//!   empty, not UTF-8, or bad gzip); and one [`LookupRequest`] per first sighting (or due
//!   retry) when remote providers are enabled.
//! * Dropped and counted, never silently: non-public addresses (`ips_filtered_total{reason}`),
//!   repeat sightings (`dedup_hits_total`), events without addresses
//!   (`events_without_ip_total`), records below the publish threshold
//!   (`records_withheld_total{verdict}`), address fields that are not addresses
//!   (`ip_tokens_invalid_total`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::intel::feeds::FeedMatch;
use crate::model::{action_denied, DlqEntry, Output, OutputKind, DLQ_SCHEMA};
use crate::model::{Event, Origin, ProviderIntel, RawEvent, ThreatRecord, Verdict};
use crate::stages::dedup::{DedupCache, Sighting};
use crate::stages::extract::extract_ip_observations;
use crate::stages::filter::IpFilter;
use crate::stages::local::LocalIntel;
use crate::stages::parse::{FormatRegistry, ParseError, StreamId};
use crate::stages::score::{EvidenceInput, ScoringModel};
use crate::stages::{frame, record};
use crate::telemetry::events::{
    EventWithoutIp, IpDeduplicated, IpFiltered, IpsExtracted, LineParseError, LineParsed,
    MessageConsumed, RecordWithheld,
};
use crate::telemetry::Metrics;

/// Input keys longer than this are left out of DLQ entries (the entry must stay producible).
const MAX_DLQ_KEY_BYTES: usize = 1024;

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
    /// Weights, thresholds and severity bands (`[scoring]` and the feed weights).
    pub scoring: ScoringModel,
    /// Whether remote providers are asked (each first sighting then yields a
    /// [`LookupRequest`]).
    pub remote: bool,
}

/// Everything one input message produced; the offset is finished when all outputs are
/// delivered.
#[derive(Debug)]
pub struct Processed {
    /// The input message.
    pub origin: Origin,
    /// When the consumer received it.
    pub received: Instant,
    /// What to produce (possibly nothing).
    pub outputs: Vec<Output>,
    /// Addresses for the remote providers, queued once `outputs` are delivered.
    pub remote: Vec<LookupRequest>,
}

/// Queue order for the remote providers: higher is asked first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Priority {
    /// Suspicious or worse from local intelligence alone.
    pub locally_suspicious: bool,
    /// Sightings in the window, as ⌊log2⌋+1 (1, 2–3, 4–7, …): raised while the address waits
    /// (see [`RemoteQueues::sighted`]), so the most-seen addresses move up.
    pub sightings_order: u8,
    /// The device let the traffic through.
    pub allowed: bool,
}

impl Priority {
    /// The order of a sighting count.
    pub fn sightings_order(sightings: u64) -> u8 {
        (u64::BITS - sightings.leading_zeros()) as u8
    }
}

/// An address for the remote providers, with the record their answers revise.
#[derive(Debug, Clone)]
pub struct LookupRequest {
    /// The address.
    pub ip: IpAddr,
    /// Its place in the queues.
    pub priority: Priority,
    /// The record as first built (published or withheld).
    pub record: ThreatRecord,
    /// Local evidence, kept to score again as answers arrive.
    pub feed_matches: Vec<FeedMatch>,
    /// The vendor's threat name, when the event was a detection.
    pub threat: Option<String>,
    /// Product or vendor that reported the event.
    pub reporter: Option<String>,
    /// The dedup window's state of the address (sightings, revisions).
    pub sighting: Arc<Sighting>,
    /// The message the first record came from.
    pub origin: Origin,
}

/// What the processor asks of the remote stage while it builds records; synchronous.
pub trait RemoteQueues: Send + Sync {
    /// A repeat sighting of `ip` whose count reached a power of two.
    fn sighted(&self, ip: IpAddr, sightings: u64);
    /// The providers whose lookup of `ip` is already settled without asking, and how.
    fn known_statuses(&self, ip: IpAddr, now: SystemTime) -> Vec<(&'static str, ProviderIntel)>;
}

/// Chains the stages for one message.
pub struct Processor {
    registry: FormatRegistry,
    filter: IpFilter,
    dedup: DedupCache,
    local: LocalIntel,
    options: ProcessorOptions,
    metrics: Arc<Metrics>,
    /// The remote stage, told of repeat sightings so waiting addresses move up its queues.
    remote: Option<Arc<dyn RemoteQueues>>,
}

impl Processor {
    /// Assembles a processor from its stages.
    pub fn new(
        registry: FormatRegistry,
        filter: IpFilter,
        dedup: DedupCache,
        local: LocalIntel,
        options: ProcessorOptions,
        metrics: Arc<Metrics>,
    ) -> Self {
        Processor {
            registry,
            filter,
            dedup,
            local,
            options,
            metrics,
            remote: None,
        }
    }

    /// Tells `queues` of repeat sightings (they order by them) and asks them which lookups
    /// are settled.
    pub fn with_remote_queues(mut self, queues: Option<Arc<dyn RemoteQueues>>) -> Self {
        self.remote = queues;
        self
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
        let mut out = Processed {
            origin: raw.origin.clone(),
            received,
            outputs: Vec::new(),
            remote: Vec::new(),
        };
        let payload = match frame::decompress(&raw.payload, self.options.max_decompressed_bytes) {
            Ok(payload) => payload,
            Err(error) => {
                out.outputs
                    .push(self.dead_letter(raw, None, &raw.payload, &error, now));
                return out;
            }
        };
        let text = match frame::text(&payload) {
            Ok(text) => text,
            Err(error) => {
                out.outputs
                    .push(self.dead_letter(raw, None, &payload, &error, now));
                return out;
            }
        };
        let seen_at = frame::seen_at(raw.timestamp_ms, now);
        let stream = StreamId {
            topic: &raw.origin.topic,
            partition: raw.origin.partition,
            key: raw.key.as_deref(),
        };
        let lines = frame::split_events(text);
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
                out.outputs
                    .push(self.dead_letter(raw, line_no, line.as_bytes(), &error, now));
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
                        if let Err(error) = self.enrich_event(event, seen_at, now, &mut out) {
                            out.outputs.push(self.dead_letter(
                                raw,
                                line_no,
                                line.as_bytes(),
                                &error,
                                now,
                            ));
                        }
                    }
                    for item in &parsed.errors {
                        let bytes = if item.text.is_empty() {
                            line.as_bytes()
                        } else {
                            item.text.as_bytes()
                        };
                        out.outputs
                            .push(self.dead_letter(raw, line_no, bytes, &item.error, now));
                    }
                }
                Err(error) => {
                    out.outputs
                        .push(self.dead_letter(raw, line_no, line.as_bytes(), &error, now));
                }
            }
        }
        out
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
        Processed {
            origin: raw.origin.clone(),
            received,
            outputs: vec![output],
            remote: Vec::new(),
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
            payload: serde_json::to_vec(&entry).unwrap_or_else(|e| unencodable_entry(reason, &e)),
        }
    }

    /// Extract → filter → dedup → local intel → score → record for one event. A record that
    /// cannot be serialised is an internal error, for the caller to dead-letter.
    fn enrich_event(
        &self,
        event: &Event<'_>,
        seen_at: SystemTime,
        now: SystemTime,
        out: &mut Processed,
    ) -> Result<(), ParseError> {
        let mut observations = Vec::with_capacity(event.addresses.len());
        let invalid_tokens = extract_ip_observations(event, &mut observations);
        let roles: Vec<_> = observations.iter().map(|o| o.role).collect();
        IpsExtracted {
            roles: &roles,
            invalid_tokens,
        }
        .emit(&self.metrics);
        let mut enriched_any = false;
        let mut done: Vec<IpAddr> = Vec::with_capacity(observations.len());
        let mut failed = None;
        for observation in &observations {
            let ip = observation.ip;
            if done.contains(&ip) {
                continue;
            }
            done.push(ip);
            if let Err(reason) = self.filter.check(ip) {
                IpFiltered { reason }.emit(&self.metrics);
                continue;
            }
            enriched_any = true;
            let seen = self.dedup.observe(ip, seen_at);
            IpDeduplicated { first: seen.first }.emit(&self.metrics);
            // A repeat sighting is looked up again only when remote lookups that got no
            // answer (budget, queue full, provider error) may be retried by now.
            let retry = !seen.first && self.options.remote && seen.sighting.take_due_retry(now);
            if !seen.first && !retry {
                let count = seen.sighting.count();
                if let (Some(remote), true) = (&self.remote, count.is_power_of_two()) {
                    remote.sighted(ip, count);
                }
                continue;
            }
            let mut local = self.local.lookup(ip, &self.metrics);
            if let Some(remote) = &self.remote {
                local.intel.extend(
                    remote
                        .known_statuses(ip, now)
                        .into_iter()
                        .map(|(name, entry)| (name.to_owned(), entry)),
                );
            }
            let reporter = event.product.as_deref().or(event.vendor.as_deref());
            // Remote providers fill `intel` later and score again the same way.
            let scored = self.options.scoring.score(&EvidenceInput {
                feed_matches: &local.matches,
                intel: &local.intel,
                threat: event.threat.as_deref(),
                reporter,
                sightings: seen.sighting.count(),
            });
            let matches = std::mem::take(&mut local.matches);
            let mut threat_record = record::first_record(
                ip,
                event,
                &observations,
                &out.origin,
                &seen.sighting,
                local,
                scored,
                now,
            );
            let publish = seen.first && threat_record.verdict >= self.options.min_verdict;
            if publish {
                threat_record.revision = seen
                    .sighting
                    .next_revision(threat_record.score, threat_record.verdict);
                match record::encode(&threat_record) {
                    Ok(output) => out.outputs.push(output),
                    Err(error) => {
                        failed = Some(ParseError::Encode(error.to_string()));
                        continue;
                    }
                }
            } else if seen.first {
                RecordWithheld {
                    verdict: threat_record.verdict,
                }
                .emit(&self.metrics);
            }
            if self.options.remote {
                out.remote.push(LookupRequest {
                    ip,
                    priority: Priority {
                        locally_suspicious: threat_record.verdict >= Verdict::Suspicious,
                        sightings_order: Priority::sightings_order(seen.sighting.count()),
                        allowed: !event.action.as_deref().is_some_and(action_denied),
                    },
                    record: threat_record,
                    feed_matches: matches,
                    threat: event.threat.as_deref().map(str::to_owned),
                    reporter: reporter.map(str::to_owned),
                    sighting: seen.sighting.clone(),
                    origin: out.origin.clone(),
                });
            }
        }
        if !enriched_any {
            EventWithoutIp.emit(&self.metrics);
        }
        failed.map_or(Ok(()), Err)
    }
}

/// A DLQ entry that serde could not write (it cannot happen with these plain fields): still a
/// readable entry naming the problem, never an empty payload.
fn unencodable_entry(reason: &str, error: &serde_json::Error) -> Vec<u8> {
    serde_json::json!({
        "schema": DLQ_SCHEMA,
        "reason": reason,
        "error": format!("the DLQ entry could not be serialised: {error}"),
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intel::feeds::LocalFeeds;
    use crate::model::{IpObservation, ProviderStatus, Role};
    use crate::stages::record::peer_of;

    fn processor(overrides: &str) -> (Processor, Arc<Metrics>) {
        let settings = crate::settings::Settings::from_toml_overrides(overrides).unwrap();
        let metrics = Arc::new(Metrics::new(&prometheus::Registry::new()).unwrap());
        let feeds = Arc::new(LocalFeeds::load(Vec::new()).unwrap());
        let processor =
            crate::topology::build_processor(&settings, feeds, metrics.clone()).unwrap();
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
    fn a_suricata_alert_record_carries_the_vendor_threat() {
        let (processor, _) = processor(
            "[filter]\nallow_documentation_ranges = true\n[publish]\nmin_verdict = \"unknown\"\n",
        );
        let alert = r#"{"timestamp":"2024-03-01T12:00:00.123456+0000","flow_id":1,"event_type":"alert","src_ip":"203.0.113.70","src_port":51544,"dest_ip":"198.51.100.70","dest_port":22,"proto":"TCP","alert":{"action":"allowed","signature_id":2001219,"signature":"ET SCAN Potential SSH Scan","severity":2}}"#;
        let out = records(&processor.process_message(&message("ids", 0, alert), Instant::now()));
        assert_eq!(out.len(), 2);
        let record = &out[0];
        assert_eq!(record["ip"], "203.0.113.70");
        assert_eq!(record["indicator"], "ET SCAN Potential SSH Scan");
        assert_eq!(
            record["reasons"],
            serde_json::json!([{
                "source": "vendor",
                "detail": "Suricata reported threat \"ET SCAN Potential SSH Scan\"",
                "weight": 40
            }])
        );
        assert_eq!(
            (&record["score"], &record["verdict"], &record["severity"]),
            (
                &serde_json::json!(40),
                &serde_json::json!("suspicious"),
                &serde_json::json!("medium")
            )
        );
        // The same flow as plain traffic is no evidence.
        let flow = r#"{"timestamp":"2024-03-01T12:00:00.123456+0000","flow_id":2,"event_type":"flow","src_ip":"203.0.113.71","dest_ip":"198.51.100.71","proto":"TCP"}"#;
        let out = records(&processor.process_message(&message("ids", 1, flow), Instant::now()));
        assert_eq!(out[0]["indicator"], "IP Observed");
        assert_eq!(out[0]["reasons"], serde_json::json!([]));
        assert_eq!(out[0]["score"], 0);
    }

    /// Which events each vendor format marks as a threat detection, and the name it gives.
    #[test]
    fn vendor_threat_names_by_format() {
        let (processor, _) = processor("");
        let cases: [(&str, Option<&str>); 10] = [
            (
                r#"{"event_type":"alert","src_ip":"203.0.113.7","dest_ip":"192.0.2.10","alert":{"action":"allowed","signature":"EXAMPLE SSH scan"}}"#,
                Some("EXAMPLE SSH scan"),
            ),
            (
                r#"{"event_type":"http","src_ip":"203.0.113.7","dest_ip":"192.0.2.10","alert":{"signature":"not an alert record"}}"#,
                None,
            ),
            (
                r#"<14>Mar  1 12:00:06 PA-VM-01 1,2024/03/01 12:00:06,012345678901,THREAT,vulnerability,2816,2024/03/01 12:00:06,203.0.113.7,192.0.2.10,,198.51.100.30,inbound-web,,,web-browsing,vsys1,untrust,dmz,ethernet1/1,ethernet1/3,fwd-siem,2024/03/01 12:00:06,33014,1,51546,80,0,8080,0x2000,tcp,reset-both,"/cgi-bin/a,b.cgi",Example Exploit Attempt(91234),any,critical,client-to-server,7301234569,0x2000000000000000,United States,192.0.2.0-192.0.2.255,0,,0,,,0,,,,,,,,0"#,
                Some("Example Exploit Attempt(91234)"),
            ),
            (
                r#"<14>Mar  1 12:00:06 PA-VM-01 1,2024/03/01 12:00:06,012345678901,THREAT,url,2816,2024/03/01 12:00:06,203.0.113.7,192.0.2.10,,198.51.100.30,inbound-web,,,web-browsing,vsys1,untrust,dmz,ethernet1/1,ethernet1/3,fwd-siem,2024/03/01 12:00:06,33014,1,51546,80,0,8080,0x2000,tcp,alert,"www.example.com/",Some Category Page(12345),any,informational,client-to-server,7301234569,0x2000000000000000,United States,192.0.2.0-192.0.2.255,0,,0,,,0,,,,,,,,0"#,
                None,
            ),
            (
                r#"<14>1 2024-03-01T12:00:06Z srx01 RT_IDP - IDP_ATTACK_LOG_EVENT [junos@2636.1.1.1.2.129 source-address="203.0.113.9" destination-address="192.0.2.13" policy-name="Recommended" attack-name="HTTP:INVALID:MSNG-HTTP-VER" action="DROP"]"#,
                Some("HTTP:INVALID:MSNG-HTTP-VER"),
            ),
            (
                "<14>Mar  1 12:00:06 srx01 RT_IDP: RT_IDP_ATTACK_LOG_EVENT: IDP: at 1709294406, SIG Attack log <203.0.113.9/51544->192.0.2.13/80> for TCP protocol and service HTTP application HTTP by rule 1 of rulebase IPS in policy Recommended. attack: repeat=0, action=DROP, threat-severity=HIGH, name=HTTP:INVALID:MSNG-HTTP-VER, NAT <0.0.0.0:0->0.0.0.0:0>, time-elapsed=0",
                Some("HTTP:INVALID:MSNG-HTTP-VER"),
            ),
            (
                r#"<14>1 2024-03-01T12:00:00.000Z srx01 RT_FLOW - RT_FLOW_SESSION_CREATE [junos@2636.1.1.1.2.129 source-address="192.0.2.10" destination-address="198.51.100.20" policy-name="allow-web"]"#,
                None,
            ),
            (
                r#"<185>date=2024-03-01 time=12:00:00 devname="FGT-EDGE" devid="FGT60F0000000000" logid="0419016384" type="utm" subtype="ips" eventtype="signature" level="alert" srcip=203.0.113.50 dstip=192.0.2.10 action="dropped" attack="Nmap.Script.Scanner" msg="web_misc: Nmap.Script.Scanner,""#,
                Some("Nmap.Script.Scanner"),
            ),
            (
                r#"<185>date=2024-03-01 time=12:00:00 devname="FGT-EDGE" devid="FGT60F0000000000" logid="0211008192" type="utm" subtype="virus" eventtype="infected" srcip=203.0.113.51 dstip=192.0.2.10 action="blocked" virus="EICAR_TEST_FILE""#,
                Some("EICAR_TEST_FILE"),
            ),
            (
                "<113>Mar 01 2024 12:00:09 ftd01 : %FTD-1-430001: EventPriority: High, SrcIP: 203.0.113.52, DstIP: 192.0.2.10, SrcPort: 51544, DstPort: 80, Protocol: tcp, SignatureID: 1:58722:1, Message: SERVER-WEBAPP Example exploit attempt, Classification: Attempted Administrator Privilege Gain",
                Some("SERVER-WEBAPP Example exploit attempt"),
            ),
        ];
        for (line, threat) in cases {
            let stream = StreamId {
                topic: "fw",
                partition: 0,
                key: None,
            };
            let parsed = processor.registry.parse_line(line, stream).expect(line);
            assert_eq!(parsed.events.len(), 1, "{line}");
            assert_eq!(parsed.events[0].threat.as_deref(), threat, "{line}");
        }
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

    #[test]
    fn remote_jobs_for_every_first_sighting_and_retries_once_due() {
        let (processor, _) = processor(
            "[filter]\nallow_documentation_ranges = true\n[providers.rdap]\nenabled = true\n",
        );
        let out = processor.process_message(
            &message("fw", 0, "src=203.0.113.7 dst=198.51.100.2"),
            Instant::now(),
        );
        // No local evidence: both withheld (unknown), both still looked up, rdap pending.
        assert!(records(&out).is_empty());
        let jobs: Vec<String> = out.remote.iter().map(|j| j.ip.to_string()).collect();
        assert_eq!(jobs, ["203.0.113.7", "198.51.100.2"]);
        let first = &out.remote[1];
        assert_eq!(first.record.intel["rdap"].status, ProviderStatus::Pending);
        assert!(!out.remote[1].priority.locally_suspicious);
        assert!(out.remote[1].priority.allowed, "no action: not denied");
        let sighting = first.sighting.clone();

        // Seen again: nothing to retry yet, so no job.
        let again =
            processor.process_message(&message("fw", 1, "src=198.51.100.2"), Instant::now());
        assert!(again.remote.is_empty() && again.outputs.is_empty());
        // A lookup got no answer and may be retried from now: the next sighting queues it
        // again (once), without publishing a record by itself.
        sighting.retry_from(SystemTime::now());
        let retried =
            processor.process_message(&message("fw", 2, "src=198.51.100.2"), Instant::now());
        assert_eq!(retried.remote.len(), 1);
        assert!(retried.outputs.is_empty());
        let after =
            processor.process_message(&message("fw", 3, "src=198.51.100.2"), Instant::now());
        assert!(after.remote.is_empty());
    }

    #[test]
    fn without_remote_providers_no_jobs() {
        let (processor, _) = processor(
            "[filter]\nallow_documentation_ranges = true\n[publish]\nmin_verdict = \"unknown\"\n",
        );
        let out = processor.process_message(
            &message("fw", 0, "src=203.0.113.7 dst=198.51.100.2"),
            Instant::now(),
        );
        assert!(out.remote.is_empty());
        assert_eq!(records(&out)[0]["intel"]["rdap"]["status"], "disabled");
    }
}
