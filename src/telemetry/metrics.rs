//! The Prometheus metrics of design §7, registered against a passed [`Registry`] (no global
//! state, so tests build their own). The children the hot path counts are resolved once, in
//! [`Metrics::handles`] (see [`super::handles`]), so an event does no `with_label_values`. No IP
//! address is ever a label value.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use super::handles::{Handles, Vecs};

/// Namespace of every metric.
pub const NAMESPACE: &str = "threatsift";

/// Every metric the daemon exports.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// `events_consumed_total{topic}`: Kafka messages received.
    pub events_consumed: IntCounterVec,
    /// `events_parsed_total{format}`: lines parsed into events.
    pub events_parsed: IntCounterVec,
    /// `parse_errors_total{kind}`: lines that could not be parsed.
    pub parse_errors: IntCounterVec,
    /// `parse_fallbacks_total{format,reason}`: lines a format rejected that the IP scanner read.
    pub parse_fallbacks: IntCounterVec,
    /// `events_without_ip_total`: parsed events with no public address to enrich.
    pub events_without_ip: IntCounter,
    /// `ips_extracted_total{role}`: valid addresses found in events.
    pub ips_extracted: IntCounterVec,
    /// `ip_tokens_invalid_total`: address fields whose value was not an address.
    pub ip_tokens_invalid: IntCounter,
    /// `ips_filtered_total{reason}`: addresses never enriched, by reason.
    pub ips_filtered: IntCounterVec,
    /// `dedup_hits_total`: sightings of an address already in the window.
    pub dedup_hits: IntCounter,
    /// `dedup_misses_total`: first sightings.
    pub dedup_misses: IntCounter,
    /// `cache_entries{cache}`: entries held per cache.
    pub cache_entries: IntGaugeVec,
    /// `feed_entries{feed}`: prefixes loaded per feed.
    pub feed_entries: IntGaugeVec,
    /// `feed_reloads_total{result}`: feed reload attempts.
    pub feed_reloads: IntCounterVec,
    /// `reports_written_total{result}`: scheduled reports written (`ok`) or failed (`error`).
    pub reports_written: IntCounterVec,
    /// `report_records_dropped_total`: published records left out of a scheduled report.
    pub report_records_dropped: IntCounter,
    /// `feed_matches_total{feed}`: first sightings listed by a feed.
    pub feed_matches: IntCounterVec,
    /// `enrich_requests_total{provider,status}`: provider lookups by outcome.
    pub enrich_requests: IntCounterVec,
    /// `enrich_duration_seconds{provider}`: provider lookup latency.
    pub enrich_duration: HistogramVec,
    /// `provider_quota_remaining{provider}`: requests left in the provider's budget.
    pub provider_quota_remaining: IntGaugeVec,
    /// `provider_up{provider}`: 1 while a provider is usable.
    pub provider_up: IntGaugeVec,
    /// `remote_queue_depth`: addresses waiting for remote providers.
    pub remote_queue_depth: IntGauge,
    /// `enrich_skipped_total{provider,reason}`: lookups not made (budget, queue full, provider
    /// down, circuit open, address not covered).
    pub enrich_skipped: IntCounterVec,
    /// `enrich_cache_hits_total{provider}`: lookups answered from the provider's answer cache.
    pub enrich_cache_hits: IntCounterVec,
    /// `record_revisions_total`: updated records published because an answer changed them.
    pub record_revisions: IntCounter,
    /// `records_published_total{verdict}`: threat records delivered.
    pub records_published: IntCounterVec,
    /// `records_withheld_total{verdict}`: records below `publish.min_verdict`.
    pub records_withheld: IntCounterVec,
    /// `dlq_messages_total{reason}`: DLQ entries delivered.
    pub dlq_messages: IntCounterVec,
    /// `produce_errors_total{kind}`: failed produce attempts (retried unless permanent).
    pub produce_errors: IntCounterVec,
    /// `messages_completed_total`: input messages whose outputs are all delivered.
    pub messages_completed: IntCounter,
    /// `offsets_stored_total`: offsets handed to the consumer for commit.
    pub offsets_stored: IntCounter,
    /// `offsets_committed_total`: successful offset commits.
    pub offsets_committed: IntCounter,
    /// `consumer_lag_messages{topic,partition}`: from librdkafka statistics.
    pub consumer_lag: IntGaugeVec,
    /// `event_to_record_seconds`: consumption to delivery of a message's outputs.
    pub event_to_record: Histogram,
    /// `backpressure_seconds_total{stage}`: time a stage waited on a full downstream channel.
    pub backpressure_seconds: prometheus::CounterVec,
    /// `rebalances_total{kind}`: partition assignments and revocations.
    pub rebalances: IntCounterVec,
    /// `kafka_errors_total{kind}`: consumer and client errors.
    pub kafka_errors: IntCounterVec,
    /// `allowlist_entries`: entries of the allow-list file that match now (unexpired).
    pub allowlist_entries: IntGauge,
    /// `allowlist_reloads_total{result}`: allow-list file reloads (`ok`, `error`).
    pub allowlist_reloads: IntCounterVec,
    /// Children of the vecs above resolved once, for the events on the hot path.
    pub handles: Handles,
    /// Scaled mode (s1-scaled): sightings, owned partitions, budget shares.
    pub scale: ScaleMetrics,
    // --- s2-state: the warm start from the state changelog.
    /// `warm_start_records_total`: state records read at warm starts.
    pub warm_start_records: IntCounter,
    /// `warm_start_lookups_requeued_total`: addresses queued again for pending lookups.
    pub warm_start_lookups_requeued: IntCounter,
    /// `warm_start_seconds`: how long the latest warm start took (read and restore).
    pub warm_start_seconds: prometheus::Gauge,
}

