//! One remote provider as the daemon and `threatsift enrich` use it: its budget, its circuit
//! breaker, its answer cache, and the rules that keep a failure from ever becoming evidence.
//!
//! * In: an address to look up, and how long the caller is willing to wait for budget
//!   ([`Patience`]).
//! * Out: an [`Outcome`]: the provider's `intel` entry (status, detail, facts), its network
//!   facts, and when the address may be tried again if no answer was had.
//! * Exactly one upstream request per address at a time: concurrent misses share one
//!   `try_get_with` initialisation of the answer cache. Answers (`ok`, `not_found`) are cached
//!   for `ttl` / `not_found_ttl`; errors and refusals are not.
//! * Not asked, counted in `enrich_skipped_total{provider,reason}`: address outside the
//!   provider's coverage (`not_covered`), provider down after a 401/403 (`provider_down`), daily
//!   budget spent (`budget_day`), no lookups allowed (`budget_none`: `per_minute` or `per_day`
//!   is `"none"`), a hold or throttle longer than the caller's patience
//!   (`budget_wait`), circuit open (`circuit_open`).
//! * 401/403: the provider is marked down: `provider_up` 0, one error log, no request after
//!   (for RDAP and InternetDB, which take no key, it is a block instead: held for an hour).
//!   429: the budget is held until the provider's `Retry-After`/reset (60 s when it gave none).
//!   Quota exhausted: held until its reset, else 00:00 UTC. Timeouts, 5xx and connection
//!   failures: up to [`MAX_RETRIES`] retries with capped, jittered exponential backoff, each
//!   retry spending budget like any request; they feed the circuit breaker, and so do
//!   unreadable answers (HTML pages), which are not retried. Any other answer closes it.
//! * A minute token is dated from when its request finished, not when it was granted.
//! * Time (budgets, holds, answer lifetimes) is read from, and waits (for budget, a hold, a
//!   retry's backoff) are made on, the slot's [`Clock`]: the system's in the daemon, one the
//!   test sets in tests.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use futures::future::BoxFuture;
use moka::future::Cache;

use crate::intel::{intel_entry, Lookup, Provider, ProviderError};
use crate::model::{rfc3339, Network, ProviderIntel, ProviderStatus};
use crate::remote::breaker::{retry_backoff, Breaker};
use crate::remote::budget::{next_utc_midnight, Budget, Spend};
use crate::settings::ProviderSettings;
use crate::telemetry::events::{
    ProviderBudgetWaiting, ProviderCacheHit, ProviderDown, ProviderRequestError, ProviderRequested,
    ProviderSkipped, ProviderState,
};
use crate::telemetry::Metrics;

/// Retries of one lookup after a timeout, 5xx or connection failure.
pub const MAX_RETRIES: u32 = 2;
const RETRY_BASE: Duration = Duration::from_millis(500);
const RETRY_CAP: Duration = Duration::from_secs(8);
/// Hold after a 429 that named no time.
const DEFAULT_429_HOLD: Duration = Duration::from_secs(60);
/// Hold after a 401/403 from a provider that takes no key (a ban of our address, a proxy).
const KEYLESS_BLOCK_HOLD: Duration = Duration::from_secs(3600);

/// The slot's time: what time it is, and how it waits (for budget, a hold, an open circuit, a
/// retry's backoff). The daemon uses [`SystemClock`]; tests inject a clock they set, so that
/// budgets, holds and retries are checked at chosen instants without real waiting.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> SystemTime;
    /// Resolves after `wait` on this clock.
    fn sleep(&self, wait: Duration) -> BoxFuture<'static, ()>;
}

/// The system's wall clock, and tokio's timer for waits.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep(&self, wait: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(wait))
    }
}

/// How long a caller waits for budget before the lookup is reported as not made.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    /// Longest wait for a minute token, a provider's hold or an open circuit.
    pub max_wait: Duration,
}

