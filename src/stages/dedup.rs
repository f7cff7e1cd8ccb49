//! Dedup: remembers which addresses were enriched within the window (a moka cache).
//!
//! * In: a public address and the time of the sighting.
//! * Out: whether this is the first sighting in the window, plus the sighting count so far.
//! * A repeat sighting is an intentional drop: the caller counts it (`dedup_hits_total`) and
//!   still acknowledges the message. Entries expire `ttl` after the first sighting; when
//!   `max_entries` is reached the least recently used are evicted, so memory is bounded.
//! * Concurrent first sightings of one address are coalesced by moka's entry API: exactly one
//!   caller sees `first == true`.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use moka::sync::Cache;

use crate::model::Verdict;

/// What the window knows about an address.
#[derive(Debug)]
pub struct Sighting {
    /// Seconds since the epoch of the first sighting.
    first_seen: u32,
    /// Seconds since the epoch of the latest sighting.
    last_seen: AtomicU32,
    /// Sightings so far.
    count: AtomicU64,
    /// Revisions published in the window (bits 9–31), and the verdict (bits 0–1) and score
    /// (bits 2–8) of the latest; 0 before the first.
    published: AtomicU32,
    /// Seconds since the epoch after which remote lookups that got no answer may be tried
    /// again on the next sighting (0: nothing to retry).
    retry_at: AtomicU32,
}

const REVISION_SHIFT: u32 = 9;

/// Seconds since the epoch as 32 bits (good until 2106): times are kept small because there is
/// one `Sighting` per remembered address.
fn epoch_secs(time: SystemTime) -> u32 {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    u32::try_from(secs).unwrap_or(u32::MAX)
}

impl Sighting {
    /// Time of the first sighting.
    pub fn first_seen(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(u64::from(self.first_seen))
    }

    /// Time of the latest sighting.
    pub fn last_seen(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(u64::from(self.last_seen.load(Ordering::Relaxed)))
    }

    /// Sightings so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Takes the next revision number and remembers what it published. The caller publishes
    /// the address's revisions one at a time (the processor the first, then its remote job).
    pub fn next_revision(&self, score: u32, verdict: Verdict) -> u32 {
        let revision = (self.published.load(Ordering::Relaxed) >> REVISION_SHIFT) + 1;
        self.published.store(
            revision << REVISION_SHIFT | score.min(100) << 2 | verdict as u32,
            Ordering::Relaxed,
        );
        revision
    }

    /// Score and verdict of the latest published revision, if any.
    pub fn published(&self) -> Option<(u32, Verdict)> {
        let packed = self.published.load(Ordering::Relaxed);
        (packed >> REVISION_SHIFT != 0).then(|| {
            let verdict = Verdict::ALL
                .into_iter()
                .find(|v| *v as u32 == packed & 0b11)
                .unwrap_or_default();
            ((packed >> 2) & 0x7F, verdict)
        })
    }

    /// Remote lookups without an answer may be tried again from `at`.
    pub fn retry_from(&self, at: SystemTime) {
        self.retry_at
            .store(epoch_secs(at).max(1), Ordering::Relaxed);
    }

    /// The latest published revision's number (0 before the first).
    pub fn revision(&self) -> u32 {
        self.published.load(Ordering::Relaxed) >> REVISION_SHIFT
    }

    /// When lookups without an answer may be tried again, if any is due to be.
    pub fn retry_at(&self) -> Option<SystemTime> {
        let at = self.retry_at.load(Ordering::Relaxed);
        (at != 0).then(|| UNIX_EPOCH + Duration::from_secs(u64::from(at)))
    }

