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
use crate::stages::filter::allowlist::{AllowlistError, Reloaded};
use crate::stages::filter::{AllowEntry, AllowlistFile};
use crate::telemetry::events::{
    AllowlistEntryAdded, AllowlistLoaded, AllowlistReloadFinished, AllowlistSampled, CacheSampled,
    FeedReloadFinished, PublishedIndexSampled,
};
use crate::telemetry::Metrics;

/// What the entries a reload newly allow-listed are handed to: the records already published
/// for addresses they cover are to be withdrawn (wired in `topology::run`).
pub(crate) type AllowlistHook = Arc<dyn Fn(&[AllowEntry]) + Send + Sync>;

/// The allow-list file and what its reloads' new entries are handed to.
#[derive(Clone)]
pub(super) struct AllowlistReload {
    pub file: Arc<AllowlistFile>,
    pub on_added: AllowlistHook,
}

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

/// What the housekeeping loop reloads, samples and sweeps.
pub(super) struct Housekept {
    pub(super) feeds: Arc<LocalFeeds>,
    pub(super) local: Vec<Arc<dyn LocalProvider>>,
    pub(super) allowlist: Option<AllowlistReload>,
    pub(super) dedup: DedupCache,
    pub(super) withdrawals: Arc<Withdrawals>,
    /// `intel.feeds_reload_interval`.
    pub(super) reload_every: Duration,
}

pub(super) async fn housekeeping_loop(
    housekept: Housekept,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let Housekept {
        feeds,
        local,
        allowlist,
        dedup,
        withdrawals,
        reload_every,
    } = housekept;
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
                let allowlist_file = allowlist.as_ref().map(|a| a.file.clone());
                let result = tokio::task::spawn_blocking(move || {
                    let changed = feeds.reload_if_changed();
                    // Local providers' files (mmdb, the Talos list) are reloaded when they
                    // change; on error the old data stays in use and the error is reported
                    // like a feed's.
                    let local: Vec<_> = local.iter().map(|p| p.reload_if_changed()).collect();
                    let allowlisted =
                        allowlist_file.map(|file| file.reload_if_changed(SystemTime::now()));
                    (changed, feeds, local, allowlisted)
                })
                .await;
                let result = result.map(|(changed, feeds, local, allowlisted)| {
                    if let (Some(reload), Some(outcome)) = (&allowlist, allowlisted) {
                        allowlist_reloaded(reload, outcome, SystemTime::now(), &metrics);
                    }
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

/// Reports an allow-list reload and hands its newly matching entries to the hook. Also keeps
/// the entries gauge current when nothing changed: entries expire between reloads.
pub(super) fn allowlist_reloaded(
    reload: &AllowlistReload,
    outcome: Result<Option<Reloaded>, AllowlistError>,
    now: SystemTime,
    metrics: &Metrics,
) {
    let list = reload.file.current();
    match outcome {
        Ok(None) => {
            AllowlistSampled {
                active: list.active_count(now),
            }
            .emit(metrics);
        }
        Ok(Some(reloaded)) => {
            AllowlistReloadFinished { error: None }.emit(metrics);
            AllowlistLoaded {
                path: reload.file.path(),
                entries: list.entries().len(),
                active: list.active_count(now),
                skipped_lines: list.skipped_count(),
                skipped: list.skipped(),
            }
            .emit(metrics);
            for entry in &reloaded.added {
                AllowlistEntryAdded { entry }.emit();
            }
            if !reloaded.added.is_empty() {
                (reload.on_added)(&reloaded.added);
            }
        }
        Err(e) => AllowlistReloadFinished {
            error: Some(&e.to_string()),
        }
        .emit(metrics),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// The hook's calls, as the networks it was handed.
    fn recording_hook() -> (AllowlistHook, Arc<Mutex<Vec<Vec<String>>>>) {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let seen = calls.clone();
        let hook: AllowlistHook = Arc::new(move |added: &[AllowEntry]| {
            let nets = added.iter().map(|e| e.net.to_string()).collect();
            seen.lock().unwrap().push(nets);
        });
        (hook, calls)
    }

    #[test]
    fn a_reload_hands_the_new_entries_to_the_hook_and_counts_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("allowlist.txt");
        std::fs::write(&path, "203.0.113.1 | first | a\n").unwrap();
        let (on_added, calls) = recording_hook();
        let reload = AllowlistReload {
            file: Arc::new(AllowlistFile::load(&path).unwrap()),
            on_added,
        };
        let metrics = Metrics::new(&prometheus::Registry::new()).unwrap();
        let now = SystemTime::now();

        let unchanged = reload.file.reload_if_changed(now);
        allowlist_reloaded(&reload, unchanged, now, &metrics);
        assert!(calls.lock().unwrap().is_empty(), "nothing changed");
        assert_eq!(metrics.allowlist_entries.get(), 1);

        let next = dir.path().join("next.txt");
        std::fs::write(
            &next,
            "203.0.113.1 | first | a\n203.0.113.0/28 | second | b\nbad line\n",
        )
        .unwrap();
        std::fs::rename(&next, &path).unwrap();
        let changed = reload.file.reload_if_changed(now);
        allowlist_reloaded(&reload, changed, now, &metrics);
        assert_eq!(*calls.lock().unwrap(), [vec!["203.0.113.0/28".to_owned()]]);
        assert_eq!(metrics.allowlist_entries.get(), 2);
        assert_eq!(
            metrics.allowlist_reloads.with_label_values(&["ok"]).get(),
            1
        );

        std::fs::remove_file(&path).unwrap();
        let failed = reload.file.reload_if_changed(now);
        allowlist_reloaded(&reload, failed, now, &metrics);
        assert_eq!(
            metrics
                .allowlist_reloads
                .with_label_values(&["error"])
                .get(),
            1
        );
        assert_eq!(
            calls.lock().unwrap().len(),
            1,
            "no hook call on a failed reload"
        );
        assert_eq!(metrics.allowlist_entries.get(), 2, "the old list stays");
    }
}
