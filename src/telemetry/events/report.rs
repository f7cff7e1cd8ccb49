//! Report events: scheduled reports written or not, records left out, narratives that failed.

use tracing::{info, warn};

use crate::telemetry::Metrics;

/// A scheduled report was written, or could not be.
pub(crate) struct ScheduledReportWritten<'a> {
    /// The file.
    pub path: &'a str,
    /// Addresses in it.
    pub records: usize,
    /// Why it failed.
    pub error: Option<&'a str>,
}
impl ScheduledReportWritten<'_> {
    /// Counts it; logs the file, or the error.
    pub(crate) fn emit(&self, m: &Metrics) {
        // Once per report: not worth a cached handle.
        match self.error {
            None => {
                m.reports_written.with_label_values(&["ok"]).inc();
                info!(
                    path = self.path,
                    records = self.records,
                    "scheduled report written"
                );
            }
            Some(error) => {
                m.reports_written.with_label_values(&["error"]).inc();
                warn!(path = self.path, error, "scheduled report not written");
            }
        }
    }
}

/// A published record could not be kept for the scheduled report (the report task is behind,
/// or the record did not parse back). The record itself was published.
pub(crate) struct ReportRecordDropped<'a> {
    /// Why.
    pub why: &'a str,
}
impl ReportRecordDropped<'_> {
    /// Counts it; warns (rate-limited by the caller's volume: one line per drop is fine here
    /// because drops mean the report task is stuck).
    pub(crate) fn emit(&self, m: &Metrics) {
        m.report_records_dropped.inc();
        warn!(
            why = self.why,
            "a published record was left out of the scheduled report"
        );
    }
}

/// The scheduled report's narrative failed; the report was written without it.
pub(crate) struct ReportNarrativeFailed<'a> {
    /// The error kind.
    pub kind: &'static str,
    /// The error.
    pub error: &'a str,
}
impl ReportNarrativeFailed<'_> {
    /// Warns.
    pub(crate) fn emit(&self) {
        warn!(
            kind = self.kind,
            error = self.error,
            "report written without the narrative"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::events::tests::{metrics, sample};

    #[test]
    fn report_events_reach_the_registry() {
        let (registry, m) = metrics();
        ScheduledReportWritten {
            path: "r.md",
            records: 3,
            error: None,
        }
        .emit(&m);
        ScheduledReportWritten {
            path: "r.md",
            records: 0,
            error: Some("disk full"),
        }
        .emit(&m);
        ReportRecordDropped { why: "behind" }.emit(&m);
        let written = |result| sample(&registry, "reports_written_total", &[("result", result)]);
        assert_eq!((written("ok"), written("error")), (Some(1.0), Some(1.0)));
        let dropped = sample(&registry, "report_records_dropped_total", &[]);
        assert_eq!(dropped, Some(1.0));
    }
}
