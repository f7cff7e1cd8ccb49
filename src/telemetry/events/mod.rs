//! Typed internal events, named `<Noun><Verb>[Error]`. Each `emit` updates the metric and writes
//! the log line together. Per-event outcomes log at `debug`; errors that an operator must see
//! log at `warn`, rate-limited per kind, or at `error` when data could not be delivered.
//!
//! Events on the hot path count through [`Metrics::handles`](super::Metrics::handles), whose
//! children are resolved once; rare ones (rebalances, feed loads, reports, provider state) call
//! `with_label_values` directly. The families live in `kafka`, `pipeline`, `intel` and
//! `report`; every event is re-exported here.

mod intel;
mod kafka;
mod pipeline;
mod report;
mod scale;
mod state;
mod withdraw;

pub(crate) use intel::{
    AllowlistEntryAdded, AllowlistLoaded, AllowlistReloadFinished, AllowlistSampled, FeedLoaded,
    FeedMatched, FeedReloadFinished, ProviderBudgetWaiting, ProviderCacheHit, ProviderDown,
    ProviderRequestError, ProviderRequested, ProviderSkipped, ProviderState, RecordRevised,
    RemoteQueueChanged, RevisionNotEncoded,
};
pub(crate) use kafka::{
    ConsumerLagSampled, KafkaClientError, OffsetStored, OffsetsCommitted, OutputLostError,
    PartitionsRebalanced, ProduceFailedError, ProducerFatalRaised,
};
pub(crate) use pipeline::{
    BackpressureWaited, CacheSampled, DlqEntryPublished, EventWithoutIp, IpDeduplicated,
    IpFiltered, IpsExtracted, LineFellBack, LineParseError, LineParsed, MessageCompleted,
    MessageConsumed, RecordPublished, RecordWithheld, RepeatsFolded,
};
pub(crate) use report::{ReportNarrativeFailed, ReportRecordDropped, ScheduledReportWritten};
pub(crate) use scale::{BudgetShareSet, OwnedPartitionsChanged, SightingsMade};
pub(crate) use state::WarmStartFinished;
pub(crate) use withdraw::{
    AddressReevaluated, BlocklistServed, PublishedIndexSampled, ReevaluationFinished,
    WithdrawMetrics, WithdrawalNotEncoded, WithdrawalPublished,
};

#[cfg(test)]
pub(crate) mod tests {
    use prometheus::proto::MetricType;
    use prometheus::Registry;

    use crate::telemetry::metrics::NAMESPACE;
    use crate::telemetry::Metrics;

    /// A fresh registry and the metrics registered with it.
    pub(crate) fn metrics() -> (Registry, Metrics) {
        let registry = Registry::new();
        let metrics = Metrics::new(&registry).unwrap();
        (registry, metrics)
    }

    /// The value gathered from `registry` for `name` (without the namespace) with exactly
    /// `labels`: a counter's or gauge's value, a histogram's sample count. `None` when no such
    /// child exists.
    pub(crate) fn sample(registry: &Registry, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let name = format!("{NAMESPACE}_{name}");
        let family = registry.gather().into_iter().find(|f| f.name() == name)?;
        let kind = family.get_field_type();
        let metric = family.get_metric().iter().find(|m| {
            let got: Vec<_> = m
                .get_label()
                .iter()
                .map(|l| (l.name(), l.value()))
                .collect();
            got.len() == labels.len() && labels.iter().all(|want| got.contains(want))
        })?;
        Some(match kind {
            MetricType::COUNTER => metric.get_counter().get_value(),
            MetricType::GAUGE => metric.get_gauge().get_value(),
            MetricType::HISTOGRAM => metric.get_histogram().get_sample_count() as f64,
            other => panic!("{name}: unexpected type {other:?}"),
        })
    }

    #[test]
    fn a_fresh_registry_exports_what_it_did_before_the_first_event() {
        let (registry, _m) = metrics();
        let text = Metrics::render(&registry);
        let labelled: Vec<_> = text
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains('{') && !l.contains("_bucket{"))
            .map(|l| l.split('{').next().unwrap())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(
            labelled,
            [
                "threatsift_cache_entries",
                "threatsift_ips_extracted_total",
                "threatsift_ips_filtered_total",
                "threatsift_records_published_total",
            ]
        );
    }
}
