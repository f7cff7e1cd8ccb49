//! Published index: the last delivered revision of every address whose record was published,
//! for withdrawals and the blocklist endpoint (ef-withdraw).
//!
//! * In: each threat record's payload once the producer delivered it (the sink's first
//!   records and the remote stage's revisions, the same hook that feeds the scheduled
//!   report), with the time it was delivered.
//! * Out: per address the record, its verdict, score, revision, when it was published and
//!   when it expires: the record's `expires_at` when it has one (read with a serde default,
//!   so records without it work), else published + `dedup.ttl`. [`PublishedIndex::expired`]
//!   lists what a housekeeping sweep withdraws; [`PublishedIndex::blocklist`] what the
//!   endpoint serves (unexpired, at or above a verdict, newest first).
//! * A withdrawal (`revoked: true`) removes the address: it is no longer published.
//! * Bounded in entries and bytes (a moka cache with a weigher: each entry weighs its payload
//!   length, and at least `max_bytes / max_entries`, so neither bound is passed); an address
//!   evicted because the index is full is counted (`published_index_evictions_total`) and
//!   is then never withdrawn on expiry nor served by the blocklist.
//! * A payload that does not parse back as a record is skipped and counted the same way.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use moka::notification::RemovalCause;
use moka::sync::Cache;
use serde::Deserialize;

use crate::model::{ThreatRecord, Verdict};

/// One published address.
#[derive(Debug)]
pub(crate) struct PublishedEntry {
    /// The record as delivered.
    pub(crate) record: ThreatRecord,
    /// When it was delivered.
    #[allow(dead_code)] // read by the tests; kept for listings that say since when
    pub(crate) published_at: SystemTime,
    /// When its verdict stops holding.
    pub(crate) expires_at: SystemTime,
    /// Delivery order (newest is highest), for newest-first listings.
    pub(crate) seq: u64,
    /// Bytes the payload had.
    pub(crate) bytes: usize,
}

/// The `expires_at` of a record (d-siem's field), when present; read apart from
/// [`ThreatRecord`] so the index works with records with or without it.
#[derive(Deserialize)]
struct Expiry {
    #[serde(default)]
    expires_at: Option<String>,
}

/// The index (cheap to clone; clones share it).
#[derive(Clone)]
pub(crate) struct PublishedIndex {
    cache: Cache<IpAddr, Arc<PublishedEntry>>,
    ttl: Duration,
    seq: Arc<AtomicU64>,
    evicted: Arc<AtomicU64>,
}

