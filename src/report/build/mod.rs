//! Build: threat records → [`Report`]. Pure and deterministic.
//!
//! * In: records in any order, possibly several revisions per address; the report date.
//! * Out: the latest revision per address (newest `generated_at`, then highest `revision`:
//!   revision numbers restart with the daemon's memory, times do not),
//!   ranked by score, then severity, then address; actions chosen by rules from verdict,
//!   roles and the device's action; data gaps from every provider status that is not an
//!   answer.
//! * Rules for actions:
//!   - malicious with high or critical severity, and the device let it through (or did not
//!     say): **Block** now (inbound from a source, outbound to a destination);
//!   - malicious below high severity (possible with custom bands): follow up, **Investigate**;
//!   - malicious, already denied by the device: follow up, **Monitor** that the block holds;
//!   - suspicious: follow up, **Investigate** with the strongest evidence;
//!   - anything weaker: follow up, **Monitor**.
//! * A provider failure is a gap in our data, never a statement about an address or a key.

use std::collections::BTreeMap;

use crate::intel::providers::virustotal;
use crate::intel::talos;
use crate::model::Role;
use crate::model::{ProviderStatus, Severity, ThreatRecord, Verdict};
use crate::stages::local::FEEDS_ENTRY;

use super::model::{
    priority, Action, ActionKind, DataGap, Report, SeenIn, ThreatEntry, VirusTotalStats,
};

use crate::model::action_denied as was_denied;

/// Keeps the latest revision of each address.
pub(crate) fn latest_revisions(records: Vec<ThreatRecord>) -> Vec<ThreatRecord> {
    let mut latest: BTreeMap<String, ThreatRecord> = BTreeMap::new();
    for record in records {
        match latest.get(&record.ip) {
            Some(kept)
                if (&kept.generated_at, kept.revision)
                    >= (&record.generated_at, record.revision) => {}
            _ => {
                latest.insert(record.ip.clone(), record);
            }
        }
    }
    latest.into_values().collect()
}

/// Builds the report of `records` (latest revision per address is taken here). `date` is
/// `YYYY-MM-DD`; without it, the date of the newest `generated_at` in the records.
pub fn build_report(records: Vec<ThreatRecord>, date: Option<&str>) -> Report {
    let mut records = latest_revisions(records);
    records.sort_by(|a, b| {
        b.score
            .cmp(&a.score)
            .then(b.severity.cmp(&a.severity))
            .then(a.ip.cmp(&b.ip))
    });
    let date = date.map(str::to_owned).unwrap_or_else(|| {
        records
            .iter()
            .map(|r| r.generated_at.get(..10).unwrap_or(&r.generated_at))
            .max()
            .unwrap_or("no records")
            .to_owned()
    });
    let threats: Vec<ThreatEntry> = records
        .iter()
        .enumerate()
        .map(|(i, r)| threat_entry(i + 1, r))
        .collect();
    let suspicious_count = records
        .iter()
        .filter(|r| r.verdict >= Verdict::Suspicious)
        .count();
    let (immediate_actions, follow_up_actions) = actions(&threats);
    let data_gaps = data_gaps(&records);
    Report {
        subject: subject(&records),
        executive_summary: executive_summary(
            &threats,
            suspicious_count,
            &immediate_actions,
            &data_gaps,
        ),
        date,
        suspicious_count,
        total_count: records.len(),
        threats,
        immediate_actions,
        follow_up_actions,
        data_gaps,
        narrative: None,
    }
}

