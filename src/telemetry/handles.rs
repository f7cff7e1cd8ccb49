//! Label handles resolved once, so an event on the hot path costs a field access or a hash
//! lookup instead of `with_label_values` (label validation, label hashing, the vec's lock and a
//! clone of the child). [`Known`] holds the children of a closed label set by position;
//! [`Children`] and [`Children2`] cache the children of open sets (topics, formats, providers)
//! as their values turn up. Both resolve through the registered vec, so what they count is what
//! the registry gathers.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock, RwLock};

use prometheus::core::{MetricVec, MetricVecBuilder};
use prometheus::{CounterVec, HistogramVec, IntCounterVec, IntGaugeVec};

use crate::model::FilterReason;
use crate::model::PARSE_ERROR_KINDS;
use crate::model::{Role, Verdict};

/// A labelled metric family whose children are resolved by label values.
pub trait Family: Clone {
    /// One child: a counter, a gauge or a histogram.
    type Child: Clone;
    /// The child for `values` (one per label name), created when it does not exist yet.
    fn resolve(&self, values: &[&str]) -> Self::Child;
}

impl<T: MetricVecBuilder> Family for MetricVec<T> {
    type Child = T::M;

    fn resolve(&self, values: &[&str]) -> T::M {
        self.with_label_values(values)
    }
}

/// Resolved children by label value, shared by clones.
type Seen<C> = Arc<RwLock<HashMap<Box<str>, C>>>;

/// The children of a one-label family, resolved on first use of each value and kept (read-mostly:
/// a repeat value takes the read lock and one hash lookup). For open label sets.
#[derive(Clone)]
pub struct Children<F: Family> {
    family: F,
    seen: Seen<F::Child>,
}

impl<F: Family> Children<F> {
    /// A cache over `family`, empty.
    pub fn new(family: &F) -> Self {
        Children {
            family: family.clone(),
            seen: Arc::default(),
        }
    }

    /// Calls `f` with the child for `label`, resolving it the first time.
    pub fn with<R>(&self, label: &str, f: impl FnOnce(&F::Child) -> R) -> R {
        {
            let seen = self.seen.read().unwrap_or_else(|p| p.into_inner());
            if let Some(child) = seen.get(label) {
                return f(child);
            }
        }
        let child = self.family.resolve(&[label]);
        let mut seen = self.seen.write().unwrap_or_else(|p| p.into_inner());
        f(seen.entry(label.into()).or_insert(child))
    }
}

impl<F: Family> fmt::Debug for Children<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seen = self.seen.read().map(|s| s.len()).unwrap_or_default();
        f.debug_struct("Children").field("resolved", &seen).finish()
    }
}

/// The children of a two-label family, cached like [`Children`] (first label, then second).
#[derive(Clone)]
pub struct Children2<F: Family> {
    family: F,
    seen: Seen<HashMap<Box<str>, F::Child>>,
}

impl<F: Family> Children2<F> {
    /// A cache over `family`, empty.
    pub fn new(family: &F) -> Self {
        Children2 {
            family: family.clone(),
            seen: Arc::default(),
        }
    }

    /// Calls `f` with the child for `(first, second)`, resolving it the first time.
    pub fn with<R>(&self, first: &str, second: &str, f: impl FnOnce(&F::Child) -> R) -> R {
        {
            let seen = self.seen.read().unwrap_or_else(|p| p.into_inner());
            if let Some(child) = seen.get(first).and_then(|inner| inner.get(second)) {
                return f(child);
            }
        }
        let child = self.family.resolve(&[first, second]);
        let mut seen = self.seen.write().unwrap_or_else(|p| p.into_inner());
        let inner = seen.entry(first.into()).or_default();
        f(inner.entry(second.into()).or_insert(child))
    }
}

impl<F: Family> fmt::Debug for Children2<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seen = self
            .seen
            .read()
            .map(|s| s.values().map(HashMap::len).sum::<usize>())
            .unwrap_or_default();
        f.debug_struct("Children2")
            .field("resolved", &seen)
            .finish()
    }
}

