//! Remote: the background stage after publish (design §1). Remote providers are asked about
//! addresses in a bounded, prioritised queue per provider; when an answer raises an address's
//! score, an updated record is published under the same key with the next revision.
//!
//! * In: [`RemoteJob`]s, one per address seen for the first time in the dedup window (or seen
//!   again once a lookup that got no answer may be retried), offered only after the address's
//!   first record was delivered, so a revision can never overtake it.
//! * Order: each provider's queue hands out the address that matters most first: already
//!   suspicious from local intelligence (feeds, vendor threat events, the Talos list), then
//!   most sightings (raised while waiting), then allowed traffic before denied, then oldest.
//! * Out: revised records through a [`RevisionSink`] (the output topic in the daemon), one at a
//!   time per address, published only when an `ok` answer raises the score above the last
//!   published revision's and the verdict reaches `publish.min_verdict`.
//! * Dropped and counted, never silently: when a queue is full the lowest-priority address is
//!   answered `skipped` (`enrich_skipped_total{reason="queue_full"}`) and retried when seen
//!   again; lookups the provider's budget refuses are `skipped` with the reason (see
//!   [`crate::remote::slot`]). Queued lookups not started when the daemon stops are lost with
//!   the process: the published record keeps `pending` for them.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::intel::feeds::FeedMatch;
use crate::model::Origin;
use crate::model::{rfc3339, Network, ProviderIntel, ProviderStatus, ThreatRecord, Verdict};
use crate::model::{Output, OutputKind};
use crate::remote::slot::{Admission, Outcome, Patience, ProviderSlot};
use crate::stages::dedup::Sighting;
use crate::stages::score::{EvidenceInput, ScoringModel};
use crate::telemetry::events::{
    ProviderRequestError, ProviderSkipped, RecordRevised, RemoteQueueChanged,
};
use crate::telemetry::Metrics;

/// Lookups in flight per provider.
pub const LOOKUPS_IN_FLIGHT: usize = 4;

/// Where revised records go.
pub trait RevisionSink: Send + Sync {
    /// Publishes one revised record; returns when it is delivered (or given up as the producer
    /// decides), so that revisions of one address go out in order.
    fn publish(&self, output: Output, origin: Origin) -> BoxFuture<'_, ()>;
}

/// A sink that publishes nothing (one-shot `enrich`, which prints the final record).
#[derive(Debug, Default)]
pub struct NoRevisions;

