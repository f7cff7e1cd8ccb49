//! Round trips of the state record.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::*;
use crate::stages::dedup::DedupCache;

pub(crate) fn at(text: &str) -> SystemTime {
    humantime::parse_rfc3339(text).unwrap()
}

/// A record of `ip` with `intel` entries, as the record stage builds them.
pub(crate) fn threat_record(ip: &str, intel: serde_json::Value) -> ThreatRecord {
    serde_json::from_value(serde_json::json!({
        "schema": "threatsift.threat/1", "ip": ip, "ip_version": 4,
        "verdict": "suspicious", "severity": "medium", "score": 48,
        "reasons": [{"source": "virustotal", "detail": "4 engines", "weight": 48}],
        "indicator": "Suspicious IP", "first_seen": "2026-11-23T10:00:00Z",
        "last_seen": "2026-11-23T10:05:00Z", "sightings": 3, "roles": ["source"],
        "observed": {"format": "kv", "topic": "fw", "partition": 2, "offset": 41},
        "network": {"asn": 64500, "as_org": "Example", "country": null, "rir": null, "cidr": null},
        "intel": intel,
        "revision": 2, "generated_at": "2026-11-23T10:06:00Z"
    }))
    .unwrap()
}

/// A state of `ip` written at `written_ms`, first seen at `first_seen`, last at `last_seen`,
/// VirusTotal answered `ok` (until `until`), AbuseIPDB `pending`.
pub(crate) fn state(
    ip: &str,
    written_ms: u64,
    first_seen: &str,
    last_seen: &str,
    until: &str,
) -> StateRecord {
    let dedup = DedupCache::new(Duration::from_secs(86_400), 10);
    let sighting = dedup.observe(ip.parse().unwrap(), at(first_seen)).sighting;
    dedup.observe(ip.parse().unwrap(), at(last_seen));
    dedup.observe(ip.parse().unwrap(), at(last_seen));
    sighting.next_revision(30, Verdict::Suspicious);
    sighting.next_revision(48, Verdict::Suspicious);
    let record = threat_record(
        ip,
        serde_json::json!({
            "virustotal": {"status": "ok", "malicious": 4, "reputation": -11},
            "abuseipdb": {"status": "pending", "detail": "asked after the first record"},
            "otx": {"status": "not_found", "detail": "no information about this address"},
            "greynoise": {"status": "skipped", "detail": "remote queue full"}
        }),
    );
    let mut answers = BTreeMap::new();
    answers.insert(
        "virustotal".to_owned(),
        StoredAnswer {
            until: until.to_owned(),
            network: Some(Network {
                asn: Some(64500),
                as_org: Some("Example".into()),
                ..Network::default()
            }),
        },
    );
    answers.insert(
        "otx".to_owned(),
        StoredAnswer {
            until: until.to_owned(),
            network: None,
        },
    );
    let matches = [FeedMatch {
        feed: Arc::from("drop"),
        cidr: "198.51.100.0/24".parse().unwrap(),
        exact: false,
    }];
    let origin = Origin {
        topic: "fw".into(),
        partition: 2,
        offset: 41,
    };
    let parts = StateParts {
        record: &record,
        sighting: &sighting,
        feed_matches: &matches,
        threat: Some("Trojan.Generic"),
        reporter: Some("EdgeFW"),
        priority: Priority {
            locally_suspicious: true,
            sightings_order: 2,
            allowed: false,
        },
        answers: &answers,
        retry_at: Some(at("2026-11-23T11:00:00Z")),
        origin: &origin,
    };
    let written = UNIX_EPOCH + Duration::from_millis(written_ms);
    StateRecord::build(ip.parse().unwrap(), parts, written)
}

#[test]
fn a_state_round_trips_through_its_message() {
    let state = state(
        "198.51.100.20",
        1_700_000_000_123,
        "2026-11-23T10:00:00Z",
        "2026-11-23T10:05:00Z",
        "2026-11-24T10:00:00Z",
    );
    let output = state.encode().unwrap();
    assert_eq!(output.kind, OutputKind::State);
    assert_eq!(output.key.as_deref(), Some(&b"198.51.100.20"[..]));
    let back = decode(&output.payload).unwrap();
    assert_eq!(back, state);
    let json: serde_json::Value = serde_json::from_slice(&output.payload).unwrap();
    assert_eq!(json["schema"], STATE_SCHEMA);
    assert_eq!(json["published"]["revision"], 2);
    assert_eq!(json["record"]["intel"]["abuseipdb"]["status"], "pending");
}

