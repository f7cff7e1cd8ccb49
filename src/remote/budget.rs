//! Spend policy per provider: a per-minute token bucket whose tokens come back one minute after
//! they were spent (a sliding window: no 60 s span ever sees more than `per_minute` requests,
//! where a bucket refilled continuously would let through up to twice that), a daily budget reset at 00:00 UTC,
//! and a hold set from a provider's own `Retry-After` / reset time. Pure: every call takes the
//! time, so tests need no clock.
//!
//! * In: `per_minute` and `per_day` from `[providers.<name>]` (0 = no limit of that kind).
//! * Out: [`Spend::Granted`] (one lookup may go out now), or why not and until when:
//!   `Throttled` (the minute bucket is empty: try again after the wait), `DayExhausted`
//!   (the daily budget is spent: the lookup is `skipped` until the reset), `Held` (the provider
//!   said to wait: 429 with `Retry-After`, or its quota reset time).
//! * Nothing here sleeps or queues; the remote queue decides what to do with a refusal.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAY: u64 = 86_400;
const MINUTE: Duration = Duration::from_secs(60);

/// Whether a lookup may be made now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Spend {
    /// Go: one token and one unit of the daily budget were taken.
    Granted,
    /// The per-minute bucket is empty; a token is back after this long.
    Throttled(Duration),
    /// The daily budget is spent; it resets at this time (00:00 UTC).
    DayExhausted {
        /// Next reset.
        resets_at: SystemTime,
    },
    /// The provider asked us to wait (429 `Retry-After`, quota reset) until this time.
    Held {
        /// End of the hold.
        until: SystemTime,
    },
}

/// One provider's budget.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    per_minute: u32,
    per_day: u32,
    /// Times of the grants of the last minute, oldest first (at most `per_minute`).
    recent: VecDeque<SystemTime>,
    /// Day number (days since the epoch, UTC) the daily count belongs to.
    day: u64,
    used_today: u32,
    held_until: Option<SystemTime>,
    /// This daemon's share in scaled mode (`None`: the whole budget).
    share: Option<Share>,
}

fn day_of(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / DAY)
}

/// 00:00 UTC after `time`.
pub(crate) fn next_utc_midnight(time: SystemTime) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs((day_of(time) + 1) * DAY)
}

impl Budget {
    /// A full budget at `now`.
    pub(crate) fn new(per_minute: u32, per_day: u32, now: SystemTime) -> Self {
        Budget {
            per_minute,
            per_day,
            recent: VecDeque::with_capacity(per_minute.min(1024) as usize),
            day: day_of(now),
            used_today: 0,
            held_until: None,
            share: None,
        }
    }

    /// Whether a lookup could be made now, without taking anything.
    pub(crate) fn check(&mut self, now: SystemTime) -> Spend {
        let (per_minute, per_day) = self.limits(now);
        if let Some(until) = self.held_until {
            if now < until {
                return Spend::Held { until };
            }
            self.held_until = None;
        }
        if day_of(now) != self.day {
            self.day = day_of(now);
            self.used_today = 0;
        }
        if per_day.is_some_and(|limit| self.used_today >= limit) {
            return Spend::DayExhausted {
                resets_at: next_utc_midnight(now),
            };
        }
        if let Some(per_minute) = per_minute {
            // A grant's token comes back one minute after it was spent, so no 60 s window,
            // however placed, ever holds more than `per_minute` grants.
            while self
                .recent
                .front()
                .is_some_and(|t| now.duration_since(*t).is_ok_and(|age| age >= MINUTE))
            {
                self.recent.pop_front();
            }
            if self.recent.len() >= per_minute as usize {
                // A share of 0 has no token to wait for: it is looked at again in a minute.
                let oldest = self.recent.front().copied().unwrap_or(now);
                let back_at = oldest + MINUTE;
                return Spend::Throttled(back_at.duration_since(now).unwrap_or(MINUTE));
            }
        }
        Spend::Granted
    }

    /// Takes one lookup's worth of budget if there is one.
    pub(crate) fn try_spend(&mut self, now: SystemTime) -> Spend {
        let spend = self.check(now);
        if spend == Spend::Granted {
            if self.per_minute > 0 {
                // A clock that went backwards must not let a grant leave the window early.
                let at = self.recent.back().map_or(now, |last| now.max(*last));
                self.recent.push_back(at);
            }
            self.used_today += 1;
        }
        spend
    }

