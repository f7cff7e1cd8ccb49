//! State changelog events (s2-state): the warm start's figures.

use std::time::Duration;

use tracing::info;

use crate::telemetry::Metrics;

/// The state topic was read and restored.
pub(crate) struct WarmStartFinished {
    /// State records read (states and tombstones).
    pub records: u64,
    /// Records that were not state records.
    pub invalid: u64,
    /// Addresses left out to stay within `dedup.max_entries`.
    pub dropped: u64,
    /// Addresses put back in the dedup window.
    pub addresses: u64,
    /// Addresses whose dedup window had passed.
    pub expired: u64,
    /// Provider answers put back in the answer caches.
    pub answers: u64,
    /// Addresses queued again for providers still pending.
    pub requeued: u64,
    /// Time the read and the restore took.
    pub elapsed: Duration,
}
impl WarmStartFinished {
    /// Counts the records and lookups, sets the duration, and logs the figures.
    pub(crate) fn emit(&self, m: &Metrics) {
        m.warm_start_records.inc_by(self.records);
        m.warm_start_lookups_requeued.inc_by(self.requeued);
        m.warm_start_seconds.set(self.elapsed.as_secs_f64());
        info!(
            records = self.records,
            invalid = self.invalid,
            dropped = self.dropped,
            addresses = self.addresses,
            expired = self.expired,
            answers = self.answers,
            requeued = self.requeued,
            seconds = self.elapsed.as_secs_f64(),
            "warm start from the state topic finished"
        );
    }
}
