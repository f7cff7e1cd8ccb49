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
        }
    }

    /// Whether a lookup could be made now, without taking anything.
    pub(crate) fn check(&mut self, now: SystemTime) -> Spend {
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
        if self.per_day > 0 && self.used_today >= self.per_day {
            return Spend::DayExhausted {
                resets_at: next_utc_midnight(now),
            };
        }
        if self.per_minute > 0 {
            // A grant's token comes back one minute after it was spent, so no 60 s window,
            // however placed, ever holds more than `per_minute` grants.
            while self
                .recent
                .front()
                .is_some_and(|t| now.duration_since(*t).is_ok_and(|age| age >= MINUTE))
            {
                self.recent.pop_front();
            }
            if self.recent.len() >= self.per_minute as usize {
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
        (self.per_day > 0).then(|| {
            if day_of(now) != self.day {
                self.per_day
            } else {
                self.per_day.saturating_sub(self.used_today)
            }
        })
    }

    /// For `provider_quota_remaining`: lookups left today, else left in the current minute,
    /// else `None` (no limit at all).
    pub(crate) fn remaining(&self, now: SystemTime) -> Option<u32> {
        self.remaining_today(now).or_else(|| {
            (self.per_minute > 0).then(|| {
                let in_window = self
                    .recent
                    .iter()
                    .filter(|t| now.duration_since(**t).map_or(true, |age| age < MINUTE))
                    .count();
                self.per_minute.saturating_sub(in_window as u32)
            })
        })
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
