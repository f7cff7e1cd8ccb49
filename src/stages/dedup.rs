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

use crate::model::{Role, Verdict};

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
    /// Where the address was first seen, for a record made again at a feed reload (32 bytes).
    context: SightingContext,
}

/// What a record re-evaluated at a feed reload keeps of the first event (ef-withdraw): the
/// format, the input message and the roles. Vendor, product, action, rule, peer and the
/// vendor's threat name are not kept (they are strings of any length; a record published
/// before keeps them all).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SightingContext {
    /// Format that parsed the event (`""` when not known).
    pub format: &'static str,
    /// Offset of the input message.
    pub offset: i64,
    /// Partition of the input message.
    pub partition: i32,
    /// The input topic, interned (see [`intern_topic`]).
    pub topic: TopicId,
    /// Roles the address had in the event, one bit per [`Role::ALL`] index.
    pub roles: u8,
}

/// An input topic as a small number: one [`SightingContext`] per remembered address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicId(u16);

/// Interned topic names (few: the configured input topics; past 65,535 names `TopicId(0)`,
/// the empty name, stands for the rest).
static TOPICS: std::sync::RwLock<Vec<Arc<str>>> = std::sync::RwLock::new(Vec::new());

/// The id of `topic`, interning it on first use.
pub(crate) fn intern_topic(topic: &Arc<str>) -> TopicId {
    let find = |names: &[Arc<str>]| names.iter().position(|n| n == topic);
    if let Some(i) = find(&TOPICS.read().unwrap_or_else(|p| p.into_inner())) {
        return TopicId(u16::try_from(i + 1).unwrap_or(0));
    }
    let mut names = TOPICS.write().unwrap_or_else(|p| p.into_inner());
    let i = match find(&names) {
        Some(i) => i,
        None if names.len() < usize::from(u16::MAX) => {
            names.push(topic.clone());
            names.len() - 1
        }
        None => return TopicId(0),
    };
    TopicId(u16::try_from(i + 1).unwrap_or(0))
}

/// Format names read back from the state changelog, as the `&'static str` a
/// [`SightingContext`] holds (s12: few names; past 64, or a name over 64 bytes, `""`).
static FORMATS: std::sync::RwLock<Vec<&'static str>> = std::sync::RwLock::new(Vec::new());

/// `name` as a static format name, interning it on first use (see [`FORMATS`]).
pub(crate) fn intern_format(name: &str) -> &'static str {
    if name.is_empty() || name.len() > 64 {
        return "";
    }
    let find = |names: &[&'static str]| names.iter().copied().find(|n| *n == name);
    if let Some(found) = find(&FORMATS.read().unwrap_or_else(|p| p.into_inner())) {
        return found;
    }
    let mut names = FORMATS.write().unwrap_or_else(|p| p.into_inner());
    match find(&names) {
        Some(found) => found,
        None if names.len() < 64 => {
            let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
            names.push(leaked);
            leaked
        }
        None => "",
    }
}

impl TopicId {
    /// The topic's name (`""` for `TopicId(0)`).
    pub fn name(self) -> Arc<str> {
        let names = TOPICS.read().unwrap_or_else(|p| p.into_inner());
        usize::from(self.0)
            .checked_sub(1)
            .and_then(|i| names.get(i).cloned())
            .unwrap_or_else(|| Arc::from(""))
    }
}

impl SightingContext {
    /// The roles as a list, in [`Role::ALL`] order.
    pub fn roles(&self) -> Vec<Role> {
        Role::ALL
            .into_iter()
            .enumerate()
            .filter(|(i, _)| self.roles & (1 << i) != 0)
            .map(|(_, r)| r)
            .collect()
    }

    /// The bits of `roles`.
    pub fn role_bits(roles: impl IntoIterator<Item = Role>) -> u8 {
        roles.into_iter().fold(0, |bits, role| {
            let i = Role::ALL.iter().position(|r| *r == role).unwrap_or(0);
            bits | (1 << i)
        })
    }
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

    /// Like [`next_revision`](Self::next_revision), but at least `after + 1`: a withdrawal or
    /// a re-evaluation follows the last delivered revision (ef-withdraw).
    pub fn next_revision_after(&self, after: u32, score: u32, verdict: Verdict) -> u32 {
        let revision =
            ((self.published.load(Ordering::Relaxed) >> REVISION_SHIFT) + 1).max(after + 1);
        self.published.store(
            revision << REVISION_SHIFT | score.min(100) << 2 | verdict as u32,
            Ordering::Relaxed,
        );
        revision
    }

