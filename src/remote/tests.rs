//! Unit tests of the queues, revisions and the stage.

use std::cmp::Reverse;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;

use super::*;
use crate::model::{Network, Origin, ProviderIntel, ProviderStatus, ThreatRecord, Verdict};
use crate::remote::queue::Waiting;
use crate::remote::slot::{Outcome, Patience, ProviderSlot};
use crate::settings::Settings;
use crate::stages::dedup::DedupCache;
use crate::stages::local::merge_network;
use crate::stages::score::ScoringModel;
use crate::telemetry::Metrics;

fn tracked(ip: &str) -> Tracked {
    let dedup = DedupCache::new(Duration::from_secs(60), 10);
    let sighting = dedup
        .observe(ip.parse().unwrap(), SystemTime::now())
        .sighting;
    let record: ThreatRecord = serde_json::from_value(serde_json::json!({
        "schema": "threatsift.threat/1", "ip": ip, "ip_version": 4,
        "verdict": "unknown", "severity": "info", "score": 0, "reasons": [],
        "indicator": "IP Observed", "first_seen": "2026-11-23T10:00:00Z",
        "last_seen": "2026-11-23T10:00:00Z", "sightings": 1, "roles": ["source"],
        "observed": {"format": "kv", "topic": "t", "partition": 0, "offset": 1},
        "network": {"asn": null, "as_org": null, "country": null, "rir": null, "cidr": null},
        "intel": {"virustotal": {"status": "pending"}},
        "revision": 1, "generated_at": "2026-11-23T10:00:00Z"
    }))
    .unwrap();
    Tracked::new(
        record,
        Vec::new(),
        None,
        None,
        sighting,
        Origin {
            topic: "t".into(),
            partition: 0,
            offset: 1,
        },
    )
}

fn rules() -> RevisionRules {
    let settings = Settings::from_toml_overrides("").unwrap();
    RevisionRules {
        scoring: ScoringModel::new(&settings.scoring, &settings.feeds),
        min_verdict: Verdict::Suspicious,
        publication: std::sync::Arc::new(crate::publish::Publication::from_settings(&settings)),
        feeds: None,
    }
}

fn vt_answer(malicious: u32) -> Outcome {
    let mut facts = serde_json::Map::new();
    facts.insert(
        "last_analysis_stats".into(),
        serde_json::json!({"malicious": malicious, "suspicious": 0, "harmless": 50, "undetected": 20, "timeout": 0}),
    );
    Outcome {
        intel: ProviderIntel {
            status: ProviderStatus::Ok,
            detail: None,
            facts,
        },
        network: Some(Network {
            asn: Some(64500),
            country: Some("NL".into()),
            ..Network::default()
        }),
        retry_at: None,
    }
}

#[test]
fn an_answer_that_lifts_the_verdict_is_published_as_the_next_revision() {
    let mut t = tracked("198.51.100.7");
    let output = apply_outcome(
        &mut t,
        "virustotal",
        vt_answer(8),
        &rules(),
        SystemTime::now(),
    )
    .expect("published")
    .expect("serialises");
    let record: ThreatRecord = serde_json::from_value(
        crate::model::schema_check::valid_record_payload(&output.payload),
    )
    .unwrap();
    assert_eq!((record.score, record.verdict), (40, Verdict::Suspicious));
    assert_eq!(record.revision, 1, "nothing was published before");
    assert_eq!(record.network.asn, Some(64500));
    assert_eq!(output.key.as_deref(), Some(&b"198.51.100.7"[..]));
    // The same score again publishes nothing.
    assert!(apply_outcome(
        &mut t,
        "virustotal",
        vt_answer(8),
        &rules(),
        SystemTime::now()
    )
    .is_none());
    let more = apply_outcome(
        &mut t,
        "virustotal",
        vt_answer(12),
        &rules(),
        SystemTime::now(),
    )
    .expect("a higher score is news")
    .expect("serialises");
    let record: ThreatRecord = serde_json::from_value(
        crate::model::schema_check::valid_record_payload(&more.payload),
    )
    .unwrap();
    assert_eq!((record.score, record.revision), (60, 2));
}

