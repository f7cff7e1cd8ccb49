//! Housekeeping: reloads the feeds, the mmdb files and the Talos list when they change, samples
//! the dedup window's size, and watches for an empty assignment the group lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::withdraw::Withdrawals;
use crate::intel::feeds::LocalFeeds;
use crate::intel::LocalProvider;
use crate::kafka::consumer::EventConsumer;
use crate::settings::Settings;
use crate::stages::dedup::DedupCache;
use crate::telemetry::events::{CacheSampled, FeedReloadFinished, PublishedIndexSampled};
use crate::telemetry::Metrics;

/// Checks every 10 s whether the latest assignment was empty, and if so whether the group
/// lost it (see `rejoin_if_sole_member_unassigned`).
pub(super) async fn assignment_watchdog(
    consumer: Arc<EventConsumer>,
    settings: Settings,
    assigned_nothing: Arc<AtomicBool>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.tick().await;
    loop {
        // Both branches are cancellation-safe.
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        if !assigned_nothing.load(Ordering::Relaxed) {
            continue;
        }
        let consumer = consumer.clone();
        let settings = settings.clone();
        let _ = tokio::task::spawn_blocking(move || {
            crate::kafka::consumer::rejoin_if_sole_member_unassigned(&consumer, &settings)
        })
        .await;
    }
}

pub(super) async fn housekeeping_loop(
    feeds: Arc<LocalFeeds>,
    local: Vec<Arc<dyn LocalProvider>>,
    dedup: DedupCache,
    withdrawals: Arc<Withdrawals>,
    reload_every: Duration,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let mut reload = tokio::time::interval(reload_every);
    let mut sample = tokio::time::interval(Duration::from_secs(5));
    reload.tick().await;
    let mut evictions_seen = 0;
    loop {
        // Ticks and cancellation are all cancellation-safe.
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = reload.tick() => {
                // Expired verdicts are withdrawn once per reload interval. A pass is cut
                // short by shutdown (what it published stays published; the rest waits for
                // the next run's index, which starts empty).
                if !until_stopped(&stop, withdrawals.sweep_expired(SystemTime::now())).await {
                    break;
                }
                let before = Arc::clone(&feeds.current());
                let feeds = feeds.clone();
                let local = local.clone();
                let result = tokio::task::spawn_blocking(move || {
                    let changed = feeds.reload_if_changed();
                    // Local providers' files (mmdb, the Talos list) are reloaded when they
                    // change; on error the old data stays in use and the error is reported
                    // like a feed's.
                    let local: Vec<_> = local.iter().map(|p| p.reload_if_changed()).collect();
                    (changed, feeds, local)
                })
                .await;
                let result = result.map(|(changed, feeds, local)| {
                    for outcome in local {
                        match outcome {
                            Ok(false) => {}
                            Ok(true) => FeedReloadFinished { error: None }.emit(&metrics),
                            Err(e) => FeedReloadFinished { error: Some(&e) }.emit(&metrics),
                        }
                    }
                    (changed, feeds)
                });
                if let Ok((changed, feeds)) = result {
                    match changed {
                        Ok(false) => {}
                        Ok(true) => {
                            FeedReloadFinished { error: None }.emit(&metrics);
                            super::build::emit_feeds_loaded(&feeds, &metrics);
                            // Addresses whose listing changed are scored again.
                            let after = Arc::clone(&feeds.current());
                            let pass = withdrawals.feeds_changed(&before, &after, SystemTime::now());
                            if !until_stopped(&stop, pass).await {
                                break;
                            }
                        }
                        Err(e) => FeedReloadFinished { error: Some(&e.to_string()) }.emit(&metrics),
                    }
                }
            }
            _ = sample.tick() => {
                CacheSampled { cache: "dedup", entries: dedup.entry_count() }.emit(&metrics);
                let index = withdrawals.index();
                CacheSampled { cache: "published", entries: index.entry_count() }.emit(&metrics);
                let evicted = index.evicted();
                PublishedIndexSampled { new_evictions: evicted.saturating_sub(evictions_seen) }
                    .emit(withdrawals.counters());
                evictions_seen = evicted;
            }
        }
    }
}

/// Runs `work` unless `stop` is cancelled first; false when it was.
async fn until_stopped<T>(
    stop: &CancellationToken,
    work: impl std::future::Future<Output = T>,
) -> bool {
    // Dropping `work` is safe: each withdrawal is a whole record or nothing.
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = work => true,
    }
}