/// The result of one lookup, as the record needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The provider's `intel` entry.
    pub intel: ProviderIntel,
    /// Network facts of an `ok` answer.
    pub network: Option<Network>,
    /// When a lookup without an answer may be tried again (`None`: not before a restart, or
    /// not needed).
    pub retry_at: Option<SystemTime>,
}

impl Outcome {
    fn answer(lookup: Lookup) -> Outcome {
        let result = Ok(lookup);
        let network = match &result {
            Ok(Lookup::Found { network, .. }) => Some(network.clone()),
            _ => None,
        };
        Outcome {
            intel: intel_entry(&result),
            network,
            retry_at: None,
        }
    }
}

/// Why no answer was had (not cached: the next lookup tries again).
#[derive(Debug, Clone)]
struct Failure {
    status: ProviderStatus,
    detail: String,
    retry_at: Option<SystemTime>,
}

impl Failure {
    fn into_outcome(self) -> Outcome {
        Outcome {
            intel: ProviderIntel::status(self.status, self.detail),
            network: None,
            retry_at: self.retry_at,
        }
    }
}

/// Whether a request may go now.
#[derive(Debug, Clone)]
pub enum Admission {
    /// Yes.
    Go,
    /// After this long.
    Wait(Duration),
    /// Not at all for now: the lookup is reported with this status and detail.
    Refused {
        /// Status (`skipped`, `unauthorized`, `unavailable`, …).
        status: ProviderStatus,
        /// Why, in words.
        detail: String,
        /// When to try again.
        retry_at: Option<SystemTime>,
        /// Bounded reason for `enrich_skipped_total`.
        reason: &'static str,
    },
}

/// Per-provider limits and answer lifetimes (from `[providers.<name>]`).
#[derive(Debug, Clone, Copy)]
pub struct SlotLimits {
    /// Requests per minute (0 = no limit of this kind).
    pub per_minute: u32,
    /// Requests per day (0 = no limit of this kind).
    pub per_day: u32,
    /// The configuration allows no requests at all (`per_minute` or `per_day` = `"none"`):
    /// every lookup is `skipped`, none is sent.
    pub no_lookups: bool,
    /// Lifetime of an `ok` answer.
    pub ttl: Duration,
    /// Lifetime of a `not_found` answer.
    pub not_found_ttl: Duration,
    /// Most answers kept.
    pub max_answers: u64,
}

impl SlotLimits {
    /// From the provider's settings; `max_answers` bounds the answer cache.
    pub fn from_settings(settings: &ProviderSettings, max_answers: u64) -> Self {
        SlotLimits {
            per_minute: settings.per_minute.budget_limit(),
            per_day: settings.per_day.budget_limit(),
            no_lookups: settings.per_minute.is_none() || settings.per_day.is_none(),
            ttl: settings.ttl,
            not_found_ttl: settings.not_found_ttl,
            max_answers,
        }
    }
}

/// A cached answer and, on the slot's clock, when it stops being served.
#[derive(Debug, Clone)]
struct Cached {
    lookup: Lookup,
    until: SystemTime,
}

/// Expires `ok` answers after `ttl` and `not_found` after `not_found_ttl`.
struct AnswerExpiry {
    ttl: Duration,
    not_found_ttl: Duration,
}

impl AnswerExpiry {
    fn lifetime(&self, lookup: &Lookup) -> Duration {
        match lookup {
            Lookup::Found { .. } => self.ttl,
            Lookup::NotFound => self.not_found_ttl,
        }
    }
}

/// Frees the memory of answers past their lifetime (the slot's clock decides whether one is
/// still served: see [`ProviderSlot::cached`]).
impl moka::Expiry<IpAddr, Cached> for AnswerExpiry {
    fn expire_after_create(
        &self,
        _key: &IpAddr,
        value: &Cached,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(self.lifetime(&value.lookup))
    }
}

struct SpendState {
    budget: Budget,
    breaker: Breaker,
    /// Set after a 401/403: the error every later lookup reports.
    down: Option<(ProviderStatus, String)>,
}

