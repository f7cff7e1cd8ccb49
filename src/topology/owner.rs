//! The owner side of scaled mode (design §10): what the daemon does when its share of the
//! sightings topic's partitions changes. Called from the owner consumer's rebalance callback,
//! on the polling task, so it only drops entries and recomputes numbers.
//!
//! The hooks hear of the whole set held after each assignment (and after an incremental
//! revoke). With the default, eager assignors a rebalance revokes everything and then assigns
//! the new set, so the work is done then, against the set held before (a partition kept
//! across a rebalance keeps its entries):
//! * partitions lost: their addresses' dedup entries and queued (not started) lookups are
//!   dropped; their new owner rebuilds them from the state topic. Lookups already sent finish
//!   here, so a lookup in flight at a hand-over may be made once more by the new owner.
//! * partitions gained: warm-started (s12) before any of their sightings is processed: the
//!   state partitions of the same numbers are read to their end and restored (dedup entries,
//!   answer caches, revision numbers, published records), and the lookups still `pending`
//!   are queued again. This runs inside the rebalance callback and BLOCKS the owner
//!   consumer's poll until done (off the runtime's worker, see [`WarmStart::run`]): librdkafka
//!   hands out no message of a partition before the callback that assigned it returns, so no
//!   sighting of a gained partition can overtake its warm start. A long read delays the owner
//!   side's polling (not the ingest side's); `max.poll.interval.ms` bounds it.
//! * partitions being revoked: from the revoke on, sightings of theirs still in the pipeline
//!   are skipped (no record, no lookup, offset not stored): their new owner reads them again.
//! * every provider's budget share is recomputed (`remote::budget`), and `owned_partitions`.

use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::kafka::consumer::RebalanceHooks;
use crate::kafka::partition::partition_of;
use crate::remote::RemoteStage;
use crate::settings::Settings;
use crate::stages::dedup::DedupCache;
use crate::stages::published::PublishedIndex;
use crate::telemetry::events::OwnedPartitionsChanged;
use crate::telemetry::Metrics;

/// The owner side's reaction to assignments.
pub(super) struct OwnerHooks {
    pub(super) dedup: DedupCache,
    pub(super) remote: Option<Arc<RemoteStage>>,
    /// Partitions of the sightings topic (checked equal to the state topic's at start-up).
    pub(super) partitions: usize,
    /// The partitions held since the last assignment.
    pub(super) held: Mutex<Vec<i32>>,
    /// The partitions whose sightings may be acted on now: the held ones, less those being
    /// revoked (messages of a revoked partition still in the pipeline are skipped: their new
    /// owner reads them again from the committed offset).
    serving: Mutex<Vec<i32>>,
    pub(super) metrics: Arc<Metrics>,
    /// Reads the state of gained partitions (none in unit tests of the hand-over).
    warm: Option<WarmStart>,
}

// s12: the warm start of gained partitions from the state topic.
/// What the warm start of gained partitions needs.
pub(super) struct WarmStart {
    pub(super) settings: Settings,
    /// Cancelled at shutdown: a read in progress stops (nothing is restored).
    pub(super) stop: CancellationToken,
    /// The runtime the restore and the re-queued lookups run on.
    pub(super) runtime: tokio::runtime::Handle,
    /// The index of published records (withdrawals, the blocklist).
    pub(super) published: PublishedIndex,
}