impl std::fmt::Debug for PublishedIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishedIndex")
            .field("entries", &self.cache.entry_count())
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl PublishedIndex {
    /// An index of at most `max_entries` addresses and about `max_bytes` of payload, whose
    /// records without `expires_at` expire `ttl` after they were published.
    pub(crate) fn new(max_entries: u64, max_bytes: u64, ttl: Duration) -> Self {
        let floor = u32::try_from(max_bytes / max_entries.max(1))
            .unwrap_or(u32::MAX)
            .max(1);
        let evicted = Arc::new(AtomicU64::new(0));
        let counter = evicted.clone();
        PublishedIndex {
            cache: Cache::builder()
                .name("published")
                .max_capacity(max_bytes.max(1))
                .weigher(move |_ip, entry: &Arc<PublishedEntry>| {
                    u32::try_from(entry.bytes).unwrap_or(u32::MAX).max(floor)
                })
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .eviction_listener(move |_ip, _entry, cause| {
                    if cause == RemovalCause::Size {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                })
                .build(),
            ttl,
            seq: Arc::new(AtomicU64::new(0)),
            evicted,
        }
    }

    /// Notes a delivered record: the address's latest revision, or (a withdrawal) its end.
    /// Returns false when the payload is not a record (counted as an eviction).
    pub(crate) fn record_delivered(&self, payload: &[u8], now: SystemTime) -> bool {
        let Ok(record) = serde_json::from_slice::<ThreatRecord>(payload) else {
            self.evicted.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        let Ok(ip) = record.ip.parse::<IpAddr>() else {
            self.evicted.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        if record.revoked {
            self.cache.invalidate(&ip);
            return true;
        }
        let expires_at = serde_json::from_slice::<Expiry>(payload)
            .ok()
            .and_then(|e| e.expires_at)
            .and_then(|text| humantime::parse_rfc3339_weak(&text).ok())
            .unwrap_or(now + self.ttl);
        let entry = PublishedEntry {
            record,
            published_at: now,
            expires_at,
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
            bytes: payload.len(),
        };
        self.cache.insert(ip, Arc::new(entry));
        true
    }

    /// The latest published revision of `ip`.
    pub(crate) fn get(&self, ip: IpAddr) -> Option<Arc<PublishedEntry>> {
        self.cache.get(&ip)
    }

    /// Forgets `ip` (after its withdrawal was delivered the index forgets it anyway).
    pub(crate) fn remove(&self, ip: IpAddr) {
        self.cache.invalidate(&ip);
    }

    /// Every published address, in no order (one pass).
    pub(crate) fn entries(&self) -> Vec<(IpAddr, Arc<PublishedEntry>)> {
        self.cache.iter().map(|(ip, e)| (*ip, e)).collect()
    }

    /// The addresses whose verdict expired by `now`.
    pub(crate) fn expired(&self, now: SystemTime) -> Vec<(IpAddr, Arc<PublishedEntry>)> {
        let mut due: Vec<_> = self
            .cache
            .iter()
            .filter(|(_, e)| e.expires_at <= now)
            .map(|(ip, e)| (*ip, e))
            .collect();
        due.sort_by_key(|(_, e)| e.seq);
        due
    }

    /// At most `max` addresses of one family (`v6`), unexpired at `now`, at or above
    /// `min_verdict` and not excluded, newest first.
    pub(crate) fn blocklist(
        &self,
        v6: bool,
        min_verdict: Verdict,
        now: SystemTime,
        max: usize,
        excluded: &dyn Fn(IpAddr) -> bool,
    ) -> Vec<IpAddr> {
        let mut listed: Vec<(u64, IpAddr)> = self
            .cache
            .iter()
            .filter(|(ip, e)| {
                ip.is_ipv6() == v6
                    && e.expires_at > now
                    && e.record.verdict >= min_verdict
                    && !excluded(**ip)
            })
            .map(|(ip, e)| (e.seq, *ip))
            .collect();
        listed.sort_unstable_by_key(|(seq, _)| std::cmp::Reverse(*seq));
        listed.truncate(max);
        listed.into_iter().map(|(_, ip)| ip).collect()
    }

    /// Addresses held (after pending maintenance).
    pub(crate) fn entry_count(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }

    /// Records dropped because the index was full (or unreadable), so far.
    pub(crate) fn evicted(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.evicted.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{rfc3339, Network, Observed, Severity, THREAT_SCHEMA};
    use std::time::UNIX_EPOCH;

    fn record(ip: &str, verdict: Verdict, revision: u32) -> ThreatRecord {
        ThreatRecord {
            schema: THREAT_SCHEMA.to_owned(),
            ip: ip.to_owned(),
            ip_version: if ip.contains(':') { 6 } else { 4 },
            verdict,
            severity: Severity::High,
            score: 70,
            reasons: Vec::new(),
            indicator: "Malicious IP Detected".into(),
            first_seen: rfc3339(UNIX_EPOCH),
            last_seen: rfc3339(UNIX_EPOCH),
            sightings: 1,
            roles: Vec::new(),
            observed: Observed::default(),
            network: Network::default(),
            intel: Default::default(),
            revision,
            generated_at: rfc3339(UNIX_EPOCH),
            id: None,
            event_time: None,
            confidence: None,
            tlp: None,
            expires_at: None,
            revoked: false,
            revocation_reason: None,
        }
    }

    fn payload(record: &ThreatRecord) -> Vec<u8> {
        serde_json::to_vec(record).unwrap()
    }

    const T0: Duration = Duration::from_secs(1_800_000_000);

    #[test]
    fn expiry_comes_from_expires_at_else_the_ttl() {
        let index = PublishedIndex::new(100, 1 << 20, Duration::from_secs(60));
        let now = UNIX_EPOCH + T0;
        index.record_delivered(
            &payload(&record("198.51.100.1", Verdict::Malicious, 1)),
            now,
        );
        let mut with_expiry =
            serde_json::to_value(record("198.51.100.2", Verdict::Malicious, 1)).unwrap();
        with_expiry["expires_at"] = rfc3339(now + Duration::from_secs(10)).into();
        index.record_delivered(&serde_json::to_vec(&with_expiry).unwrap(), now);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            index.get(ip("198.51.100.1")).unwrap().expires_at,
            now + Duration::from_secs(60)
        );
        assert_eq!(
            index.get(ip("198.51.100.2")).unwrap().expires_at,
            now + Duration::from_secs(10)
        );
        let due: Vec<IpAddr> = index
            .expired(now + Duration::from_secs(10))
            .into_iter()
            .map(|(a, _)| a)
            .collect();
        assert_eq!(due, vec![ip("198.51.100.2")]);
        assert!(index.expired(now + Duration::from_secs(9)).is_empty());
    }

    #[test]
    fn the_blocklist_is_newest_first_per_family_above_the_verdict_and_capped() {
        let index = PublishedIndex::new(100, 1 << 20, Duration::from_secs(60));
        let now = UNIX_EPOCH + T0;
        for (ip, verdict) in [
            ("198.51.100.1", Verdict::Malicious),
            ("2001:db8::1", Verdict::Malicious),
            ("198.51.100.2", Verdict::Suspicious),
            ("198.51.100.3", Verdict::Malicious),
            ("198.51.100.4", Verdict::Malicious),
        ] {
            index.record_delivered(&payload(&record(ip, verdict, 1)), now);
        }
        let none = |_: IpAddr| false;
        let v4 = |max| -> Vec<String> {
            index
                .blocklist(false, Verdict::Malicious, now, max, &none)
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(v4(10), ["198.51.100.4", "198.51.100.3", "198.51.100.1"]);
        assert_eq!(v4(2), ["198.51.100.4", "198.51.100.3"]);
        let v6 = index.blocklist(true, Verdict::Suspicious, now, 10, &none);
        assert_eq!(v6, vec!["2001:db8::1".parse::<IpAddr>().unwrap()]);
        let later = now + Duration::from_secs(60);
        assert!(index
            .blocklist(false, Verdict::Suspicious, later, 10, &none)
            .is_empty());
        let excluded = |ip: IpAddr| ip.to_string() == "198.51.100.4";
        assert_eq!(
            index.blocklist(false, Verdict::Malicious, now, 1, &excluded),
            vec!["198.51.100.3".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn a_withdrawal_removes_the_address() {
        let index = PublishedIndex::new(100, 1 << 20, Duration::from_secs(60));
        let now = UNIX_EPOCH + T0;
        index.record_delivered(
            &payload(&record("198.51.100.1", Verdict::Malicious, 1)),
            now,
        );
        let mut withdrawn = record("198.51.100.1", Verdict::Malicious, 2);
        withdrawn.revoked = true;
        withdrawn.revocation_reason = Some("expired".into());
        index.record_delivered(&payload(&withdrawn), now);
        assert!(index.get("198.51.100.1".parse().unwrap()).is_none());
    }

    #[test]
    fn a_full_index_evicts_and_counts() {
        // 10 entries at most: each weighs at least 1000 / 10 bytes.
        let index = PublishedIndex::new(10, 1000, Duration::from_secs(60));
        let now = UNIX_EPOCH + T0;
        for i in 0..50 {
            let r = record(&format!("198.51.100.{i}"), Verdict::Malicious, 1);
            index.record_delivered(&payload(&r), now);
            index.entry_count();
        }
        assert!(index.entry_count() <= 10, "{}", index.entry_count());
        assert!(index.evicted() >= 40, "{}", index.evicted());
        assert!(!index.record_delivered(b"not json", now));
    }
}