    /// The latest revision number published in the window (0 before the first).
    pub fn revision(&self) -> u32 {
        self.published.load(Ordering::Relaxed) >> REVISION_SHIFT
    }

    /// Where the address was first seen.
    pub fn context(&self) -> &SightingContext {
        &self.context
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

// s1-scaled: folded sightings and ownership hand-over.
impl Sighting {
    /// Counts `more` sightings folded into one sightings message, the latest at `last`
    /// (scaled mode: the ingest half folds repeats of an address within a batch).
    pub fn fold(&self, more: u64, last: SystemTime) {
        self.count.fetch_add(more, Ordering::Relaxed);
        self.last_seen
            .fetch_max(epoch_secs(last), Ordering::Relaxed);
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
    /// The first event's context (format, input message, roles), from the state's record.
    pub context: SightingContext,
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
        self.observe_in(ip, now, SightingContext::default)
    }

    /// Records a sighting of `ip` at `now`; a first sighting keeps `context()`.
    pub fn observe_in(
        &self,
        ip: IpAddr,
        now: SystemTime,
        context: impl FnOnce() -> SightingContext,
    ) -> Observation {
        let secs = epoch_secs(now);
        let entry = self.cache.entry(ip).or_insert_with(|| {
            Arc::new(Sighting {
                first_seen: secs,
                last_seen: AtomicU32::new(secs),
                count: AtomicU64::new(0),
                published: AtomicU32::new(0),
                retry_at: AtomicU32::new(0),
                context: context(),
            })
        });
        let first = entry.is_fresh();
        let sighting = entry.into_value();
        sighting.count.fetch_add(1, Ordering::Relaxed);
        sighting.last_seen.fetch_max(secs, Ordering::Relaxed);
        Observation { first, sighting }
    }

    /// The window's state of `ip`, if it is remembered (does not count as a sighting).
    pub fn get(&self, ip: IpAddr) -> Option<Arc<Sighting>> {
        self.cache.get(&ip)
    }

    /// Every remembered address (one pass over the window; entries added meanwhile may or
    /// may not be seen).
    pub fn addresses(&self) -> impl Iterator<Item = (IpAddr, Arc<Sighting>)> + '_ {
        self.cache.iter().map(|(ip, sighting)| (*ip, sighting))
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
                    context: restored.context,
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

// s1-scaled: ownership hand-over.
impl DedupCache {
    /// Forgets every address `revoked` says no longer belongs here (scaled mode: their
    /// partition of the sightings topic went to another daemon, which rebuilds them from the
    /// state topic). Returns how many were forgotten.
    pub fn forget_where(&self, revoked: impl Fn(&IpAddr) -> bool) -> usize {
        let gone: Vec<IpAddr> = self
            .cache
            .iter()
            .filter(|(ip, _)| revoked(ip))
            .map(|(ip, _)| *ip)
            .collect();
        for ip in &gone {
            self.cache.invalidate(ip);
        }
        gone.len()
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
        // One per remembered address: 24 bytes of counters and 32 of context for a feed
        // reload's re-evaluation; with Arc's two counters (72 bytes) it fits glibc's 80-byte
        // chunk, 32 bytes more than without the context (README "Withdrawals").
        assert!(std::mem::size_of::<SightingContext>() <= 32);
        assert!(std::mem::size_of::<Sighting>() <= 56);
    }

    #[test]
    fn the_context_keeps_topic_and_roles() {
        let cache = DedupCache::new(Duration::from_secs(60), 100);
        let topic: Arc<str> = Arc::from("fw-events-ctx");
        let ip: IpAddr = "198.51.100.77".parse().unwrap();
        let context = SightingContext {
            format: "ecs",
            offset: 9,
            partition: 2,
            topic: intern_topic(&topic),
            roles: SightingContext::role_bits([Role::Destination, Role::Nat]),
        };
        cache.observe_in(ip, SystemTime::now(), || context);
        let kept = *cache.get(ip).expect("remembered").context();
        assert_eq!(kept, context);
        assert_eq!(&*kept.topic.name(), "fw-events-ctx");
        assert_eq!(kept.roles(), vec![Role::Destination, Role::Nat]);
        assert_eq!(intern_topic(&topic), kept.topic, "interned once");
        assert_eq!(
            cache.addresses().map(|(a, _)| a).collect::<Vec<_>>(),
            vec![ip]
        );
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
            context: SightingContext::default(),
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
