//! Tests of building a report: the latest revision per address, ranking, actions, and provider
//! failures as data gaps, never claims.

use super::*;
use crate::model::Observed;
use crate::model::{Network, ProviderIntel, Reason, THREAT_SCHEMA};

fn record(ip: &str, score: u32, verdict: Verdict, severity: Severity) -> ThreatRecord {
    ThreatRecord {
        schema: THREAT_SCHEMA.to_owned(),
        ip: ip.to_owned(),
        ip_version: 4,
        verdict,
        severity,
        score,
        reasons: vec![Reason {
            source: "feeds".into(),
            detail: format!("listed by feed f{score}"),
            weight: i32::try_from(score).unwrap(),
        }],
        indicator: "Malicious IP Detected".into(),
        first_seen: "2026-11-23T10:00:00Z".into(),
        last_seen: "2026-11-23T10:05:00Z".into(),
        sightings: 2,
        roles: vec![Role::Source],
        observed: Observed {
            format: "fortigate".into(),
            vendor: Some("Fortinet".into()),
            product: Some("FortiGate".into()),
            action: Some("accept".into()),
            peer_ip: Some("192.0.2.10".into()),
            ..Observed::default()
        },
        network: Network::default(),
        intel: BTreeMap::new(),
        revision: 1,
        generated_at: "2026-11-23T10:05:01Z".into(),
        id: None,
        event_time: None,
        confidence: None,
        tlp: None,
        expires_at: None,
        revoked: false,
        revocation_reason: None,
    }
}

#[test]
fn latest_revision_per_address_and_ranking() {
    let mut old = record("203.0.113.7", 90, Verdict::Malicious, Severity::Critical);
    old.revision = 1;
    let mut new = record("203.0.113.7", 40, Verdict::Suspicious, Severity::Medium);
    new.revision = 2;
    let other = record("198.51.100.9", 75, Verdict::Malicious, Severity::High);
    let tie = record("198.51.100.1", 75, Verdict::Malicious, Severity::High);
    let report = build_report(vec![old, other, new, tie], None);
    let order: Vec<(&str, u32)> = report
        .threats
        .iter()
        .map(|t| (t.ip.as_str(), t.score))
        .collect();
    assert_eq!(
        order,
        [
            ("198.51.100.1", 75),
            ("198.51.100.9", 75),
            ("203.0.113.7", 40)
        ]
    );
    assert_eq!(report.suspicious_count, 3);
    assert_eq!(report.date, "2026-11-23");
    assert_eq!(
        build_report(Vec::new(), Some("2026-01-02")).date,
        "2026-01-02"
    );
    assert!(report.threats[0].critical && !report.threats[2].critical);
    assert_eq!(report.threats[2].priority, priority(Severity::Medium));
}

#[test]
fn actions_follow_verdict_roles_and_device_action() {
    let inbound = record("203.0.113.7", 80, Verdict::Malicious, Severity::High);
    let mut outbound = record("198.51.100.9", 80, Verdict::Malicious, Severity::High);
    outbound.roles = vec![Role::Destination];
    let mut denied = record("198.51.100.10", 80, Verdict::Malicious, Severity::High);
    denied.observed.action = Some("deny".into());
    let suspicious = record("198.51.100.11", 35, Verdict::Suspicious, Severity::Low);
    let report = build_report(vec![inbound, outbound, denied, suspicious], None);
    let immediate: Vec<(&str, ActionKind)> = report
        .immediate_actions
        .iter()
        .map(|a| (a.ip.as_str(), a.kind))
        .collect();
    assert_eq!(
        immediate,
        [
            ("198.51.100.9", ActionKind::Block),
            ("203.0.113.7", ActionKind::Block)
        ]
    );
    assert!(
        report.immediate_actions[0].text.contains("outbound")
            && report.immediate_actions[0].text.contains("192.0.2.10")
    );
    assert!(report.immediate_actions[1]
        .text
        .starts_with("Block inbound traffic from 203.0.113.7"));
    let follow: Vec<(&str, ActionKind)> = report
        .follow_up_actions
        .iter()
        .map(|a| (a.ip.as_str(), a.kind))
        .collect();
    assert_eq!(
        follow,
        [
            ("198.51.100.11", ActionKind::Investigate),
            ("198.51.100.10", ActionKind::Monitor)
        ]
    );
}

