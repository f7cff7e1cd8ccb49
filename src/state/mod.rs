//! The state changelog (design §10): each owned address's state in the compacted topic
//! `<output_topic>.state`, keyed by the address text, and the warm start that reads it back.
//!
//! * Written (when `[scale] changelog` is on, or in scaled mode) whenever the address's state
//!   changes: with its first record (published or withheld below `publish.min_verdict`) as an
//!   output of the message, so it is delivered before the input offset is stored; and after
//!   each remote outcome, through the remote stage's `RevisionSink::state`, after the revision
//!   that outcome published. A due retry writes nothing until its outcomes come (the state that
//!   scheduled it still says when it is due). Repeat sightings are not written on their own:
//!   the count and `last_seen` in the changelog are those of the latest write (the first
//!   sighting or the latest outcome), so after a restart they may lag what the window had
//!   counted.
//! * Read at start-up (single mode: every partition) or on assignment (scaled mode: the
//!   assigned partitions) by [`warm_start`], bounded by `dedup.max_entries`, newest per
//!   address; [`WarmState::restore`] puts back dedup entries, provider answers and revisions
//!   and returns the lookups to queue again. The figures go out as
//!   `warm_start_records_total`, `warm_start_lookups_requeued_total`, `warm_start_seconds` and
//!   one info log line.
//! * A restart thus asks no provider again about an address it answered within the answer's
//!   lifetime (withheld records too), resolves the lookups that were queued but not made, and
//!   continues the revision numbers. A lookup in flight at a kill is made again.

mod read;
mod record;
mod warm;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use tokio_util::sync::CancellationToken;

use crate::intel::feeds::FeedMatch;
use crate::model::{Origin, Output, ThreatRecord};
use crate::remote::{RemoteJob, RemoteStage};
use crate::settings::Settings;
use crate::stages::dedup::{DedupCache, Sighting};
use crate::stages::process::Priority;
use crate::telemetry::events::WarmStartFinished;
use crate::telemetry::Metrics;

pub(crate) use read::{read_state_topic, StateReadError};
#[cfg(test)]
pub(crate) use record::decode;
pub(crate) use record::{StateParts, StateRecord, StoredAnswer};
pub(crate) use warm::WarmState;

/// Reads `partitions` (every partition when `None`) of the state topic to their end, newest
/// state per address, bounded by `dedup.max_entries`. Blocking reads, off the runtime.
/// `Ok(None)` when `stop` was cancelled first.
pub(crate) async fn warm_start(
    settings: &Settings,
    partitions: Option<Vec<i32>>,
    stop: &CancellationToken,
) -> Result<Option<WarmState>, StateReadError> {
    let settings = settings.clone();
    let stop = stop.clone();
    tokio::task::spawn_blocking(move || {
        let mut warm = WarmState::new(settings.dedup.max_entries, settings.dedup.ttl);
        let done = read_state_topic(&settings, partitions.as_deref(), &mut warm, &stop)?;
        Ok(done.then_some(warm))
    })
    .await
    .unwrap_or_else(|join| Err(StateReadError::Panicked(join.to_string())))
}

/// Restores `warm` (see [`WarmState::restore`]) and reports the warm start's figures; returns
/// the jobs to queue again with [`requeue`] once the remote dispatchers run.
pub(crate) async fn restore(
    warm: WarmState,
    dedup: &DedupCache,
    remote: Option<&Arc<RemoteStage>>,
    metrics: &Metrics,
) -> Vec<RemoteJob> {
    let (records, invalid, dropped, read) =
        (warm.records, warm.invalid, warm.dropped, warm.elapsed);
    let started = std::time::Instant::now();
    let restored = warm.restore(dedup, remote, SystemTime::now()).await;
    let elapsed = read + started.elapsed();
    WarmStartFinished {
        records,
        invalid: invalid + restored.invalid,
        dropped,
        addresses: restored.addresses,
        expired: restored.expired,
        answers: restored.answers,
        requeued: restored.jobs.len() as u64,
        elapsed,
    }
    .emit(metrics);
    restored.jobs
}

/// Queues restored jobs again, each with the providers still `pending` for it.
pub(crate) async fn requeue(stage: Arc<RemoteStage>, jobs: Vec<RemoteJob>) {
    for job in jobs {
        for eviction in stage.offer_pending(job).await {
            tokio::spawn(eviction);
        }
    }
}

/// The state output of a record the processor just built (first sighting or due retry).
#[allow(clippy::too_many_arguments)]
pub(crate) fn first_state(
    ip: IpAddr,
    record: &ThreatRecord,
    feed_matches: &[FeedMatch],
    threat: Option<&str>,
    reporter: Option<&str>,
    priority: Priority,
    sighting: &Sighting,
    origin: &Origin,
    now: SystemTime,
) -> Option<Output> {
    let parts = StateParts {
        record,
        sighting,
        feed_matches,
        threat,
        reporter,
        priority,
        answers: &Default::default(),
        retry_at: None,
        origin,
    };
    StateRecord::build(ip, parts, now).encode().ok()
}