/// One remote provider with its budget, breaker and answer cache.
pub struct ProviderSlot {
    name: &'static str,
    provider: Arc<dyn Provider>,
    limits: SlotLimits,
    state: Mutex<SpendState>,
    answers: Cache<IpAddr, Cached>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for ProviderSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderSlot")
            .field("name", &self.name)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl ProviderSlot {
    /// A slot around `provider`, up and with a full budget, on the system clock.
    pub fn new(provider: Arc<dyn Provider>, limits: SlotLimits, metrics: Arc<Metrics>) -> Self {
        Self::with_clock(provider, limits, metrics, Arc::new(SystemClock))
    }

    /// Like [`new`](Self::new), with the time read from and waited on `clock`.
    pub fn with_clock(
        provider: Arc<dyn Provider>,
        limits: SlotLimits,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let name = provider.name();
        let now = clock.now();
        let slot = ProviderSlot {
            name,
            provider,
            limits,
            state: Mutex::new(SpendState {
                budget: Budget::new(limits.per_minute, limits.per_day, now),
                breaker: Breaker::default(),
                down: None,
            }),
            answers: Cache::builder()
                .name(name)
                .max_capacity(limits.max_answers)
                .expire_after(AnswerExpiry {
                    ttl: limits.ttl,
                    not_found_ttl: limits.not_found_ttl,
                })
                .build(),
            metrics,
            clock,
        };
        ProviderState {
            provider: name,
            quota_remaining: slot.state().budget.remaining(now),
        }
        .emit_up(&slot.metrics);
        slot
    }

    /// The provider's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The time on the slot's clock (the dispatcher reserves budget at this time).
    pub fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// Resolves after `wait` on the slot's clock (the dispatcher waits for budget this way,
    /// on the clock the reservation is dated on).
    pub fn sleep(&self, wait: Duration) -> BoxFuture<'static, ()> {
        self.clock.sleep(wait)
    }

    fn state(&self) -> MutexGuard<'_, SpendState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a request could go now, without spending anything (the remote queue asks this
    /// before it picks the next address).
    pub fn admission(&self, now: SystemTime) -> Admission {
        self.admit(now, false)
    }

    /// The cached answer for `ip`, if there is one still within its `ttl` / `not_found_ttl`.
    pub async fn cached(&self, ip: IpAddr) -> Option<Outcome> {
        let cached = self.answers.get(&ip).await?;
        if self.clock.now() >= cached.until {
            self.answers.invalidate(&ip).await;
            return None;
        }
        ProviderCacheHit {
            provider: self.name,
        }
        .emit(&self.metrics);
        Some(Outcome::answer(cached.lookup))
    }

    /// Takes one request's worth of budget now if there is one (the remote queue reserves it
    /// before it starts a lookup, so it never starts more lookups than the budget covers).
    pub fn reserve(&self, now: SystemTime) -> Admission {
        self.admit(now, true)
    }

    /// Like [`lookup`](Self::lookup), with the first request's budget already reserved at
    /// `granted_at` by [`reserve`](Self::reserve). (Answered from the cache or by a request
    /// already under way, the reservation goes unused: budget is never overspent, at worst a
    /// token is spent for nothing.)
    pub async fn lookup_reserved(
        &self,
        ip: IpAddr,
        patience: Patience,
        granted_at: SystemTime,
    ) -> Outcome {
        self.lookup_inner(ip, patience, Some(granted_at)).await
    }

    /// Looks `ip` up: from the cache, else with one upstream request shared by every
    /// concurrent caller, waiting up to `patience` for budget.
    pub async fn lookup(&self, ip: IpAddr, patience: Patience) -> Outcome {
        self.lookup_inner(ip, patience, None).await
    }