    /// True once per due retry: the caller looks the address up again.
    pub fn take_due_retry(&self, now: SystemTime) -> bool {
        let due = self.retry_at.load(Ordering::Relaxed);
        let now = epoch_secs(now);
        due != 0
            && now >= due
            && self
                .retry_at
                .compare_exchange(due, 0, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

/// An address's window state as the state changelog keeps it (see [`DedupCache::restore`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RestoredSighting {
    /// First sighting.
    pub first_seen: SystemTime,
    /// Latest sighting.
    pub last_seen: SystemTime,
    /// Sightings so far.
    pub count: u64,
    /// Revision number, score and verdict of the latest published revision, if any.
    pub published: Option<(u32, u32, Verdict)>,
    /// When lookups without an answer may be tried again.
    pub retry_at: Option<SystemTime>,
}

/// The result of one sighting.
#[derive(Debug, Clone)]
pub struct Observation {
    /// True for the first sighting in the window.
    pub first: bool,
    /// The shared sighting state.
    pub sighting: Arc<Sighting>,
}

/// The dedup window.
#[derive(Clone)]
pub struct DedupCache {
    cache: Cache<IpAddr, Arc<Sighting>>,
}

impl DedupCache {
    /// A window of `ttl` holding at most `max_entries` addresses.
    pub fn new(ttl: Duration, max_entries: u64) -> Self {
        DedupCache {
            // LRU, not moka's default TinyLFU: TinyLFU may refuse to admit a new address when
            // full, and a refused address would be enriched (and spend quota) on every sighting.
            cache: Cache::builder()
                .name("dedup")
                .max_capacity(max_entries)
                .time_to_live(ttl)
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .build(),
        }
    }

    /// Records a sighting of `ip` at `now`.
    pub fn observe(&self, ip: IpAddr, now: SystemTime) -> Observation {
        let secs = epoch_secs(now);
        let entry = self.cache.entry(ip).or_insert_with(|| {
            Arc::new(Sighting {
                first_seen: secs,
                last_seen: AtomicU32::new(secs),
                count: AtomicU64::new(0),
                published: AtomicU32::new(0),
                retry_at: AtomicU32::new(0),
            })
        });
        let first = entry.is_fresh();
        let sighting = entry.into_value();
        sighting.count.fetch_add(1, Ordering::Relaxed);
        sighting.last_seen.fetch_max(secs, Ordering::Relaxed);
        Observation { first, sighting }
    }

    /// Puts back an address's window state read from the state changelog (warm start). An
    /// address already in the window keeps what it has (it was seen since). The entry lives
    /// `ttl` from now: moka's expiry cannot be set per entry from a past first sighting, so a
    /// restored address may be remembered up to one window longer than it would have been.
    pub fn restore(&self, ip: IpAddr, restored: &RestoredSighting) -> Arc<Sighting> {
        let published = restored.published.map_or(0, |(revision, score, verdict)| {
            revision << REVISION_SHIFT | score.min(100) << 2 | verdict as u32
        });
        self.cache
            .entry(ip)
            .or_insert_with(|| {
                Arc::new(Sighting {
                    first_seen: epoch_secs(restored.first_seen),
                    last_seen: AtomicU32::new(epoch_secs(restored.last_seen)),
                    count: AtomicU64::new(restored.count),
                    published: AtomicU32::new(published),
                    retry_at: AtomicU32::new(restored.retry_at.map_or(0, |t| epoch_secs(t).max(1))),
                })
            })
            .into_value()
    }

    /// Entries held (approximate until pending maintenance runs).
    pub fn entry_count(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sighting_then_hits_are_counted() {
        let cache = DedupCache::new(Duration::from_secs(60), 100);
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let t0 = UNIX_EPOCH + Duration::from_secs(1000);
        let first = cache.observe(ip, t0);
        assert!(first.first);
        let second = cache.observe(ip, t0 + Duration::from_secs(5));
        assert!(!second.first);
        assert_eq!(second.sighting.count(), 2);
        assert_eq!(second.sighting.first_seen(), t0);
        assert_eq!(second.sighting.last_seen(), t0 + Duration::from_secs(5));
        assert!(cache.observe("203.0.113.8".parse().unwrap(), t0).first);
        assert_eq!(cache.entry_count(), 2);
    }

    #[test]
    fn a_full_window_admits_new_addresses_and_forgets_the_oldest() {
        let cache = DedupCache::new(Duration::from_secs(60), 100);
        let now = SystemTime::now();
        let addr = |i: u32| IpAddr::from(std::net::Ipv4Addr::from(0x0100_0000 + i));
        for i in 0..1000 {
            assert!(cache.observe(addr(i), now).first);
            cache.entry_count(); // runs moka's pending admission and eviction
                                 // Every new address is remembered, even when the window is full.
            assert!(
                !cache.observe(addr(i), now).first,
                "address {i} was not admitted"
            );
        }
        assert!(cache.entry_count() <= 100);
        assert!(cache.observe(addr(0), now).first, "the oldest was evicted");
    }

    #[test]
    fn entries_expire_after_the_window() {
        // The window runs on moka's own clock, which cannot be injected (its `Clock` is
        // crate-private; `observe`'s `now` is the message time, not the window's). So the
        // expiry is waited for as an event, the entry leaving the cache, with a deadline that
        // fails the test; only then is the outcome checked.
        let cache = DedupCache::new(Duration::from_millis(50), 100);
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let first = cache.observe(ip, SystemTime::now());
        assert!(first.first);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while cache.cache.contains_key(&ip) {
            assert!(
                std::time::Instant::now() < deadline,
                "a 50 ms window still held its entry after 30 s"
            );
            #[allow(clippy::disallowed_methods)] // a plain thread, no runtime to block
            std::thread::sleep(Duration::from_millis(10));
        }
        let again = cache.observe(ip, SystemTime::now());
        assert!(again.first, "a sighting after the window is a first one");
        assert_eq!(again.sighting.count(), 1, "the count starts over");
        assert!(!Arc::ptr_eq(&first.sighting, &again.sighting));
    }

    #[test]
    fn a_sighting_stays_small() {
        // One per remembered address: with Arc's two counters (40 bytes) it fits glibc's
        // 48-byte chunk, as the sighting alone did before revisions were tracked.
        assert!(std::mem::size_of::<Sighting>() <= 24);
    }

    #[test]
    fn revisions_count_up_and_remember_what_was_published() {
        let cache = DedupCache::new(Duration::from_secs(60), 100);
        let seen = cache.observe("198.51.100.10".parse().unwrap(), SystemTime::now());
        assert_eq!(seen.sighting.published(), None);
        assert_eq!(seen.sighting.next_revision(48, Verdict::Suspicious), 1);
        assert_eq!(seen.sighting.next_revision(100, Verdict::Malicious), 2);
        assert_eq!(seen.sighting.published(), Some((100, Verdict::Malicious)));
        let t = UNIX_EPOCH + Duration::from_secs(5000);
        assert!(!seen.sighting.take_due_retry(t));
        seen.sighting.retry_from(t);
        assert!(!seen.sighting.take_due_retry(t - Duration::from_secs(1)));
        assert!(seen.sighting.take_due_retry(t));
        assert!(!seen.sighting.take_due_retry(t), "once");
    }

    #[test]
    fn a_restored_sighting_continues_its_count_revisions_and_retry() {
        let cache = DedupCache::new(Duration::from_secs(60), 100);
        let ip: IpAddr = "198.51.100.11".parse().unwrap();
        let t = UNIX_EPOCH + Duration::from_secs(10_000);
        let restored = RestoredSighting {
            first_seen: t,
            last_seen: t + Duration::from_secs(30),
            count: 7,
            published: Some((3, 55, Verdict::Suspicious)),
            retry_at: Some(t + Duration::from_secs(90)),
        };
        let sighting = cache.restore(ip, &restored);
        assert_eq!(sighting.first_seen(), t);
        assert_eq!(sighting.revision(), 3);
        assert_eq!(sighting.published(), Some((55, Verdict::Suspicious)));
        assert_eq!(sighting.retry_at(), restored.retry_at);
        let again = cache.observe(ip, t + Duration::from_secs(40));
        assert!(
            !again.first,
            "a restored address is not seen for the first time again"
        );
        assert_eq!(again.sighting.count(), 8);
        assert_eq!(again.sighting.next_revision(80, Verdict::Malicious), 4);
    }

    #[test]
    fn concurrent_first_sightings_coalesce() {
        let cache = DedupCache::new(Duration::from_secs(60), 100);
        let ip: IpAddr = "198.51.100.9".parse().unwrap();
        let firsts: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| usize::from(cache.observe(ip, SystemTime::now()).first)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
        });
        assert_eq!(firsts, 1);
        assert_eq!(cache.observe(ip, SystemTime::now()).sighting.count(), 9);
    }
}
