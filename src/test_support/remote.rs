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
    }
}

/// Slot limits with the given budgets (0: unlimited), an hour's answer cache (ten minutes for
/// `not_found`) of up to 100,000 answers.
pub fn limits(per_minute: u32, per_day: u32) -> SlotLimits {
    SlotLimits {
        per_minute,
        per_day,
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
