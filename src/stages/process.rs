//! Process: one Kafka message → the records and DLQ entries it yields, and the addresses for
//! the remote providers. Synchronous; chains the stages in data-path order:
//! frame → parse → extract → filter → dedup → local intel → score → record.
//!
//! Two halves, one code path (design §10): the *ingest* half (frame → parse → extract →
//! filter) and the *owner* half (dedup → local intel → score → record → lookup request).
//! Single mode ([`Processor::process_batch`]) runs both in process, the owner half on a
//! borrowed view of the event (its owned context is built only for a first sighting). Scaled
//! mode runs them in two pipelines: [`Processor::ingest_batch`] turns each public address into a
//! sighting for `<output_topic>.sightings` (`stages::sighting`), and [`Processor::own_batch`]
//! runs the owner half on the sightings of the partitions this daemon owns. Both give the same
//! records.
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

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::intel::feeds::{FeedMatch, LocalFeeds};
use crate::intel::ConfiguredProviders;
use crate::model::{action_denied, DlqEntry, Output, OutputKind, DLQ_SCHEMA};
use crate::model::{Event, IpObservation, Observed, Role};
use crate::model::{Origin, ProviderIntel, RawEvent, ThreatRecord, Verdict};
use crate::publish::Publication;
use crate::settings::{Settings, SettingsError};
use crate::stages::dedup::{intern_topic, DedupCache, Sighting, SightingContext};
use crate::stages::extract::extract_ip_observations;
use crate::stages::filter::IpFilter;
use crate::stages::local::LocalIntel;
use crate::stages::parse::{FormatRegistry, ParseError, RegistryOptions, StreamId};
use crate::stages::score::{EvidenceInput, ScoringModel};
use crate::stages::sighting::IpSighting;
use crate::stages::{event_time, frame, record};
use crate::telemetry::events::{
    EventWithoutIp, IpDeduplicated, IpFiltered, IpsExtracted, LineFellBack, LineParseError,
    LineParsed, MessageConsumed, RecordWithheld, RepeatsFolded, SightingsMade,
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
    /// How records are annotated and shaped (`publish.format`, TLP, expiry).
    pub publication: Arc<Publication>,
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
    /// Nothing produced from `raw`, and nothing will be (scaled mode: a sighting of a partition
    /// revoked meanwhile).
    pub(crate) fn nothing(raw: &RawEvent, received: Instant) -> Self {
        Processed::empty(raw, received)
    }

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
            IpFilter::from_settings(settings)?,
            DedupCache::new(settings.dedup.ttl, settings.dedup.max_entries),
            LocalIntel::new(feeds, providers.local.clone(), providers.entries.clone()),
            ProcessorOptions {
                max_line_bytes: settings.parse.max_line_bytes,
                max_decompressed_bytes: settings.parse.max_decompressed_bytes,
                dlq_max_payload_bytes: settings.dlq.max_payload_bytes,
                dlq_max_entries_per_message: settings.dlq.max_entries_per_message,
                min_verdict: settings.publish.min_verdict,
                publication: Arc::new(Publication::from_settings(settings)),
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

    /// The address filter (its allow-list is reloaded by housekeeping).
    pub fn filter(&self) -> &IpFilter {
        &self.filter
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
        let now = SystemTime::now();
        let mut enrich = |event: &Event<'_>, seen_at, out: &mut Processed| {
            self.enrich_event(event, seen_at, now, out)
        };
        self.process_one(raw, now, &mut parsed, &mut out, &mut enrich);
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
        let mut enrich = |event: &Event<'_>, seen_at, out: &mut Processed| {
            self.enrich_event(event, seen_at, now, out)
        };
        self.run_batch(batch, received, now, &mut enrich)
    }

    /// Frames and parses the messages of one poll, in order, handing each event to
    /// `on_event` (see [`process_batch`](Self::process_batch) for what happens on a panic).
    fn run_batch(
        &self,
        batch: &[RawEvent],
        received: Instant,
        now: SystemTime,
        on_event: &mut impl FnMut(&Event<'_>, SystemTime, &mut Processed) -> Result<(), ParseError>,
    ) -> Vec<Processed> {
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
                    self.process_one(raw, now, &mut parsed, &mut out, on_event)
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

    /// The ingest half of scaled mode for one poll: frame → parse → extract → filter, and one
    /// sighting per public address of each event, for the sightings topic (key = the address).
    /// Repeats of an address within the batch and one input partition are folded into the
    /// first message's sighting (`sightings_folded_total`): the later messages' offsets cannot
    /// be stored past that message, so nothing is acknowledged before it is delivered.
    pub fn ingest_batch(&self, batch: &[RawEvent], received: Instant) -> Vec<Processed> {
        let now = SystemTime::now();
        // Per message of the batch, its sightings; and where each (topic, partition, address)
        // was first sighted in the batch.
        let mut sightings: Vec<Vec<IpSighting>> = batch.iter().map(|_| Vec::new()).collect();
        let mut first_at: HashMap<(Arc<str>, i32, IpAddr), (usize, usize)> = HashMap::new();
        let mut index = 0usize;
        let mut folded = 0u64;
        let mut ingest = |event: &Event<'_>, seen_at: SystemTime, out: &mut Processed| {
            // `out` is the message at `index` (messages are processed in order).
            while batch.get(index).is_some_and(|raw| raw.origin != out.origin) {
                index += 1;
            }
            let origin = &out.origin;
            let mut observations = Vec::with_capacity(event.addresses.len());
            self.public_addresses(event, &mut observations, |ip, observations| {
                let key = (origin.topic.clone(), origin.partition, ip);
                if let Some((message, at)) = first_at.get(&key) {
                    sightings[*message][*at].fold(seen_at);
                    folded += 1;
                    return;
                }
                let (roles, observed) = record::first_context(
                    ip,
                    record::SeenIn {
                        event,
                        observations,
                        origin,
                    },
                );
                let own = &mut sightings[index];
                first_at.insert(key, (index, own.len()));
                let mut sighting = IpSighting::new(
                    ip,
                    roles,
                    seen_at,
                    observed,
                    event.threat.as_deref().map(str::to_owned),
                    event
                        .product
                        .as_deref()
                        .or(event.vendor.as_deref())
                        .map(str::to_owned),
                    !event.action.as_deref().is_some_and(action_denied),
                );
                sighting.event_time = event.timestamp.as_deref().and_then(event_time::normalise);
                own.push(sighting);
            });
            Ok(())
        };
        let mut out = self.run_batch(batch, received, now, &mut ingest);
        let mut published = 0u64;
        for (processed, own) in out.iter_mut().zip(sightings) {
            for sighting in own {
                match sighting.encode() {
                    Ok(payload) => {
                        published += 1;
                        processed.outputs.push(Output {
                            kind: OutputKind::Sighting,
                            key: Some(sighting.key()),
                            payload,
                        });
                    }
                    // Plain data always serialises; should it not, the message is kept.
                    Err(error) => processed.outputs.push(self.entry_for(
                        processed,
                        batch,
                        &ParseError::Encode(error.to_string()),
                        now,
                    )),
                }
            }
        }
        SightingsMade { published, folded }.emit(&self.metrics);
        out
    }

    /// The owner half of scaled mode for one poll of the sightings topic: decode → dedup →
    /// local intel → score → record → lookup request. A message that is not a sighting goes to
    /// the DLQ (`malformed`, naming the sighting schema) and the rest are processed.
    pub fn own_batch(&self, batch: &[RawEvent], received: Instant) -> Vec<Processed> {
        let now = SystemTime::now();
        batch
            .iter()
            .map(|raw| {
                let mut out = Processed::empty(raw, received);
                let owned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.own_message(raw, now, &mut out)
                }));
                let error = match owned {
                    Ok(Ok(())) => None,
                    Ok(Err(error)) => Some(error),
                    Err(_) => Some(ParseError::Internal),
                };
                if let Some(error) = error {
                    out.outputs
                        .push(self.dead_letter(raw, None, &raw.payload, &error, now));
                }
                out
            })
            .collect()
    }

    /// Decodes one sightings message and runs the owner half on it.
    fn own_message(
        &self,
        raw: &RawEvent,
        now: SystemTime,
        out: &mut Processed,
    ) -> Result<(), ParseError> {
        let sighting = IpSighting::decode(&raw.payload)
            .map_err(|error| ParseError::malformed("sighting", error.to_string()))?;
        let seen = SeenAddress {
            ip: sighting.ip,
            seen_at: sighting.seen_at(),
            last_seen: sighting.last_seen(),
            count: sighting.count,
            threat: sighting.threat.as_deref(),
            reporter: sighting.reporter.as_deref(),
        };
        let context = |_: &Origin| FirstContext {
            seen: (sighting.roles.clone(), sighting.observed.clone()),
            event_time: sighting.event_time.clone(),
            allowed: sighting.allowed,
        };
        // The first event's context, for a record made again at a feed reload (as in single
        // mode; the format by its static name).
        let dedup_context = |_: &Origin| SightingContext {
            format: self
                .registry
                .names()
                .find(|name| *name == sighting.observed.format)
                .unwrap_or(""),
            offset: sighting.observed.offset,
            partition: sighting.observed.partition,
            topic: intern_topic(&Arc::from(sighting.observed.topic.as_str())),
            roles: SightingContext::role_bits(sighting.roles.iter().copied()),
        };
        self.own(&seen, dedup_context, context, now, out)
    }

    /// A DLQ entry for the whole message of `processed`.
    fn entry_for(
        &self,
        processed: &Processed,
        batch: &[RawEvent],
        error: &ParseError,
        now: SystemTime,
    ) -> Output {
        let raw = batch
            .iter()
            .find(|raw| raw.origin == processed.origin)
            .unwrap_or(&batch[0]);
        self.dead_letter(raw, None, &raw.payload, error, now)
    }

    /// Processes `raw` into `out` (which the caller owns, so a panic keeps what was made).
    fn process_one(
        &self,
        raw: &RawEvent,
        now: SystemTime,
        parsed_lines: &mut FormatTally,
        out: &mut Processed,
        on_event: &mut impl FnMut(&Event<'_>, SystemTime, &mut Processed) -> Result<(), ParseError>,
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
                        if let Err(error) = on_event(event, seen_at, out) {
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

    /// Extract → filter (the ingest half), then the owner half for each public address, in
    /// process. A record that cannot be serialised is an internal error, for the caller to
    /// dead-letter.
    fn enrich_event(
        &self,
        event: &Event<'_>,
        seen_at: SystemTime,
        now: SystemTime,
        out: &mut Processed,
    ) -> Result<(), ParseError> {
        let mut observations = Vec::with_capacity(event.addresses.len());
        let mut failed = None;
        let reporter = event.product.as_deref().or(event.vendor.as_deref());
        self.public_addresses(event, &mut observations, |ip, observations| {
            let seen = SeenAddress {
                ip,
                seen_at,
                last_seen: seen_at,
                count: 1,
                threat: event.threat.as_deref(),
                reporter,
            };
            // The owned context is built only for a first sighting (or a due retry).
            // The first event's context, for a record made again at a feed reload.
            let dedup_context = |origin: &Origin| SightingContext {
                format: event.format,
                offset: origin.offset,
                partition: origin.partition,
                topic: intern_topic(&origin.topic),
                roles: SightingContext::role_bits(
                    observations.iter().filter(|o| o.ip == ip).map(|o| o.role),
                ),
            };
            let context = |origin: &Origin| FirstContext {
                seen: record::first_context(
                    ip,
                    record::SeenIn {
                        event,
                        observations,
                        origin,
                    },
                ),
                event_time: event.timestamp.as_deref().and_then(event_time::normalise),
                allowed: !event.action.as_deref().is_some_and(action_denied),
            };
            if let Err(error) = self.own(&seen, dedup_context, context, now, out) {
                failed = Some(error);
            }
        });
        failed.map_or(Ok(()), Err)
    }

    /// Extract → filter for one event: calls `public` once per distinct public address, with
    /// every address of the event (valid ones, with their roles); counts the rest.
    fn public_addresses(
        &self,
        event: &Event<'_>,
        observations: &mut Vec<IpObservation>,
        mut public: impl FnMut(IpAddr, &[IpObservation]),
    ) {
        let invalid_tokens = extract_ip_observations(event, observations);
        let roles: Vec<_> = observations.iter().map(|o| o.role).collect();
        IpsExtracted {
            roles: &roles,
            invalid_tokens,
        }
        .emit(&self.metrics);
        let mut enriched_any = false;
        let mut done: Vec<IpAddr> = Vec::with_capacity(observations.len());
        for observation in observations.iter() {
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
            public(ip, observations);
        }
        if !enriched_any {
            EventWithoutIp.emit(&self.metrics);
        }
    }

    /// The owner half for one sighting of a public address: dedup → local intel → score →
    /// record → lookup request. `context` is called only when a record is built (a first
    /// sighting or a due retry), so a dedup hit allocates nothing. A record that cannot be
    /// serialised is an internal error, for the caller to dead-letter.
    fn own(
        &self,
        seen_address: &SeenAddress<'_>,
        dedup_context: impl FnOnce(&Origin) -> SightingContext,
        context: impl FnOnce(&Origin) -> FirstContext,
        now: SystemTime,
        out: &mut Processed,
    ) -> Result<(), ParseError> {
        let ip = seen_address.ip;
        // Folded repeats (scaled mode) are counted after the first: the first record is built
        // as if they had come one by one, so both modes give the same records.
        let more = seen_address.count.saturating_sub(1);
        let seen = self
            .dedup
            .observe_in(ip, seen_address.seen_at, || dedup_context(&out.origin));
        IpDeduplicated { first: seen.first }.emit(&self.metrics);
        // A repeat sighting is looked up again only when remote lookups that got no
        // answer (budget, queue full, provider error) may be retried by now.
        let retry = !seen.first && self.options.remote && seen.sighting.take_due_retry(now);
        if !seen.first && !retry {
            let before = seen.sighting.count() - 1;
            if more > 0 {
                self.fold_repeats(&seen.sighting, more, seen_address.last_seen);
            }
            let count = seen.sighting.count();
            // Told at each power of two the count reaches (or passes, when folded).
            if let (Some(remote), true) = (
                &self.remote,
                Priority::sightings_order(count) > Priority::sightings_order(before),
            ) {
                remote.sighted(ip, count);
            }
            return Ok(());
        }
        let result = self.first_sighting(seen_address, &seen, context, now, out);
        if more > 0 {
            self.fold_repeats(&seen.sighting, more, seen_address.last_seen);
        }
        result
    }

    /// Counts folded repeats in the window (each a dedup hit, as in single mode).
    fn fold_repeats(&self, sighting: &Sighting, more: u64, last: SystemTime) {
        sighting.fold(more, last);
        RepeatsFolded { count: more }.emit(&self.metrics);
    }

    /// Local intel → score → record → lookup request for a first sighting or a due retry.
    fn first_sighting(
        &self,
        seen_address: &SeenAddress<'_>,
        seen: &crate::stages::dedup::Observation,
        context: impl FnOnce(&Origin) -> FirstContext,
        now: SystemTime,
        out: &mut Processed,
    ) -> Result<(), ParseError> {
        let ip = seen_address.ip;
        let mut local = self.local.lookup(ip, &self.metrics);
        if let Some(remote) = &self.remote {
            local.intel.extend(
                remote
                    .known_statuses(ip, now)
                    .into_iter()
                    .map(|(name, entry)| (name.to_owned(), entry)),
            );
        }
        // Remote providers fill `intel` later and score again the same way.
        let scored = self.options.scoring.score(&EvidenceInput {
            feed_matches: &local.matches,
            intel: &local.intel,
            threat: seen_address.threat,
            reporter: seen_address.reporter,
            sightings: seen.sighting.count(),
        });
        let matches = std::mem::take(&mut local.matches);
        let FirstContext {
            seen: first_seen_in,
            event_time,
            allowed,
        } = context(&out.origin);
        let mut threat_record =
            record::first_record(ip, first_seen_in, &seen.sighting, local, scored, now);
        threat_record.event_time = event_time;
        let publish = seen.first && threat_record.verdict >= self.options.min_verdict;
        if publish {
            threat_record.revision = seen
                .sighting
                .next_revision(threat_record.score, threat_record.verdict);
            match record::encode(&mut threat_record, &self.options.publication) {
                Ok(output) => out.outputs.push(output),
                Err(error) => return Err(ParseError::Encode(error.to_string())),
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
            allowed,
        };
        // Past the message's share the address waits for its next sighting: one message
        // naming 10,000 addresses must not hold 10,000 lookups (and their records).
        let over_share =
            self.options.remote && out.remote.len() >= self.options.max_lookups_per_message;
        if over_share {
            seen.sighting.retry_from(now);
        }
        // s2-state: delivered with the message's outputs (the input message in single mode,
        // the sightings message in scaled mode: the owner half writes it), before its offset
        // is stored. A due retry writes none: until its answers come, the state that
        // scheduled it holds.
        if self.options.changelog && seen.first {
            out.outputs.extend(crate::state::first_state(
                ip,
                &threat_record,
                &matches,
                seen_address.threat,
                seen_address.reporter,
                priority,
                &seen.sighting,
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
                threat: seen_address.threat.map(str::to_owned),
                reporter: seen_address.reporter.map(str::to_owned),
                sighting: seen.sighting.clone(),
                origin: out.origin.clone(),
            });
        }
        Ok(())
    }
}

/// One sighting of a public address as the owner half takes it: from an event in process
/// (single mode) or from a sightings message (scaled mode).
#[derive(Debug, Clone, Copy)]
struct SeenAddress<'a> {
    ip: IpAddr,
    /// The (first) message time.
    seen_at: SystemTime,
    /// The latest folded repeat's message time.
    last_seen: SystemTime,
    /// Sightings it stands for (≥ 1).
    count: u64,
    threat: Option<&'a str>,
    reporter: Option<&'a str>,
}

/// What a first record needs of its event beyond the address: built lazily.
struct FirstContext {
    seen: (Vec<Role>, Observed),
    /// The first event's own time (`event_time`), normalised.
    event_time: Option<String>,
    allowed: bool,
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
