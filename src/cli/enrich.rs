//! `threatsift enrich IP...`: one-shot enrichment with the configured providers.
//!
//! * In: address arguments. Text that is not an address is a usage error, reported before any
//!   lookup is made.
//! * The daemon's code path: each address goes through the processor as a one-line message
//!   (parse, extract, filter, dedup, local intelligence, score), then every enabled remote
//!   provider is asked through the same provider slots (budget, breaker, answer cache, one
//!   request per address) and the record is scored again as each answer arrives. Lookups wait
//!   for per-minute budget up to `intel.remote_max_wait`.
//! * Out: one line per argument on stdout, in order: the final threat record (whatever its
//!   verdict: `publish.min_verdict` does not apply here), or `{"input", "error"}` for an
//!   address the daemon would never enrich (private, ignored, documentation ranges). Nothing is
//!   published to Kafka.

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use crate::intel::feeds::{FeedSpec, LocalFeeds};
use crate::model::OutputKind;
use crate::model::{Origin, RawEvent};
use crate::model::{ThreatRecord, Verdict};
use crate::remote::NoRevisions;
use crate::settings::Settings;
use crate::telemetry::Metrics;
use crate::topology::{build_processor_with, build_providers, build_remote_stage, AppError};

/// Topic name in the records' `observed` block.
pub(crate) const ENRICH_TOPIC: &str = "enrich";

/// Checks that every argument is an address; the error names the first that is not.
pub fn parse_addresses(args: &[String]) -> Result<Vec<IpAddr>, String> {
    args.iter()
        .map(|text| {
            text.trim()
                .parse::<IpAddr>()
                .map(|ip| ip.to_canonical())
                .map_err(|_| format!("{text:?} is not an IPv4 or IPv6 address"))
        })
        .collect()
}

/// Enriches `ips` and writes one JSON line per address to `out`.
pub async fn run_enrich(
    mut settings: Settings,
    ips: &[IpAddr],
    metrics: Arc<Metrics>,
    out: &mut impl Write,
) -> Result<(), AppError> {
    // Every record is printed, whatever its verdict, as a threatsift record (d-siem: the
    // records are read back from the processor's output, whatever `publish.format` says).
    settings.publish.min_verdict = Verdict::Unknown;
    settings.publish.format = crate::publish::Format::Threatsift;
    let publication = crate::publish::Publication::from_settings(&settings);
    let specs: Vec<FeedSpec> = settings
        .feed_paths()
        .into_iter()
        .map(|(name, path)| FeedSpec { name, path })
        .collect();
    let feeds = crate::topology::blocking("feed loading", move || LocalFeeds::load(specs))
        .await?
        .map_err(AppError::Feeds)?;
    let providers = build_providers(&settings).await?;
    let processor = build_processor_with(&settings, Arc::new(feeds), &providers, metrics.clone())?;
    let remote = build_remote_stage(&settings, &providers, None, Arc::new(NoRevisions), metrics)?;
    // The processor's filter: its allow-list too.
    let filter = processor.filter().clone();
    let topic: Arc<str> = Arc::from(ENRICH_TOPIC);

    let lookups = ips.iter().enumerate().map(|(index, ip)| {
        let processor = &processor;
        let remote = remote.clone();
        let filter = &filter;
        let topic = topic.clone();
        let publication = &publication;
        async move {
            if let Err(reason) = filter.check(*ip) {
                return serde_json::json!({
                    "input": ip.to_string(),
                    "error": format!("not enriched: {}", reason.label()),
                })
                .to_string();
            }
            let raw = RawEvent {
                payload: ip.to_string().into_bytes().into(),
                key: None,
                timestamp_ms: None,
                origin: Origin {
                    topic,
                    partition: 0,
                    offset: i64::try_from(index).unwrap_or(i64::MAX),
                },
            };
            let processed = processor.process_message(&raw, Instant::now());
            let first: Option<ThreatRecord> = processed
                .outputs
                .iter()
                .find(|o| matches!(o.kind, OutputKind::Record(_)))
                .and_then(|o| serde_json::from_slice(&o.payload).ok());
            let record = match (remote, processed.remote.into_iter().next()) {
                (Some(stage), Some(job)) => Some(stage.enrich_now(job.into()).await),
                _ => first,
            };
            match record {
                // Field order as the daemon publishes it; id, confidence, TLP and expiry of
                // the final evidence.
                Some(mut record) => {
                    publication.annotate(&mut record);
                    serde_json::to_string(&record).unwrap_or_default()
                }
                // The same address twice on the command line: one record, then this.
                None => serde_json::json!({
                    "input": ip.to_string(),
                    "error": "not enriched: already enriched above",
                })
                .to_string(),
            }
        }
    });
    // Every address at once: the provider slots pace the requests and share them.
    for line in futures::future::join_all(lookups).await {
        writeln!(out, "{line}").map_err(AppError::Stdout)?;
    }
    out.flush().map_err(AppError::Stdout)?;
    Ok(())
}

/// `threatsift enrich`: one record per address on stdout; exit 2 for an argument that is not
/// an address.
pub fn enrich_command(config: Option<&Path>, args: &[String]) -> ExitCode {
    let settings = match super::load_settings(config) {
        Ok(settings) => settings,
        Err(e) => return super::config_error(&e),
    };
    let ips = match parse_addresses(args) {
        Ok(ips) => ips,
        Err(e) => return super::config_error(&e),
    };
    let metrics = match crate::telemetry::Metrics::new(&prometheus::Registry::new()) {
        Ok(metrics) => Arc::new(metrics),
        Err(e) => return super::fail(&e),
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = match crate::topology::block_on(run_enrich(settings, &ips, metrics, &mut out)) {
        Ok(result) => result,
        Err(e) => return super::fail(&e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("threatsift: {e}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}
