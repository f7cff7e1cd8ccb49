//! Score: evidence → reasons → score, verdict, severity and indicator. Pure.
//!
//! * In: an [`EvidenceInput`]: the feed matches of an address, its `intel` map (one entry per
//!   provider, with a status and facts), the vendor's threat name when the event was a threat or
//!   IPS detection, and its sightings in the dedup window.
//! * [`ScoringModel::evidence`] turns each piece of evidence into one [`Reason`] whose weight
//!   comes from `[scoring]` (and the `[[feeds]]` weights). Only providers whose status is `ok`
//!   contribute: a failure (unauthorized, timeout, quota, …) is a gap in our data, never
//!   evidence about the address. Evidence worth 0 points adds no reason.
//! * [`ScoringModel::assess`]: `score` = the capped sum of the weights (0–100), so every point
//!   is explained by a reason; the verdict and severity follow from the score alone, so they can
//!   never disagree. Below `suspicious_at` the verdict is `unknown`, never `clean`.
//! * Facts read (names as the record carries them): VirusTotal `last_analysis_stats`
//!   {`malicious`, `suspicious`, `undetected`, `harmless`, `timeout`} and `reputation`;
//!   AbuseIPDB `abuse_confidence_score`, `total_reports`; GreyNoise `classification`; OTX
//!   `pulse_count` (or `pulse_info.count`, the API's own shape); Talos: any `ok` entry (the
//!   configured list lists the address).

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use crate::intel::feeds::FeedMatch;
use crate::model::{ProviderIntel, ProviderStatus, Reason, Severity, Verdict};
use crate::settings::{FeedSettings, ScoringSettings};

/// `source` of the reason a vendor threat event gives.
pub const VENDOR_SOURCE: &str = "vendor";
/// `source` of the reason sightings give.
pub const SIGHTINGS_SOURCE: &str = "sightings";

/// Indicator of a malicious address without a vendor threat name.
pub const MALICIOUS_INDICATOR: &str = "Malicious IP Detected";
/// Indicator of a suspicious address without a vendor threat name.
pub const SUSPICIOUS_INDICATOR: &str = "Suspicious IP Detected";
/// Indicator of any other address.
pub const OBSERVED_INDICATOR: &str = "IP Observed";

/// The assessment of one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    /// 0–100.
    pub score: u32,
    /// From the score.
    pub verdict: Verdict,
    /// From the score.
    pub severity: Severity,
    /// Short title for the record: the vendor's threat name, else one from the verdict.
    pub indicator: String,
}

/// Everything known about one address that may be evidence.
#[derive(Debug, Clone, Copy)]
pub struct EvidenceInput<'a> {
    /// Local blocklist listings of the address.
    pub feed_matches: &'a [FeedMatch],
    /// The record's `intel` map: provider name → status and facts.
    pub intel: &'a BTreeMap<String, ProviderIntel>,
    /// The vendor's threat or signature name, when the event was a threat/IPS detection.
    pub threat: Option<&'a str>,
    /// The product that reported the event (`Suricata`, `PAN-OS`, …), for the reason's words.
    pub reporter: Option<&'a str>,
    /// Sightings of the address in the dedup window so far (1 at the first).
    pub sightings: u64,
}

/// The reasons and the assessment of one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scored {
    /// Every contribution to the score.
    pub reasons: Vec<Reason>,
    /// Score, verdict, severity and indicator.
    pub assessment: Assessment,
}

/// The configured scoring model: `[scoring]` plus the weight of each feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoringModel {
    weights: ScoringSettings,
    feed_weights: HashMap<String, u32>,
}

impl ScoringModel {
    /// The model of `[scoring]` and `[[feeds]]` (validated by `Settings::validate`).
    pub fn new(scoring: &ScoringSettings, feeds: &[FeedSettings]) -> Self {
        ScoringModel {
            weights: scoring.clone(),
            feed_weights: feeds
                .iter()
                .map(|f| (f.name.clone(), u32::from(f.weight)))
                .collect(),
        }
    }

    /// The verdict a score gets.
    pub fn verdict(&self, score: u32) -> Verdict {
        if score >= self.weights.malicious_at {
            Verdict::Malicious
        } else if score >= self.weights.suspicious_at {
            Verdict::Suspicious
        } else {
            // Absence of evidence is not evidence of being clean.
            Verdict::Unknown
        }
    }

    /// The severity a score gets.
    pub fn severity(&self, score: u32) -> Severity {
        let w = &self.weights;
        if score >= w.severity_critical_at {
            Severity::Critical
        } else if score >= w.severity_high_at {
            Severity::High
        } else if score >= w.severity_medium_at {
            Severity::Medium
        } else if score >= w.severity_low_at {
            Severity::Low
        } else {
            Severity::Info
        }
    }