    /// A request granted at `granted_at` finished at `finished_at`: its minute token is dated
    /// from the later time, since the provider may have counted it as late as that (a slow
    /// connection set-up must not let the next minute's requests land inside the provider's
    /// minute).
    pub(crate) fn request_finished(&mut self, granted_at: SystemTime, finished_at: SystemTime) {
        let Some(index) = self.recent.iter().position(|t| *t == granted_at) else {
            return;
        };
        if finished_at <= granted_at {
            return;
        }
        self.recent.remove(index);
        let at = self.recent.partition_point(|t| *t <= finished_at);
        self.recent.insert(at, finished_at);
    }

    /// The provider said to wait until `until` (429 `Retry-After`, a quota reset time); the
    /// longer of two holds wins.
    pub(crate) fn hold_until(&mut self, until: SystemTime) {
        self.held_until = Some(self.held_until.map_or(until, |held| held.max(until)));
    }

    /// Lookups left today (`None` without a daily limit).
    pub(crate) fn remaining_today(&self, now: SystemTime) -> Option<u32> {
        let per_day = self.peek_limits(now).1?;
        Some(if day_of(now) != self.day {
            per_day
        } else {
            per_day.saturating_sub(self.used_today)
        })
    }

    /// For `provider_quota_remaining`: lookups left today, else left in the current minute,
    /// else `None` (no limit at all).
    pub(crate) fn remaining(&self, now: SystemTime) -> Option<u32> {
        self.remaining_today(now).or_else(|| {
            self.peek_limits(now).0.map(|per_minute| {
                let in_window = self
                    .recent
                    .iter()
                    .filter(|t| now.duration_since(**t).map_or(true, |age| age < MINUTE))
                    .count();
                per_minute.saturating_sub(in_window as u32)
            })
        })
    }
}

// s1-scaled: a daemon's share of the budget in scaled mode.
//
// A daemon owning k of the P partitions of the sightings topic may spend ⌊B·k/P⌋ of a budget B
// (per minute, per day). (⌊B·k/P⌋ rather than a sum of per-partition units
// ⌊B/P⌋ + (p < B mod P): with B = 4 and P = 6 the units would leave a daemon holding
// partitions 4 and 5 with nothing, where ⌊4·2/6⌋ gives each of three daemons 1.)
//
// A partition counts towards the share only once the previous owner can no longer have spent
// its part where it would add to ours:
// * per minute: once it has been held for a minute (the previous owner may have spent its part
//   inside the current window). The partitions a daemon has held throughout the minute before
//   its latest grant are held by no other daemon at the start of any 60 s window that grant
//   closes, so the shares then in force count disjoint partitions: the group never spends
//   more than ⌊B·P/P⌋ = B in any 60 s.
// * per day: once it has been held since 00:00 UTC (the previous owner may have spent its part
//   today), except the partitions of the first assignment after the daemon started, which
//   count at once (nothing tells a new daemon what an earlier owner spent today). Bound:
//   without restarts the group spends at most B a day; each start within a day can add at most
//   that daemon's first share.
// A partition lost counts no more at once.
/// One daemon's share of a provider's budget: the partitions it owns and since when they
/// count.
#[derive(Debug, Clone, Default)]
struct Share {
    /// Partitions of the sightings topic.
    partitions: usize,
    /// Each owned partition, when it counts for the minute budget and for the day budget.
    owned: Vec<(i32, SystemTime, SystemTime)>,
    /// Whether a share was set since the daemon started.
    assigned_before: bool,
}

/// ⌊budget·owned/partitions⌋: what a daemon owning `owned` of `partitions` may spend of
/// `budget` (0 = no limit of that kind, which stays no limit).
pub(crate) fn share_of(budget: u32, owned: usize, partitions: usize) -> Option<u32> {
    if budget == 0 {
        return None;
    }
    if partitions == 0 {
        return Some(0);
    }
    let share = u64::from(budget) * owned.min(partitions) as u64 / partitions as u64;
    Some(u32::try_from(share).unwrap_or(budget))
}

