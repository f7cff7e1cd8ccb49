//! Unit tests of `score`.
use super::*;
use crate::settings::Settings;
use serde_json::{json, Value};

fn defaults() -> Settings {
    Settings::from_toml_overrides("").expect("defaults load and validate")
}

fn model() -> ScoringModel {
    // No feed is configured by default; these tests score one called local-blocklist.
    let settings = Settings::from_toml_overrides(
        "[[feeds]]\nname = \"local-blocklist\"\npath = \"blocklist.txt\"\n",
    )
    .expect("defaults with one feed");
    ScoringModel::new(&settings.scoring, &settings.feeds)
}

fn intel(entries: &[(&str, ProviderStatus, Value)]) -> BTreeMap<String, ProviderIntel> {
    entries
        .iter()
        .map(|(name, status, facts)| {
            let facts = facts.as_object().cloned().unwrap_or_default();
            (
                (*name).to_owned(),
                ProviderIntel {
                    status: *status,
                    detail: None,
                    facts,
                },
            )
        })
        .collect()
}

fn input<'a>(intel: &'a BTreeMap<String, ProviderIntel>) -> EvidenceInput<'a> {
    EvidenceInput {
        feed_matches: &[],
        intel,
        threat: None,
        reporter: None,
        sightings: 1,
    }
}

fn reason(weight: i32) -> Reason {
    Reason {
        source: "feeds".into(),
        detail: "listed".into(),
        weight,
    }
}

fn feed_match(feed: &str, cidr: &str) -> FeedMatch {
    let cidr: ipnet::IpNet = cidr.parse().unwrap();
    FeedMatch {
        feed: feed.into(),
        exact: cidr.prefix_len() == cidr.max_prefix_len(),
        cidr,
    }
}

fn vt(malicious: u64, suspicious: u64, reputation: i64) -> Value {
    json!({
        "last_analysis_stats": {
            "malicious": malicious, "suspicious": suspicious,
            "undetected": 26, "harmless": 58, "timeout": 0
        },
        "reputation": reputation
    })
}

#[test]
fn defaults_from_config_load_and_validate() {
    let s = defaults().scoring;
    assert_eq!((s.suspicious_at, s.malicious_at), (30, 70));
    assert_eq!(
        (
            s.severity_low_at,
            s.severity_medium_at,
            s.severity_high_at,
            s.severity_critical_at
        ),
        (20, 40, 70, 90)
    );
    assert_eq!(
        (
            s.vendor_threat_event,
            s.weights["virustotal_max"],
            s.weights["abuseipdb_max"]
        ),
        (40, 60, 50)
    );
}

/// (source, detail, weight).
type ExpectedReason = (&'static str, &'static str, i32);

/// Each source alone, with the default weights: (intel entry, reasons as (source, detail,
/// weight)).
#[test]
fn every_source_alone() {
    let model = model();
    let cases: Vec<(&str, Value, Vec<ExpectedReason>)> = vec![
        (
            "virustotal",
            vt(7, 4, 0),
            vec![(
                "virustotal",
                "7 of 95 engines flag it malicious, 4 suspicious",
                43,
            )],
        ),
        (
            "virustotal",
            vt(1, 0, 0),
            vec![("virustotal", "1 of 85 engines flag it malicious", 5)],
        ),
        (
            "virustotal",
            vt(0, 2, -11),
            vec![
                ("virustotal", "2 of 86 engines flag it suspicious", 4),
                ("virustotal", "community reputation -11", 10),
            ],
        ),
        ("virustotal", vt(0, 0, 5), vec![]),
        (
            "abuseipdb",
            json!({"abuse_confidence_score": 80, "total_reports": 60}),
            vec![("abuseipdb", "abuse confidence 80%, 60 reports", 46)],
        ),
        (
            // The report count counts too, within the cap.
            "abuseipdb",
            json!({"abuse_confidence_score": 0, "total_reports": 35}),
            vec![("abuseipdb", "abuse confidence 0%, 35 reports", 3)],
        ),
        (
            "abuseipdb",
            json!({"abuse_confidence_score": 10, "total_reports": 1}),
            vec![("abuseipdb", "abuse confidence 10%, 1 report", 5)],
        ),
        (
            "abuseipdb",
            json!({"abuse_confidence_score": 0, "total_reports": 0}),
            vec![],
        ),
        (
            "greynoise",
            json!({"classification": "malicious", "noise": true, "riot": false}),
            vec![("greynoise", "GreyNoise classifies it malicious", 30)],
        ),
        (
            "greynoise",
            json!({"classification": "suspicious"}),
            vec![("greynoise", "GreyNoise classifies it suspicious", 10)],
        ),
        (
            "greynoise",
            json!({"classification": "benign", "riot": true}),
            vec![],
        ),
        (
            "otx",
            json!({"pulse_count": 3}),
            vec![("otx", "listed in 3 OTX pulses", 15)],
        ),
        (
            "otx",
            json!({"pulse_info": {"count": 1}}),
            vec![("otx", "listed in 1 OTX pulse", 5)],
        ),
        ("otx", json!({"pulse_count": 0}), vec![]),
        // Providers the model does not score add nothing, whatever they say.
        ("rdap", json!({"name": "EXAMPLE-NET"}), vec![]),
    ];
    for (provider, facts, expected) in cases {
        let map = intel(&[(provider, ProviderStatus::Ok, facts.clone())]);
        let got: Vec<(String, String, i32)> = model
            .evidence(&input(&map))
            .into_iter()
            .map(|r| (r.source, r.detail, r.weight))
            .collect();
        let expected: Vec<(String, String, i32)> = expected
            .into_iter()
            .map(|(s, d, w)| (s.to_owned(), d.to_owned(), w))
            .collect();
        assert_eq!(got, expected, "{provider}: {facts}");
    }
}