impl RevisionSink for NoRevisions {
    fn publish(&self, _output: Output, _origin: Origin) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// Queue order: higher is asked first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Priority {
    /// Suspicious or worse from local intelligence alone.
    pub locally_suspicious: bool,
    /// Sightings in the window, as ⌊log2⌋+1 (1, 2–3, 4–7, …): raised while the address waits
    /// (see [`RemoteStage::sighted`]), so the most-seen addresses move up.
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

/// An address's record while remote answers come in.
#[derive(Debug)]
pub struct Tracked {
    /// The current record (the revision last built, published or not).
    pub record: ThreatRecord,
    /// Local evidence, kept to score again as answers arrive.
    pub feed_matches: Vec<FeedMatch>,
    /// The vendor's threat name, when the event was a detection.
    pub threat: Option<String>,
    /// Product or vendor that reported the event.
    pub reporter: Option<String>,
    /// The dedup window's state of the address (sightings, revisions).
    pub sighting: Arc<Sighting>,
    /// The message the first record came from (for a DLQ entry if a revision is refused).
    pub origin: Origin,
    outstanding: usize,
    retry_at: Option<SystemTime>,
}

impl Tracked {
    /// A record waiting for remote answers.
    pub fn new(
        record: ThreatRecord,
        feed_matches: Vec<FeedMatch>,
        threat: Option<String>,
        reporter: Option<String>,
        sighting: Arc<Sighting>,
        origin: Origin,
    ) -> Self {
        Tracked {
            record,
            feed_matches,
            threat,
            reporter,
            sighting,
            origin,
            outstanding: 0,
            retry_at: None,
        }
    }
}

/// One address waiting for remote providers.
#[derive(Debug, Clone)]
pub struct RemoteJob {
    /// The address.
    pub ip: IpAddr,
    /// Its place in the queues.
    pub priority: Priority,
    /// Its record, shared by every provider's lookup.
    pub tracked: Arc<tokio::sync::Mutex<Tracked>>,
}

/// Scoring and publishing rules the stage applies to every answer.
#[derive(Debug, Clone)]
pub struct RevisionRules {
    /// The scoring model (the same one the processor uses).
    pub scoring: ScoringModel,
    /// Lowest verdict published.
    pub min_verdict: Verdict,
}

/// Folds one provider's outcome into the record. An `ok` answer is scored again (with the
/// sightings so far); the revised record is returned for publishing when its score is higher
/// than the last published revision's and the verdict reaches the publish threshold.
/// Any other status is recorded and publishes nothing. Pure apart from the sighting's
/// revision counter.
pub fn apply_outcome(
    tracked: &mut Tracked,
    provider: &str,
    outcome: Outcome,
    rules: &RevisionRules,
    now: SystemTime,
) -> Option<Output> {
    if let Some(network) = &outcome.network {
        merge_network(&mut tracked.record.network, network);
    }
    if let Some(at) = outcome.retry_at {
        tracked.retry_at = Some(tracked.retry_at.map_or(at, |t| t.min(at)));
    }
    let answered = outcome.intel.status == ProviderStatus::Ok;
    tracked
        .record
        .intel
        .insert(provider.to_owned(), outcome.intel);
    if !answered {
        // Not evidence: the status is kept for the next revision, and nothing is scored or
        // published because of it (not even new sightings).
        return None;
    }
    let sighting = &tracked.sighting;
    let scored = rules.scoring.score(&EvidenceInput {
        feed_matches: &tracked.feed_matches,
        intel: &tracked.record.intel,
        threat: tracked.threat.as_deref(),
        reporter: tracked.reporter.as_deref(),
        sightings: sighting.count(),
    });
    let record = &mut tracked.record;
    let assessment = scored.assessment;
    record.score = assessment.score;
    record.verdict = assessment.verdict;
    record.severity = assessment.severity;
    record.indicator = assessment.indicator;
    record.reasons = scored.reasons;
    record.sightings = sighting.count();
    record.last_seen = rfc3339(sighting.last_seen());
    // Published only when the evidence grew past what consumers last saw: a retry job starts
    // from the local evidence again, and its first answers must not publish a lower score.
    let rises = sighting
        .published()
        .is_none_or(|(score, _)| record.score > score);
    if record.verdict < rules.min_verdict || !rises {
        return None;
    }
    record.revision = sighting.next_revision(record.score, record.verdict);
    record.generated_at = rfc3339(now);
    Some(Output {
        kind: OutputKind::Record(record.verdict),
        key: Some(record.ip.clone().into_bytes()),
        payload: serde_json::to_vec(&*record).unwrap_or_default(),
    })
}

/// Fills the fields `into` does not know yet; what an earlier source said is kept. The AS
/// number and its organisation go together, from the first source that has a number (an
/// organisation named without a number, like an RDAP registrant, gives way to it), so a
/// record never pairs one source's AS number with another's organisation.
pub fn merge_network(into: &mut Network, from: &Network) {
    fn fill<T: Clone>(slot: &mut Option<T>, value: &Option<T>) {
        if slot.is_none() {
            slot.clone_from(value);
        }
    }
    if into.asn.is_none() && from.asn.is_some() {
        into.asn = from.asn;
        into.as_org.clone_from(&from.as_org);
    } else if into.asn.is_none() {
        fill(&mut into.as_org, &from.as_org);
    }
    fill(&mut into.country, &from.country);
    fill(&mut into.rir, &from.rir);
    fill(&mut into.cidr, &from.cidr);
}

type QueueKey = (Priority, Reverse<u64>);

/// One provider's waiting addresses: highest priority first, oldest first among equals.
#[derive(Debug, Default)]
struct Waiting {
    ordered: BTreeMap<QueueKey, RemoteJob>,
    /// Where each address is in `ordered`.
    keys: HashMap<IpAddr, QueueKey>,
}

impl Waiting {
    fn insert(&mut self, key: QueueKey, job: RemoteJob) {
        self.keys.insert(job.ip, key);
        self.ordered.insert(key, job);
    }

    fn pop_highest(&mut self) -> Option<(QueueKey, RemoteJob)> {
        let (key, job) = self.ordered.pop_last()?;
        self.keys.remove(&job.ip);
        Some((key, job))
    }