    /// One reason per piece of evidence worth at least one point.
    pub fn evidence(&self, input: &EvidenceInput<'_>) -> Vec<Reason> {
        let mut reasons = Vec::new();
        let mut add = |source: &str, weight: u32, detail: String| {
            if weight > 0 {
                reasons.push(Reason {
                    source: source.to_owned(),
                    detail,
                    weight,
                });
            }
        };
        if let Some(threat) = vendor_threat(input.threat) {
            let reporter = input.reporter.unwrap_or("the device");
            add(
                VENDOR_SOURCE,
                self.weights.vendor_threat_event,
                format!("{reporter} reported threat \"{threat}\""),
            );
        }
        for hit in input.feed_matches {
            let weight = self.feed_weights.get(&*hit.feed).copied().unwrap_or(0);
            add("feeds", weight, describe_match(hit));
        }
        // Only an `ok` answer is evidence; `not_found` and every failure add nothing.
        let answered = |name: &str| {
            input
                .intel
                .get(name)
                .filter(|entry| entry.status == ProviderStatus::Ok)
                .map(|entry| &entry.facts)
        };
        if let Some(facts) = answered("virustotal") {
            self.virustotal(facts, &mut add);
        }
        if let Some(facts) = answered("abuseipdb") {
            self.abuseipdb(facts, &mut add);
        }
        if let Some(facts) = answered("greynoise") {
            self.greynoise(facts, &mut add);
        }
        if let Some(facts) = answered("otx") {
            self.otx(facts, &mut add);
        }
        if let Some(facts) = answered("talos") {
            let list = facts
                .get("listed_in")
                .and_then(Value::as_str)
                .unwrap_or("the Talos list");
            add(
                "talos",
                self.weights.talos_listed,
                format!("listed in {list} (Talos reputation Poor)"),
            );
        }
        let repeats = input.sightings.saturating_sub(1);
        add(
            SIGHTINGS_SOURCE,
            capped(
                repeats,
                self.weights.sightings_per,
                self.weights.sightings_max,
            ),
            format!("seen {} times in the dedup window", input.sightings),
        );
        reasons
    }

    /// Score, verdict and severity of the reasons; the indicator from the verdict.
    pub fn assess(&self, reasons: &[Reason]) -> Assessment {
        let score = reasons
            .iter()
            .fold(0u32, |sum, r| sum.saturating_add(r.weight))
            .min(100);
        let verdict = self.verdict(score);
        let indicator = match verdict {
            Verdict::Malicious => MALICIOUS_INDICATOR,
            Verdict::Suspicious => SUSPICIOUS_INDICATOR,
            Verdict::Clean | Verdict::Unknown => OBSERVED_INDICATOR,
        };
        Assessment {
            score,
            verdict,
            severity: self.severity(score),
            indicator: indicator.to_owned(),
        }
    }

    /// [`evidence`](Self::evidence) then [`assess`](Self::assess); the indicator is the
    /// vendor's threat name when the event had one.
    pub fn score(&self, input: &EvidenceInput<'_>) -> Scored {
        let reasons = self.evidence(input);
        let mut assessment = self.assess(&reasons);
        if let Some(threat) = vendor_threat(input.threat) {
            assessment.indicator = threat.to_owned();
        }
        Scored {
            reasons,
            assessment,
        }
    }

    fn virustotal(&self, facts: &Map<String, Value>, add: &mut impl FnMut(&str, u32, String)) {
        let w = &self.weights;
        if let Some(stats) = facts.get("last_analysis_stats") {
            let count = |key: &str| stats.get(key).and_then(Value::as_u64).unwrap_or(0);
            let (malicious, suspicious) = (count("malicious"), count("suspicious"));
            let engines: u64 = [
                "malicious",
                "suspicious",
                "undetected",
                "harmless",
                "timeout",
            ]
            .iter()
            .map(|k| count(k))
            .fold(0, u64::saturating_add);
            let points = capped(malicious, w.virustotal_per_malicious_engine, u32::MAX)
                .saturating_add(capped(
                    suspicious,
                    w.virustotal_per_suspicious_engine,
                    u32::MAX,
                ))
                .min(w.virustotal_max);
            let detail = match (malicious, suspicious) {
                (0, s) => format!("{s} of {engines} engines flag it suspicious"),
                (m, 0) => format!("{m} of {engines} engines flag it malicious"),
                (m, s) => format!("{m} of {engines} engines flag it malicious, {s} suspicious"),
            };
            add("virustotal", points, detail);
        }
        if let Some(reputation) = facts.get("reputation").and_then(Value::as_i64) {
            if reputation < 0 {
                add(
                    "virustotal",
                    w.virustotal_negative_reputation,
                    format!("community reputation {reputation}"),
                );
            }
        }
    }