impl Metrics {
    /// Registers every metric with `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help).namespace(NAMESPACE), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::with_opts(Opts::new(name, help).namespace(NAMESPACE))?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help).namespace(NAMESPACE), labels)?;
            registry.register(Box::new(g.clone()))?;
            Ok::<_, prometheus::Error>(g)
        };
        let events_consumed = counter_vec(
            "events_consumed_total",
            "Kafka messages received",
            &["topic"],
        )?;
        let events_parsed = counter_vec(
            "events_parsed_total",
            "Lines parsed into events",
            &["format"],
        )?;
        let parse_errors = counter_vec(
            "parse_errors_total",
            "Lines that could not be parsed (each went to the DLQ)",
            &["kind"],
        )?;
        let parse_fallbacks = counter_vec(
            "parse_fallbacks_total",
            "Lines a format claimed but rejected, read by the IP scanner because they hold addresses",
            &["format", "reason"],
        )?;
        let ips_extracted = counter_vec(
            "ips_extracted_total",
            "Valid addresses found in events",
            &["role"],
        )?;
        let ips_filtered = counter_vec(
            "ips_filtered_total",
            "Addresses never enriched, by reason",
            &["reason"],
        )?;
        let feed_matches = counter_vec(
            "feed_matches_total",
            "First sightings listed by a feed",
            &["feed"],
        )?;
        let enrich_requests = counter_vec(
            "enrich_requests_total",
            "Provider lookups by outcome",
            &["provider", "status"],
        )?;
        let enrich_duration = {
            let h = HistogramVec::new(
                HistogramOpts::new("enrich_duration_seconds", "Provider lookup latency")
                    .namespace(NAMESPACE)
                    .buckets(vec![
                        0.0001, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0,
                    ]),
                &["provider"],
            )?;
            registry.register(Box::new(h.clone()))?;
            h
        };
        let provider_quota_remaining = gauge_vec(
            "provider_quota_remaining",
            "Requests left in the provider's budget",
            &["provider"],
        )?;
        let enrich_skipped = counter_vec(
            "enrich_skipped_total",
            "Provider lookups not made, by reason",
            &["provider", "reason"],
        )?;
        let enrich_cache_hits = counter_vec(
            "enrich_cache_hits_total",
            "Provider lookups answered from the answer cache",
            &["provider"],
        )?;
        let records_published = counter_vec(
            "records_published_total",
            "Threat records delivered",
            &["verdict"],
        )?;
        let records_withheld = counter_vec(
            "records_withheld_total",
            "Records below publish.min_verdict, not published",
            &["verdict"],
        )?;
        let dlq_messages = counter_vec("dlq_messages_total", "DLQ entries delivered", &["reason"])?;
        let produce_errors = counter_vec(
            "produce_errors_total",
            "Failed produce attempts (retried unless permanent)",
            &["kind"],
        )?;
        let backpressure_seconds = {
            let c = prometheus::CounterVec::new(
                Opts::new(
                    "backpressure_seconds_total",
                    "Time a stage waited on a full downstream channel",
                )
                .namespace(NAMESPACE),
                &["stage"],
            )?;
            registry.register(Box::new(c.clone()))?;
            c
        };
        let kafka_errors = counter_vec(
            "kafka_errors_total",
            "Consumer and client errors",
            &["kind"],
        )?;
        let handles = Handles::new(Vecs {
            events_consumed: &events_consumed,
            events_parsed: &events_parsed,
            parse_errors: &parse_errors,
            parse_fallbacks: &parse_fallbacks,
            ips_extracted: &ips_extracted,
            ips_filtered: &ips_filtered,
            feed_matches: &feed_matches,
            records_published: &records_published,
            records_withheld: &records_withheld,
            dlq_messages: &dlq_messages,
            produce_errors: &produce_errors,
            kafka_errors: &kafka_errors,
            backpressure_seconds: &backpressure_seconds,
            enrich_requests: &enrich_requests,
            enrich_duration: &enrich_duration,
            enrich_skipped: &enrich_skipped,
            enrich_cache_hits: &enrich_cache_hits,
            provider_quota_remaining: &provider_quota_remaining,
        });
        let metrics = Metrics {
            events_consumed,
            events_parsed,
            parse_errors,
            parse_fallbacks,
            events_without_ip: counter(
                "events_without_ip_total",
                "Parsed events with no address to enrich",
            )?,
            ips_extracted,
            ip_tokens_invalid: counter(
                "ip_tokens_invalid_total",
                "Address fields whose value was not an IP address",
            )?,
            ips_filtered,
            dedup_hits: counter("dedup_hits_total", "Sightings of an address already seen")?,
            dedup_misses: counter("dedup_misses_total", "First sightings of an address")?,
            cache_entries: gauge_vec("cache_entries", "Entries held per cache", &["cache"])?,
            feed_entries: gauge_vec("feed_entries", "Prefixes loaded per feed", &["feed"])?,
            feed_reloads: counter_vec(
                "feed_reloads_total",
                "Feed reload attempts by result",
                &["result"],
            )?,
            reports_written: counter_vec(
                "reports_written_total",
                "Scheduled reports by result",
                &["result"],
            )?,
            report_records_dropped: counter(
                "report_records_dropped_total",
                "Published records left out of a scheduled report",
            )?,
            feed_matches,
            enrich_requests,
            enrich_duration,
            provider_quota_remaining,
            provider_up: gauge_vec("provider_up", "1 while a provider is usable", &["provider"])?,
            remote_queue_depth: {
                let g = IntGauge::with_opts(
                    Opts::new(
                        "remote_queue_depth",
                        "Addresses waiting for remote providers",
                    )
                    .namespace(NAMESPACE),
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            enrich_skipped,
            enrich_cache_hits,
            record_revisions: counter(
                "record_revisions_total",
                "Updated records published because a provider answer changed them",
            )?,
            records_published,
            records_withheld,
            dlq_messages,
            produce_errors,
            messages_completed: counter(
                "messages_completed_total",
                "Input messages whose outputs are all delivered",
            )?,
            offsets_stored: counter(
                "offsets_stored_total",
                "Offsets handed to the consumer for commit",
            )?,
            offsets_committed: counter("offsets_committed_total", "Successful offset commits")?,
            consumer_lag: gauge_vec(
                "consumer_lag_messages",
                "Consumer lag from librdkafka statistics",
                &["topic", "partition"],
            )?,
            event_to_record: {
                let h = Histogram::with_opts(
                    HistogramOpts::new(
                        "event_to_record_seconds",
                        "From consumption to delivery of a message's outputs",
                    )
                    .namespace(NAMESPACE)
                    .buckets(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0]),
                )?;
                registry.register(Box::new(h.clone()))?;
                h
            },
            backpressure_seconds,
            rebalances: counter_vec(
                "rebalances_total",
                "Partition assignments and revocations",
                &["kind"],
            )?,
            kafka_errors,
            allowlist_entries: {
                let g = IntGauge::with_opts(
                    Opts::new(
                        "allowlist_entries",
                        "Allow-list entries that match now (unexpired)",
                    )
                    .namespace(NAMESPACE),
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            allowlist_reloads: counter_vec(
                "allowlist_reloads_total",
                "Allow-list file reloads by result",
                &["result"],
            )?,
            handles,
            scale: ScaleMetrics::new(registry)?,
            // --- s2-state
            warm_start_records: counter(
                "warm_start_records_total",
                "State records read from the state topic at warm starts",
            )?,
            warm_start_lookups_requeued: counter(
                "warm_start_lookups_requeued_total",
                "Addresses queued again at warm starts for lookups still pending",
            )?,
            warm_start_seconds: {
                let g = prometheus::Gauge::with_opts(
                    Opts::new(
                        "warm_start_seconds",
                        "How long the latest warm start took to read and restore the state topic",
                    )
                    .namespace(NAMESPACE),
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
        };
        metrics.touch_fixed_children();
        Ok(metrics)
    }

    /// Creates the children of fixed label sets so they export 0 before the first event (roles,
    /// filter reasons and published verdicts are created by [`Handles::new`]).
    fn touch_fixed_children(&self) {
        self.cache_entries.with_label_values(&["dedup"]);
        self.remote_queue_depth.set(0);
    }

    /// Renders the registry in the text exposition format.
    pub fn render(registry: &Registry) -> String {
        use prometheus::Encoder;
        let mut buf = Vec::new();
        let encoder = prometheus::TextEncoder::new();
        if encoder.encode(&registry.gather(), &mut buf).is_err() {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

// s1-scaled: the metrics of scaled mode.
/// `sightings_published_total`, `sightings_folded_total`, `owned_partitions`,
/// `budget_share{provider,kind}`.
#[derive(Clone, Debug)]
pub struct ScaleMetrics {
    /// `sightings_published_total`: sightings made by the ingest half (scaled mode).
    pub sightings_published: IntCounter,
    /// `sightings_folded_total`: repeats folded into an earlier sighting of their batch.
    pub sightings_folded: IntCounter,
    /// `owned_partitions`: partitions of the sightings topic this daemon owns.
    pub owned_partitions: IntGauge,
    /// `budget_share{provider,kind=minute|day}`: lookups this daemon may spend (−1: no limit).
    pub budget_share: IntGaugeVec,
}

impl ScaleMetrics {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str| {
            let c = IntCounter::with_opts(Opts::new(name, help).namespace(NAMESPACE))?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        let owned_partitions = IntGauge::with_opts(
            Opts::new(
                "owned_partitions",
                "Partitions of the sightings topic this daemon owns (scaled mode)",
            )
            .namespace(NAMESPACE),
        )?;
        registry.register(Box::new(owned_partitions.clone()))?;
        let budget_share = IntGaugeVec::new(
            Opts::new(
                "budget_share",
                "Provider lookups this daemon may spend per minute or day (-1: no limit)",
            )
            .namespace(NAMESPACE),
            &["provider", "kind"],
        )?;
        registry.register(Box::new(budget_share.clone()))?;
        Ok(ScaleMetrics {
            sightings_published: counter(
                "sightings_published_total",
                "Sightings sent to the sightings topic (scaled mode)",
            )?,
            sightings_folded: counter(
                "sightings_folded_total",
                "Repeats of an address folded into an earlier sighting of their batch",
            )?,
            owned_partitions,
            budget_share,
        })
    }
}