    fn pop_lowest(&mut self) -> Option<RemoteJob> {
        let (_, job) = self.ordered.pop_first()?;
        self.keys.remove(&job.ip);
        Some(job)
    }

    /// Moves `ip` up to `order` of sightings, if it waits with a lower one.
    fn raise(&mut self, ip: IpAddr, order: u8) {
        let Some(key) = self.keys.get(&ip).copied() else {
            return;
        };
        if key.0.sightings_order >= order {
            return;
        }
        if let Some(mut job) = self.ordered.remove(&key) {
            job.priority.sightings_order = order;
            let raised = (job.priority, key.1);
            self.insert(raised, job);
        }
    }

    fn len(&self) -> usize {
        self.ordered.len()
    }
}

#[derive(Debug, Default)]
struct ProviderQueue {
    entries: Mutex<Waiting>,
    ready: Notify,
}

impl ProviderQueue {
    fn entries(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The remote stage: one slot and one queue per enabled remote provider.
pub struct RemoteStage {
    slots: Vec<Arc<ProviderSlot>>,
    queues: Vec<Arc<ProviderQueue>>,
    capacity: usize,
    rules: RevisionRules,
    sink: Arc<dyn RevisionSink>,
    patience: Patience,
    next_seq: AtomicU64,
    waiting: AtomicI64,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for RemoteStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteStage")
            .field("slots", &self.slots)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl RemoteStage {
    /// A stage over `slots`, each queue holding at most `capacity` addresses.
    pub fn new(
        slots: Vec<Arc<ProviderSlot>>,
        capacity: usize,
        rules: RevisionRules,
        sink: Arc<dyn RevisionSink>,
        patience: Patience,
        metrics: Arc<Metrics>,
    ) -> Self {
        let queues = slots
            .iter()
            .map(|_| Arc::new(ProviderQueue::default()))
            .collect();
        RemoteStage {
            slots,
            queues,
            capacity: capacity.max(1),
            rules,
            sink,
            patience,
            next_seq: AtomicU64::new(0),
            waiting: AtomicI64::new(0),
            metrics,
        }
    }

    /// A repeat sighting of `ip` (called by the processor when the count reaches a power of
    /// two, so at most ~40 times per address): an address waiting in a queue moves up.
    pub fn sighted(&self, ip: IpAddr, sightings: u64) {
        let order = Priority::sightings_order(sightings);
        for queue in &self.queues {
            queue.entries().raise(ip, order);
        }
    }

    /// For a new record: the providers whose lookup of `ip` is already settled without asking
    /// (down, not covered, daily budget spent) and that status, so that the record does not
    /// say `pending` for a lookup that will not be made.
    pub fn known_statuses(
        &self,
        ip: IpAddr,
        now: SystemTime,
    ) -> Vec<(&'static str, ProviderIntel)> {
        self.slots
            .iter()
            .filter_map(|slot| Some((slot.name(), slot.known_without_asking(ip, now)?)))
            .collect()
    }

    /// Addresses with at least one lookup outstanding.
    pub fn waiting(&self) -> i64 {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Queues `job` with every provider. When a queue is full, the lowest-priority address
    /// (possibly this one) is answered `skipped` for that provider.
    pub async fn offer(self: &Arc<Self>, job: RemoteJob) {
        job.tracked.lock().await.outstanding += self.slots.len();
        self.waiting_changed(1);
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        for (index, queue) in self.queues.iter().enumerate() {
            let refused = {
                let mut entries = queue.entries();
                entries.insert((job.priority, Reverse(seq)), job.clone());
                if entries.len() > self.capacity {
                    entries.pop_lowest()
                } else {
                    None
                }
            };
            queue.ready.notify_one();
            if let Some(lowest) = refused {
                let slot = &self.slots[index];
                ProviderSkipped {
                    provider: slot.name(),
                    reason: "queue_full",
                }
                .emit(&self.metrics);
                let outcome = Outcome {
                    intel: ProviderIntel::status(
                        ProviderStatus::Skipped,
                        format!(
                            "remote queue full ({} addresses waiting for {}); looked up when \
                             seen again",
                            self.capacity,
                            slot.name()
                        ),
                    ),
                    network: None,
                    retry_at: Some(SystemTime::now()),
                };
                self.finish_evicted(lowest, slot.name(), outcome);
            }
        }
    }

    /// Asks every provider about `job` now, waiting for budget within the stage's patience,
    /// and returns the final record (one-shot `enrich`: the same lookups and scoring as the
    /// daemon's queues, without queueing).
    pub async fn enrich_now(&self, job: RemoteJob) -> ThreatRecord {
        job.tracked.lock().await.outstanding += self.slots.len();
        self.waiting_changed(1);
        let lookups = self.slots.iter().map(|slot| {
            let job = &job;
            async move {
                let outcome = slot.lookup(job.ip, self.patience).await;
                self.finish(job, slot.name(), outcome).await;
            }
        });
        futures::future::join_all(lookups).await;
        let tracked = job.tracked.lock().await;
        tracked.record.clone()
    }

    /// Runs one dispatcher per provider until `stop`; lookups in flight then get until the
    /// returned set is awaited or aborted.
    pub fn spawn_dispatchers(self: &Arc<Self>, stop: &CancellationToken) -> JoinSet<()> {
        let mut set = JoinSet::new();
        for index in 0..self.slots.len() {
            set.spawn(self.clone().dispatch(index, stop.clone()));
        }
        set
    }

    async fn dispatch(self: Arc<Self>, index: usize, stop: CancellationToken) {
        let slot = self.slots[index].clone();
        let queue = self.queues[index].clone();
        let in_flight = Arc::new(Semaphore::new(LOOKUPS_IN_FLIGHT));
        let mut lookups = JoinSet::new();
        loop {
            // Cancellation-safe: acquiring a permit and waiting on Notify hold no state.
            let permit = tokio::select! {
                _ = stop.cancelled() => break,
                permit = in_flight.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
            };
            let next = queue.entries().pop_highest();
            let Some(((priority, seq), job)) = next else {
                drop(permit);
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = queue.ready.notified() => continue,
                }
            };
            while lookups.try_join_next().is_some() {}
            let now = SystemTime::now();
            let mut reserved = None;
            if slot.needs_request(job.ip) {
                match slot.reserve(now) {
                    Admission::Go => reserved = Some(now),
                    Admission::Wait(wait) if wait <= self.patience.max_wait => {
                        // Back in line: when budget returns, the best address then goes first.
                        queue.entries().insert((priority, seq), job);
                        drop(permit);
                        tokio::select! {
                            _ = stop.cancelled() => break,
                            _ = tokio::time::sleep(wait.max(Duration::from_millis(1))) => continue,
                        }
                    }
                    // Refused, or a wait past patience: the lookup reports it without a request.
                    _ => {}
                }
            }
            let stage = self.clone();
            let slot = slot.clone();
            lookups.spawn(async move {
                let lookup = async {
                    match reserved {
                        Some(granted_at) => {
                            slot.lookup_reserved(job.ip, stage.patience, granted_at)
                                .await
                        }
                        None => slot.lookup(job.ip, stage.patience).await,
                    }
                };
                // A bug in a lookup must not leave the address counted as waiting forever.
                let outcome = std::panic::AssertUnwindSafe(lookup)
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| {
                        ProviderRequestError {
                            provider: slot.name(),
                            status: "internal_error",
                            error: "the lookup panicked (a bug)",
                        }
                        .emit(&stage.metrics);
                        Outcome {
                            intel: ProviderIntel::status(
                                ProviderStatus::Unavailable,
                                "internal error during the lookup (a bug; see the log)",
                            ),
                            network: None,
                            retry_at: Some(SystemTime::now() + Duration::from_secs(60)),
                        }
                    });
                stage.finish(&job, slot.name(), outcome).await;
                drop(permit);
            });
        }
        // Lookups already sent finish (their revisions are published) unless the caller aborts.
        while lookups.join_next().await.is_some() {}
    }

    async fn finish(&self, job: &RemoteJob, provider: &str, outcome: Outcome) {
        let mut tracked = job.tracked.lock().await;
        if let Some(output) = apply_outcome(
            &mut tracked,
            provider,
            outcome,
            &self.rules,
            SystemTime::now(),
        ) {
            RecordRevised {
                provider,
                revision: tracked.record.revision,
            }
            .emit(&self.metrics);
            // Published under the lock: revisions of one address leave in order.
            self.sink.publish(output, tracked.origin.clone()).await;
        }
        self.count_done(&mut tracked);
    }

    /// One provider of the job is done with it; the last one schedules any retry.
    fn count_done(&self, tracked: &mut Tracked) {
        tracked.outstanding = tracked.outstanding.saturating_sub(1);
        if tracked.outstanding == 0 {
            if let Some(at) = tracked.retry_at.take() {
                tracked.sighting.retry_from(at);
            }
            self.waiting_changed(-1);
        }
    }

    /// Records that `job` was evicted from `provider`'s queue. A `skipped` status never
    /// publishes, so this needs no await when the record's lock is free (the usual case); when
    /// it is held (a revision of that address waiting for the broker) it is left to a task, so
    /// that the sink never waits for an unrelated address.
    fn finish_evicted(self: &Arc<Self>, job: RemoteJob, provider: &'static str, outcome: Outcome) {
        if let Ok(mut tracked) = job.tracked.try_lock() {
            let published = apply_outcome(
                &mut tracked,
                provider,
                outcome,
                &self.rules,
                SystemTime::now(),
            );
            debug_assert!(published.is_none(), "a skipped status publishes nothing");
            self.count_done(&mut tracked);
            return;
        }
        let stage = self.clone();
        tokio::spawn(async move { stage.finish(&job, provider, outcome).await });
    }

    fn waiting_changed(&self, by: i64) {
        let depth = self.waiting.fetch_add(by, Ordering::Relaxed) + by;
        RemoteQueueChanged { depth }.emit(&self.metrics);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;
    use crate::stages::dedup::DedupCache;

    fn tracked(ip: &str) -> Tracked {
        let dedup = DedupCache::new(Duration::from_secs(60), 10);
        let sighting = dedup
            .observe(ip.parse().unwrap(), SystemTime::now())
            .sighting;
        let record: ThreatRecord = serde_json::from_value(serde_json::json!({
            "schema": "threatsift.threat/1", "ip": ip, "ip_version": 4,
            "verdict": "unknown", "severity": "info", "score": 0, "reasons": [],
            "indicator": "IP Observed", "first_seen": "2026-11-23T10:00:00Z",
            "last_seen": "2026-11-23T10:00:00Z", "sightings": 1, "roles": ["source"],
            "observed": {"format": "kv", "topic": "t", "partition": 0, "offset": 1},
            "network": {"asn": null, "as_org": null, "country": null, "rir": null, "cidr": null},
            "intel": {"virustotal": {"status": "pending"}},
            "revision": 1, "generated_at": "2026-11-23T10:00:00Z"
        }))
        .unwrap();
        Tracked::new(
            record,
            Vec::new(),
            None,
            None,
            sighting,
            Origin {
                topic: "t".into(),
                partition: 0,
                offset: 1,
            },
        )
    }

    fn rules() -> RevisionRules {
        let settings = Settings::from_toml_overrides("").unwrap();
        RevisionRules {
            scoring: ScoringModel::new(&settings.scoring, &settings.feeds),
            min_verdict: Verdict::Suspicious,
        }
    }

    fn vt_answer(malicious: u32) -> Outcome {
        let mut facts = serde_json::Map::new();
        facts.insert(
            "last_analysis_stats".into(),
            serde_json::json!({"malicious": malicious, "suspicious": 0, "harmless": 50, "undetected": 20, "timeout": 0}),
        );
        Outcome {
            intel: ProviderIntel {
                status: ProviderStatus::Ok,
                detail: None,
                facts,
            },
            network: Some(Network {
                asn: Some(64500),
                country: Some("NL".into()),
                ..Network::default()
            }),
            retry_at: None,
        }
    }

    #[test]
    fn an_answer_that_lifts_the_verdict_is_published_as_the_next_revision() {
        let mut t = tracked("198.51.100.7");
        let output = apply_outcome(
            &mut t,
            "virustotal",
            vt_answer(8),
            &rules(),
            SystemTime::now(),
        )
        .expect("published");
        let record: ThreatRecord = serde_json::from_slice(&output.payload).unwrap();
        assert_eq!((record.score, record.verdict), (40, Verdict::Suspicious));
        assert_eq!(record.revision, 1, "nothing was published before");
        assert_eq!(record.network.asn, Some(64500));
        assert_eq!(output.key.as_deref(), Some(&b"198.51.100.7"[..]));
        // The same score again publishes nothing.
        assert!(apply_outcome(
            &mut t,
            "virustotal",
            vt_answer(8),
            &rules(),
            SystemTime::now()
        )
        .is_none());
        let more = apply_outcome(
            &mut t,
            "virustotal",
            vt_answer(12),
            &rules(),
            SystemTime::now(),
        )
        .expect("a higher score is news");
        let record: ThreatRecord = serde_json::from_slice(&more.payload).unwrap();
        assert_eq!((record.score, record.revision), (60, 2));
    }

    #[test]
    fn failures_and_weak_answers_publish_nothing() {
        let mut t = tracked("198.51.100.8");
        for status in [
            ProviderStatus::Unauthorized,
            ProviderStatus::RateLimited,
            ProviderStatus::Timeout,
            ProviderStatus::Skipped,
            ProviderStatus::NotFound,
        ] {
            let outcome = Outcome {
                intel: ProviderIntel::status(status, "no"),
                network: None,
                retry_at: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(100)),
            };
            assert!(
                apply_outcome(&mut t, "abuseipdb", outcome, &rules(), SystemTime::now()).is_none()
            );
            assert_eq!(
                t.record.intel["abuseipdb"].status, status,
                "the status is kept"
            );
            assert_eq!(t.record.score, 0);
        }
        assert_eq!(
            t.retry_at,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(100))
        );
        // One engine: 5 points, below suspicious: kept, not published.
        assert!(apply_outcome(
            &mut t,
            "virustotal",
            vt_answer(1),
            &rules(),
            SystemTime::now()
        )
        .is_none());
        assert_eq!(t.record.score, 5);
        assert_eq!(t.sighting.published(), None);
    }

    #[test]
    fn network_facts_fill_gaps_and_keep_what_was_known() {
        let mut network = Network {
            country: Some("DE".into()),
            ..Network::default()
        };
        merge_network(
            &mut network,
            &Network {
                asn: Some(1),
                country: Some("NL".into()),
                ..Network::default()
            },
        );
        assert_eq!(
            (network.asn, network.country.as_deref()),
            (Some(1), Some("DE"))
        );
    }

    fn job(ip: &str, priority: Priority) -> RemoteJob {
        RemoteJob {
            ip: ip.parse().unwrap(),
            priority,
            tracked: Arc::new(tokio::sync::Mutex::new(tracked(ip))),
        }
    }

    fn priority(locally_suspicious: bool, sightings: u64, allowed: bool) -> Priority {
        Priority {
            locally_suspicious,
            sightings_order: Priority::sightings_order(sightings),
            allowed,
        }
    }

    #[test]
    fn the_queue_orders_by_local_suspicion_then_sightings_then_allowed_then_age() {
        let mut waiting = Waiting::default();
        let entries = [
            ("192.0.2.1", priority(false, 1, false)),
            ("192.0.2.2", priority(false, 1, true)),
            ("192.0.2.3", priority(false, 9, false)),
            ("192.0.2.4", priority(true, 1, false)),
            ("192.0.2.5", priority(false, 1, true)),
        ];
        for (seq, (ip, p)) in entries.iter().enumerate() {
            waiting.insert((*p, Reverse(seq as u64)), job(ip, *p));
        }
        // .1 is seen 4 times while it waits: it overtakes every unsuspicious address.
        waiting.raise("192.0.2.1".parse().unwrap(), Priority::sightings_order(16));
        waiting.raise("192.0.2.4".parse().unwrap(), Priority::sightings_order(1));
        let order: Vec<String> = std::iter::from_fn(|| waiting.pop_highest())
            .map(|(_, j)| j.ip.to_string())
            .collect();
        assert_eq!(
            order,
            [
                "192.0.2.4",
                "192.0.2.1",
                "192.0.2.3",
                "192.0.2.2",
                "192.0.2.5"
            ]
        );
        assert!(waiting.keys.is_empty());
    }

    #[test]
    fn a_full_queue_gives_up_the_lowest_and_newest() {
        let mut waiting = Waiting::default();
        waiting.insert(
            (priority(false, 1, false), Reverse(0)),
            job("192.0.2.1", priority(false, 1, false)),
        );
        waiting.insert(
            (priority(false, 1, false), Reverse(1)),
            job("192.0.2.2", priority(false, 1, false)),
        );
        waiting.insert(
            (priority(true, 1, false), Reverse(2)),
            job("192.0.2.3", priority(true, 1, false)),
        );
        assert_eq!(waiting.pop_lowest().unwrap().ip.to_string(), "192.0.2.2");
        assert_eq!(waiting.len(), 2);
        assert_eq!(waiting.keys.len(), 2);
    }

    #[test]
    fn sightings_orders_are_powers_of_two() {
        assert_eq!(
            [1, 2, 3, 4, 7, 8, 1000].map(Priority::sightings_order),
            [1, 2, 2, 3, 3, 4, 10]
        );
    }

    #[test]
    fn a_retry_never_publishes_less_than_was_published() {
        let mut t = tracked("198.51.100.9");
        // An earlier job published 40 (VirusTotal, 8 engines).
        t.sighting.next_revision(40, Verdict::Suspicious);
        // The retry job starts from local evidence again; an answer worth less, or the same,
        // is not news.
        for engines in [1, 8] {
            let outcome = vt_answer(engines);
            assert!(
                apply_outcome(&mut t, "virustotal", outcome, &rules(), SystemTime::now()).is_none()
            );
        }
        // Only more than 40 is published, as revision 2.
        let output = apply_outcome(
            &mut t,
            "virustotal",
            vt_answer(12),
            &rules(),
            SystemTime::now(),
        )
        .expect("published");
        let record: ThreatRecord = serde_json::from_slice(&output.payload).unwrap();
        assert_eq!((record.score, record.revision), (60, 2));
    }

    #[test]
    fn the_as_number_and_its_organisation_come_from_one_source() {
        let mut network = Network {
            as_org: Some("Acme Ltd (RDAP registrant)".into()),
            ..Network::default()
        };
        merge_network(
            &mut network,
            &Network {
                asn: Some(16509),
                as_org: Some("AMAZON-02".into()),
                ..Network::default()
            },
        );
        assert_eq!(
            (network.asn, network.as_org.as_deref()),
            (Some(16509), Some("AMAZON-02"))
        );
        merge_network(
            &mut network,
            &Network {
                asn: Some(64500),
                as_org: Some("Other".into()),
                ..Network::default()
            },
        );
        assert_eq!(network.asn, Some(16509), "the first number stays");
    }

    /// Answers 401 to everything and covers IPv4 only.
    #[derive(Debug)]
    struct Refusing;

    impl crate::intel::Provider for Refusing {
        fn name(&self) -> &'static str {
            "virustotal"
        }
        fn lookup(
            &self,
            _ip: IpAddr,
        ) -> BoxFuture<'_, Result<crate::intel::Lookup, crate::intel::ProviderError>> {
            Box::pin(async {
                Err(crate::intel::ProviderError::Unauthorized(
                    "wrong key".into(),
                ))
            })
        }
        fn not_covered(&self, ip: IpAddr) -> Option<&'static str> {
            ip.is_ipv6().then_some("IPv4 only")
        }
    }

    #[tokio::test]
    async fn a_new_record_shows_what_is_already_settled_instead_of_pending() {
        let metrics = Arc::new(Metrics::new(&prometheus::Registry::new()).unwrap());
        let slot = Arc::new(ProviderSlot::new(
            Arc::new(Refusing),
            crate::remote::slot::SlotLimits {
                per_minute: 0,
                per_day: 0,
                ttl: Duration::from_secs(60),
                not_found_ttl: Duration::from_secs(60),
                max_answers: 10,
            },
            metrics.clone(),
        ));
        let stage = RemoteStage::new(
            vec![slot.clone()],
            10,
            rules(),
            Arc::new(NoRevisions),
            Patience {
                max_wait: Duration::ZERO,
            },
            metrics,
        );
        let v4: IpAddr = "198.51.100.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let now = SystemTime::now();
        assert!(
            stage.known_statuses(v4, now).is_empty(),
            "not asked yet: pending"
        );
        assert_eq!(
            stage.known_statuses(v6, now)[0].1.status,
            ProviderStatus::Skipped
        );
        let outcome = slot
            .lookup(
                v4,
                Patience {
                    max_wait: Duration::ZERO,
                },
            )
            .await;
        assert_eq!(outcome.intel.status, ProviderStatus::Unauthorized);
        let known = stage.known_statuses("198.51.100.2".parse().unwrap(), now);
        assert_eq!(known.len(), 1);
        assert_eq!(known[0].1.status, ProviderStatus::Unauthorized);
        assert!(known[0]
            .1
            .detail
            .as_deref()
            .unwrap()
            .starts_with("not asked"));
    }
}