#[test]
fn feeds_vendor_threat_and_sightings_alone() {
    let model = model();
    let empty = BTreeMap::new();
    let matches = [
        feed_match("local-blocklist", "203.0.113.7/32"),
        feed_match("local-blocklist", "198.51.100.0/24"),
        feed_match("unconfigured", "192.0.2.0/24"),
    ];
    let got = model.evidence(&EvidenceInput {
        feed_matches: &matches,
        ..input(&empty)
    });
    assert_eq!(
        got,
        vec![
            Reason {
                source: "feeds".into(),
                detail: "listed by feed local-blocklist".into(),
                weight: 70
            },
            Reason {
                source: "feeds".into(),
                detail: "inside 198.51.100.0/24 listed by feed local-blocklist".into(),
                weight: 70
            },
        ]
    );
    let got = model.evidence(&EvidenceInput {
        threat: Some("ET SCAN Nmap Scripting Engine User-Agent Detected"),
        reporter: Some("Suricata"),
        ..input(&empty)
    });
    assert_eq!(
        got,
        vec![Reason {
            source: VENDOR_SOURCE.into(),
            detail:
                "Suricata reported threat \"ET SCAN Nmap Scripting Engine User-Agent Detected\""
                    .into(),
            weight: 40
        }]
    );
    let sightings = |n: u64| {
        model
            .evidence(&EvidenceInput {
                sightings: n,
                ..input(&empty)
            })
            .iter()
            .map(|r| r.weight)
            .collect::<Vec<_>>()
    };
    assert_eq!(sightings(1), Vec::<i32>::new());
    assert_eq!(sightings(4), vec![3]);
    assert_eq!(sightings(1000), vec![10]);
    assert!(model
        .evidence(&EvidenceInput {
            threat: Some("  "),
            ..input(&empty)
        })
        .is_empty());
}

#[test]
fn caps_per_source() {
    let model = model();
    let cases: [(&str, Value, i32); 4] = [
        ("virustotal", vt(40, 10, 0), 60),
        (
            "abuseipdb",
            json!({"abuse_confidence_score": 100, "total_reports": 9000}),
            50,
        ),
        ("otx", json!({"pulse_count": 50}), 20),
        ("virustotal", vt(u64::MAX, u64::MAX, 0), 60),
    ];
    for (provider, facts, weight) in cases {
        let map = intel(&[(provider, ProviderStatus::Ok, facts)]);
        let weights: Vec<i32> = model
            .evidence(&input(&map))
            .iter()
            .map(|r| r.weight)
            .collect();
        assert_eq!(weights, vec![weight], "{provider}");
    }
}

