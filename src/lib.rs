//! threatsift: firewall and proxy events from Kafka in, scored threat records out.
//!
//! # Architecture
//!
//! ```text
//! consumer ──raw──▶ process (frame → parse → extract → filter → dedup → local intel → score
//!    ▲                        → record) ──out──▶ sink
//!    └──── offsets stored only when every output of a message is delivered ◀──┤
//!                 remote dispatchers ◀── lookups, queued once delivered ◀─────┘
//!   (per provider: bounded priority queue → budget → breaker → answer cache → HTTP)
//!      └──▶ revised record (same key, next revision) when an answer raises the score
//! ```
//!
//! * `topology` is the running system and the only tokio code: it builds the stages, creates
//!   the bounded channels, spawns every task and runs the shutdown steps.
//! * `stages` are plain synchronous code in data-path order, each with a `//!` contract.
//! * `remote` is policy only (queues, revisions, the provider slot); its dispatchers run in
//!   `topology`. Its queues are bounded and give up the lowest-priority address (answered
//!   `skipped`) when full. Offsets do not wait for remote answers: a crash loses queued
//!   lookups, never a first record.
//! * Channels are bounded: a slow producer fills the sink's in-flight window, which fills the
//!   `out` channel, which stops the processor, which stops the consumer. Memory stays flat.
//! * Offsets: [`OffsetTracker`] stores, per partition, the highest offset below
//!   which every message is finished (all records and DLQ entries delivered, or nothing to send).
#![warn(missing_docs)]
#![deny(unreachable_pub)]

mod cli;
mod intel;
mod kafka;
mod model;
mod publish;
mod remote;
mod report;
mod settings;
mod stages;
mod state;
mod telemetry;
mod topology;

#[cfg(feature = "test-support")]
#[doc(hidden)]
pub mod test_support;

// The public surface: what the binary, the integration tests and the benches use.

// Commands other than the daemon's loop.
pub use cli::demo::{run_demo, SAMPLE_BLOCKLIST, SAMPLE_EVENTS};
pub use cli::enrich::{parse_addresses, run_enrich};
pub use cli::parse::{describe_line, run_parse};
pub use cli::{
    check_config_command, demo_command, enrich_command, load_settings, parse_command,
    report_command, run_command, ReportArgs,
};

// The running system.
pub use topology::finish_lookups;
pub use topology::{build_processor, run, spawn_dispatchers, watch_signals, AppError, RunSummary};

// Settings.
pub use settings::{Allowance, ProviderSettings, Secret, Settings, SettingsError};

/// Output shapes (`publish.format`) and record annotations.
pub use publish::{Format as PublishFormat, Publication};

// The types that cross stages.
pub use model::{
    rfc3339, Network, Observed, Origin, Output, OutputKind, ProviderIntel, ProviderStatus,
    RawEvent, Role, ThreatRecord, Tlp, Verdict, THREAT_SCHEMA,
};

// The stages.
pub use stages::dedup::DedupCache;
pub use stages::extract::{extract_ip_observations, parse_ip_token};
pub use stages::filter::{
    AllowEntry, Allowlist, AllowlistError, AllowlistFile, FilterReason, IpFilter, Reloaded,
    SkippedLine,
};
pub use stages::parse::{
    Fallback as ParseFallback, FormatRegistry, ParseError, Parsed, RegistryOptions, StreamId,
};
pub use stages::score::{EvidenceInput, ScoringModel};

// Intelligence: the provider traits, the built set, feeds and every provider's client.
pub use intel::feeds::{FeedSpec, LocalFeeds};
pub use intel::mmdb::{split_paths as split_mmdb_paths, Mmdb};
pub use intel::providers::{
    abuseipdb::AbuseIpDb, greynoise::GreyNoise, internetdb::InternetDb, otx::Otx, rdap::Rdap,
    virustotal::VirusTotal,
};
pub use intel::talos::{Talos, DISABLED_REASON as TALOS_DISABLED_REASON};
pub use intel::{
    intel_entry, ConfiguredProviders, LocalProvider, Lookup, Provider, ProviderError,
    PENDING_DETAIL,
};

// Remote lookups: the slot, the queues and revisions.
pub use remote::breaker::FAILURE_THRESHOLD;
pub use remote::slot::{Clock, SystemClock};
pub use remote::slot::{Outcome, Patience, ProviderSlot, SlotLimits, MAX_RETRIES};
pub use remote::{
    apply_outcome, NoRevisions, Priority, RemoteJob, RemoteStage, RevisionRules, RevisionSink,
    Tracked,
};

// Kafka.
pub use kafka::offsets::OffsetTracker;

// Reports.
pub use report::build::build_report;
pub use report::input::{read_lines, read_topic};
pub use report::{add_narrative, is_report_date, render_report, ReportFormat};

// Telemetry.
pub use telemetry::metrics::NAMESPACE;
pub use telemetry::{init_logging, LogFormat, Metrics};
