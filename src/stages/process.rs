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

use crate::intel::feeds::{FeedMatch, LocalFeeds};
use crate::intel::ConfiguredProviders;
use crate::model::{action_denied, DlqEntry, Output, OutputKind, DLQ_SCHEMA};
use crate::model::{Event, Origin, ProviderIntel, RawEvent, ThreatRecord, Verdict};
use crate::settings::{Settings, SettingsError};
use crate::stages::dedup::{DedupCache, Sighting};
use crate::stages::extract::extract_ip_observations;
use crate::stages::filter::IpFilter;
use crate::stages::local::LocalIntel;
use crate::stages::parse::{FormatRegistry, ParseError, RegistryOptions, StreamId};
use crate::stages::score::{EvidenceInput, ScoringModel};
use crate::stages::{frame, record};
use crate::telemetry::events::{
    EventWithoutIp, IpDeduplicated, IpFiltered, IpsExtracted, LineFellBack, LineParseError,
    LineParsed, MessageConsumed, RecordWithheld,
};
use crate::telemetry::Metrics;

/// Input keys longer than this are left out of DLQ entries (the entry must stay producible).
const MAX_DLQ_KEY_BYTES: usize = 1024;

/// Options of the processor that come from configuration.
#[derive(Debug, Clone)]
pub struct ProcessorOptions {
    /// Events longer than this go to the DLQ (the registry holds each event of a batch to it).
    pub max_line_bytes: usize,
    /// A gzip payload may decompress to at most this many bytes; no line (or batch envelope)
    /// may be longer.
    pub max_decompressed_bytes: usize,
    /// Bytes of the original kept in a DLQ entry.
    pub dlq_max_payload_bytes: usize,
    /// DLQ entries one message may make before one summary entry stands for the rest.
    pub dlq_max_entries_per_message: usize,
    /// Lowest verdict published.
    pub min_verdict: Verdict,
    /// Weights, thresholds and severity bands (`[scoring]` and the feed weights).
    pub scoring: ScoringModel,
    /// Whether remote providers are asked (each first sighting then yields a
    /// [`LookupRequest`]).
    pub remote: bool,
    /// Lookups one message may queue (`pipeline.max_lookups_per_message`).
    pub max_lookups_per_message: usize,
    /// Each record built also yields the address's state for the changelog (s2-state).
    pub changelog: bool,
}

/// Everything one input message produced; the offset is finished when all outputs are
/// delivered.
#[derive(Debug)]
pub struct Processed {
    /// The input message.
    pub origin: Origin,
    /// The input message's timestamp (ms since the epoch), for a DLQ entry made at delivery
    /// (`publish_failed`).
    pub message_time_ms: Option<i64>,
    /// When the consumer received it.
    pub received: Instant,
    /// What to produce (possibly nothing).
    pub outputs: Vec<Output>,
    /// Addresses for the remote providers, queued once `outputs` are delivered.
    pub remote: Vec<LookupRequest>,
}

impl Processed {
    /// Nothing produced yet from `raw`.
    fn empty(raw: &RawEvent, received: Instant) -> Self {
        Processed {
            origin: raw.origin.clone(),
            message_time_ms: raw.timestamp_ms,
            received,
            outputs: Vec::new(),
            remote: Vec::new(),
        }
    }
}