/// The children of a one-label family for each value of a closed set, by position. Built
/// [`Known::eager`] (every child exists, and exports 0, from the start) or [`Known::lazy`] (a
/// child is created by the first event with its value, so the exported text is as it was with
/// `with_label_values`); either way a child is resolved once. A value outside the set still
/// counts, through a [`Children`] cache.
#[derive(Clone)]
pub struct Known<F: Family> {
    family: F,
    labels: Arc<[&'static str]>,
    slots: Arc<[OnceLock<F::Child>]>,
    other: Children<F>,
}

impl<F: Family> Known<F> {
    /// Children for `labels`, each resolved on its first use.
    pub fn lazy(family: &F, labels: impl IntoIterator<Item = &'static str>) -> Self {
        let labels: Arc<[&'static str]> = labels.into_iter().collect();
        Known {
            family: family.clone(),
            slots: labels.iter().map(|_| OnceLock::new()).collect(),
            labels,
            other: Children::new(family),
        }
    }

    /// Children for `labels`, all resolved now.
    pub fn eager(family: &F, labels: impl IntoIterator<Item = &'static str>) -> Self {
        let known = Known::lazy(family, labels);
        for index in 0..known.labels.len() {
            known.at(index);
        }
        known
    }

    /// The child for the value at `index` of the set. Panics when `index` is outside it.
    pub fn at(&self, index: usize) -> &F::Child {
        self.slots[index].get_or_init(|| self.family.resolve(&[self.labels[index]]))
    }

    /// Calls `f` with the child for `label`: a short scan of the set, else the cache.
    pub fn with<R>(&self, label: &str, f: impl FnOnce(&F::Child) -> R) -> R {
        match self.labels.iter().position(|known| *known == label) {
            Some(index) => f(self.at(index)),
            None => self.other.with(label, f),
        }
    }
}

impl<F: Family> fmt::Debug for Known<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Known")
            .field("labels", &self.labels)
            .field("other", &self.other)
            .finish()
    }
}

/// Position of `role` in [`Role::ALL`].
pub(crate) fn role_index(role: Role) -> usize {
    role as usize
}

/// Position of `reason` in [`FilterReason::ALL`].
pub(crate) fn filter_index(reason: FilterReason) -> usize {
    reason as usize
}

/// Position of `verdict` in [`Verdict::ALL`].
pub(crate) fn verdict_index(verdict: Verdict) -> usize {
    verdict as usize
}

/// DLQ reasons besides the parse-error kinds: a threat record the broker refused.
pub(crate) const DLQ_PUBLISH_FAILED: &str = "publish_failed";

/// The hot-path handles of [`super::Metrics`], each over the vec of the same name there.
#[derive(Clone, Debug)]
pub struct Handles {
    /// `events_consumed_total{topic}`.
    pub events_consumed: Children<IntCounterVec>,
    /// `events_parsed_total{format}`.
    pub events_parsed: Children<IntCounterVec>,
    /// `parse_errors_total{kind}`, by [`PARSE_ERROR_KINDS`] (lazy).
    pub parse_errors: Known<IntCounterVec>,
    /// `parse_fallbacks_total{format,reason}`.
    pub parse_fallbacks: Children2<IntCounterVec>,
    /// `ips_extracted_total{role}`, by [`role_index`] (eager).
    pub ips_extracted: Known<IntCounterVec>,
    /// `ips_filtered_total{reason}`, by [`filter_index`] (eager).
    pub ips_filtered: Known<IntCounterVec>,
    /// `feed_matches_total{feed}`.
    pub feed_matches: Children<IntCounterVec>,
    /// `records_published_total{verdict}`, by [`verdict_index`] (eager).
    pub records_published: Known<IntCounterVec>,
    /// `records_withheld_total{verdict}`, by [`verdict_index`] (lazy).
    pub records_withheld: Known<IntCounterVec>,
    /// `dlq_messages_total{reason}`: [`PARSE_ERROR_KINDS`], then [`DLQ_PUBLISH_FAILED`] (lazy).
    pub dlq_messages: Known<IntCounterVec>,
    /// `produce_errors_total{kind}`.
    pub produce_errors: Children<IntCounterVec>,
    /// `kafka_errors_total{kind}`.
    pub kafka_errors: Children<IntCounterVec>,
    /// `backpressure_seconds_total{stage}`.
    pub backpressure_seconds: Children<CounterVec>,
    /// `enrich_requests_total{provider,status}`.
    pub enrich_requests: Children2<IntCounterVec>,
    /// `enrich_duration_seconds{provider}`.
    pub enrich_duration: Children<HistogramVec>,
    /// `enrich_skipped_total{provider,reason}`.
    pub enrich_skipped: Children2<IntCounterVec>,
    /// `enrich_cache_hits_total{provider}`.
    pub enrich_cache_hits: Children<IntCounterVec>,
    /// `provider_quota_remaining{provider}`.
    pub provider_quota_remaining: Children<IntGaugeVec>,
}

/// The registered vecs [`Handles`] are built over.
pub(super) struct Vecs<'a> {
    pub(super) events_consumed: &'a IntCounterVec,
    pub(super) events_parsed: &'a IntCounterVec,
    pub(super) parse_errors: &'a IntCounterVec,
    pub(super) parse_fallbacks: &'a IntCounterVec,
    pub(super) ips_extracted: &'a IntCounterVec,
    pub(super) ips_filtered: &'a IntCounterVec,
    pub(super) feed_matches: &'a IntCounterVec,
    pub(super) records_published: &'a IntCounterVec,
    pub(super) records_withheld: &'a IntCounterVec,
    pub(super) dlq_messages: &'a IntCounterVec,
    pub(super) produce_errors: &'a IntCounterVec,
    pub(super) kafka_errors: &'a IntCounterVec,
    pub(super) backpressure_seconds: &'a CounterVec,
    pub(super) enrich_requests: &'a IntCounterVec,
    pub(super) enrich_duration: &'a HistogramVec,
    pub(super) enrich_skipped: &'a IntCounterVec,
    pub(super) enrich_cache_hits: &'a IntCounterVec,
    pub(super) provider_quota_remaining: &'a IntGaugeVec,
}

