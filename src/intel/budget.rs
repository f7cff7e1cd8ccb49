//! Spend policy per provider: a per-minute token bucket, a daily budget reset at 00:00 UTC,
//! and a hold set from a provider's own `Retry-After` / reset time. Pure: every call takes the
//! time, so tests need no clock.
//!
//! * In: `per_minute` and `per_day` from `[providers.<name>]` (0 = no limit of that kind).
//! * Out: [`Spend::Granted`] (one lookup may go out now), or why not and until when:
//!   `Throttled` (the minute bucket is empty: try again after the wait), `DayExhausted`
//!   (the daily budget is spent: the lookup is `skipped` until the reset), `Held` (the provider
//!   said to wait: 429 with `Retry-After`, or its quota reset time).
//! * Nothing here sleeps or queues; the remote queue decides what to do with a refusal.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAY: u64 = 86_400;

/// Whether a lookup may be made now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spend {
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
pub struct Budget {
    per_minute: u32,
    per_day: u32,
    /// Tokens left in the minute bucket (fractional: refilled continuously).
    tokens: f64,
    refilled_at: SystemTime,
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
pub fn next_utc_midnight(time: SystemTime) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs((day_of(time) + 1) * DAY)
}

impl Budget {
    /// A full budget at `now`.
    pub fn new(per_minute: u32, per_day: u32, now: SystemTime) -> Self {
        Budget {
            per_minute,
            per_day,
            tokens: f64::from(per_minute),
            refilled_at: now,
            day: day_of(now),
            used_today: 0,
            held_until: None,
        }
    }

    /// Takes one lookup's worth of budget if there is one.
    pub fn try_spend(&mut self, now: SystemTime) -> Spend {
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
            self.refill(now);
            if self.tokens < 1.0 {
                let missing = 1.0 - self.tokens;
                let wait = Duration::from_secs_f64(missing * 60.0 / f64::from(self.per_minute));
                return Spend::Throttled(wait);
            }
            self.tokens -= 1.0;
        }
        self.used_today += 1;
        Spend::Granted
    }

    fn refill(&mut self, now: SystemTime) {
        // A clock that went backwards refills nothing.
        let elapsed = now
            .duration_since(self.refilled_at)
            .unwrap_or(Duration::ZERO);
        let per_second = f64::from(self.per_minute) / 60.0;
        self.tokens =
            (self.tokens + elapsed.as_secs_f64() * per_second).min(f64::from(self.per_minute));
        self.refilled_at = now.max(self.refilled_at);
    }

    /// The provider said to wait until `until` (429 `Retry-After`, a quota reset time); the
    /// longer of two holds wins.
    pub fn hold_until(&mut self, until: SystemTime) {
        self.held_until = Some(self.held_until.map_or(until, |held| held.max(until)));
    }

    /// Lookups left today (`None` without a daily limit), for `provider_quota_remaining`.
    pub fn remaining_today(&self, now: SystemTime) -> Option<u32> {
        (self.per_day > 0).then(|| {
            if day_of(now) != self.day {
                self.per_day
            } else {
                self.per_day.saturating_sub(self.used_today)
            }
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
            Spend::Throttled(Duration::from_secs(15))
        );
        assert_eq!(
            budget.try_spend(at(14)),
            Spend::Throttled(Duration::from_secs(1))
        );
        assert_eq!(budget.try_spend(at(15)), Spend::Granted);
        assert_eq!(budget.remaining_today(at(15)), Some(495));
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
        let mut granted = 0;
        // 10,000 attempts within one minute, 6 ms apart.
        for i in 0..10_000u64 {
            if budget.try_spend(at(0) + Duration::from_millis(i * 6)) == Spend::Granted {
                granted += 1;
            }
        }
        // 10 at the start plus 10 refilled over the 60 s: never more than the budget allows.
        assert!(granted <= 20, "{granted}");
        assert!(granted >= 19, "{granted}");
    }

    #[test]
    fn a_clock_going_back_refills_nothing() {
        let mut budget = Budget::new(1, 0, at(100));
        assert_eq!(budget.try_spend(at(100)), Spend::Granted);
        assert!(matches!(budget.try_spend(at(50)), Spend::Throttled(_)));
        assert_eq!(budget.try_spend(at(160)), Spend::Granted);
    }
}