/// Queue order for the remote providers: higher is asked first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Priority {
    /// Suspicious or worse from local intelligence alone.
    pub locally_suspicious: bool,
    /// Sightings in the window, as ⌊log2⌋+1 (1, 2–3, 4–7, …): raised while the address waits
    /// (see `RemoteQueues::sighted`), so the most-seen addresses move up.
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

    /// Assembles the stages from the settings and the built providers.
    pub fn from_settings(
        settings: &Settings,
        feeds: Arc<LocalFeeds>,
        providers: &ConfiguredProviders,
        metrics: Arc<Metrics>,
    ) -> Result<Self, SettingsError> {
        Ok(Processor::new(
            FormatRegistry::builtin(RegistryOptions::from_settings(settings)?),
            IpFilter::new(
                settings.filter.allow_documentation_ranges,
                settings.ignore_cidrs()?,
            ),
            DedupCache::new(settings.dedup.ttl, settings.dedup.max_entries),
            LocalIntel::new(feeds, providers.local.clone(), providers.entries.clone()),
            ProcessorOptions {
                max_line_bytes: settings.parse.max_line_bytes,
                max_decompressed_bytes: settings.parse.max_decompressed_bytes,
                dlq_max_payload_bytes: settings.dlq.max_payload_bytes,
                dlq_max_entries_per_message: settings.dlq.max_entries_per_message,
                min_verdict: settings.publish.min_verdict,
                scoring: ScoringModel::new(&settings.scoring, &settings.feeds),
                remote: !providers.remote.is_empty(),
                max_lookups_per_message: settings.pipeline.max_lookups_per_message,
                changelog: settings.scale.changelog_on(),
            },
            metrics,
        ))
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
            count: 1,
        }
        .emit(&self.metrics);
        let mut parsed = FormatTally::default();
        let mut out = Processed::empty(raw, received);
        self.process_one(raw, SystemTime::now(), &mut parsed, &mut out);
        parsed.emit(&self.metrics);
        out
    }

    /// Processes the messages of one poll, in order, with one clock reading and one count per
    /// topic run. A panic on one message is a bug, not a reason to stop the stream: that
    /// message goes to the DLQ as `internal_error` and the rest are processed. What the message
    /// made before the panic is kept: its records' addresses are marked seen, so dropping them
    /// would lose them for the whole dedup window.
    pub fn process_batch(&self, batch: &[RawEvent], received: Instant) -> Vec<Processed> {
        let now = SystemTime::now();
        for run in batch.chunk_by(|a, b| a.origin.topic == b.origin.topic) {
            MessageConsumed {
                topic: &run[0].origin.topic,
                count: run.len() as u64,
            }
            .emit(&self.metrics);
        }
        let mut parsed = FormatTally::default();
        let out = batch
            .iter()
            .map(|raw| {
                let mut out = Processed::empty(raw, received);
                let processed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.process_one(raw, now, &mut parsed, &mut out)
                }));
                if processed.is_err() {
                    out.outputs.push(self.dead_letter(
                        raw,
                        None,
                        &raw.payload,
                        &ParseError::Internal,
                        now,
                    ));
                }
                out
            })
            .collect();
        parsed.emit(&self.metrics);
        out
    }

    /// Processes `raw` into `out` (which the caller owns, so a panic keeps what was made).
    fn process_one(
        &self,
        raw: &RawEvent,
        now: SystemTime,
        parsed_lines: &mut FormatTally,
        out: &mut Processed,
    ) {
        let payload = match frame::decompress(&raw.payload, self.options.max_decompressed_bytes) {
            Ok(payload) => payload,
            Err(error) => {
                out.outputs
                    .push(self.dead_letter(raw, None, &raw.payload, &error, now));
                return;
            }
        };
        let text = match frame::text(&payload) {
            Ok(text) => text,
            Err(error) => {
                out.outputs
                    .push(self.dead_letter(raw, None, &payload, &error, now));
                return;
            }
        };
        let seen_at = frame::seen_at(raw.timestamp_ms, now);
        let stream = StreamId {
            topic: &raw.origin.topic,
            partition: raw.origin.partition,
            key: raw.key.as_deref(),
        };
        // One message may hold millions of bad lines: past the cap they are counted, not
        // copied into entries of their own.
        let mut dlq = DlqBudget::new(raw, now, self.options.dlq_max_entries_per_message);
        let (multi, lines) = frame::events(text);
        for (index, line) in lines.enumerate() {
            let line_no = multi.then_some(index);
            if multi && line.trim().is_empty() {
                continue;
            }
            // Events are held to `max_line_bytes` by the registry, after envelope splitting (a
            // CloudWatch or Event Hubs batch is often far longer than any of its events); a
            // line is held here only to the envelope limit.
            if line.len() > self.options.max_decompressed_bytes {
                let error = ParseError::TooLarge {
                    len: line.len(),
                    limit: self.options.max_decompressed_bytes,
                };
                self.dead_letter_within(&mut dlq, out, line_no, line.as_bytes(), &error);
                continue;
            }
            match self.registry.parse_line(line, stream) {
                Ok(parsed) => {
                    if parsed.events.is_empty() {
                        parsed_lines.add(parsed.format);
                    }
                    for fallback in &parsed.fallbacks {
                        LineFellBack {
                            format: fallback.from,
                            reason: fallback.error.kind(),
                            error: &fallback.error,
                            origin: &raw.origin,
                        }
                        .emit(&self.metrics);
                    }
                    for event in &parsed.events {
                        parsed_lines.add(event.format);
                        if let Err(error) = self.enrich_event(event, seen_at, now, out) {
                            self.dead_letter_within(
                                &mut dlq,
                                out,
                                line_no,
                                line.as_bytes(),
                                &error,
                            );
                        }
                    }
                    for item in &parsed.errors {
                        let bytes = if item.text.is_empty() {
                            line.as_bytes()
                        } else {
                            item.text.as_bytes()
                        };
                        self.dead_letter_within(&mut dlq, out, line_no, bytes, &item.error);
                    }
                }
                Err(error) => {
                    self.dead_letter_within(&mut dlq, out, line_no, line.as_bytes(), &error);
                }
            }
        }
        if dlq.suppressed > 0 {
            let error = ParseError::TooManyErrors {
                more: dlq.suppressed,
                limit: dlq.limit,
            };
            out.outputs
                .push(self.entry(raw, None, &raw.payload, &error, now));
        }
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
            message_time_ms: raw.timestamp_ms,
            received,
            outputs: vec![output],
            remote: Vec::new(),
        }
    }

    /// Dead-letters one line (or batch item) unless the message has used its entries: then the
    /// error is counted and left for the message's summary entry.
    fn dead_letter_within(
        &self,
        budget: &mut DlqBudget<'_>,
        out: &mut Processed,
        line: Option<usize>,
        bytes: &[u8],
        error: &ParseError,
    ) {
        let (raw, now) = (budget.raw, budget.now);
        if budget.written < budget.limit {
            budget.written += 1;
            out.outputs
                .push(self.dead_letter(raw, line, bytes, error, now));
        } else {
            budget.suppressed += 1;
            LineParseError {
                kind: error.kind(),
                error: "",
                origin: &raw.origin,
            }
            .count(&self.metrics);
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
        let message = error.to_string();
        LineParseError {
            kind: error.kind(),
            error: &message,
            origin: &raw.origin,
        }
        .emit(&self.metrics);
        self.entry(raw, line, bytes, error, now)
    }

    /// The DLQ entry for `bytes` of `raw`.
    fn entry(
        &self,
        raw: &RawEvent,
        line: Option<usize>,
        bytes: &[u8],
        error: &ParseError,
        now: SystemTime,
    ) -> Output {
        let reason = error.kind();
        let message = error.to_string();
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
            let seen_in = record::SeenIn {
                event,
                observations: &observations,
                origin: &out.origin,
            };
            let mut threat_record =
                record::first_record(ip, seen_in, &seen.sighting, local, scored, now);
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
            let priority = Priority {
                locally_suspicious: threat_record.verdict >= Verdict::Suspicious,
                sightings_order: Priority::sightings_order(seen.sighting.count()),
                allowed: !event.action.as_deref().is_some_and(action_denied),
            };
            // Past the message's share the address waits for its next sighting: one message
            // naming 10,000 addresses must not hold 10,000 lookups (and their records).
            let over_share =
                self.options.remote && out.remote.len() >= self.options.max_lookups_per_message;
            if over_share {
                seen.sighting.retry_from(now);
            }
            // s2-state: delivered with the message's outputs, before its offset is stored. A
            // due retry writes none: until its answers come, the state that scheduled it holds.
            if self.options.changelog && seen.first {
                let (threat, sighting) = (event.threat.as_deref(), &seen.sighting);
                out.outputs.extend(crate::state::first_state(
                    ip,
                    &threat_record,
                    &matches,
                    threat,
                    reporter,
                    priority,
                    sighting,
                    &out.origin,
                    now,
                ));
            }
            if self.options.remote && !over_share {
                out.remote.push(LookupRequest {
                    ip,
                    priority,
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

/// How many DLQ entries a message has made, and how many errors it had past its limit.
#[derive(Debug)]
struct DlqBudget<'r> {
    raw: &'r RawEvent,
    now: SystemTime,
    limit: usize,
    written: usize,
    suppressed: u64,
}

impl<'r> DlqBudget<'r> {
    fn new(raw: &'r RawEvent, now: SystemTime, limit: usize) -> Self {
        DlqBudget {
            raw,
            now,
            limit,
            written: 0,
            suppressed: 0,
        }
    }
}

/// Lines parsed per format, counted once per batch instead of once per line.
#[derive(Debug, Default)]
struct FormatTally(Vec<(&'static str, u64)>);

impl FormatTally {
    fn add(&mut self, format: &'static str) {
        // Format names are static: the same pointer almost always means the same name.
        match self
            .0
            .iter_mut()
            .find(|(name, _)| std::ptr::eq(*name, format) || *name == format)
        {
            Some((_, count)) => *count += 1,
            None => self.0.push((format, 1)),
        }
    }

    fn emit(self, metrics: &Metrics) {
        for (format, count) in self.0 {
            LineParsed { format, count }.emit(metrics);
        }
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
#[path = "process_tests.rs"]
mod tests;