    async fn lookup_inner(
        &self,
        ip: IpAddr,
        patience: Patience,
        reserved: Option<SystemTime>,
    ) -> Outcome {
        if let Some(reason) = self.provider.not_covered(ip) {
            ProviderSkipped {
                provider: self.name,
                reason: "not_covered",
            }
            .emit(&self.metrics);
            return Failure {
                status: ProviderStatus::Skipped,
                detail: reason.to_owned(),
                retry_at: None,
            }
            .into_outcome();
        }
        if let Some(outcome) = self.cached(ip).await {
            return outcome;
        }
        let fetch = async {
            let lookup = self.fetch(ip, patience, reserved).await?;
            let lifetime = AnswerExpiry {
                ttl: self.limits.ttl,
                not_found_ttl: self.limits.not_found_ttl,
            }
            .lifetime(&lookup);
            Ok::<_, Failure>(Cached {
                lookup,
                until: self.clock.now() + lifetime,
            })
        };
        match self.answers.try_get_with(ip, fetch).await {
            Ok(cached) => Outcome::answer(cached.lookup),
            Err(failure) => (*failure).clone().into_outcome(),
        }
    }

    fn admit(&self, now: SystemTime, take: bool) -> Admission {
        let mut state = self.state();
        if let Some((status, error)) = &state.down {
            return Admission::Refused {
                status: *status,
                detail: format!(
                    "not asked: {} refused the credentials earlier ({error}); fix them and \
                     restart",
                    self.name
                ),
                retry_at: None,
                reason: "provider_down",
            };
        }
        if self.limits.no_lookups {
            return Admission::Refused {
                status: ProviderStatus::Skipped,
                detail: format!(
                    "not asked: providers.{}.per_minute or per_day is \"none\", which allows \
                     no lookups",
                    self.name
                ),
                retry_at: None,
                reason: "budget_none",
            };
        }
        if let Err(until) = state.breaker.check(now) {
            return Admission::Wait(until.duration_since(now).unwrap_or_default());
        }
        let spend = if take {
            state.budget.try_spend(now)
        } else {
            state.budget.check(now)
        };
        if take && spend == Spend::Granted {
            // Only a request that will go out takes the half-open trial (checked just above,
            // under the same lock, so this cannot refuse).
            let _ = state.breaker.permit(now);
        }
        // Kept current on every check, so the daily figure is back up after 00:00 UTC.
        ProviderState {
            provider: self.name,
            quota_remaining: state.budget.remaining(now),
        }
        .emit_quota(&self.metrics);
        match spend {
            Spend::Granted => Admission::Go,
            Spend::Throttled(wait) => Admission::Wait(wait),
            Spend::Held { until } => Admission::Wait(until.duration_since(now).unwrap_or_default()),
            Spend::DayExhausted { resets_at } => Admission::Refused {
                status: ProviderStatus::Skipped,
                detail: format!(
                    "daily budget of {} lookups spent; it resets at {} and the address is \
                     looked up when seen after that",
                    // In scaled mode, this daemon's share of it.
                    state
                        .budget
                        .peek_limits(now)
                        .1
                        .unwrap_or(self.limits.per_day),
                    rfc3339(resets_at)
                ),
                retry_at: Some(resets_at),
                reason: "budget_day",
            },
        }
    }

    /// Why a wait longer than the caller's patience means no lookup.
    fn refuse_wait(&self, now: SystemTime, wait: Duration) -> Failure {
        let state = self.state();
        let until = now + wait;
        let (status, detail, reason) = if state.breaker.check(now).is_err() {
            (
                ProviderStatus::Unavailable,
                format!(
                    "not asked: {} failed {} times in a row; circuit open until {}",
                    self.name,
                    state.breaker.failures(),
                    rfc3339(until)
                ),
                "circuit_open",
            )
        } else {
            (
                ProviderStatus::Skipped,
                format!(
                    "{} budget busy (per-minute budget {} spent or the provider asked to wait); \
                     next request possible at {}",
                    self.name,
                    self.limits.per_minute,
                    rfc3339(until)
                ),
                "budget_wait",
            )
        };
        drop(state);
        ProviderSkipped {
            provider: self.name,
            reason,
        }
        .emit(&self.metrics);
        Failure {
            status,
            detail,
            retry_at: Some(until),
        }
    }