/// A failure status with the very same facts is no evidence: no reason, no score.
#[test]
fn only_ok_answers_count() {
    let model = model();
    let facts = [
        ("virustotal", vt(30, 5, -50)),
        (
            "abuseipdb",
            json!({"abuse_confidence_score": 100, "total_reports": 500}),
        ),
        ("greynoise", json!({"classification": "malicious"})),
        ("otx", json!({"pulse_count": 10})),
    ];
    let all_ok: Vec<_> = facts
        .iter()
        .map(|(p, f)| (*p, ProviderStatus::Ok, f.clone()))
        .collect();
    assert_eq!(model.score(&input(&intel(&all_ok))).assessment.score, 100);
    for status in [
        ProviderStatus::Unauthorized,
        ProviderStatus::Forbidden,
        ProviderStatus::Timeout,
        ProviderStatus::QuotaExhausted,
        ProviderStatus::RateLimited,
        ProviderStatus::Unavailable,
        ProviderStatus::InvalidResponse,
        ProviderStatus::Pending,
        ProviderStatus::Skipped,
        ProviderStatus::Disabled,
        ProviderStatus::NotFound,
    ] {
        let entries: Vec<_> = facts.iter().map(|(p, f)| (*p, status, f.clone())).collect();
        let map = intel(&entries);
        let scored = model.score(&input(&map));
        assert!(scored.reasons.is_empty(), "{status:?}");
        assert_eq!(
            (scored.assessment.score, scored.assessment.verdict),
            (0, Verdict::Unknown),
            "{status:?}"
        );
    }
}

#[test]
fn thresholds_and_severity_bands_at_their_boundaries() {
    let model = model();
    let cases: [(&[i32], u32, Verdict, Severity); 13] = [
        (&[], 0, Verdict::Unknown, Severity::Info),
        (&[19], 19, Verdict::Unknown, Severity::Info),
        (&[20], 20, Verdict::Unknown, Severity::Low),
        (&[29], 29, Verdict::Unknown, Severity::Low),
        (&[30], 30, Verdict::Suspicious, Severity::Low),
        (&[39], 39, Verdict::Suspicious, Severity::Low),
        (&[20, 20], 40, Verdict::Suspicious, Severity::Medium),
        (&[69], 69, Verdict::Suspicious, Severity::Medium),
        (&[70], 70, Verdict::Malicious, Severity::High),
        (&[89], 89, Verdict::Malicious, Severity::High),
        (&[45, 45], 90, Verdict::Malicious, Severity::Critical),
        (&[70, 70], 100, Verdict::Malicious, Severity::Critical),
        (&[i32::MAX, 1], 100, Verdict::Malicious, Severity::Critical),
    ];
    for (weights, score, verdict, severity) in cases {
        let reasons: Vec<_> = weights.iter().map(|w| reason(*w)).collect();
        let a = model.assess(&reasons);
        assert_eq!(
            (a.score, a.verdict, a.severity),
            (score, verdict, severity),
            "{weights:?}"
        );
    }
}

#[test]
fn configured_thresholds_and_bands_are_used() {
    let settings = Settings::from_toml_overrides(
        "[scoring]\nmalicious_at = 50\nsuspicious_at = 10\nseverity_low_at = 5\n",
    )
    .unwrap();
    let model = ScoringModel::new(&settings.scoring, &settings.feeds);
    assert_eq!(model.verdict(9), Verdict::Unknown);
    assert_eq!(model.verdict(10), Verdict::Suspicious);
    assert_eq!(model.verdict(50), Verdict::Malicious);
    assert_eq!(model.severity(4), Severity::Info);
    assert_eq!(model.severity(5), Severity::Low);
}

