//! Building blocks of the remote stage as the tests and benches set it up: default settings,
//! revision rules, slot limits, patience, metrics and a queued job.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus::Registry;

use crate::model::{Origin, ThreatRecord};
use crate::remote::slot::{Patience, SlotLimits};
use crate::remote::{Priority, RemoteJob, RevisionRules, Tracked};
use crate::settings::Settings;
use crate::stages::dedup::Sighting;
use crate::stages::score::ScoringModel;
use crate::telemetry::Metrics;

/// The settings with nothing overridden.
pub fn defaults() -> Settings {
    Settings::from_toml_overrides("").expect("the defaults load")
}

/// The revision rules of `settings`: its scoring model and `publish.min_verdict`.
pub fn rules(settings: &Settings) -> RevisionRules {
    RevisionRules {
        scoring: ScoringModel::new(&settings.scoring, &settings.feeds),
        min_verdict: settings.publish.min_verdict,
        publication: std::sync::Arc::new(crate::Publication::from_settings(settings)),
        feeds: None,
    }
}

/// Slot limits with the given budgets (0: unlimited), an hour's answer cache (ten minutes for
/// `not_found`) of up to 100,000 answers.
pub fn limits(per_minute: u32, per_day: u32) -> SlotLimits {
    SlotLimits {
        per_minute,
        per_day,
        no_lookups: false,
        ttl: Duration::from_secs(3_600),
        not_found_ttl: Duration::from_secs(600),
        max_answers: 100_000,
    }
}

/// Patience of a lookup that must not wait for budget.
pub fn now_patience() -> Patience {
    Patience {
        max_wait: Duration::ZERO,
    }
}

/// Patience of a lookup that may wait `secs` seconds for budget.
pub fn patience(secs: u64) -> Patience {
    Patience {
        max_wait: Duration::from_secs(secs),
    }
}

/// A fresh registry and the daemon's metrics registered in it.
pub fn new_metrics() -> (Registry, Arc<Metrics>) {
    let registry = Registry::new();
    let metrics = Arc::new(Metrics::new(&registry).expect("metrics"));
    (registry, metrics)
}

/// A job for `ip` waiting for remote answers around `record` (no feed matches), as the
/// processor queues it.
pub fn remote_job(
    ip: IpAddr,
    priority: Priority,
    record: ThreatRecord,
    threat: Option<String>,
    reporter: Option<String>,
    sighting: Arc<Sighting>,
    origin: Origin,
) -> RemoteJob {
    RemoteJob {
        ip,
        priority,
        tracked: Arc::new(tokio::sync::Mutex::new(Tracked::new(
            record,
            Vec::new(),
            threat,
            reporter,
            sighting,
            origin,
        ))),
    }
}

// --- t15-remote: a clock the test sets, for budgets, holds and retries without real waiting.

/// A [`Clock`](crate::remote::slot::Clock) under the test's control. It stands still until the
/// test sets or advances it, or a wait of the slot's moves it forward: a wait returns at once
/// (after yielding once) with the clock moved past it, and is recorded, so a test can see how
/// long the slot would have waited.
#[derive(Debug)]
pub struct VirtualClock {
    now: std::sync::Mutex<std::time::SystemTime>,
    waits: std::sync::Mutex<Vec<Duration>>,
}

impl VirtualClock {
    /// A clock standing at `start`.
    pub fn at(start: std::time::SystemTime) -> Arc<VirtualClock> {
        Arc::new(VirtualClock {
            now: std::sync::Mutex::new(start),
            waits: std::sync::Mutex::default(),
        })
    }

    /// A clock standing at `text` (RFC 3339, e.g. `2026-11-23T10:00:00Z`).
    pub fn at_rfc3339(text: &str) -> Arc<VirtualClock> {
        VirtualClock::at(humantime::parse_rfc3339(text).expect("an RFC 3339 time"))
    }

    /// Sets the clock to `time`.
    pub fn set(&self, time: std::time::SystemTime) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = time;
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) += by;
    }

    /// The waits the slot made on this clock, in order.
    pub fn waits(&self) -> Vec<Duration> {
        self.waits.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl crate::remote::slot::Clock for VirtualClock {
    fn now(&self) -> std::time::SystemTime {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sleep(&self, wait: Duration) -> futures::future::BoxFuture<'static, ()> {
        self.waits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(wait);
        self.advance(wait);
        Box::pin(tokio::task::yield_now())
    }
}

// --- t15-followup: a clock whose waits end only when the test moves it.

/// A [`Clock`](crate::remote::slot::Clock) that moves only when the test sets or advances it.
/// Unlike [`VirtualClock`], a wait on it does not move it: the wait ends when the test has
/// moved the clock past the wait's end (never, if the test does not). Waits are recorded. For
/// the dispatchers, which wait on the slot's clock for the next token: on this clock no token
/// comes back while the test runs, however slow the machine, until the test says so.
#[derive(Debug)]
pub struct StandingClock {
    now: tokio::sync::watch::Sender<std::time::SystemTime>,
    waits: std::sync::Mutex<Vec<Duration>>,
}

impl StandingClock {
    /// A clock standing at `text` (RFC 3339, e.g. `2026-11-23T10:00:00Z`).
    pub fn at_rfc3339(text: &str) -> Arc<StandingClock> {
        let start = humantime::parse_rfc3339(text).expect("an RFC 3339 time");
        Arc::new(StandingClock {
            now: tokio::sync::watch::channel(start).0,
            waits: std::sync::Mutex::default(),
        })
    }

    /// Moves the clock forward by `by`; the waits that end by then end.
    pub fn advance(&self, by: Duration) {
        self.now.send_modify(|now| *now += by);
    }

    /// The waits made on this clock, in order.
    pub fn waits(&self) -> Vec<Duration> {
        self.waits.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl crate::remote::slot::Clock for StandingClock {
    fn now(&self) -> std::time::SystemTime {
        *self.now.borrow()
    }

    fn sleep(&self, wait: Duration) -> futures::future::BoxFuture<'static, ()> {
        self.waits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(wait);
        let end = self.now() + wait;
        let mut moves = self.now.subscribe();
        Box::pin(async move {
            // The sender lives as long as the clock; a clock dropped ends no wait.
            if moves.wait_for(|now| *now >= end).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}
