//! Events of scaled mode (s1-scaled): sightings made and folded, partitions owned, budget
//! shares.

use tracing::{debug, info};

use crate::telemetry::Metrics;

/// The ingest half made the sightings of one batch.
pub(crate) struct SightingsMade {
    /// Sightings messages made (published once delivered).
    pub published: u64,
    /// Repeats folded into an earlier sighting of the batch.
    pub folded: u64,
}
impl SightingsMade {
    /// Counts them.
    pub(crate) fn emit(&self, m: &Metrics) {
        m.scale.sightings_published.inc_by(self.published);
        m.scale.sightings_folded.inc_by(self.folded);
        debug!(
            published = self.published,
            folded = self.folded,
            "sightings made"
        );
    }
}

/// The owner-side consumer's assignment changed.
pub(crate) struct OwnedPartitionsChanged {
    /// Partitions of the sightings topic held now.
    pub owned: usize,
    /// Partitions of the sightings topic.
    pub partitions: usize,
}
impl OwnedPartitionsChanged {
    /// Sets the gauge and logs at info.
    pub(crate) fn emit(&self, m: &Metrics) {
        m.scale.owned_partitions.set(self.owned as i64);
        info!(
            owned = self.owned,
            partitions = self.partitions,
            "owned sightings partitions"
        );
    }
}

/// A provider's share of its budget was recomputed.
pub(crate) struct BudgetShareSet {
    /// Provider.
    pub provider: &'static str,
    /// Lookups a minute this daemon may make (`None`: no per-minute limit).
    pub per_minute: Option<u32>,
    /// Lookups a day (`None`: no daily limit).
    pub per_day: Option<u32>,
}
impl BudgetShareSet {
    /// Sets the gauges (−1 for no limit) and logs at info.
    pub(crate) fn emit(&self, m: &Metrics) {
        let value = |v: Option<u32>| v.map_or(-1, i64::from);
        m.scale
            .budget_share
            .with_label_values(&[self.provider, "minute"])
            .set(value(self.per_minute));
        m.scale
            .budget_share
            .with_label_values(&[self.provider, "day"])
            .set(value(self.per_day));
        info!(
            provider = self.provider,
            per_minute = ?self.per_minute,
            per_day = ?self.per_day,
            "provider budget share"
        );
    }
}