#[test]
fn failures_and_weak_answers_publish_nothing() {
    let mut t = tracked("198.51.100.8");
    for status in [
        ProviderStatus::Unauthorized,
        ProviderStatus::RateLimited,
        ProviderStatus::Timeout,
        ProviderStatus::Skipped,
        ProviderStatus::NotFound,
    ] {
        let outcome = Outcome {
            intel: ProviderIntel::status(status, "no"),
            network: None,
            retry_at: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(100)),
        };
        assert!(apply_outcome(&mut t, "abuseipdb", outcome, &rules(), SystemTime::now()).is_none());
        assert_eq!(
            t.record.intel["abuseipdb"].status, status,
            "the status is kept"
        );
        assert_eq!(t.record.score, 0);
    }
    assert_eq!(
        t.retry_at,
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(100))
    );
    // One engine: 5 points, below suspicious: kept, not published.
    assert!(apply_outcome(
        &mut t,
        "virustotal",
        vt_answer(1),
        &rules(),
        SystemTime::now()
    )
    .is_none());
    assert_eq!(t.record.score, 5);
    assert_eq!(t.sighting.published(), None);
}

#[test]
fn network_facts_fill_gaps_and_keep_what_was_known() {
    let mut network = Network {
        country: Some("DE".into()),
        ..Network::default()
    };
    merge_network(
        &mut network,
        &Network {
            asn: Some(1),
            country: Some("NL".into()),
            ..Network::default()
        },
    );
    assert_eq!(
        (network.asn, network.country.as_deref()),
        (Some(1), Some("DE"))
    );
}

fn job(ip: &str, priority: Priority) -> RemoteJob {
    RemoteJob {
        ip: ip.parse().unwrap(),
        priority,
        tracked: Arc::new(tokio::sync::Mutex::new(tracked(ip))),
    }
}

fn priority(locally_suspicious: bool, sightings: u64, allowed: bool) -> Priority {
    Priority {
        locally_suspicious,
        sightings_order: Priority::sightings_order(sightings),
        allowed,
    }
}

#[test]
fn the_queue_orders_by_local_suspicion_then_sightings_then_allowed_then_age() {
    let mut waiting = Waiting::default();
    let entries = [
        ("192.0.2.1", priority(false, 1, false)),
        ("192.0.2.2", priority(false, 1, true)),
        ("192.0.2.3", priority(false, 9, false)),
        ("192.0.2.4", priority(true, 1, false)),
        ("192.0.2.5", priority(false, 1, true)),
    ];
    for (seq, (ip, p)) in entries.iter().enumerate() {
        waiting.insert((*p, Reverse(seq as u64)), job(ip, *p));
    }
    // .1 is seen 4 times while it waits: it overtakes every unsuspicious address.
    waiting.raise("192.0.2.1".parse().unwrap(), Priority::sightings_order(16));
    waiting.raise("192.0.2.4".parse().unwrap(), Priority::sightings_order(1));
    let order: Vec<String> = std::iter::from_fn(|| waiting.pop_highest())
        .map(|(_, j)| j.ip.to_string())
        .collect();
    assert_eq!(
        order,
        [
            "192.0.2.4",
            "192.0.2.1",
            "192.0.2.3",
            "192.0.2.2",
            "192.0.2.5"
        ]
    );
    assert!(waiting.keys.is_empty());
}

#[test]
fn a_full_queue_gives_up_the_lowest_and_newest() {
    let mut waiting = Waiting::default();
    waiting.insert(
        (priority(false, 1, false), Reverse(0)),
        job("192.0.2.1", priority(false, 1, false)),
    );
    waiting.insert(
        (priority(false, 1, false), Reverse(1)),
        job("192.0.2.2", priority(false, 1, false)),
    );
    waiting.insert(
        (priority(true, 1, false), Reverse(2)),
        job("192.0.2.3", priority(true, 1, false)),
    );
    assert_eq!(waiting.pop_lowest().unwrap().ip.to_string(), "192.0.2.2");
    assert_eq!(waiting.len(), 2);
    assert_eq!(waiting.keys.len(), 2);
}

#[test]
fn sightings_orders_are_powers_of_two() {
    assert_eq!(
        [1, 2, 3, 4, 7, 8, 1000].map(Priority::sightings_order),
        [1, 2, 2, 3, 3, 4, 10]
    );
}

