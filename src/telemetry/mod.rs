//! Telemetry: logging set-up, the metrics, and the typed events that stage code emits. Stage
//! code never touches a counter or calls `tracing` for per-event outcomes directly; it emits an
//! event from [`events`], which does both.

pub(crate) mod events;
pub(crate) mod handles;
pub(crate) mod metrics;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use metrics::Metrics;

/// Log output style.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Initialises the global tracing subscriber on stderr. `RUST_LOG` filters (default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialisation (tests, demo inside a test) is harmless: keep the first.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

type WarnKey = (&'static str, &'static str);

/// Lets a repeated warning through at most once per interval per key, counting the rest.
#[derive(Debug)]
pub(crate) struct WarnLimiter {
    interval: Duration,
    /// (key, detail) → when one was last let through, and how many were held back since.
    last: Mutex<HashMap<WarnKey, (Instant, u64)>>,
}

impl WarnLimiter {
    /// A limiter letting one warning per `interval` through for each key.
    pub(crate) fn new(interval: Duration) -> Self {
        WarnLimiter {
            interval,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(suppressed since the last one)` when this warning may be logged now.
    pub(crate) fn allow(&self, key: &'static str) -> Option<u64> {
        self.allow_each(key, "")
    }

    /// Like [`WarnLimiter::allow`], limited separately for each `detail` of `key` (a provider
    /// and a status, say).
    pub(crate) fn allow_each(&self, key: &'static str, detail: &'static str) -> Option<u64> {
        let key = (key, detail);
        let now = Instant::now();
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match last.get_mut(&key) {
            Some((at, suppressed)) if now.duration_since(*at) < self.interval => {
                *suppressed += 1;
                None
            }
            Some((at, suppressed)) => {
                let count = *suppressed;
                *at = now;
                *suppressed = 0;
                Some(count)
            }
            None => {
                last.insert(key, (now, 0));
                Some(0)
            }
        }
    }
}

static WARNINGS: std::sync::LazyLock<WarnLimiter> =
    std::sync::LazyLock::new(|| WarnLimiter::new(Duration::from_secs(10)));

/// The process-wide limiter for repeated warnings.
pub(crate) fn warnings() -> &'static WarnLimiter {
    &WARNINGS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_lets_first_through_and_counts_the_rest() {
        let limiter = WarnLimiter::new(Duration::from_secs(3600));
        assert_eq!(limiter.allow("a"), Some(0));
        assert_eq!(limiter.allow("a"), None);
        assert_eq!(limiter.allow("a"), None);
        assert_eq!(limiter.allow("b"), Some(0));
        let limiter = WarnLimiter::new(Duration::ZERO);
        assert_eq!(limiter.allow("a"), Some(0));
        assert_eq!(limiter.allow("a"), Some(0));
    }
}