impl WarmStart {
    /// Reads state partitions `partitions` to their end and restores them into `dedup` and
    /// `remote`; queues the pending lookups again on the runtime. Blocks the calling thread
    /// until the restore is done. The callback runs on the task polling the owner consumer:
    /// on a multi-thread runtime `block_in_place` hands that worker's other tasks over first,
    /// and the work itself runs on a thread of its own (`Handle::block_on` must not be called
    /// on a runtime thread).
    fn run(
        &self,
        partitions: &[i32],
        dedup: &DedupCache,
        remote: Option<&Arc<RemoteStage>>,
        metrics: &Metrics,
    ) {
        let work = || {
            std::thread::scope(|scope| {
                let joined = scope
                    .spawn(|| {
                        self.runtime
                            .block_on(self.read_and_restore(partitions, dedup, remote, metrics))
                    })
                    .join();
                if joined.is_err() {
                    tracing::error!(partitions = ?partitions, "the warm start panicked; the partitions are served without their state");
                }
            });
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(work)
            }
            _ => work(),
        }
    }

    async fn read_and_restore(
        &self,
        partitions: &[i32],
        dedup: &DedupCache,
        remote: Option<&Arc<RemoteStage>>,
        metrics: &Metrics,
    ) {
        let warm = match crate::state::warm_start(
            &self.settings,
            Some(partitions.to_vec()),
            &self.stop,
        )
        .await
        {
            Ok(Some(warm)) => warm.feeding(self.published.clone()),
            // Stopping: the partitions are not served any more.
            Ok(None) => return,
            Err(error) => {
                // The callback cannot fail the daemon: the partitions are served without their
                // state (their addresses may be looked up again), and the log says so.
                tracing::error!(partitions = ?partitions, %error, "warm start of the assigned state partitions failed; they are served without their state");
                return;
            }
        };
        let jobs = crate::state::restore(warm, dedup, remote, metrics).await;
        if let (Some(stage), false) = (remote, jobs.is_empty()) {
            self.runtime
                .spawn(crate::state::requeue(stage.clone(), jobs));
        }
    }
}

impl OwnerHooks {
    pub(super) fn new(
        dedup: DedupCache,
        remote: Option<Arc<RemoteStage>>,
        partitions: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        // Nothing is owned before the first assignment: no budget may be spent yet.
        for slot in remote.iter().flat_map(|r| r.slots()) {
            slot.share_nothing();
        }
        OwnerHooks {
            dedup,
            remote,
            partitions,
            held: Mutex::new(Vec::new()),
            serving: Mutex::new(Vec::new()),
            metrics,
            warm: None,
        }
    }

    /// Warm-starts each gained partition from the state topic.
    pub(super) fn with_warm_start(mut self, warm: WarmStart) -> Self {
        self.warm = Some(warm);
        self
    }

    /// Whether sightings of `partition` may be acted on now.
    pub(super) fn serves(&self) -> std::sync::MutexGuard<'_, Vec<i32>> {
        self.serving.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RebalanceHooks for OwnerHooks {
    fn revoking(&self, partitions: &[i32]) {
        self.serves().retain(|p| !partitions.contains(p));
    }

    fn assigned(&self, partitions: &[i32]) {
        let lost: Vec<i32> = {
            let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            let lost = held
                .iter()
                .copied()
                .filter(|p| !partitions.contains(p))
                .collect();
            let gained: Vec<i32> = partitions
                .iter()
                .copied()
                .filter(|p| !held.contains(p))
                .collect();
            *held = partitions.to_vec();
            // Before the partitions are served: nothing of theirs is processed before it.
            if let (Some(warm), false) = (&self.warm, gained.is_empty()) {
                warm.run(&gained, &self.dedup, self.remote.as_ref(), &self.metrics);
            }
            *self.serves() = partitions.to_vec();
            lost
        };
        if !lost.is_empty() {
            let count = i32::try_from(self.partitions).unwrap_or(i32::MAX);
            let gone = |ip: &std::net::IpAddr| {
                lost.contains(&partition_of(ip.to_string().as_bytes(), count))
            };
            let forgotten = self.dedup.forget_where(gone);
            let dropped = self
                .remote
                .as_ref()
                .map_or(0, |remote| remote.drop_queued(|ip| gone(&ip)));
            tracing::info!(
                partitions = ?lost,
                forgotten,
                dropped,
                "sightings partitions handed over: their addresses' dedup entries and queued \
                 lookups dropped"
            );
        }
        for slot in self.remote.iter().flat_map(|r| r.slots()) {
            slot.set_share(partitions, self.partitions);
        }
        OwnedPartitionsChanged {
            owned: partitions.len(),
            partitions: self.partitions,
        }
        .emit(&self.metrics);
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::time::{Duration, SystemTime};

    use futures::future::BoxFuture;

    use super::*;
    use crate::intel::{Lookup, Provider, ProviderError};
    use crate::model::{Origin, ThreatRecord};
    use crate::remote::slot::{Patience, ProviderSlot, SlotLimits};
    use crate::remote::{Priority, RemoteJob, RevisionRules, Tracked};
    use crate::stages::score::ScoringModel;

    /// Never asked: no dispatcher runs in these tests.
    #[derive(Debug)]
    struct NeverAsked;

    impl Provider for NeverAsked {
        fn name(&self) -> &'static str {
            "virustotal"
        }
        fn lookup(&self, _ip: IpAddr) -> BoxFuture<'_, Result<Lookup, ProviderError>> {
            unreachable!("no dispatcher runs")
        }
    }