#[test]
fn a_retry_never_publishes_less_than_was_published() {
    let mut t = tracked("198.51.100.9");
    // An earlier job published 40 (VirusTotal, 8 engines).
    t.sighting.next_revision(40, Verdict::Suspicious);
    // The retry job starts from local evidence again; an answer worth less, or the same,
    // is not news.
    for engines in [1, 8] {
        let outcome = vt_answer(engines);
        assert!(
            apply_outcome(&mut t, "virustotal", outcome, &rules(), SystemTime::now()).is_none()
        );
    }
    // Only more than 40 is published, as revision 2.
    let output = apply_outcome(
        &mut t,
        "virustotal",
        vt_answer(12),
        &rules(),
        SystemTime::now(),
    )
    .expect("published")
    .expect("serialises");
    let record: ThreatRecord = serde_json::from_value(
        crate::model::schema_check::valid_record_payload(&output.payload),
    )
    .unwrap();
    assert_eq!((record.score, record.revision), (60, 2));
}

#[test]
fn the_as_number_and_its_organisation_come_from_one_source() {
    let mut network = Network {
        as_org: Some("Acme Ltd (RDAP registrant)".into()),
        ..Network::default()
    };
    merge_network(
        &mut network,
        &Network {
            asn: Some(16509),
            as_org: Some("AMAZON-02".into()),
            ..Network::default()
        },
    );
    assert_eq!(
        (network.asn, network.as_org.as_deref()),
        (Some(16509), Some("AMAZON-02"))
    );
    merge_network(
        &mut network,
        &Network {
            asn: Some(64500),
            as_org: Some("Other".into()),
            ..Network::default()
        },
    );
    assert_eq!(network.asn, Some(16509), "the first number stays");
}

/// Answers 401 to everything and covers IPv4 only.
#[derive(Debug)]
struct Refusing;

impl crate::intel::Provider for Refusing {
    fn name(&self) -> &'static str {
        "virustotal"
    }
    fn lookup(
        &self,
        _ip: IpAddr,
    ) -> BoxFuture<'_, Result<crate::intel::Lookup, crate::intel::ProviderError>> {
        Box::pin(async {
            Err(crate::intel::ProviderError::Unauthorized(
                "wrong key".into(),
            ))
        })
    }
    fn not_covered(&self, ip: IpAddr) -> Option<&'static str> {
        ip.is_ipv6().then_some("IPv4 only")
    }
}

#[tokio::test]
async fn a_new_record_shows_what_is_already_settled_instead_of_pending() {
    let metrics = Arc::new(Metrics::new(&prometheus::Registry::new()).unwrap());
    let slot = Arc::new(ProviderSlot::new(
        Arc::new(Refusing),
        crate::remote::slot::SlotLimits {
            per_minute: 0,
            per_day: 0,
            no_lookups: false,
            ttl: Duration::from_secs(60),
            not_found_ttl: Duration::from_secs(60),
            max_answers: 10,
        },
        metrics.clone(),
    ));
    let stage = RemoteStage::new(
        vec![slot.clone()],
        10,
        rules(),
        Arc::new(NoRevisions),
        Patience {
            max_wait: Duration::ZERO,
        },
        metrics,
    );
    let v4: IpAddr = "198.51.100.1".parse().unwrap();
    let v6: IpAddr = "2001:db8::1".parse().unwrap();
    let now = SystemTime::now();
    assert!(
        stage.known_statuses(v4, now).is_empty(),
        "not asked yet: pending"
    );
    assert_eq!(
        stage.known_statuses(v6, now)[0].1.status,
        ProviderStatus::Skipped
    );
    let outcome = slot
        .lookup(
            v4,
            Patience {
                max_wait: Duration::ZERO,
            },
        )
        .await;
    assert_eq!(outcome.intel.status, ProviderStatus::Unauthorized);
    let known = stage.known_statuses("198.51.100.2".parse().unwrap(), now);
    assert_eq!(known.len(), 1);
    assert_eq!(known[0].1.status, ProviderStatus::Unauthorized);
    assert!(known[0]
        .1
        .detail
        .as_deref()
        .unwrap()
        .starts_with("not asked"));
}

// d-siem: revisions go through the configured publish.format like first records.

fn rules_publishing(format: crate::publish::Format) -> RevisionRules {
    let mut rules = rules();
    let mut publication = (*rules.publication).clone();
    publication.format = format;
    rules.publication = std::sync::Arc::new(publication);
    rules
}