#[test]
fn stopped_traffic_and_lower_severity_are_not_blocked_now() {
    let mut reset = record("203.0.113.31", 80, Verdict::Malicious, Severity::High);
    reset.observed.action = Some("reset-both".into());
    let mut srx = record("203.0.113.32", 80, Verdict::Malicious, Severity::High);
    srx.observed.action = Some("RT_FLOW_SESSION_DENY".into());
    let medium = record("203.0.113.33", 75, Verdict::Malicious, Severity::Medium);
    let report = build_report(vec![reset, srx, medium], None);
    assert!(
        report.immediate_actions.is_empty(),
        "{:?}",
        report.immediate_actions
    );
    let kinds: Vec<(&str, ActionKind)> = report
        .follow_up_actions
        .iter()
        .map(|a| (a.ip.as_str(), a.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("203.0.113.33", ActionKind::Investigate),
            ("203.0.113.31", ActionKind::Monitor),
            ("203.0.113.32", ActionKind::Monitor)
        ]
    );
    assert!(!report
        .executive_summary
        .contains("needs an immediate block"));
}

#[test]
fn the_newest_record_wins_even_with_a_lower_revision() {
    // Revision numbers restart with the daemon; times do not.
    let mut before = record("203.0.113.40", 90, Verdict::Malicious, Severity::Critical);
    before.revision = 3;
    before.generated_at = "2026-11-23T10:00:00Z".into();
    let mut after = record("203.0.113.40", 35, Verdict::Suspicious, Severity::Low);
    after.revision = 1;
    after.generated_at = "2026-11-23T11:00:00Z".into();
    let report = build_report(vec![after, before], None);
    assert_eq!(report.threats.len(), 1);
    assert_eq!(report.threats[0].score, 35);
}

#[test]
fn provider_failures_are_data_gaps_never_claims() {
    let mut records = Vec::new();
    for ip in ["203.0.113.1", "203.0.113.2"] {
        let mut r = record(ip, 0, Verdict::Unknown, Severity::Info);
        r.reasons.clear();
        for provider in ["virustotal", "abuseipdb", "greynoise"] {
            r.intel.insert(
                provider.into(),
                ProviderIntel::status(ProviderStatus::Unauthorized, "HTTP 401"),
            );
        }
        r.intel.insert(
            "talos".into(),
            ProviderIntel::status(ProviderStatus::Disabled, "Cisco Talos has no public API"),
        );
        records.push(r);
    }
    let report = build_report(records, None);
    let gaps: Vec<(&str, ProviderStatus, usize)> = report
        .data_gaps
        .iter()
        .map(|g| (g.provider.as_str(), g.status, g.records))
        .collect();
    assert_eq!(
        gaps,
        [
            ("AbuseIPDB", ProviderStatus::Unauthorized, 2),
            ("GreyNoise", ProviderStatus::Unauthorized, 2),
            ("Cisco Talos", ProviderStatus::Disabled, 2),
            ("VirusTotal", ProviderStatus::Unauthorized, 2),
        ]
    );
    assert_eq!(
        report.data_gaps[3].message,
        "VirusTotal: 401 Unauthorized — check the configured API key"
    );
    let all_text = serde_json::to_string(&report).unwrap().to_lowercase();
    for claim in ["compromis", "clean", "leaked", "stolen", "safe"] {
        assert!(
            !all_text.contains(claim),
            "report text claims {claim:?}: {all_text}"
        );
    }
    assert!(report.immediate_actions.is_empty());
    assert!(report.executive_summary.contains("not evidence either way"));
}

#[test]
fn threat_fields_come_from_answers_only() {
    let mut r = record("203.0.113.7", 80, Verdict::Malicious, Severity::High);
    r.network.asn = Some(64500);
    r.network.as_org = Some("EXAMPLE-AS".into());
    let mut vt = ProviderIntel::status(ProviderStatus::Ok, "");
    vt.facts.insert(
            "last_analysis_stats".into(),
            serde_json::json!({"malicious": 7, "suspicious": 4, "undetected": 26, "harmless": 58, "timeout": 0}),
        );
    r.intel.insert("virustotal".into(), vt.clone());
    let mut talos = ProviderIntel::status(ProviderStatus::Timeout, "");
    talos.facts.insert("reputation".into(), "Poor".into());
    r.intel.insert("talos".into(), talos);
    let entry = &build_report(vec![r.clone()], None).threats[0];
    assert_eq!(entry.virustotal.unwrap().malicious, 7);
    assert_eq!(entry.asn.as_deref(), Some("AS64500"));
    assert_eq!(
        entry.talos_reputation, None,
        "a timeout's facts are not data"
    );
    assert_eq!(entry.source_ip.as_deref(), Some("203.0.113.7"));
    r.intel.insert(
        "virustotal".into(),
        ProviderIntel {
            status: ProviderStatus::Unauthorized,
            ..vt
        },
    );
    r.roles = vec![Role::Destination];
    let entry = &build_report(vec![r], None).threats[0];
    assert!(entry.virustotal.is_none());
    assert_eq!(entry.source_ip.as_deref(), Some("192.0.2.10"));
}
