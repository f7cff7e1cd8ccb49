//! The owner side of scaled mode (design §10): what the daemon does when its share of the
//! sightings topic's partitions changes. Called from the owner consumer's rebalance callback,
//! on the polling task, so it only drops entries and recomputes numbers.
//!
//! The owner consumer's group protocol is eager (librdkafka's default assignors): a rebalance
//! revokes everything and then assigns the new set, so the work is done at assignment, against
//! the set held before:
//! * partitions lost: their addresses' dedup entries and queued (not started) lookups are
//!   dropped; their new owner rebuilds them from the state topic. Lookups already sent finish
//!   here, so a lookup in flight at a hand-over may be made once more by the new owner.
//! * partitions gained: [`on_assigned`] warm-starts them (s2-state fills it).
//! * every provider's budget share is recomputed (`remote::budget`), and `owned_partitions`.

use std::sync::{Arc, Mutex};

use crate::kafka::consumer::RebalanceHooks;
use crate::kafka::partition::partition_of;
use crate::remote::RemoteStage;
use crate::stages::dedup::DedupCache;
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
    pub(super) metrics: Arc<Metrics>,
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
            metrics,
        }
    }
}

impl RebalanceHooks for OwnerHooks {
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
            on_assigned(&gained);
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

/// Partitions newly owned: rebuild their addresses' dedup entries, answers and revisions from
/// the state topic, and queue again what was pending.
// SEAM (s2-state): the warm start from `<output_topic>.state` goes here; no-op until then.
pub(super) fn on_assigned(partitions: &[i32]) {
    warm_start(partitions);
}

/// Warm start of `partitions` from the state topic (s2-state).
fn warm_start(_partitions: &[i32]) {}