    async fn fetch(
        &self,
        ip: IpAddr,
        patience: Patience,
        reserved: Option<SystemTime>,
    ) -> Result<Lookup, Failure> {
        let mut attempt = 0;
        let mut reserved = reserved;
        loop {
            let now = self.clock.now();
            let (admission, granted_at) = match reserved.take() {
                Some(granted_at) => (Admission::Go, granted_at),
                None => (self.admit(now, true), now),
            };
            match admission {
                Admission::Go => {}
                Admission::Wait(wait) if wait <= patience.max_wait => {
                    ProviderBudgetWaiting {
                        provider: self.name,
                        wait,
                        until: &rfc3339(now + wait),
                    }
                    .emit(&self.metrics);
                    self.clock.sleep(wait.max(Duration::from_millis(1))).await;
                    continue;
                }
                Admission::Wait(wait) => return Err(self.refuse_wait(now, wait)),
                Admission::Refused {
                    status,
                    detail,
                    retry_at,
                    reason,
                } => {
                    ProviderSkipped {
                        provider: self.name,
                        reason,
                    }
                    .emit(&self.metrics);
                    return Err(Failure {
                        status,
                        detail,
                        retry_at,
                    });
                }
            }
            let started = Instant::now();
            // A reset time the provider sends is read against this slot's clock.
            let clock = self.clock.clone();
            let now_fn: crate::intel::http::NowFn = Arc::new(move || clock.now());
            let result = crate::intel::http::with_clock(now_fn, self.provider.lookup(ip)).await;
            self.state()
                .budget
                .request_finished(granted_at, self.clock.now());
            let status_label = match &result {
                Ok(Lookup::Found { .. }) => "ok",
                Ok(Lookup::NotFound) => "not_found",
                Err(error) => error.kind(),
            };
            ProviderRequested {
                provider: self.name,
                status: status_label,
                elapsed: started.elapsed(),
            }
            .emit(&self.metrics);
            let error = match result {
                Ok(lookup) => {
                    self.state().breaker.success();
                    return Ok(lookup);
                }
                Err(error) => error,
            };
            let now = self.clock.now();
            let credentials = self.provider.sends_credentials();
            if matches!(
                error,
                ProviderError::Unauthorized(_)
                    | ProviderError::Forbidden(_)
                    | ProviderError::RateLimited(..)
                    | ProviderError::QuotaExhausted(..)
            ) {
                // The provider is up and answering, whatever it answered.
                self.state().breaker.success();
            }
            let retry_at = match &error {
                ProviderError::Unauthorized(_) | ProviderError::Forbidden(_) if credentials => {
                    self.mark_down(&error);
                    None
                }
                ProviderError::Unauthorized(_) | ProviderError::Forbidden(_) => {
                    let until = now + KEYLESS_BLOCK_HOLD;
                    self.state().budget.hold_until(until);
                    Some(until)
                }
                ProviderError::RateLimited(_, wait) => {
                    let until = now + wait.unwrap_or(DEFAULT_429_HOLD);
                    self.state().budget.hold_until(until);
                    Some(until)
                }
                ProviderError::QuotaExhausted(_, wait) => {
                    let until = wait.map_or_else(|| next_utc_midnight(now), |w| now + w);
                    self.state().budget.hold_until(until);
                    Some(until)
                }
                ProviderError::Timeout(_) | ProviderError::Unavailable(_) => {
                    let circuit_closed = {
                        let mut state = self.state();
                        state.breaker.failure(now);
                        state.breaker.check(now).is_ok()
                    };
                    let backoff = retry_backoff(attempt, RETRY_BASE, RETRY_CAP);
                    if attempt < MAX_RETRIES && circuit_closed {
                        attempt += 1;
                        self.clock.sleep(backoff).await;
                        continue;
                    }
                    Some(now + backoff)
                }
                // An HTML challenge or block page, or a shape we cannot read: not retried (asking
                // again at once is no help), but it counts towards the circuit breaker, so a
                // provider that keeps sending pages is left alone for a while.
                ProviderError::InvalidResponse(_) => {
                    self.state().breaker.failure(now);
                    None
                }
            };
            let marked_down = credentials
                && matches!(
                    error,
                    ProviderError::Unauthorized(_) | ProviderError::Forbidden(_)
                );
            if !marked_down {
                ProviderRequestError {
                    provider: self.name,
                    status: error.kind(),
                    error: &error.to_string(),
                }
                .emit(&self.metrics);
            }
            return Err(Failure {
                status: error.status(),
                detail: error.to_string(),
                retry_at,
            });
        }
    }

