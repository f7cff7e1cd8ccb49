//! Per-partition, in-order completion tracking. Pure.
//!
//! * In: `begin(partition, offset)` when the consumer hands a message to the pipeline (in
//!   consumption order), `complete(partition, offset)` when every output of that message has a
//!   successful delivery report (in any order).
//! * Out: the offset to store: the highest offset below which every begun message is complete.
//!   librdkafka's `store_offset(topic, partition, o)` stores `o + 1` as the next offset to read,
//!   so what is returned is the last *finished* message's offset, not `+ 1`.
//! * On revoke, a partition's state is forgotten; completions for it are then ignored (their
//!   outputs were delivered, and the new owner may redo them: at least once).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// A topic-partition.
pub(crate) type PartitionKey = (Arc<str>, i32);

#[derive(Debug, Default)]
struct PartitionState {
    /// Offsets begun and not yet complete.
    pending: BTreeSet<i64>,
    /// Completed offsets above the lowest pending one (waiting for it).
    done_above: BTreeSet<i64>,
    /// Highest offset begun.
    highest_begun: Option<i64>,
    /// Last offset returned for storing.
    stored: Option<i64>,
}

/// Tracks finished offsets per partition.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<PartitionKey, PartitionState>,
}

impl OffsetTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `offset` entered the pipeline. Offsets of one partition arrive in order.
    pub fn begin(&mut self, topic: &Arc<str>, partition: i32, offset: i64) {
        let state = self
            .partitions
            .entry((topic.clone(), partition))
            .or_default();
        state.pending.insert(offset);
        state.highest_begun = Some(state.highest_begun.map_or(offset, |h| h.max(offset)));
    }

    /// Records that `offset` is finished; returns the offset to store when it advanced.
    pub fn complete(&mut self, topic: &Arc<str>, partition: i32, offset: i64) -> Option<i64> {
        let state = self.partitions.get_mut(&(topic.clone(), partition))?;
        if !state.pending.remove(&offset) {
            return None;
        }
        state.done_above.insert(offset);
        // Everything below the lowest pending offset is finished.
        let watermark = match state.pending.first() {
            Some(&lowest_pending) => {
                let below: Vec<i64> = state.done_above.range(..lowest_pending).copied().collect();
                let last = below.last().copied();
                for o in below {
                    state.done_above.remove(&o);
                }
                last
            }
            None => {
                let last = state.done_above.last().copied();
                state.done_above.clear();
                last
            }
        }?;
        if state.stored.is_some_and(|s| s >= watermark) {
            return None;
        }
        state.stored = Some(watermark);
        Some(watermark)
    }

    /// Removes a begun offset that never entered the pipeline (dropped at shutdown while
    /// waiting for room). Only the newest begun offset of a partition can be abandoned, so
    /// nothing finished after it can be stored past it.
    pub fn abandon(&mut self, topic: &Arc<str>, partition: i32, offset: i64) {
        if let Some(state) = self.partitions.get_mut(&(topic.clone(), partition)) {
            if state.pending.last() == Some(&offset) {
                state.pending.remove(&offset);
            }
        }
    }

    /// Forgets a revoked partition.
    pub fn forget(&mut self, topic: &str, partition: i32) {
        self.partitions
            .retain(|(t, p), _| !(&**t == topic && *p == partition));
    }

    /// Messages begun and not complete, over all partitions.
    pub fn in_flight(&self) -> usize {
        self.partitions.values().map(|s| s.pending.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic() -> Arc<str> {
        Arc::from("firewall")
    }

    #[test]
    fn stores_only_the_contiguous_finished_prefix() {
        let t = topic();
        let mut tracker = OffsetTracker::new();
        for o in 10..15 {
            tracker.begin(&t, 0, o);
        }
        assert_eq!(
            tracker.complete(&t, 0, 12),
            None,
            "10 and 11 are still pending"
        );
        assert_eq!(tracker.complete(&t, 0, 11), None);
        assert_eq!(tracker.complete(&t, 0, 10), Some(12), "10..=12 are done");
        assert_eq!(tracker.complete(&t, 0, 14), None, "13 is pending");
        assert_eq!(tracker.complete(&t, 0, 13), Some(14));
        assert_eq!(tracker.in_flight(), 0);
    }

    #[test]
    fn partitions_are_independent() {
        let t = topic();
        let mut tracker = OffsetTracker::new();
        tracker.begin(&t, 0, 5);
        tracker.begin(&t, 1, 7);
        assert_eq!(tracker.complete(&t, 1, 7), Some(7));
        assert_eq!(tracker.complete(&t, 0, 5), Some(5));
    }

    #[test]
    fn gaps_in_offsets_are_fine() {
        // Compacted topics and transaction markers leave gaps.
        let t = topic();
        let mut tracker = OffsetTracker::new();
        tracker.begin(&t, 0, 3);
        tracker.begin(&t, 0, 9);
        assert_eq!(tracker.complete(&t, 0, 9), None);
        assert_eq!(tracker.complete(&t, 0, 3), Some(9));
    }

    #[test]
    fn unknown_and_forgotten_partitions_are_ignored() {
        let t = topic();
        let mut tracker = OffsetTracker::new();
        assert_eq!(tracker.complete(&t, 0, 1), None);
        tracker.begin(&t, 0, 1);
        tracker.forget("firewall", 0);
        assert_eq!(tracker.complete(&t, 0, 1), None);
        assert_eq!(tracker.in_flight(), 0);
    }

    #[test]
    fn an_abandoned_newest_offset_no_longer_counts_as_in_flight() {
        let t = topic();
        let mut tracker = OffsetTracker::new();
        tracker.begin(&t, 0, 1);
        tracker.begin(&t, 0, 2);
        tracker.abandon(&t, 0, 1);
        assert_eq!(tracker.in_flight(), 2, "only the newest may be abandoned");
        tracker.abandon(&t, 0, 2);
        assert_eq!(tracker.in_flight(), 1);
        assert_eq!(tracker.complete(&t, 0, 1), Some(1));
    }

    #[test]
    fn a_duplicate_completion_does_not_move_the_offset() {
        let t = topic();
        let mut tracker = OffsetTracker::new();
        tracker.begin(&t, 0, 1);
        tracker.begin(&t, 0, 2);
        assert_eq!(tracker.complete(&t, 0, 1), Some(1));
        assert_eq!(tracker.complete(&t, 0, 1), None);
        assert_eq!(tracker.complete(&t, 0, 2), Some(2));
    }

    /// Begun offsets (sorted, with gaps like a compacted topic) and a completion order that
    /// is a real permutation of some of them, so completions arrive in any order.
    fn begun_and_completion_order(
    ) -> impl proptest::strategy::Strategy<Value = (Vec<i64>, Vec<i64>)> {
        use proptest::strategy::Strategy;
        proptest::sample::subsequence((0i64..60).collect::<Vec<_>>(), 1..40).prop_flat_map(
            |begun| {
                let len = begun.len();
                let order = proptest::sample::subsequence(begun.clone(), 0..=len).prop_shuffle();
                (proptest::strategy::Just(begun), order)
            },
        )
    }

    /// The model: the highest begun offset with every begun offset up to it finished.
    fn contiguous_finished(begun: &[i64], finished: &BTreeSet<i64>) -> Option<i64> {
        begun
            .iter()
            .take_while(|o| finished.contains(o))
            .last()
            .copied()
    }

    proptest::proptest! {
        #[test]
        fn stored_offset_is_the_highest_contiguous_finished_offset_after_every_completion(
            (begun, order) in begun_and_completion_order()
        ) {
            let t = topic();
            let mut tracker = OffsetTracker::new();
            for &o in &begun { tracker.begin(&t, 0, o); }
            let mut finished = BTreeSet::new();
            let mut stored = None;
            for o in order {
                finished.insert(o);
                let expected = contiguous_finished(&begun, &finished);
                let returned = tracker.complete(&t, 0, o);
                // `complete` reports the offset exactly when the watermark moved.
                let moved = if expected != stored { expected } else { None };
                proptest::prop_assert_eq!(returned, moved, "completing {} after {:?}", o, finished);
                if let Some(s) = returned { stored = Some(s); }
                proptest::prop_assert_eq!(stored, expected, "stored offset after completing {}", o);
            }
            proptest::prop_assert_eq!(tracker.in_flight(), begun.len() - finished.len());
        }
    }

    #[test]
    fn an_unsent_suffix_abandoned_newest_first_leaves_nothing_pending() {
        let t = topic();
        let mut tracker = OffsetTracker::new();
        for o in 10..15 {
            tracker.begin(&t, 0, o);
        }
        // Oldest first would leave all but the newest pending: the tracker refuses to forget
        // an offset below a begun one.
        for o in [14, 13, 12] {
            tracker.abandon(&t, 0, o);
        }
        assert_eq!(tracker.in_flight(), 2);
        assert_eq!(tracker.complete(&t, 0, 11), None);
        assert_eq!(tracker.complete(&t, 0, 10), Some(11));
        assert_eq!(tracker.in_flight(), 0);
    }
}