#[test]
fn revisions_are_published_in_the_configured_format_as_versions_of_one_indicator() {
    let at = |minute: u64| {
        humantime::parse_rfc3339("2026-11-23T10:00:00Z").unwrap() + Duration::from_secs(60 * minute)
    };
    let stix = rules_publishing(crate::publish::Format::Stix);
    let mut t = tracked("198.51.100.9");
    let first = apply_outcome(&mut t, "virustotal", vt_answer(8), &stix, at(1))
        .expect("published")
        .expect("serialises");
    let second = apply_outcome(&mut t, "virustotal", vt_answer(12), &stix, at(2))
        .expect("a higher score is news")
        .expect("serialises");
    // The publisher maps each revision to publish.format as it goes out.
    let as_stix = |payload: &[u8]| -> serde_json::Value {
        serde_json::from_slice(&crate::publish::Format::Stix.rewrite(payload).unwrap()).unwrap()
    };
    let (first, second) = (as_stix(&first.payload), as_stix(&second.payload));
    assert_eq!(first["type"], "indicator", "{first}");
    assert_eq!(first["id"], second["id"], "one STIX object, two versions");
    assert_eq!(
        (first["modified"].as_str(), second["modified"].as_str()),
        (Some("2026-11-23T10:01:00Z"), Some("2026-11-23T10:02:00Z"))
    );
    assert_ne!(
        first["external_references"][0]["external_id"],
        second["external_references"][0]["external_id"],
        "each revision has its own record id"
    );
    let ocsf = rules_publishing(crate::publish::Format::Ocsf);
    let mut t = tracked("198.51.100.10");
    let activity = |output: crate::model::Output| {
        let doc: serde_json::Value = serde_json::from_slice(
            &crate::publish::Format::Ocsf
                .rewrite(&output.payload)
                .unwrap(),
        )
        .unwrap();
        (doc["class_uid"].as_u64(), doc["activity_id"].as_u64())
    };
    let created = apply_outcome(&mut t, "virustotal", vt_answer(8), &ocsf, at(1))
        .expect("published")
        .expect("serialises");
    assert_eq!(
        activity(created),
        (Some(2004), Some(1)),
        "revision 1 creates"
    );
    let updated = apply_outcome(&mut t, "virustotal", vt_answer(12), &ocsf, at(2))
        .expect("a higher score is news")
        .expect("serialises");
    assert_eq!(
        activity(updated),
        (Some(2004), Some(2)),
        "revision 2 updates"
    );
}

// ---- ef-withdraw: an answer is scored with the address's current listing.

#[test]
fn an_answer_after_a_reload_scores_the_current_listing_not_the_first_sightings() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.txt");
    // The reloaded feed no longer lists 198.51.100.0/24.
    std::fs::write(&path, "203.0.113.0/24\n").unwrap();
    let settings = Settings::from_toml_overrides(&format!(
        "[[feeds]]\nname = \"f\"\npath = \"{}\"\nweight = 70\n",
        path.display()
    ))
    .unwrap();
    let specs = settings
        .feed_paths()
        .into_iter()
        .map(|(name, path)| crate::intel::feeds::FeedSpec { name, path })
        .collect();
    let feeds = Arc::new(crate::intel::feeds::LocalFeeds::load(specs).unwrap());
    let stale = || {
        let mut t = tracked("198.51.100.7");
        t.feed_matches = vec![crate::intel::feeds::FeedMatch {
            feed: Arc::from("f"),
            cidr: "198.51.100.0/24".parse().unwrap(),
            exact: false,
        }];
        t
    };
    let mut rules = RevisionRules {
        scoring: ScoringModel::new(&settings.scoring, &settings.feeds),
        min_verdict: Verdict::Suspicious,
        publication: std::sync::Arc::new(crate::publish::Publication::from_settings(&settings)),
        feeds: None,
    };
    let score_of = |t: &mut Tracked, rules: &RevisionRules| {
        let output = apply_outcome(t, "virustotal", vt_answer(8), rules, SystemTime::now())
            .expect("published")
            .expect("serialises");
        serde_json::from_slice::<ThreatRecord>(&output.payload).unwrap()
    };
    // Without the current feeds: the first sighting's listing still counts (70 + 40).
    assert_eq!(score_of(&mut stale(), &rules).score, 100);
    rules.feeds = Some(feeds);
    let record = score_of(&mut stale(), &rules);
    assert_eq!(record.score, 40, "{:?}", record.reasons);
    assert!(record.reasons.iter().all(|r| r.source != "feeds"));
    assert_eq!(
        record.intel["feeds"].facts["matches"],
        serde_json::json!([])
    );
}