impl Budget {
    /// Scaled mode: this daemon owns `owned` of `partitions` sightings partitions from `now`
    /// (see the comment above [`Share`] for when a partition starts to count).
    pub(crate) fn set_share(&mut self, owned: &[i32], partitions: usize, now: SystemTime) {
        let share = self.share.get_or_insert_with(Share::default);
        let day_start = UNIX_EPOCH + Duration::from_secs(day_of(now) * DAY);
        let first = !share.assigned_before;
        share.partitions = partitions;
        share.owned.retain(|(p, _, _)| owned.contains(p));
        for p in owned {
            if !share.owned.iter().any(|(q, _, _)| q == p) {
                let day_from = if first {
                    day_start
                } else {
                    next_utc_midnight(now)
                };
                share.owned.push((*p, now + MINUTE, day_from));
            }
        }
        share.assigned_before = true;
    }

    /// Scaled mode before any assignment: nothing may be spent.
    pub(crate) fn share_nothing(&mut self) {
        self.share = Some(Share::default());
    }

    /// The per-minute and per-day limits in force at `now` (`None`: no limit).
    fn limits(&mut self, now: SystemTime) -> (Option<u32>, Option<u32>) {
        self.peek_limits(now)
    }

    /// The limits in force at `now`.
    pub(crate) fn peek_limits(&self, now: SystemTime) -> (Option<u32>, Option<u32>) {
        match &self.share {
            None => (
                (self.per_minute > 0).then_some(self.per_minute),
                (self.per_day > 0).then_some(self.per_day),
            ),
            Some(share) => {
                let minute = share.owned.iter().filter(|(_, m, _)| now >= *m).count();
                let day = share.owned.iter().filter(|(_, _, d)| now >= *d).count();
                (
                    share_of(self.per_minute, minute, share.partitions),
                    share_of(self.per_day, day, share.partitions),
                )
            }
        }
    }

    /// The share of each kind once every owned partition counts (for the `budget_share`
    /// gauges).
    pub(crate) fn full_share(&self) -> (Option<u32>, Option<u32>) {
        let (owned, partitions) = self
            .share
            .as_ref()
            .map_or((1, 1), |s| (s.owned.len(), s.partitions));
        (
            share_of(self.per_minute, owned, partitions),
            share_of(self.per_day, owned, partitions),
        )
    }
}

#[cfg(test)]
mod share_tests {
    use super::*;