    fn mark_down(&self, error: &ProviderError) {
        let mut state = self.state();
        if state.down.is_some() {
            return;
        }
        state.down = Some((error.status(), error.to_string()));
        drop(state);
        ProviderDown {
            provider: self.name,
            status: error.kind(),
            error: &error.to_string(),
        }
        .emit(&self.metrics);
    }

    /// The status a lookup of `ip` would certainly end with, without asking: provider down,
    /// address not covered, daily budget spent. `None` when the lookup may still be made (the
    /// record then says `pending`).
    pub fn known_without_asking(&self, ip: IpAddr, now: SystemTime) -> Option<ProviderIntel> {
        if let Some(reason) = self.provider.not_covered(ip) {
            return Some(ProviderIntel::status(ProviderStatus::Skipped, reason));
        }
        match self.admission(now) {
            Admission::Refused { status, detail, .. } => {
                Some(ProviderIntel::status(status, detail))
            }
            Admission::Go | Admission::Wait(_) => None,
        }
    }

    /// True when a lookup of `ip` would send a request: no cached answer and the address is
    /// one the provider covers.
    pub fn needs_request(&self, ip: IpAddr) -> bool {
        !self.answers.contains_key(&ip) && self.provider.not_covered(ip).is_none()
    }

    /// Puts back an answer read from the state changelog (warm start), served until `until`
    /// on the slot's clock; one already past is not kept.
    pub async fn restore_answer(&self, ip: IpAddr, lookup: Lookup, until: SystemTime) {
        if self.clock.now() < until {
            self.answers.insert(ip, Cached { lookup, until }).await;
        }
    }

    /// When the cached answer for `ip` stops being served, if one is cached (the state
    /// changelog keeps it with the answer).
    pub async fn answer_until(&self, ip: IpAddr) -> Option<SystemTime> {
        self.answers.get(&ip).await.map(|cached| cached.until)
    }

    /// How long an answer like `status` is kept (when the cache no longer holds it).
    pub fn answer_lifetime(&self, status: ProviderStatus) -> Duration {
        match status {
            ProviderStatus::NotFound => self.limits.not_found_ttl,
            _ => self.limits.ttl,
        }
    }

    /// True after a 401/403.
    pub fn is_down(&self) -> bool {
        self.state().down.is_some()
    }
}

// s1-scaled: the budget share of scaled mode.
impl ProviderSlot {
    /// Scaled mode before any assignment: nothing may be spent until partitions are owned.
    pub(crate) fn share_nothing(&self) {
        self.state().budget.share_nothing();
        self.emit_share();
    }

    /// Scaled mode: this daemon owns `owned` of `partitions` sightings partitions now; its
    /// share of the budget follows (see `remote::budget`).
    pub(crate) fn set_share(&self, owned: &[i32], partitions: usize) {
        let now = self.clock.now();
        self.state().budget.set_share(owned, partitions, now);
        self.emit_share();
    }

    /// Sets the `budget_share` gauges to the share in force (single mode: the whole budget).
    pub(crate) fn emit_share(&self) {
        let (per_minute, per_day) = self.state().budget.full_share();
        crate::telemetry::events::BudgetShareSet {
            provider: self.name,
            per_minute,
            per_day,
        }
        .emit(&self.metrics);
    }
}

#[cfg(test)]
#[path = "slot_tests.rs"]
mod tests;