// --- g-allow: a score benign facts lowered is published ---

use crate::remote::revision::lowered_by_benign_facts;

/// Rules where a feed `f` weighs 70 and GreyNoise RIOT -30.
fn benign_rules() -> RevisionRules {
    let settings = Settings::from_toml_overrides(
        "[scoring]\ngreynoise_riot = -30\n\
         [[feeds]]\nname = \"f\"\npath = \"f.txt\"\nweight = 70\n",
    )
    .unwrap();
    RevisionRules {
        scoring: ScoringModel::new(&settings.scoring, &settings.feeds),
        min_verdict: Verdict::Suspicious,
        publication: std::sync::Arc::new(crate::publish::Publication::from_settings(&settings)),
        feeds: None,
    }
}

/// `tracked(ip)` listed by feed `f`, its first record (70, malicious) published.
fn listed_and_published(ip: &str) -> Tracked {
    let mut t = tracked(ip);
    t.feed_matches = vec![crate::intel::feeds::FeedMatch {
        feed: "f".into(),
        cidr: format!("{ip}/32").parse().unwrap(),
        exact: true,
    }];
    t.record.revision = t.sighting.next_revision(70, Verdict::Malicious);
    t
}

fn riot_answer() -> Outcome {
    let mut facts = serde_json::Map::new();
    facts.insert("riot".into(), true.into());
    facts.insert("name".into(), "Example CDN".into());
    Outcome {
        intel: ProviderIntel {
            status: ProviderStatus::Ok,
            detail: None,
            facts,
        },
        network: None,
        retry_at: None,
    }
}

#[test]
fn a_published_score_that_benign_facts_lowered_is_published_again_once_all_answered() {
    let mut t = listed_and_published("198.51.100.8");
    let now = SystemTime::now();
    assert!(
        apply_outcome(&mut t, "greynoise", riot_answer(), &benign_rules(), now).is_none(),
        "a lower score is not a rise"
    );
    let output = lowered_by_benign_facts(&mut t, &benign_rules(), now)
        .expect("published again")
        .expect("serialises");
    let record: ThreatRecord = serde_json::from_value(
        crate::model::schema_check::valid_record_payload(&output.payload),
    )
    .unwrap();
    assert_eq!(
        (record.score, record.verdict, record.revision),
        (40, Verdict::Suspicious, 2)
    );
    assert!(record
        .reasons
        .iter()
        .any(|r| r.source == "greynoise" && r.weight == -30));
    // Said once: the lowered score is now the published one.
    assert!(lowered_by_benign_facts(&mut t, &benign_rules(), now).is_none());
}

#[test]
fn a_lower_score_from_missing_evidence_is_not_published() {
    let now = SystemTime::now();
    // Published at 90 (say, with an answer this retry has not had), now 70 - 30: the positive
    // evidence alone (70) is below 90, so the drop is a gap in the data, not a benign fact.
    let mut t = listed_and_published("198.51.100.9");
    t.record.revision = t.sighting.next_revision(90, Verdict::Malicious);
    apply_outcome(&mut t, "greynoise", riot_answer(), &benign_rules(), now);
    assert_eq!(t.record.score, 40);
    assert!(lowered_by_benign_facts(&mut t, &benign_rules(), now).is_none());
    // No benign fact at all: a lower score is never news.
    let mut t = listed_and_published("198.51.100.10");
    t.record.revision = t.sighting.next_revision(90, Verdict::Malicious);
    apply_outcome(&mut t, "virustotal", vt_answer(0), &benign_rules(), now);
    assert_eq!(t.record.score, 70);
    assert!(lowered_by_benign_facts(&mut t, &benign_rules(), now).is_none());
    // Nothing published yet: nothing to lower.
    let mut t = tracked("198.51.100.11");
    apply_outcome(&mut t, "greynoise", riot_answer(), &benign_rules(), now);
    assert!(lowered_by_benign_facts(&mut t, &benign_rules(), now).is_none());
}