    fn abuseipdb(&self, facts: &Map<String, Value>, add: &mut impl FnMut(&str, u32, String)) {
        let w = &self.weights;
        let Some(confidence) = facts.get("abuse_confidence_score").and_then(Value::as_u64) else {
            return;
        };
        let confidence = confidence.min(100);
        let reports = facts
            .get("total_reports")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let points = (confidence * u64::from(w.abuseipdb_confidence_percent) / 100)
            .saturating_add((reports / 10).saturating_mul(u64::from(w.abuseipdb_per_10_reports)))
            .min(u64::from(w.abuseipdb_max));
        let detail = match facts.get("total_reports").and_then(Value::as_u64) {
            Some(1) => format!("abuse confidence {confidence}%, 1 report"),
            Some(n) => format!("abuse confidence {confidence}%, {n} reports"),
            None => format!("abuse confidence {confidence}%"),
        };
        add("abuseipdb", u32::try_from(points).unwrap_or(0), detail);
    }

    fn greynoise(&self, facts: &Map<String, Value>, add: &mut impl FnMut(&str, u32, String)) {
        let classification = facts.get("classification").and_then(Value::as_str);
        let points = match classification {
            Some("malicious") => self.weights.greynoise_malicious,
            Some("suspicious") => self.weights.greynoise_suspicious,
            // `benign` (known scanners, business services) and `unknown` are no evidence of harm.
            _ => 0,
        };
        if let Some(classification) = classification {
            add(
                "greynoise",
                points,
                format!("GreyNoise classifies it {classification}"),
            );
        }
    }

    fn otx(&self, facts: &Map<String, Value>, add: &mut impl FnMut(&str, u32, String)) {
        let pulses = facts
            .get("pulse_count")
            .or_else(|| facts.get("pulse_info").and_then(|p| p.get("count")))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let w = &self.weights;
        let detail = if pulses == 1 {
            "listed in 1 OTX pulse".to_owned()
        } else {
            format!("listed in {pulses} OTX pulses")
        };
        add("otx", capped(pulses, w.otx_per_pulse, w.otx_max), detail);
    }
}

/// `count × per`, at most `max`, without overflow.
fn capped(count: u64, per: u32, max: u32) -> u32 {
    let points = count.saturating_mul(u64::from(per)).min(u64::from(max));
    u32::try_from(points).unwrap_or(max)
}

/// The threat name, when there is a non-blank one.
fn vendor_threat(threat: Option<&str>) -> Option<&str> {
    threat.map(str::trim).filter(|t| !t.is_empty())
}

fn describe_match(hit: &FeedMatch) -> String {
    if hit.exact {
        format!("listed by feed {}", hit.feed)
    } else {
        format!("inside {} listed by feed {}", hit.cidr, hit.feed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;
    use serde_json::json;

    fn defaults() -> Settings {
        Settings::from_toml_overrides("").expect("defaults load and validate")
    }

    fn model() -> ScoringModel {
        let settings = defaults();
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

    fn reason(weight: u32) -> Reason {
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
            (s.vendor_threat_event, s.virustotal_max, s.abuseipdb_max),
            (40, 60, 50)
        );
    }

    /// (source, detail, weight).
    type ExpectedReason = (&'static str, &'static str, u32);

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
            let got: Vec<(String, String, u32)> = model
                .evidence(&input(&map))
                .into_iter()
                .map(|r| (r.source, r.detail, r.weight))
                .collect();
            let expected: Vec<(String, String, u32)> = expected
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
        assert_eq!(sightings(1), Vec::<u32>::new());
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
        let cases: [(&str, Value, u32); 4] = [
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
            let weights: Vec<u32> = model
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
        let cases: [(&[u32], u32, Verdict, Severity); 13] = [
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
            (&[u32::MAX, 1], 100, Verdict::Malicious, Severity::Critical),
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
        for (toml, key) in cases {
            let err = Settings::from_toml_overrides(toml).unwrap_err().to_string();
            assert!(err.contains(&format!("`{key}`")), "{toml}: {err}");
        }
        let err = Settings::from_toml_overrides("[scoring]\nvirustotal_weight = 3\n")
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
            let sum: u32 = scored.reasons.iter().map(|r| r.weight).sum();
            assert_eq!(scored.assessment.score, sum.min(100));
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
        let by_score = |weight: u32| model.assess(&[reason(weight)]).indicator;
        assert_eq!(by_score(70), MALICIOUS_INDICATOR);
        assert_eq!(by_score(30), SUSPICIOUS_INDICATOR);
        assert_eq!(by_score(0), OBSERVED_INDICATOR);
    }
}