    /// 2026-11-23T10:00:00Z.
    fn at(seconds_after_ten: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_428_000 + seconds_after_ten)
    }

    fn grants_within(budget: &mut Budget, now: SystemTime, tries: u32) -> u32 {
        (0..tries)
            .filter(|_| budget.try_spend(now) == Spend::Granted)
            .count() as u32
    }

    #[test]
    fn the_shares_of_every_split_of_the_partitions_sum_to_at_most_the_budget() {
        for budget in [1u32, 4, 10, 500, 1000, 86_400] {
            for partitions in 1..=12usize {
                // Every way of giving the partitions to up to `partitions` daemons, as counts.
                for daemons in 1..=partitions {
                    let base = partitions / daemons;
                    let owned: Vec<usize> = (0..daemons)
                        .map(|i| base + usize::from(i < partitions % daemons))
                        .collect();
                    let sum: u32 = owned
                        .iter()
                        .map(|k| share_of(budget, *k, partitions).unwrap())
                        .sum();
                    assert!(
                        sum <= budget,
                        "{budget} over {partitions}: {owned:?} -> {sum}"
                    );
                    // Never more than one unit per daemon is lost to rounding.
                    assert!(
                        sum + daemons as u32 > budget,
                        "{budget}/{partitions}: {owned:?} {sum}"
                    );
                }
                assert_eq!(share_of(budget, partitions, partitions), Some(budget));
            }
        }
        // VirusTotal's 4 a minute over 6 partitions and three daemons: 1 each, 3 in all.
        assert_eq!(share_of(4, 2, 6), Some(1));
        assert_eq!(share_of(0, 2, 6), None, "no limit stays no limit");
    }

    #[test]
    fn a_grown_minute_share_is_spendable_only_a_minute_later_and_a_shrunk_one_at_once() {
        let mut budget = Budget::new(12, 0, at(0));
        budget.share_nothing();
        assert_eq!(
            grants_within(&mut budget, at(0), 5),
            0,
            "nothing before an assignment"
        );
        // Assigned 2 of 6 partitions: 4 a minute, but only from a minute on.
        budget.set_share(&[0, 1], 6, at(10));
        assert_eq!(
            grants_within(&mut budget, at(69), 5),
            0,
            "the old owner's window"
        );
        assert_eq!(grants_within(&mut budget, at(70), 10), 4);
        // Grows to 3 of 6 at 80 s: still 4 a minute until 140 s.
        budget.set_share(&[0, 1, 2], 6, at(80));
        assert_eq!(grants_within(&mut budget, at(139), 10), 4);
        assert_eq!(budget.remaining(at(139)), Some(0));
        assert_eq!(
            grants_within(&mut budget, at(140), 10),
            2,
            "6 a minute from 140 s"
        );
        // Shrinks to 1 of 6 at 300 s: 2 a minute at once.
        budget.set_share(&[2], 6, at(300));
        assert_eq!(grants_within(&mut budget, at(300), 10), 2);
        // Partition 2 was held throughout: it still counts; a partition regained starts over.
        budget.set_share(&[2, 0], 6, at(330));
        assert_eq!(grants_within(&mut budget, at(389), 10), 2);
        assert_eq!(
            grants_within(&mut budget, at(390), 10),
            2,
            "4 a minute from 390 s"
        );
    }

    #[test]
    fn a_grown_day_share_waits_for_midnight_except_the_first_assignment() {
        let mut budget = Budget::new(0, 600, at(0));
        budget.share_nothing();
        assert_eq!(budget.remaining_today(at(0)), Some(0));
        // The first assignment applies at once: 1 of 6 → 100 a day.
        budget.set_share(&[0], 6, at(5));
        assert_eq!(budget.remaining_today(at(5)), Some(100));
        assert_eq!(grants_within(&mut budget, at(6), 150), 100);
        // Grows to 3 of 6: the previous owners may have spent theirs today.
        budget.set_share(&[0, 1, 2], 6, at(10));
        assert!(matches!(
            budget.try_spend(at(11)),
            Spend::DayExhausted { .. }
        ));
        let midnight = next_utc_midnight(at(11));
        assert_eq!(budget.remaining_today(midnight), Some(300));
        assert_eq!(grants_within(&mut budget, midnight, 400), 300);
        // Shrinks at once.
        budget.set_share(&[], 6, midnight + Duration::from_secs(1));
        assert_eq!(
            budget.remaining_today(midnight + Duration::from_secs(1)),
            Some(0)
        );
    }

    #[test]
    fn three_daemons_handing_partitions_over_never_pass_the_minute_budget_together() {
        // Six partitions move between three daemons every 25 s for ten minutes; each daemon
        // tries to spend every second. No 60 s window may hold more than 4 grants in all.
        let mut daemons: Vec<Budget> = (0..3).map(|_| Budget::new(4, 0, at(0))).collect();
        for d in &mut daemons {
            d.share_nothing();
        }
        let mut grants: Vec<SystemTime> = Vec::new();
        for second in 0..600u64 {
            let now = at(second);
            if second % 25 == 0 {
                // Rotating, uneven splits: partitions 0–3 to one daemon, 4 and 5 to the
                // others, the big one changing each time; sometimes nothing moves for long.
                let big = (second / 25 % 3) as usize;
                let big = if (second / 100) % 2 == 0 { big } else { 0 };
                let mut small = [4, 5].into_iter();
                for (i, d) in daemons.iter_mut().enumerate() {
                    let owned: Vec<i32> = if i == big {
                        vec![0, 1, 2, 3]
                    } else {
                        small.next().into_iter().collect()
                    };
                    d.set_share(&owned, 6, now);
                }
            }
            for d in &mut daemons {
                if d.try_spend(now) == Spend::Granted {
                    grants.push(now);
                }
            }
        }
        assert!(!grants.is_empty());
        for (i, start) in grants.iter().enumerate() {
            let within = grants[i..]
                .iter()
                .take_while(|t| t.duration_since(*start).unwrap() < MINUTE)
                .count();
            assert!(within <= 4, "{within} grants in the minute from {start:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-23T10:00:00Z.
    fn at(seconds_after_ten: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_428_000 + seconds_after_ten)
    }

    #[test]
    fn virustotal_free_tier_four_a_minute() {
        let mut budget = Budget::new(4, 500, at(0));
        for _ in 0..4 {
            assert_eq!(budget.try_spend(at(0)), Spend::Granted);
        }
        assert_eq!(
            budget.try_spend(at(0)),
            Spend::Throttled(Duration::from_secs(60))
        );
        assert_eq!(
            budget.try_spend(at(59)),
            Spend::Throttled(Duration::from_secs(1))
        );
        assert_eq!(budget.check(at(60)), Spend::Granted);
        assert_eq!(
            budget.remaining_today(at(60)),
            Some(496),
            "check takes nothing"
        );
        assert_eq!(budget.try_spend(at(60)), Spend::Granted);
        assert_eq!(budget.remaining_today(at(60)), Some(495));
    }

    #[test]
    fn the_day_budget_resets_at_utc_midnight() {
        let mut budget = Budget::new(0, 3, at(0));
        for _ in 0..3 {
            assert_eq!(budget.try_spend(at(1)), Spend::Granted);
        }
        let midnight = UNIX_EPOCH + Duration::from_secs(1_795_478_400); // 2026-11-24T00:00:00Z
        assert_eq!(next_utc_midnight(at(1)), midnight);
        assert_eq!(
            budget.try_spend(at(2)),
            Spend::DayExhausted {
                resets_at: midnight
            }
        );
        assert_eq!(budget.remaining_today(at(2)), Some(0));
        let after = midnight + Duration::from_secs(1);
        assert_eq!(budget.remaining_today(after), Some(3));
        assert_eq!(budget.try_spend(after), Spend::Granted);
    }

    #[test]
    fn a_provider_hold_wins_and_the_longest_hold_counts() {
        let mut budget = Budget::new(60, 0, at(0));
        budget.hold_until(at(100));
        budget.hold_until(at(50));
        assert_eq!(budget.try_spend(at(99)), Spend::Held { until: at(100) });
        assert_eq!(budget.try_spend(at(100)), Spend::Granted);
        assert_eq!(budget.remaining_today(at(100)), None);
    }

    #[test]
    fn a_burst_never_exceeds_the_minute_budget() {
        let mut budget = Budget::new(10, 0, at(0));
        let mut grants = Vec::new();
        // 30,000 attempts over three minutes, 6 ms apart.
        for i in 0..30_000u64 {
            let now = at(0) + Duration::from_millis(i * 6);
            if budget.try_spend(now) == Spend::Granted {
                grants.push(now);
            }
        }
        assert_eq!(grants.len(), 30, "10 per minute, used in full");
        // No 60 s window, wherever it starts, holds more than 10 grants.
        for (i, start) in grants.iter().enumerate() {
            let within = grants[i..]
                .iter()
                .take_while(|t| t.duration_since(*start).unwrap() < MINUTE)
                .count();
            assert!(within <= 10, "{within} grants within a minute of grant {i}");
        }
        assert_eq!(budget.remaining(at(150)), Some(0));
        assert_eq!(budget.remaining(at(200)), Some(10));
    }

    #[test]
    fn a_token_comes_back_a_minute_after_its_request_finished() {
        let mut budget = Budget::new(2, 0, at(0));
        assert_eq!(budget.try_spend(at(0)), Spend::Granted);
        assert_eq!(budget.try_spend(at(1)), Spend::Granted);
        // The first took 5 s to complete.
        budget.request_finished(at(0), at(5));
        // At 61 s the second's token is back, the first's not until 65 s.
        assert_eq!(budget.try_spend(at(61)), Spend::Granted);
        assert_eq!(
            budget.try_spend(at(62)),
            Spend::Throttled(Duration::from_secs(3))
        );
        assert_eq!(budget.try_spend(at(65)), Spend::Granted);
        // Unknown grants change nothing.
        budget.request_finished(at(1000), at(1001));
        assert_eq!(budget.remaining(at(66)), Some(0));
    }

    #[test]
    fn a_clock_going_back_refills_nothing() {
        let mut budget = Budget::new(1, 0, at(100));
        assert_eq!(budget.try_spend(at(100)), Spend::Granted);
        assert!(matches!(budget.try_spend(at(50)), Spend::Throttled(_)));
        assert!(matches!(budget.try_spend(at(159)), Spend::Throttled(_)));
        assert_eq!(budget.try_spend(at(160)), Spend::Granted);
    }
}
