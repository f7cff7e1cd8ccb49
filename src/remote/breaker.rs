//! Circuit breaker per provider, and the retry backoff. Pure: every call takes the time.
//!
//! * In: the outcome of each request that could show the provider is down (timeouts, 5xx,
//!   connection failures) or up (any answer).
//! * Out: whether a request may go now. After `threshold` consecutive failures the circuit
//!   opens for a cool-down (30 s, doubling after each failed trial, at most 10 min); then one
//!   trial request passes (half-open). Its success closes the circuit; its failure opens it
//!   again for twice as long. Lookups that find the circuit open wait in the remote queue or,
//!   past the caller's patience, are reported `unavailable` without a request.
//! * [`retry_backoff`]: capped exponential backoff with full jitter for the retries of one
//!   lookup, so a fleet of daemons does not retry in step.

use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime};

/// Consecutive failures that open the circuit.
pub const FAILURE_THRESHOLD: u32 = 5;
/// First cool-down.
pub(crate) const BASE_COOLDOWN: Duration = Duration::from_secs(30);
/// Longest cool-down.
pub(crate) const MAX_COOLDOWN: Duration = Duration::from_secs(600);
/// While a trial request is out, others wait this long before asking again.
const TRIAL_WAIT: Duration = Duration::from_secs(1);
/// A trial with no outcome after this long is taken as lost (its caller never sent it, or was
/// cancelled), and the next caller may try: the circuit can never stay half-open for good.
pub(crate) const TRIAL_EXPIRY: Duration = Duration::from_secs(120);

/// One provider's circuit.
#[derive(Debug, Clone)]
pub(crate) struct Breaker {
    failures: u32,
    open_until: Option<SystemTime>,
    cooldown: Duration,
    /// When the half-open trial was handed out, while it has no outcome.
    trial_since: Option<SystemTime>,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            failures: 0,
            open_until: None,
            cooldown: BASE_COOLDOWN,
            trial_since: None,
        }
    }
}

impl Breaker {
    /// Whether a request could go now, without taking the half-open trial: `Err(until)` when
    /// the circuit is open.
    pub(crate) fn check(&self, now: SystemTime) -> Result<(), SystemTime> {
        match (self.open_until, self.trial_since) {
            (Some(until), _) if now < until => Err(until),
            (Some(_), Some(since)) if now < since + TRIAL_EXPIRY => Err(now + TRIAL_WAIT),
            _ => Ok(()),
        }
    }

    /// Like [`Breaker::check`], and takes the trial when the cool-down is over.
    pub(crate) fn permit(&mut self, now: SystemTime) -> Result<(), SystemTime> {
        self.check(now)?;
        if self.open_until.is_some() {
            self.trial_since = Some(now);
        }
        Ok(())
    }

    /// The provider answered (any answer, even an error it chose to send): close the circuit.
    pub(crate) fn success(&mut self) {
        *self = Breaker::default();
    }

    /// A timeout, 5xx or connection failure.
    pub(crate) fn failure(&mut self, now: SystemTime) {
        self.failures = self.failures.saturating_add(1);
        if self.trial_since.take().is_some() {
            self.cooldown = (self.cooldown * 2).min(MAX_COOLDOWN);
            self.open_until = Some(now + self.cooldown);
        } else if self.open_until.is_none() && self.failures >= FAILURE_THRESHOLD {
            self.open_until = Some(now + self.cooldown);
        }
    }

    /// Consecutive failures so far.
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }
}

/// Backoff before retry number `attempt` (0-based): a random point in
/// `[base·2^attempt / 2, base·2^attempt]`, capped at `cap`.
pub(crate) fn retry_backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let ceiling = base.saturating_mul(1u32 << attempt.min(16)).min(cap);
    // Randomness without a dependency: the std hasher is seeded randomly per instance.
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let fraction = 0.5 + (random % 1_000_000) as f64 / 2_000_000.0;
    ceiling.mul_f64(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_428_000 + secs)
    }

    #[test]
    fn opens_after_the_threshold_and_lets_one_trial_through() {
        let mut breaker = Breaker::default();
        for _ in 0..FAILURE_THRESHOLD - 1 {
            breaker.failure(at(0));
            assert_eq!(breaker.permit(at(0)), Ok(()));
        }
        breaker.failure(at(0));
        assert_eq!(breaker.permit(at(1)), Err(at(30)));
        assert_eq!(breaker.check(at(29)), Err(at(30)));
        // Cool-down over: exactly one trial.
        assert_eq!(breaker.permit(at(30)), Ok(()));
        assert_eq!(breaker.permit(at(30)), Err(at(31)));
        // A trial that never reports is taken as lost after TRIAL_EXPIRY.
        let mut lost = breaker.clone();
        assert_eq!(lost.check(at(30) + TRIAL_EXPIRY), Ok(()));
        assert_eq!(lost.permit(at(30) + TRIAL_EXPIRY), Ok(()));
        // The trial fails: open twice as long.
        breaker.failure(at(31));
        assert_eq!(breaker.check(at(31)), Err(at(91)));
        assert_eq!(breaker.permit(at(91)), Ok(()));
        breaker.success();
        assert_eq!(breaker.permit(at(91)), Ok(()));
        assert_eq!(breaker.failures(), 0);
    }

    #[test]
    fn an_answer_resets_the_count() {
        let mut breaker = Breaker::default();
        for _ in 0..10 {
            for _ in 0..FAILURE_THRESHOLD - 1 {
                breaker.failure(at(0));
            }
            breaker.success();
        }
        assert_eq!(breaker.permit(at(0)), Ok(()));
    }

    #[test]
    fn the_cooldown_is_capped() {
        let mut breaker = Breaker::default();
        let mut now = at(0);
        for _ in 0..FAILURE_THRESHOLD {
            breaker.failure(now);
        }
        for _ in 0..20 {
            let until = breaker.check(now).unwrap_err();
            now = until;
            assert_eq!(breaker.permit(now), Ok(()));
            breaker.failure(now);
            assert!(breaker.check(now).unwrap_err() <= now + MAX_COOLDOWN);
        }
        assert_eq!(breaker.check(now), Err(now + MAX_COOLDOWN));
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let base = Duration::from_millis(500);
        let cap = Duration::from_secs(8);
        for attempt in 0..10 {
            let ceiling = base.saturating_mul(1 << attempt).min(cap);
            let wait = retry_backoff(attempt, base, cap);
            assert!(
                wait >= ceiling / 2 && wait <= ceiling,
                "{attempt}: {wait:?}"
            );
        }
        let samples: std::collections::HashSet<_> =
            (0..20).map(|_| retry_backoff(3, base, cap)).collect();
        assert!(samples.len() > 1, "jitter varies");
    }
}