fn threat_entry(rank: usize, record: &ThreatRecord) -> ThreatEntry {
    let answered = |provider: &str| {
        record
            .intel
            .get(provider)
            .filter(|i| i.status == ProviderStatus::Ok)
    };
    let text = |provider: &str, field: &str| {
        answered(provider)
            .and_then(|i| i.facts.get(field))
            .and_then(|v| match v {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
    };
    // The Threat Report shows these two providers' facts by name (design §4).
    let virustotal = answered(virustotal::NAME)
        .and_then(|i| i.facts.get("last_analysis_stats"))
        .and_then(|stats| {
            let count = |key: &str| stats.get(key).and_then(serde_json::Value::as_u64);
            Some(VirusTotalStats {
                malicious: count("malicious")?,
                suspicious: count("suspicious").unwrap_or(0),
                undetected: count("undetected").unwrap_or(0),
                harmless: count("harmless").unwrap_or(0),
                timeout: count("timeout").unwrap_or(0),
            })
        });
    let initiated = record
        .roles
        .iter()
        .any(|r| matches!(r, Role::Source | Role::Client | Role::Forwarded));
    let source_ip = if initiated {
        Some(record.ip.clone())
    } else if record.roles.contains(&Role::Destination) {
        record.observed.peer_ip.clone()
    } else {
        None
    };
    ThreatEntry {
        rank,
        ip: record.ip.clone(),
        indicator: record.indicator.clone(),
        verdict: record.verdict,
        severity: record.severity,
        priority: priority(record.severity),
        score: record.score,
        critical: record.severity >= Severity::High,
        source_ip,
        talos_reputation: text(talos::NAME, "reputation"),
        talos_owner: text(talos::NAME, "owner"),
        virustotal,
        asn: record.network.asn.map(|asn| format!("AS{asn}")),
        organization: record.network.as_org.clone(),
        country: record.network.country.clone(),
        rir: record.network.rir.clone(),
        summary: summary(record),
        evidence: record.reasons.clone(),
        roles: record.roles.clone(),
        sightings: record.sightings,
        first_seen: record.first_seen.clone(),
        last_seen: record.last_seen.clone(),
        seen_in: SeenIn {
            format: record.observed.format.clone(),
            vendor: record.observed.vendor.clone(),
            product: record.observed.product.clone(),
            action: record.observed.action.clone(),
            rule: record.observed.rule.clone(),
            peer_ip: record.observed.peer_ip.clone(),
        },
    }
}

fn verdict_word(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Malicious => "Malicious",
        Verdict::Suspicious => "Suspicious",
        Verdict::Clean => "Clean",
        Verdict::Unknown => "Unknown",
    }
}

fn severity_word(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "critical",
        Severity::High => "high",
        Severity::Medium => "medium",
        Severity::Low => "low",
        Severity::Info => "informational",
    }
}

fn roles_text(roles: &[Role]) -> String {
    let names: Vec<&str> = roles.iter().map(|r| r.label()).collect();
    if names.is_empty() {
        "unknown role".to_owned()
    } else {
        names.join("/")
    }
}

