//! The scheduled-report task: collects the records the sink published and writes a report every
//! `report.interval` (see `report::scheduled`), the last, partial interval at shutdown.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::model::ThreatRecord;
use crate::report::scheduled;
use crate::report::ReportFormat;
use crate::settings::ReportSettings;
use crate::telemetry::Metrics;

/// Collects records and writes a report every `settings.interval` until `stop`, then writes
/// the last interval's report and returns.
pub(super) async fn run_scheduled_reports(
    settings: ReportSettings,
    mut receiver: mpsc::Receiver<Vec<u8>>,
    stop: CancellationToken,
    metrics: Arc<Metrics>,
) {
    let format: ReportFormat = settings.format.parse().unwrap_or(ReportFormat::Markdown);
    let mut ticker = tokio::time::interval(settings.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let mut records: BTreeMap<String, ThreatRecord> = BTreeMap::new();
    // Writing (and the narrative call) runs beside the loop, so the channel keeps draining.
    let mut writes = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticker.tick() => {
                let interval = std::mem::take(&mut records);
                let (settings, metrics) = (settings.clone(), metrics.clone());
                writes.spawn(async move { scheduled::write_interval(&settings, format, interval, &metrics).await });
            }
            received = receiver.recv() => match received {
                Some(payload) => scheduled::keep(&mut records, &payload, &metrics),
                None => break,
            },
        }
        while writes.try_join_next().is_some() {}
    }
    while let Ok(payload) = receiver.try_recv() {
        scheduled::keep(&mut records, &payload, &metrics);
    }
    scheduled::write_interval(&settings, format, records, &metrics).await;
    while writes.join_next().await.is_some() {}
}
