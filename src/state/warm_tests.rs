//! The warm start's bound, newest-wins and expiry, and what a restore puts back.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use super::*;
use crate::intel::{Lookup, Provider, ProviderError};
use crate::remote::slot::{Patience, ProviderSlot, SlotLimits};
use crate::remote::{NoRevisions, RevisionRules};
use crate::settings::Settings;
use crate::stages::score::ScoringModel;
use crate::state::record::tests::{at, state};
use crate::telemetry::Metrics;

const DAY: Duration = Duration::from_secs(86_400);

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn payload(state: &StateRecord) -> Vec<u8> {
    state.encode().unwrap().payload
}

#[test]
fn the_latest_state_of_an_address_in_the_topic_wins_whatever_its_clock_said() {
    let mut warm = WarmState::new(100, DAY);
    let t = "2026-11-23T10:00:00Z";
    let first = state("198.51.100.30", 2_000, t, "2026-11-23T10:01:00Z", t);
    // Written after the first by a new owner whose clock is behind.
    let later = state("198.51.100.30", 1_000, t, "2026-11-23T10:09:00Z", t);
    warm.offer(Some(b"198.51.100.30"), Some(&payload(&first)));
    warm.offer(
        Some(b"198.51.100.31"),
        Some(&payload(&state("198.51.100.31", 1, t, t, t))),
    );
    warm.offer(Some(b"198.51.100.30"), Some(&payload(&later)));
    assert_eq!(warm.len(), 2);
    assert_eq!(warm.get(&ip("198.51.100.30")), Some(later));
    assert_eq!((warm.records, warm.invalid), (3, 0));
}

#[test]
fn a_tombstone_forgets_the_address_and_an_unreadable_record_is_counted() {
    let mut warm = WarmState::new(100, DAY);
    let t = "2026-11-23T10:00:00Z";
    warm.offer(
        Some(b"198.51.100.31"),
        Some(&payload(&state("198.51.100.31", 1, t, t, t))),
    );
    warm.offer(Some(b"198.51.100.31"), None);
    warm.offer(Some(b"198.51.100.32"), Some(b"not json"));
    assert!(warm.is_empty());
    assert_eq!((warm.records, warm.invalid), (3, 1));
}

#[tokio::test]
async fn at_most_max_entries_are_restored_the_most_recently_seen() {
    let mut warm = WarmState::new(2, DAY);
    let first = "2026-11-23T10:00:00Z";
    // Written in another order than seen: the bound goes by last_seen, not by write time.
    for (address, written, last) in [
        ("198.51.100.40", 3, "2026-11-23T10:01:00Z"),
        ("198.51.100.41", 2, "2026-11-23T10:03:00Z"),
        ("198.51.100.42", 1, "2026-11-23T10:02:00Z"),
    ] {
        warm.add(state(address, written, first, last, first));
    }
    let dedup = DedupCache::new(DAY, 100);
    let restored = warm.restore(&dedup, None, at("2026-11-23T12:00:00Z")).await;
    assert_eq!(restored.addresses, 2);
    let seen_at = at("2026-11-23T12:00:00Z");
    assert!(
        dedup.observe(ip("198.51.100.40"), seen_at).first,
        "the least recently seen was dropped"
    );
    assert!(!dedup.observe(ip("198.51.100.41"), seen_at).first);
    assert!(!dedup.observe(ip("198.51.100.42"), seen_at).first);
}

#[tokio::test]
async fn the_bound_is_counted_in_dropped_and_holds_while_reading() {
    let mut warm = WarmState::new(3, DAY);
    let first = "2026-11-23T10:00:00Z";
    for i in 0..10u32 {
        let last = humantime::format_rfc3339_seconds(at(first) + Duration::from_secs(u64::from(i)))
            .to_string();
        warm.add(state(
            &format!("198.51.100.{}", 50 + i),
            1,
            first,
            &last,
            first,
        ));
        assert!(
            warm.len() < 6,
            "held {} addresses with a bound of 3",
            warm.len()
        );
    }
    let dedup = DedupCache::new(DAY, 100);
    let (dropped_before, restored) = (
        warm.dropped,
        warm.restore(&dedup, None, at("2026-11-23T12:00:00Z")),
    );
    let restored = restored.await;
    assert_eq!(restored.addresses, 3);
    assert!(dropped_before >= 4, "pruned while reading");
    for i in 7..10 {
        let address = ip(&format!("198.51.100.{}", 50 + i));
        assert!(!dedup.observe(address, at(first)).first, "{address} kept");
    }
}

#[tokio::test]
async fn an_address_past_its_window_is_not_restored() {
    let mut warm = WarmState::new(100, DAY);
    warm.add(state(
        "198.51.100.60",
        1,
        "2026-11-22T09:00:00Z",
        "2026-11-23T08:00:00Z",
        "2026-11-24T09:00:00Z",
    ));
    warm.add(state(
        "198.51.100.61",
        1,
        "2026-11-22T11:00:00Z",
        "2026-11-23T08:00:00Z",
        "2026-11-24T09:00:00Z",
    ));
    let dedup = DedupCache::new(DAY, 100);
    let now = at("2026-11-23T10:00:00Z");
    let restored = warm.restore(&dedup, None, now).await;
    assert_eq!((restored.addresses, restored.expired), (1, 1));
    assert!(
        dedup.observe(ip("198.51.100.60"), now).first,
        "first seen 25 h ago with a 24 h window: a new first sighting"
    );
    assert!(!dedup.observe(ip("198.51.100.61"), now).first);
}