    fn job(ip: IpAddr, dedup: &DedupCache) -> RemoteJob {
        let record: ThreatRecord = serde_json::from_value(serde_json::json!({
            "schema": "threatsift.threat/1", "ip": ip.to_string(), "ip_version": 4,
            "verdict": "unknown", "severity": "info", "score": 0, "reasons": [],
            "indicator": "IP Observed", "first_seen": "2026-11-23T10:00:00Z",
            "last_seen": "2026-11-23T10:00:00Z", "sightings": 1, "roles": ["source"],
            "observed": {"format": "kv", "topic": "t", "partition": 0, "offset": 1},
            "network": {"asn": null, "as_org": null, "country": null, "rir": null, "cidr": null},
            "intel": {"virustotal": {"status": "pending"}},
            "revision": 1, "generated_at": "2026-11-23T10:00:00Z"
        }))
        .unwrap();
        let origin = Origin {
            topic: "threats.sightings".into(),
            partition: 0,
            offset: 1,
        };
        RemoteJob {
            ip,
            priority: Priority {
                locally_suspicious: false,
                sightings_order: 1,
                allowed: true,
            },
            tracked: Arc::new(tokio::sync::Mutex::new(Tracked::new(
                record,
                Vec::new(),
                None,
                None,
                dedup.observe(ip, SystemTime::now()).sighting,
                origin,
            ))),
        }
    }

    #[test]
    fn sightings_of_a_partition_being_revoked_are_left_to_its_next_owner() {
        use crate::model::{Observed, RawEvent};
        use crate::stages::sighting::IpSighting;
        use crate::topology::process::{BatchProcessor, Half, ProcessorHalf};
        use std::time::Instant;

        let settings = crate::settings::Settings::from_toml_overrides(
            "[filter]\nallow_documentation_ranges = true\n[publish]\nmin_verdict = \"unknown\"\n",
        )
        .unwrap();
        let metrics = Arc::new(Metrics::new(&prometheus::Registry::new()).unwrap());
        let processor = crate::stages::process::Processor::from_settings(
            &settings,
            Arc::new(crate::intel::feeds::LocalFeeds::load(Vec::new()).unwrap()),
            &crate::intel::ConfiguredProviders::build(&settings).unwrap(),
            metrics.clone(),
        )
        .unwrap();
        let hooks = Arc::new(OwnerHooks::new(
            processor.dedup().clone(),
            None,
            2,
            metrics.clone(),
        ));
        let half = ProcessorHalf {
            processor: Arc::new(processor),
            half: Half::Owner,
            owner: Some(hooks.clone()),
        };
        let sighting = |ip: &str, partition: i32| {
            let s = IpSighting::new(
                ip.parse().unwrap(),
                Vec::new(),
                SystemTime::now(),
                Observed::default(),
                None,
                None,
                true,
            );
            RawEvent {
                payload: s.encode().unwrap().into(),
                key: Some(s.key().into()),
                origin: Origin {
                    topic: "threats.sightings".into(),
                    partition,
                    offset: 7,
                },
                timestamp_ms: None,
            }
        };
        let batch = [sighting("198.51.100.1", 0), sighting("198.51.100.2", 1)];
        hooks.assigned(&[0, 1]);
        hooks.revoking(&[1]);
        let out = half.process_batch(&batch, Instant::now());
        let made: Vec<(i32, usize)> = out
            .iter()
            .map(|p| (p.origin.partition, p.outputs.len()))
            .collect();
        assert_eq!(made.len(), 2, "every message is answered: {made:?}");
        assert!(made.contains(&(0, 1)), "partition 0's record: {made:?}");
        assert!(made.contains(&(1, 0)), "nothing for partition 1: {made:?}");
        // Once assigned again, its sightings are acted on.
        hooks.assigned(&[0, 1]);
        let again = half.process_batch(&batch[1..], Instant::now());
        assert_eq!(again[0].outputs.len(), 1);
    }