#[test]
fn invalid_scoring_settings_name_the_key() {
    let cases = [
        ("[scoring]\nsuspicious_at = 70\n", "scoring.suspicious_at"),
        ("[scoring]\nsuspicious_at = 0\n", "scoring.suspicious_at"),
        ("[scoring]\nmalicious_at = 101\n", "scoring.malicious_at"),
        ("[scoring]\notx_max = 500\n", "scoring.otx_max"),
        (
            "[scoring]\nseverity_medium_at = 75\n",
            "scoring.severity_medium_at",
        ),
        (
            "[scoring]\nseverity_critical_at = 70\n",
            "scoring.severity_high_at",
        ),
        (
            "[scoring]\nseverity_medium_at = 25\nseverity_low_at = 10\n",
            "scoring.severity_medium_at",
        ),
        (
            "[scoring]\nseverity_high_at = 60\n",
            "scoring.severity_high_at",
        ),
    ];
    // The whole check: each section, then the provider weights against the registry.
    let load = |toml: &str| {
        Settings::from_toml_overrides(toml)
            .and_then(|s| crate::intel::registry::validate(&s).map(|()| s))
    };
    for (toml, key) in cases {
        let err = load(toml).unwrap_err().to_string();
        assert!(err.contains(&format!("`{key}`")), "{toml}: {err}");
    }
    let err = load("[scoring]\nvirustotal_weight = 3\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("virustotal_weight"), "{err}");
}

/// The score is the sum of the reasons' weights, or 100 when that sum is larger.
#[test]
fn reasons_sum_to_the_score() {
    let model = model();
    let matches = [feed_match("local-blocklist", "203.0.113.7/32")];
    let cases = [
        (vec![("virustotal", vt(7, 4, -1))], &[][..], None, 53),
        (
            vec![
                ("virustotal", vt(3, 0, 0)),
                (
                    "abuseipdb",
                    json!({"abuse_confidence_score": 30, "total_reports": 4}),
                ),
                ("otx", json!({"pulse_count": 2})),
            ],
            &[][..],
            None,
            40,
        ),
        (
            vec![("greynoise", json!({"classification": "malicious"}))],
            &matches[..],
            Some("ET SCAN"),
            100,
        ),
    ];
    for (entries, feed_matches, threat, score) in cases {
        let entries: Vec<_> = entries
            .into_iter()
            .map(|(p, f)| (p, ProviderStatus::Ok, f))
            .collect();
        let map = intel(&entries);
        let scored = model.score(&EvidenceInput {
            feed_matches,
            threat,
            ..input(&map)
        });
        let sum: i32 = scored.reasons.iter().map(|r| r.weight).sum();
        assert_eq!(i64::from(scored.assessment.score), i64::from(sum.min(100)));
        assert_eq!(scored.assessment.score, score, "{:?}", scored.reasons);
        assert!(scored.reasons.iter().all(|r| r.weight > 0));
    }
}

#[test]
fn indicator_is_the_vendor_threat_else_from_the_verdict() {
    let model = model();
    let empty = BTreeMap::new();
    let threat = model.score(&EvidenceInput {
        threat: Some(" ET EXPLOIT Apache log4j RCE Attempt "),
        reporter: Some("Suricata"),
        ..input(&empty)
    });
    assert_eq!(
        threat.assessment.indicator,
        "ET EXPLOIT Apache log4j RCE Attempt"
    );
    assert_eq!(threat.assessment.verdict, Verdict::Suspicious);
    let by_score = |weight: i32| model.assess(&[reason(weight)]).indicator;
    assert_eq!(by_score(70), MALICIOUS_INDICATOR);
    assert_eq!(by_score(30), SUSPICIOUS_INDICATOR);
    assert_eq!(by_score(0), OBSERVED_INDICATOR);
}

// --- g-allow: benign provider facts may subtract ---

/// A model whose benign facts weigh -30 (GreyNoise benign and RIOT, AbuseIPDB whitelisting,
/// OTX validation), with a feed worth 70.
fn benign_model() -> ScoringModel {
    let settings = Settings::from_toml_overrides(
        "[scoring]\ngreynoise_benign = -30\ngreynoise_riot = -30\n\
         abuseipdb_whitelisted = -30\notx_validated = -30\n\
         [[feeds]]\nname = \"local-blocklist\"\npath = \"blocklist.txt\"\nweight = 70\n",
    )
    .expect("negative weights of benign facts are valid");
    ScoringModel::new(&settings.scoring, &settings.feeds)
}

#[test]
fn each_benign_fact_shows_its_negative_weight() {
    let model = benign_model();
    let cases: Vec<(&str, Value, Vec<ExpectedReason>)> = vec![
        (
            "greynoise",
            json!({"classification": "benign", "riot": true, "name": "Example DNS"}),
            vec![
                ("greynoise", "GreyNoise classifies it benign", -30),
                (
                    "greynoise",
                    "GreyNoise RIOT: a common business service (Example DNS)",
                    -30,
                ),
            ],
        ),
        (
            "abuseipdb",
            json!({"abuse_confidence_score": 0, "total_reports": 0, "is_whitelisted": true}),
            vec![("abuseipdb", "AbuseIPDB lists it as whitelisted", -30)],
        ),
        (
            "abuseipdb",
            json!({"abuse_confidence_score": 0, "is_whitelisted": false}),
            vec![],
        ),
        (
            "otx",
            json!({"pulse_count": 0, "validation": [
                {"name": "Major public resolver", "source": "whitelist"},
                {"source": "alexa"}
            ]}),
            vec![("otx", "OTX validation: Major public resolver, alexa", -30)],
        ),
        ("otx", json!({"pulse_count": 0, "validation": []}), vec![]),
    ];
    for (provider, facts, expected) in cases {
        let map = intel(&[(provider, ProviderStatus::Ok, facts.clone())]);
        let got: Vec<(String, String, i32)> = model
            .evidence(&input(&map))
            .into_iter()
            .map(|r| (r.source, r.detail, r.weight))
            .collect();
        let expected: Vec<(String, String, i32)> = expected
            .into_iter()
            .map(|(s, d, w)| (s.to_owned(), d.to_owned(), w))
            .collect();
        assert_eq!(got, expected, "{provider}: {facts}");
    }
}

#[test]
fn benign_facts_lower_the_score_which_stays_within_0_and_100() {
    let model = benign_model();
    let listed = [feed_match("local-blocklist", "203.0.113.0/24")];
    let riot = intel(&[(
        "greynoise",
        ProviderStatus::Ok,
        json!({"classification": "unknown", "riot": true}),
    )]);
    let scored = model.score(&EvidenceInput {
        feed_matches: &listed,
        ..input(&riot)
    });
    // 70 - 30: malicious by the feed alone, suspicious once GreyNoise knows the service.
    assert_eq!(scored.assessment.score, 40);
    assert_eq!(scored.assessment.verdict, Verdict::Suspicious);
    assert!(scored.reasons.iter().any(|r| r.weight == -30));
    // Every benign fact at once outweighs the feed: the score stops at 0, never below.
    let all = intel(&[
        (
            "greynoise",
            ProviderStatus::Ok,
            json!({"classification": "benign", "riot": true}),
        ),
        (
            "abuseipdb",
            ProviderStatus::Ok,
            json!({"abuse_confidence_score": 0, "is_whitelisted": true}),
        ),
        (
            "otx",
            ProviderStatus::Ok,
            json!({"pulse_count": 0, "validation": [{"source": "whitelist"}]}),
        ),
    ]);
    let scored = model.score(&EvidenceInput {
        feed_matches: &listed,
        ..input(&all)
    });
    assert_eq!(scored.reasons.len(), 5, "{:?}", scored.reasons);
    assert_eq!(scored.assessment.score, 0);
    assert_eq!(scored.assessment.verdict, Verdict::Unknown);
    // Only an `ok` answer counts: a benign fact of a failed lookup is no evidence either way.
    let failed = intel(&[(
        "greynoise",
        ProviderStatus::RateLimited,
        json!({"riot": true}),
    )]);
    let scored = model.score(&EvidenceInput {
        feed_matches: &listed,
        ..input(&failed)
    });
    assert_eq!(scored.assessment.score, 70);
}

#[test]
fn benign_facts_weigh_nothing_by_default() {
    let model = model();
    let map = intel(&[(
        "greynoise",
        ProviderStatus::Ok,
        json!({"classification": "benign", "riot": true}),
    )]);
    assert!(model.evidence(&input(&map)).is_empty());
}

#[test]
fn only_benign_facts_may_have_negative_weights() {
    // The whole check: each section, then the provider weights against the registry.
    let load = |toml: &str| {
        Settings::from_toml_overrides(toml)
            .and_then(|s| crate::intel::registry::validate(&s).map(|()| s))
    };
    for ok in [
        "[scoring]\ngreynoise_riot = -100\n",
        "[scoring]\notx_validated = 100\n",
    ] {
        load(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for (bad, key) in [
        (
            "[scoring]\ngreynoise_malicious = -5\n",
            "scoring.greynoise_malicious",
        ),
        (
            "[scoring]\ngreynoise_riot = -101\n",
            "scoring.greynoise_riot",
        ),
        (
            "[scoring]\nabuseipdb_whitelisted = 101\n",
            "scoring.abuseipdb_whitelisted",
        ),
    ] {
        let err = load(bad).unwrap_err().to_string();
        assert!(err.contains(&format!("`{key}`")), "{bad}: {err}");
    }
}