/// `Malicious (score 70, high severity): listed by feed x; seen 3 times as source.`
fn summary(record: &ThreatRecord) -> String {
    let evidence = if record.reasons.is_empty() {
        "no evidence against it in the data".to_owned()
    } else {
        record
            .reasons
            .iter()
            .map(|r| r.detail.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    };
    format!(
        "{} (score {}, {} severity): {}; seen {} time{} as {}.",
        verdict_word(record.verdict),
        record.score,
        severity_word(record.severity),
        evidence,
        record.sightings,
        if record.sightings == 1 { "" } else { "s" },
        roles_text(&record.roles)
    )
}

fn subject(records: &[ThreatRecord]) -> String {
    let first = records.iter().map(|r| r.first_seen.as_str()).min();
    let last = records.iter().map(|r| r.last_seen.as_str()).max();
    match (first, last) {
        (Some(first), Some(last)) => format!(
            "Threat intelligence on {} address{} seen between {first} and {last}",
            records.len(),
            if records.len() == 1 { "" } else { "es" }
        ),
        _ => "Threat intelligence: no threat records in the input".to_owned(),
    }
}

fn executive_summary(
    threats: &[ThreatEntry],
    suspicious_count: usize,
    immediate: &[Action],
    gaps: &[DataGap],
) -> String {
    if threats.is_empty() {
        return "The input held no threat records, so there is nothing to report.".to_owned();
    }
    let malicious = threats
        .iter()
        .filter(|t| t.verdict == Verdict::Malicious)
        .count();
    let mut text = format!(
        "{} address{} reported: {malicious} malicious, {} suspicious",
        threats.len(),
        if threats.len() == 1 {
            " was"
        } else {
            "es were"
        },
        suspicious_count - malicious
    );
    let weaker = threats.len() - suspicious_count;
    if weaker > 0 {
        text.push_str(&format!(", {weaker} with weaker or no evidence"));
    }
    let top = &threats[0];
    text.push_str(&format!(
        ". The highest score is {} for {} ({}).",
        top.score, top.ip, top.indicator
    ));
    match immediate.len() {
        0 => text.push_str(" On the data available, no address calls for an immediate block."),
        1 => text.push_str(" 1 address needs an immediate block."),
        n => text.push_str(&format!(" {n} addresses need an immediate block.")),
    }
    let mut providers: Vec<&str> = gaps
        .iter()
        .filter(|g| g.status != ProviderStatus::Disabled)
        .map(|g| g.provider.as_str())
        .collect();
    providers.dedup();
    if !providers.is_empty() {
        text.push_str(&format!(
            " Some providers returned no data ({}); see Data gaps. Their silence is not \
             evidence either way.",
            providers.join(", ")
        ));
    }
    text
}

fn actions(threats: &[ThreatEntry]) -> (Vec<Action>, Vec<Action>) {
    let mut immediate = Vec::new();
    let mut follow_up = Vec::new();
    for threat in threats {
        let device = match (&threat.seen_in.vendor, &threat.seen_in.product) {
            (Some(v), Some(p)) => format!("{v} {p}"),
            (Some(v), None) => v.clone(),
            (None, Some(p)) => p.clone(),
            (None, None) => format!("the {} log", threat.seen_in.format),
        };
        let denied = threat.seen_in.action.as_deref().is_some_and(was_denied);
        let inbound = threat
            .roles
            .iter()
            .any(|r| matches!(r, Role::Source | Role::Client | Role::Forwarded));
        let strongest = threat
            .evidence
            .iter()
            .max_by_key(|r| r.weight)
            .map_or("no evidence yet", |r| r.detail.as_str());
        match threat.verdict {
            Verdict::Malicious if denied => follow_up.push(Action {
                kind: ActionKind::Monitor,
                ip: threat.ip.clone(),
                text: format!(
                    "Already denied by {device} when first seen ({}); confirm the block covers \
                     every site and watch for further attempts.",
                    threat.seen_in.action.as_deref().unwrap_or("deny")
                ),
            }),
            // A malicious verdict below high severity (bands set that way): look before blocking.
            Verdict::Malicious if !threat.critical => follow_up.push(Action {
                kind: ActionKind::Investigate,
                ip: threat.ip.clone(),
                text: format!(
                    "Investigate {} before blocking: malicious but only {} severity: {strongest}.",
                    threat.ip,
                    severity_word(threat.severity)
                ),
            }),
            Verdict::Malicious => immediate.push(Action {
                kind: ActionKind::Block,
                ip: threat.ip.clone(),
                text: if inbound {
                    format!(
                        "Block inbound traffic from {} at the perimeter: {strongest} (score {}).",
                        threat.ip, threat.score
                    )
                } else {
                    let peer = threat
                        .seen_in
                        .peer_ip
                        .as_deref()
                        .map(|p| format!(" (first seen from {p})"))
                        .unwrap_or_default();
                    format!(
                        "Block outbound traffic to {} and check the internal hosts that \
                         contacted it{peer}: {strongest} (score {}).",
                        threat.ip, threat.score
                    )
                },
            }),
            Verdict::Suspicious => follow_up.push(Action {
                kind: ActionKind::Investigate,
                ip: threat.ip.clone(),
                text: format!(
                    "Investigate {}: {strongest}; seen {} time{} as {} by {device}.",
                    threat.ip,
                    threat.sightings,
                    if threat.sightings == 1 { "" } else { "s" },
                    roles_text(&threat.roles)
                ),
            }),
            Verdict::Clean | Verdict::Unknown => follow_up.push(Action {
                kind: ActionKind::Monitor,
                ip: threat.ip.clone(),
                text: format!(
                    "Monitor {}: not enough evidence to act on (score {}).",
                    threat.ip, threat.score
                ),
            }),
        }
    }
    // Stable: investigate before monitor, each in ranking order.
    follow_up.sort_by_key(|a| a.kind);
    (immediate, follow_up)
}

/// Display name of a provider key.
pub(crate) fn provider_name(key: &str) -> &str {
    if key == FEEDS_ENTRY {
        "Local feeds"
    } else {
        crate::intel::registry::display_name(key)
    }
}

/// What a non-answer means for the reader. Never a claim about the addresses or the key.
fn gap_message(provider: &str, status: ProviderStatus, detail: Option<&str>) -> String {
    let why = match status {
        ProviderStatus::Unauthorized => {
            "401 Unauthorized — check the configured API key".to_owned()
        }
        ProviderStatus::Forbidden => {
            "403 Forbidden — the API key is not allowed this endpoint or plan".to_owned()
        }
        ProviderStatus::RateLimited => {
            "429 rate limited — lookups resume after the provider's reset".to_owned()
        }
        ProviderStatus::QuotaExhausted => {
            "quota used up — lookups resume when the quota resets".to_owned()
        }
        ProviderStatus::Timeout => "timed out — no answer within the configured timeout".to_owned(),
        ProviderStatus::Unavailable => {
            "unavailable — server error or connection failure".to_owned()
        }
        ProviderStatus::InvalidResponse => {
            "unexpected response (not the API's JSON) — nothing was taken from it".to_owned()
        }
        ProviderStatus::Skipped => format!("skipped — {}", detail.unwrap_or("by policy or budget")),
        ProviderStatus::Pending => "answer still pending when the record was written".to_owned(),
        ProviderStatus::Disabled => format!(
            "not queried — {}",
            detail.unwrap_or("not enabled in the configuration")
        ),
        ProviderStatus::Ok | ProviderStatus::NotFound => "answered".to_owned(),
    };
    format!("{provider}: {why}")
}

fn data_gaps(records: &[ThreatRecord]) -> Vec<DataGap> {
    // (provider key, status) → (records, first detail seen)
    let mut gaps: BTreeMap<(String, u8), (ProviderStatus, usize, Option<String>)> = BTreeMap::new();
    for record in records {
        for (key, intel) in &record.intel {
            if intel.status.is_answer() {
                continue;
            }
            let entry = gaps
                .entry((key.clone(), status_rank(intel.status)))
                .or_insert((intel.status, 0, intel.detail.clone()));
            entry.1 += 1;
        }
    }
    gaps.into_iter()
        .map(|((key, _), (status, count, detail))| {
            let provider = provider_name(&key).to_owned();
            DataGap {
                message: gap_message(&provider, status, detail.as_deref()),
                provider,
                status,
                records: count,
            }
        })
        .collect()
}

/// Failures first, configuration last, for a stable order.
fn status_rank(status: ProviderStatus) -> u8 {
    match status {
        ProviderStatus::Unauthorized => 0,
        ProviderStatus::Forbidden => 1,
        ProviderStatus::QuotaExhausted => 2,
        ProviderStatus::RateLimited => 3,
        ProviderStatus::Timeout => 4,
        ProviderStatus::Unavailable => 5,
        ProviderStatus::InvalidResponse => 6,
        ProviderStatus::Pending => 7,
        ProviderStatus::Skipped => 8,
        ProviderStatus::Disabled => 9,
        ProviderStatus::Ok | ProviderStatus::NotFound => 10,
    }
}

#[cfg(test)]
mod tests;