    fn gauge(metrics: &Metrics, labels: &[&str]) -> i64 {
        metrics.scale.budget_share.with_label_values(labels).get()
    }

    #[tokio::test]
    async fn a_hand_over_drops_the_lost_partitions_addresses_and_queued_lookups_only() {
        const PARTITIONS: usize = 4;
        let metrics = Arc::new(Metrics::new(&prometheus::Registry::new()).unwrap());
        let slot = Arc::new(ProviderSlot::new(
            Arc::new(NeverAsked),
            SlotLimits {
                per_minute: 60,
                per_day: 1000,
                ttl: Duration::from_secs(60),
                not_found_ttl: Duration::from_secs(60),
                max_answers: 10,
                no_lookups: false,
            },
            metrics.clone(),
        ));
        let settings = crate::settings::Settings::from_toml_overrides("").unwrap();
        let stage = Arc::new(RemoteStage::new(
            vec![slot],
            1000,
            RevisionRules {
                scoring: ScoringModel::new(&settings.scoring, &settings.feeds),
                min_verdict: settings.publish.min_verdict,
                publication: Arc::new(crate::publish::Publication::from_settings(&settings)),
                feeds: None,
            },
            Arc::new(crate::remote::NoRevisions),
            Patience {
                max_wait: Duration::ZERO,
            },
            metrics.clone(),
        ));
        let dedup = DedupCache::new(Duration::from_secs(600), 10_000);
        let hooks = OwnerHooks::new(
            dedup.clone(),
            Some(stage.clone()),
            PARTITIONS,
            metrics.clone(),
        );
        assert_eq!(
            gauge(&metrics, &["virustotal", "minute"]),
            0,
            "nothing before"
        );
        hooks.assigned(&[0, 1, 2, 3]);
        assert_eq!(gauge(&metrics, &["virustotal", "minute"]), 60);
        assert_eq!(gauge(&metrics, &["virustotal", "day"]), 1000);
        let ips: Vec<IpAddr> = (1..=200u32)
            .map(|i| IpAddr::from(std::net::Ipv4Addr::from(0xC633_6400 + i)))
            .collect();
        for ip in &ips {
            for eviction in stage.offer(job(*ip, &dedup)).await {
                eviction.await;
            }
        }
        assert_eq!(stage.waiting(), 200);
        // Partitions 1 and 3 go to another daemon; 0 and 2 stay.
        hooks.assigned(&[2, 0]);
        let kept = |ip: &IpAddr| [0, 2].contains(&partition_of(ip.to_string().as_bytes(), 4));
        let expected: Vec<IpAddr> = ips.iter().copied().filter(kept).collect();
        assert!(
            expected.len() > 60 && expected.len() < 140,
            "{}",
            expected.len()
        );
        let mut queued = Vec::new();
        while let Some((_, job)) = stage.next_waiting(0) {
            queued.push(job.ip);
        }
        queued.sort();
        assert_eq!(
            queued, expected,
            "the queued lookups of partitions 0 and 2 only"
        );
        assert_eq!(stage.waiting(), expected.len() as i64);
        for ip in &ips {
            assert_eq!(
                dedup.observe(*ip, SystemTime::now()).first,
                !kept(ip),
                "{ip}: a lost address is forgotten, a kept one remembered"
            );
        }
        assert_eq!(metrics.scale.owned_partitions.get(), 2);
        assert_eq!(gauge(&metrics, &["virustotal", "minute"]), 30);
        assert_eq!(gauge(&metrics, &["virustotal", "day"]), 500);
    }
}