/// A provider the restore must never ask.
#[derive(Debug)]
struct NeverAsked(&'static str);

impl Provider for NeverAsked {
    fn name(&self) -> &'static str {
        self.0
    }

    fn lookup(&self, ip: IpAddr) -> BoxFuture<'_, Result<Lookup, ProviderError>> {
        panic!("{} asked about {ip}", self.0)
    }
}

fn stage() -> Arc<RemoteStage> {
    let metrics = Arc::new(Metrics::new(&prometheus::Registry::new()).unwrap());
    let limits = SlotLimits {
        per_minute: 0,
        per_day: 0,
        ttl: DAY,
        not_found_ttl: DAY,
        max_answers: 100,
        no_lookups: false,
    };
    let slots = ["virustotal", "abuseipdb", "otx"]
        .into_iter()
        .map(|name| {
            Arc::new(ProviderSlot::new(
                Arc::new(NeverAsked(name)),
                limits,
                metrics.clone(),
            ))
        })
        .collect();
    let settings = Settings::from_toml_overrides("").unwrap();
    Arc::new(RemoteStage::new(
        slots,
        100,
        RevisionRules {
            scoring: ScoringModel::new(&settings.scoring, &settings.feeds),
            min_verdict: settings.publish.min_verdict,
            publication: Arc::new(crate::publish::Publication::from_settings(&settings)),
            feeds: None,
        },
        Arc::new(NoRevisions),
        Patience {
            max_wait: Duration::ZERO,
        },
        metrics,
    ))
}

#[tokio::test]
async fn a_restore_caches_the_answers_and_queues_only_the_pending_providers() {
    let stage = stage();
    let mut warm = WarmState::new(100, Duration::from_secs(100 * 365 * 86_400));
    // Answers valid until far ahead on the system clock the slots read.
    warm.add(state(
        "198.51.100.70",
        1,
        "2026-11-23T10:00:00Z",
        "2026-11-23T10:05:00Z",
        "2099-01-01T00:00:00Z",
    ));
    let dedup = DedupCache::new(DAY, 100);
    let restored = warm
        .restore(&dedup, Some(&stage), std::time::SystemTime::now())
        .await;
    assert_eq!((restored.addresses, restored.answers), (1, 2));
    let address = ip("198.51.100.70");
    let [vt, abuse, otx] = [0, 1, 2].map(|i| stage.slots()[i].clone());
    assert!(
        !vt.needs_request(address),
        "VirusTotal's ok answer is cached"
    );
    assert!(
        !otx.needs_request(address),
        "OTX's not_found answer is cached"
    );
    assert!(abuse.needs_request(address), "AbuseIPDB never answered");
    let served = vt.cached(address).await.expect("served from the cache");
    assert_eq!(served.intel.facts["malicious"], 4);
    assert_eq!(restored.jobs.len(), 1);
    let job = restored.jobs.into_iter().next().unwrap();
    assert_eq!(job.tracked.lock().await.sighting.revision(), 2);
    assert!(stage.offer_pending(job).await.is_empty());
    assert!(stage.next_waiting(0).is_none(), "not queued for VirusTotal");
    assert!(stage.next_waiting(1).is_some(), "queued for AbuseIPDB");
    assert!(stage.next_waiting(2).is_none(), "not queued for OTX");
    assert_eq!(stage.waiting(), 1);
}

#[tokio::test]
async fn an_expired_answer_is_not_restored() {
    let stage = stage();
    let mut warm = WarmState::new(100, Duration::from_secs(100 * 365 * 86_400));
    warm.add(state(
        "198.51.100.71",
        1,
        "2026-11-23T10:00:00Z",
        "2026-11-23T10:05:00Z",
        "2001-01-01T00:00:00Z",
    ));
    let dedup = DedupCache::new(DAY, 100);
    let restored = warm
        .restore(&dedup, Some(&stage), std::time::SystemTime::now())
        .await;
    assert_eq!((restored.addresses, restored.answers), (1, 0));
    assert!(stage.slots()[0].needs_request(ip("198.51.100.71")));
}

// s12: the published index refilled by a warm start.
#[tokio::test]
async fn a_restore_puts_published_records_back_in_the_published_index_and_withheld_ones_not() {
    let mut warm = WarmState::new(100, DAY);
    let t = "2026-11-23T10:00:00Z";
    // Published at revision 2 (the helper's state).
    warm.add(state("198.51.100.80", 1, t, t, t));
    // Withheld: never published.
    let mut withheld = state("198.51.100.81", 1, t, t, t);
    withheld.published = Default::default();
    warm.add(withheld);
    let index = crate::stages::published::PublishedIndex::new(100, 1 << 20, DAY);
    let dedup = DedupCache::new(DAY, 100);
    let restored = warm
        .feeding(index.clone())
        .restore(&dedup, None, at("2026-11-23T10:30:00Z"))
        .await;
    assert_eq!(restored.addresses, 2);
    let entry = index
        .get(ip("198.51.100.80"))
        .expect("the published address is back in the index");
    assert_eq!(entry.record.revision, 2);
    assert!(
        index.get(ip("198.51.100.81")).is_none(),
        "a withheld address was never published"
    );
}
