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
//! * Allow-listed meanwhile: an address a reload of the allow-list cleared after it was queued
//!   is not asked (`skipped`, `enrich_skipped_total{reason="allowlisted"}`), and an answer
//!   that arrives for it publishes no revision.

use std::cmp::Reverse;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use futures::future::BoxFuture;

use crate::model::{rfc3339, ProviderIntel, ProviderStatus, ThreatRecord};
use crate::remote::queue::{ProviderQueue, QueueKey};
use crate::remote::revision::{
    apply_outcome, lowered_by_benign_facts, RemoteJob, RevisionRules, RevisionSink, Tracked,
};
use crate::remote::slot::{Outcome, Patience, ProviderSlot};
use crate::stages::filter::AllowlistFile;
use crate::stages::process::{Priority, RemoteQueues};
use crate::state::{StateParts, StateRecord, StoredAnswer};
use crate::telemetry::events::{
    ProviderSkipped, RecordRevised, RemoteQueueChanged, RevisionNotEncoded,
};
use crate::telemetry::Metrics;

/// Lookups in flight per provider.
pub(crate) const LOOKUPS_IN_FLIGHT: usize = 4;

/// An eviction left to run later (see [`RemoteStage::offer`]).
pub(crate) type Eviction = BoxFuture<'static, ()>;

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
    /// The allow-list the filter reads, checked again before a lookup and a revision.
    allowlist: OnceLock<Arc<AllowlistFile>>,
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
            allowlist: OnceLock::new(),
        }
    }

    /// Checks `file` before each lookup and each revision: an address its reloads clear while
    /// it waits is not asked about and gets no revision. Set once; later calls are ignored.
    pub fn set_allowlist(&self, file: Arc<AllowlistFile>) {
        let _ = self.allowlist.set(file);
    }

    /// Whether the allow-list clears `ip` now.
    pub fn allowlisted(&self, ip: IpAddr) -> bool {
        self.allowlist
            .get()
            .is_some_and(|file| file.current().matching(ip, SystemTime::now()).is_some())
    }

    /// The outcome of a lookup not made because the allow-list cleared the address after it
    /// was queued (counted as a skip).
    pub fn allowlisted_outcome(&self, provider: &'static str) -> Outcome {
        ProviderSkipped {
            provider,
            reason: "allowlisted",
        }
        .emit(&self.metrics);
        Outcome {
            intel: ProviderIntel::status(
                ProviderStatus::Skipped,
                "not asked: allow-listed after it was queued",
            ),
            network: None,
            retry_at: None,
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
    /// (possibly this one) is answered `skipped` for that provider; an eviction whose record
    /// is locked (a revision of that address waiting for the broker) is returned for the
    /// caller to run, so that the caller never waits for an unrelated address.
    pub async fn offer(self: &Arc<Self>, job: RemoteJob) -> Vec<Eviction> {
        let every = vec![true; self.slots.len()];
        self.offer_to(job, &every).await
    }

    /// Queues `job` (restored by a warm start) with the providers still `pending` in its
    /// record only: the others answered, or will not be asked (s2-state).
    pub async fn offer_pending(self: &Arc<Self>, job: RemoteJob) -> Vec<Eviction> {
        let pending: Vec<bool> = {
            let tracked = job.tracked.lock().await;
            self.slots
                .iter()
                .map(|slot| {
                    tracked
                        .record
                        .intel
                        .get(slot.name())
                        .is_some_and(|i| i.status == ProviderStatus::Pending)
                })
                .collect()
        };
        if !pending.contains(&true) {
            return Vec::new();
        }
        self.offer_to(job, &pending).await
    }

    /// Queues `job` with the providers whose `with[index]` is true.
    async fn offer_to(self: &Arc<Self>, job: RemoteJob, with: &[bool]) -> Vec<Eviction> {
        let mut deferred = Vec::new();
        job.tracked.lock().await.outstanding += with.iter().filter(|w| **w).count();
        self.waiting_changed(1);
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        for (index, queue) in self.queues.iter().enumerate() {
            if !with.get(index).copied().unwrap_or(false) {
                continue;
            }
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
                deferred.extend(self.finish_evicted(lowest, slot.name(), outcome));
            }
        }
        deferred
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

    /// The enabled providers' slots, in queue order.
    pub fn slots(&self) -> &[Arc<ProviderSlot>] {
        &self.slots
    }

    /// How long a lookup may wait for budget.
    pub fn patience(&self) -> Patience {
        self.patience
    }

    /// The highest-priority address waiting for provider `index`.
    pub fn next_waiting(&self, index: usize) -> Option<(QueueKey, RemoteJob)> {
        self.queues[index].entries().pop_highest()
    }

    /// Puts `job` back in provider `index`'s queue where it was (budget returns later).
    pub fn wait_again(&self, index: usize, key: QueueKey, job: RemoteJob) {
        self.queues[index].entries().insert(key, job);
    }

    /// Resolves when an address is queued for provider `index`.
    pub async fn queued(&self, index: usize) {
        self.queues[index].ready.notified().await
    }

    /// Metrics, for the dispatchers' events.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Folds `outcome` from `provider` into `job`'s record and publishes a revision when it
    /// raises the score.
    pub async fn finish(&self, job: &RemoteJob, provider: &str, outcome: Outcome) {
        let answer = self.answer_to_keep(job.ip, provider, &outcome).await;
        let mut tracked = job.tracked.lock().await;
        if self.allowlisted(job.ip) {
            // Cleared while the lookup was under way: never published again.
            self.count_done(&mut tracked);
            return;
        }
        if let Some(answer) = answer {
            tracked.answers.insert(provider.to_owned(), answer);
        }
        let revised = apply_outcome(
            &mut tracked,
            provider,
            outcome,
            &self.rules,
            SystemTime::now(),
        );
        self.publish_revision(revised, provider, &tracked).await;
        // The last provider done: a score benign facts lowered is news too.
        if tracked.outstanding == 1 {
            let lowered = lowered_by_benign_facts(&mut tracked, &self.rules, SystemTime::now());
            self.publish_revision(lowered, provider, &tracked).await;
        }
        self.count_done(&mut tracked);
        // After the revision it goes with, still under the lock: states leave in order.
        self.write_state(job, &tracked).await;
    }

    /// Publishes a revision `provider`'s answer made (or counts why it could not be encoded).
    /// Called under the record's lock: revisions of one address leave in order.
    async fn publish_revision(
        &self,
        revised: Option<Result<crate::model::Output, crate::stages::record::EncodeError>>,
        provider: &str,
        tracked: &Tracked,
    ) {
        match revised {
            Some(Ok(output)) => {
                RecordRevised {
                    provider,
                    revision: tracked.record.revision,
                }
                .emit(&self.metrics);
                self.sink.publish(output, tracked.origin.clone()).await;
            }
            Some(Err(error)) => RevisionNotEncoded {
                provider,
                error: &error,
            }
            .emit(&self.metrics),
            None => {}
        }
    }

    /// An `ok`/`not_found` answer's expiry and network facts, for the state changelog.
    async fn answer_to_keep(
        &self,
        ip: IpAddr,
        provider: &str,
        outcome: &Outcome,
    ) -> Option<StoredAnswer> {
        if !self.sink.keeps_state() || !outcome.intel.status.is_answer() {
            return None;
        }
        let slot = self.slots.iter().find(|s| s.name() == provider)?;
        let until = match slot.answer_until(ip).await {
            Some(until) => until,
            None => slot.now() + slot.answer_lifetime(outcome.intel.status),
        };
        Some(StoredAnswer {
            until: rfc3339(until),
            network: outcome.network.clone(),
        })
    }

    /// Writes the address's state to the changelog, when it is kept.
    async fn write_state(&self, job: &RemoteJob, tracked: &Tracked) {
        if !self.sink.keeps_state() {
            return;
        }
        let parts = StateParts {
            record: &tracked.record,
            sighting: &tracked.sighting,
            feed_matches: &tracked.feed_matches,
            threat: tracked.threat.as_deref(),
            reporter: tracked.reporter.as_deref(),
            priority: job.priority,
            answers: &tracked.answers,
            retry_at: tracked.retry_at,
            origin: &tracked.origin,
        };
        if let Ok(output) = StateRecord::build(job.ip, parts, SystemTime::now()).encode() {
            self.sink.state(output, tracked.origin.clone()).await;
        }
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
    /// it is held (a revision of that address waiting for the broker) it is returned to run
    /// later.
    fn finish_evicted(
        self: &Arc<Self>,
        job: RemoteJob,
        provider: &'static str,
        outcome: Outcome,
    ) -> Option<Eviction> {
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
            return None;
        }
        let stage = self.clone();
        Some(Box::pin(async move {
            stage.finish(&job, provider, outcome).await
        }))
    }

    fn waiting_changed(&self, by: i64) {
        let depth = self.waiting.fetch_add(by, Ordering::Relaxed) + by;
        RemoteQueueChanged { depth }.emit(&self.metrics);
    }
}

// s1-scaled: ownership hand-over.
impl RemoteStage {
    /// Drops the queued (not yet started) lookups of the addresses `gone` matches: their
    /// partition went to another daemon, which queues them again from the state topic. Lookups
    /// already sent finish here (so one in flight at a hand-over may be made once more by the
    /// new owner). Returns how many queue entries were dropped.
    pub fn drop_queued(self: &Arc<Self>, gone: impl Fn(IpAddr) -> bool) -> usize {
        let mut dropped = 0;
        for queue in &self.queues {
            let jobs = queue.entries().remove_where(&gone);
            dropped += jobs.len();
            for job in jobs {
                // Without a retry: the address is no longer this daemon's.
                let settled = if let Ok(mut tracked) = job.tracked.try_lock() {
                    tracked.retry_at = None;
                    self.count_done(&mut tracked);
                    true
                } else {
                    false
                };
                // A revision of it is being published: settled once it is.
                if !settled {
                    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                        let stage = self.clone();
                        runtime.spawn(async move {
                            let mut tracked = job.tracked.lock().await;
                            tracked.retry_at = None;
                            stage.count_done(&mut tracked);
                        });
                    }
                }
            }
        }
        dropped
    }
}

impl RemoteQueues for RemoteStage {
    fn sighted(&self, ip: IpAddr, sightings: u64) {
        RemoteStage::sighted(self, ip, sightings)
    }

    fn known_statuses(&self, ip: IpAddr, now: SystemTime) -> Vec<(&'static str, ProviderIntel)> {
        RemoteStage::known_statuses(self, ip, now)
    }
}