#[test]
fn a_state_gives_back_the_window_answers_evidence_and_pending_providers() {
    let state = state(
        "198.51.100.21",
        5,
        "2026-11-23T10:00:00Z",
        "2026-11-23T10:05:00Z",
        "2026-11-24T10:00:00Z",
    );
    let sighting = state.sighting().unwrap();
    assert_eq!(sighting.first_seen, at("2026-11-23T10:00:00Z"));
    assert_eq!(sighting.last_seen, at("2026-11-23T10:05:00Z"));
    assert_eq!(sighting.count, 3);
    assert_eq!(sighting.published, Some((2, 48, Verdict::Suspicious)));
    assert_eq!(sighting.retry_at, Some(at("2026-11-23T11:00:00Z")));
    let mut facts = serde_json::Map::new();
    facts.insert("malicious".into(), serde_json::json!(4));
    facts.insert("reputation".into(), serde_json::json!(-11));
    let answers = state.answers();
    assert_eq!(
        answers,
        vec![
            ("otx", Lookup::NotFound, at("2026-11-24T10:00:00Z")),
            (
                "virustotal",
                Lookup::Found {
                    facts,
                    network: Network {
                        asn: Some(64500),
                        as_org: Some("Example".into()),
                        ..Network::default()
                    }
                },
                at("2026-11-24T10:00:00Z")
            ),
        ],
        "answers only: the skipped and pending entries are not"
    );
    assert_eq!(state.pending().collect::<Vec<_>>(), ["abuseipdb"]);
    let matches = state.feed_matches();
    assert_eq!(matches.len(), 1);
    assert_eq!(matches[0].cidr.to_string(), "198.51.100.0/24");
    assert_eq!(
        state.priority(),
        Priority {
            locally_suspicious: true,
            sightings_order: 2,
            allowed: false
        }
    );
    assert_eq!(
        (
            state.evidence.threat.as_deref(),
            state.evidence.reporter.as_deref()
        ),
        (Some("Trojan.Generic"), Some("EdgeFW"))
    );
    assert_eq!(state.origin().offset, 41);
}

#[test]
fn a_never_published_address_has_revision_0_and_restores_none() {
    let dedup = DedupCache::new(Duration::from_secs(60), 10);
    let sighting = dedup
        .observe("198.51.100.22".parse().unwrap(), at("2026-11-23T10:00:00Z"))
        .sighting;
    let record = threat_record("198.51.100.22", serde_json::json!({}));
    let origin = Origin {
        topic: "fw".into(),
        partition: 0,
        offset: 0,
    };
    let state = StateRecord::build(
        "198.51.100.22".parse().unwrap(),
        StateParts {
            record: &record,
            sighting: &sighting,
            feed_matches: &[],
            threat: None,
            reporter: None,
            priority: Priority {
                locally_suspicious: false,
                sightings_order: 1,
                allowed: true,
            },
            answers: &BTreeMap::new(),
            retry_at: None,
            origin: &origin,
        },
        SystemTime::now(),
    );
    assert_eq!(state.published.revision, 0);
    assert_eq!(state.sighting().unwrap().published, None);
    assert_eq!(state.retry_at, None);
}

#[test]
fn other_payloads_are_not_read_as_states() {
    let state = state(
        "198.51.100.23",
        5,
        "2026-11-23T10:00:00Z",
        "2026-11-23T10:05:00Z",
        "2026-11-24T10:00:00Z",
    );
    let mut json = serde_json::to_value(&state).unwrap();
    json["schema"] = serde_json::json!("threatsift.threat/1");
    assert!(matches!(
        decode(&serde_json::to_vec(&json).unwrap()),
        Err(StateError::Schema(_))
    ));
    assert!(matches!(
        decode(b"{\"ip\": 1}"),
        Err(StateError::Invalid(_))
    ));
    let huge = vec![b' '; MAX_STATE_BYTES + 1];
    assert!(matches!(decode(&huge), Err(StateError::TooLarge(_))));
}