impl Handles {
    /// Resolves the closed sets that export 0 from the start; the rest resolve on first use.
    pub(super) fn new(v: Vecs<'_>) -> Self {
        let dlq_reasons = PARSE_ERROR_KINDS.into_iter().chain([DLQ_PUBLISH_FAILED]);
        Handles {
            events_consumed: Children::new(v.events_consumed),
            events_parsed: Children::new(v.events_parsed),
            parse_errors: Known::lazy(v.parse_errors, PARSE_ERROR_KINDS),
            parse_fallbacks: Children2::new(v.parse_fallbacks),
            ips_extracted: Known::eager(v.ips_extracted, Role::ALL.map(Role::label)),
            ips_filtered: Known::eager(v.ips_filtered, FilterReason::ALL.map(FilterReason::label)),
            feed_matches: Children::new(v.feed_matches),
            records_published: Known::eager(v.records_published, Verdict::ALL.map(Verdict::label)),
            records_withheld: Known::lazy(v.records_withheld, Verdict::ALL.map(Verdict::label)),
            dlq_messages: Known::lazy(v.dlq_messages, dlq_reasons),
            produce_errors: Children::new(v.produce_errors),
            kafka_errors: Children::new(v.kafka_errors),
            backpressure_seconds: Children::new(v.backpressure_seconds),
            enrich_requests: Children2::new(v.enrich_requests),
            enrich_duration: Children::new(v.enrich_duration),
            enrich_skipped: Children2::new(v.enrich_skipped),
            enrich_cache_hits: Children::new(v.enrich_cache_hits),
            provider_quota_remaining: Children::new(v.provider_quota_remaining),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{IntCounter, Opts};

    fn vec(labels: &[&str]) -> IntCounterVec {
        IntCounterVec::new(Opts::new("t", "t"), labels).unwrap()
    }

    #[test]
    fn indices_follow_the_all_arrays() {
        for (i, role) in Role::ALL.into_iter().enumerate() {
            assert_eq!(role_index(role), i);
        }
        for (i, reason) in FilterReason::ALL.into_iter().enumerate() {
            assert_eq!(filter_index(reason), i);
        }
        for (i, verdict) in Verdict::ALL.into_iter().enumerate() {
            assert_eq!(verdict_index(verdict), i);
        }
    }

    #[test]
    fn children_resolve_once_and_share_the_vec_child() {
        let v = vec(&["topic"]);
        let children = Children::new(&v);
        let copy = children.clone();
        children.with("a", IntCounter::inc);
        copy.with("a", |c| c.inc_by(2));
        children.with("b", IntCounter::inc);
        assert_eq!(v.with_label_values(&["a"]).get(), 3);
        assert_eq!(v.with_label_values(&["b"]).get(), 1);
        assert_eq!(children.seen.read().unwrap().len(), 2);
    }

    #[test]
    fn two_label_children_keep_pairs_apart() {
        let v = vec(&["provider", "status"]);
        let children = Children2::new(&v);
        children.with("p", "ok", IntCounter::inc);
        children.with("p", "ok", IntCounter::inc);
        children.with("p", "timeout", IntCounter::inc);
        children.with("q", "ok", IntCounter::inc);
        assert_eq!(v.with_label_values(&["p", "ok"]).get(), 2);
        assert_eq!(v.with_label_values(&["p", "timeout"]).get(), 1);
        assert_eq!(v.with_label_values(&["q", "ok"]).get(), 1);
    }

    #[test]
    fn known_lazy_exports_nothing_until_used_and_counts_strangers() {
        let v = vec(&["kind"]);
        let known = Known::lazy(&v, ["x", "y"]);
        assert!(prometheus::core::Collector::collect(&v)[0]
            .get_metric()
            .is_empty());
        known.at(1).inc();
        known.with("x", IntCounter::inc);
        known.with("z", IntCounter::inc);
        let eager = Known::eager(&vec(&["kind"]), ["x", "y"]);
        assert!(eager.slots.iter().all(|s| s.get().is_some()));
        assert_eq!(v.with_label_values(&["y"]).get(), 1);
        assert_eq!(v.with_label_values(&["x"]).get(), 1);
        assert_eq!(v.with_label_values(&["z"]).get(), 1);
    }
}
