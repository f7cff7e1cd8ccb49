//! Scheduled reports: every `report.interval`, the report of the records the daemon published
//! in that interval, written to `report.directory`.
//!
//! * In: payloads of threat records that reached the output topic (from the sink, through a
//!   bounded channel; a full channel is counted as `report_records_dropped_total`, the record
//!   itself is published regardless).
//! * Out: one file per interval with at least one record, `threatsift-report-<end>.<ext>`,
//!   written to a temporary name and renamed, so readers never see half a report; the last,
//!   partial interval is written at shutdown.
//! * The latest revision per address is kept, so memory is bounded by the addresses of one
//!   interval, and at most [`MAX_RECORDS`] of them (more are counted as dropped).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::mpsc;

use super::{add_narrative, build::build_report, render_report, ReportFormat};
use crate::model::{rfc3339, ThreatRecord};
use crate::settings::ReportSettings;
use crate::telemetry::events::{
    ReportNarrativeFailed, ReportRecordDropped, ScheduledReportWritten,
};
use crate::telemetry::Metrics;

/// Addresses kept per interval.
pub(crate) const MAX_RECORDS: usize = 100_000;
/// Capacity of the channel from the sink.
pub(crate) const CHANNEL_CAPACITY: usize = 10_000;

/// Hands published records to the report task without ever blocking the sink.
#[derive(Clone)]
pub(crate) struct ReportFeed {
    sender: mpsc::Sender<Vec<u8>>,
    metrics: Arc<Metrics>,
}

impl ReportFeed {
    /// A feed and the receiver for the report task.
    pub(crate) fn new(metrics: Arc<Metrics>) -> (ReportFeed, mpsc::Receiver<Vec<u8>>) {
        let (sender, receiver) = mpsc::channel(CHANNEL_CAPACITY);
        (ReportFeed { sender, metrics }, receiver)
    }

    /// Offers one published record's payload.
    pub(crate) fn offer(&self, payload: Vec<u8>) {
        if self.sender.try_send(payload).is_err() {
            ReportRecordDropped {
                why: "report task behind (channel full)",
            }
            .emit(&self.metrics);
        }
    }
}

/// Keeps the latest revision of `payload`'s address for this interval.
pub(crate) fn keep(
    records: &mut BTreeMap<String, ThreatRecord>,
    payload: &[u8],
    metrics: &Metrics,
) {
    let Ok(record) = super::input::parse_record(payload) else {
        ReportRecordDropped {
            why: "published record did not parse back",
        }
        .emit(metrics);
        return;
    };
    if records.len() >= MAX_RECORDS && !records.contains_key(&record.ip) {
        ReportRecordDropped {
            why: "more addresses in one interval than report.MAX_RECORDS",
        }
        .emit(metrics);
        return;
    }
    match records.get(&record.ip) {
        Some(kept)
            if (&kept.generated_at, kept.revision) >= (&record.generated_at, record.revision) => {}
        _ => {
            records.insert(record.ip.clone(), record);
        }
    }
}

/// Writes one interval's report (nothing when it has no record).
pub(crate) async fn write_interval(
    settings: &ReportSettings,
    format: ReportFormat,
    records: BTreeMap<String, ThreatRecord>,
    metrics: &Metrics,
) {
    if records.is_empty() {
        return;
    }
    let end = rfc3339(SystemTime::now());
    let count = records.len();
    let mut report = build_report(records.into_values().collect(), Some(&end[..10]));
    if let Some(error) = add_narrative(&mut report, &settings.narrative).await {
        ReportNarrativeFailed {
            kind: error.kind(),
            error: &error.to_string(),
        }
        .emit();
    }
    let path = unused_path(
        &settings.directory,
        &end.replace(':', ""),
        format.extension(),
    );
    let text = render_report(&report, format);
    let result = write_atomically(&path, text.as_bytes());
    let shown = path.display().to_string();
    ScheduledReportWritten {
        path: &shown,
        records: count,
        error: result.as_ref().err().map(String::as_str),
    }
    .emit(metrics);
}

/// `threatsift-report-<stamp>.<ext>`, or `…-<stamp>-2.<ext>` and so on when a report of the
/// same second (the shutdown write right after a tick, another daemon) already has that name:
/// a report never replaces another.
fn unused_path(directory: &str, stamp: &str, extension: &str) -> PathBuf {
    let dir = Path::new(directory);
    let mut path = dir.join(format!("threatsift-report-{stamp}.{extension}"));
    let mut n = 2;
    while path.exists() {
        path = dir.join(format!("threatsift-report-{stamp}-{n}.{extension}"));
        n += 1;
    }
    path
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let temporary: PathBuf = path.with_extension("partial");
    if path.exists() {
        return Err(format!(
            "{} appeared meanwhile; not replacing it",
            path.display()
        ));
    }
    std::fs::write(&temporary, bytes)
        .map_err(|e| format!("cannot write {}: {e}", temporary.display()))?;
    std::fs::rename(&temporary, path)
        .map_err(|e| format!("cannot rename to {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    //! `report_records_dropped_total` (README "Scheduled reports"): records left out because
    //! the report task fell behind are counted, and offering never waits for the task.
    use super::*;

    fn metrics() -> (prometheus::Registry, Arc<Metrics>) {
        let registry = prometheus::Registry::new();
        let metrics = Arc::new(Metrics::new(&registry).expect("metrics"));
        (registry, metrics)
    }

    #[test]
    fn a_report_task_that_fell_behind_drops_and_counts_the_overflow() {
        let (registry, metrics) = metrics();
        let (feed, mut receiver) = ReportFeed::new(metrics.clone());
        // Nobody receives: the task is stuck. Offering returns at once every time.
        for i in 0..CHANNEL_CAPACITY + 3 {
            feed.offer(i.to_string().into_bytes());
        }
        assert_eq!(metrics.report_records_dropped.get(), 3);
        let mut kept = 0;
        while let Ok(payload) = receiver.try_recv() {
            assert_eq!(
                payload,
                kept.to_string().into_bytes(),
                "the earliest are kept"
            );
            kept += 1;
        }
        assert_eq!(kept, CHANNEL_CAPACITY);
        assert!(Metrics::render(&registry).contains("report_records_dropped_total 3"));
        // Room again: nothing more is dropped.
        feed.offer(b"next".to_vec());
        assert_eq!(metrics.report_records_dropped.get(), 3);
    }

    #[test]
    fn a_payload_that_is_not_a_record_is_dropped_and_counted() {
        let (_, metrics) = metrics();
        let mut records = BTreeMap::new();
        keep(&mut records, b"{\"schema\":\"other/1\"}", &metrics);
        assert!(records.is_empty());
        assert_eq!(metrics.report_records_dropped.get(), 1);
    }
}
