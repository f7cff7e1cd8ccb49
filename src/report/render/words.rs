//! The report's own wording, shared by the Markdown and HTML renderers so both say the same
//! thing. Nothing here takes outside text: callers escape values separately.

use crate::model::Role;
use crate::model::{Severity, Verdict};
use crate::report::model::{ActionKind, ThreatEntry, VirusTotalStats};

/// Written wherever a value is missing.
pub(super) const MISSING: &str = "N/A";

/// Title of the first report.
pub(super) const THREAT_TITLE: &str = "Threat Report";
/// Title of the second report.
pub(super) const ACTIONABLE_TITLE: &str = "Actionable Intelligence Report";
/// Said when no entry is critical.
pub(super) const NO_CRITICAL: &str = "No address reached high or critical severity.";
/// Said when there is nothing to do now.
pub(super) const NO_IMMEDIATE: &str = "No immediate actions: no address reached the malicious threshold with high severity on the data available, or the devices already denied it.";
/// Said when there is nothing to do next.
pub(super) const NO_FOLLOW_UP: &str = "No follow-up actions.";
/// Said when no provider left a gap.
pub(super) const NO_GAPS: &str = "Every provider that was queried answered.";
/// Said when a critical threat has no reasons.
pub(super) const NO_EVIDENCE: &str = "No evidence recorded.";

/// `Found N suspicious IP addresses.` (singular for one).
pub(super) fn found_line(suspicious: usize) -> String {
    let noun = if suspicious == 1 {
        "address"
    } else {
        "addresses"
    };
    format!("Found {suspicious} suspicious IP {noun}.")
}

/// How many more addresses the report holds below the suspicious level, if any.
pub(super) fn below_level_line(suspicious: usize, total: usize) -> Option<String> {
    let more = total.checked_sub(suspicious).filter(|more| *more > 0)?;
    Some(if more == 1 {
        "1 more address was seen with weaker or no evidence (below suspicious).".to_owned()
    } else {
        format!("{more} more addresses were seen with weaker or no evidence (below suspicious).")
    })
}

/// `High (score 75/100, priority P2 (act today))`.
pub(super) fn severity_line(entry: &ThreatEntry) -> String {
    format!(
        "{} (score {}/100, priority {})",
        severity_word(entry.severity),
        entry.score,
        entry.priority
    )
}

/// The severity, capitalised.
pub(super) fn severity_word(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "Info",
        Severity::Low => "Low",
        Severity::Medium => "Medium",
        Severity::High => "High",
        Severity::Critical => "Critical",
    }
}

/// The verdict's record label.
pub(super) fn verdict_word(verdict: Verdict) -> &'static str {
    verdict.label()
}

/// `malicious 7, suspicious 4, undetected 26, harmless 58, timeout 0`.
pub(super) fn virustotal_line(stats: &VirusTotalStats) -> String {
    format!(
        "malicious {}, suspicious {}, undetected {}, harmless {}, timeout {}",
        stats.malicious, stats.suspicious, stats.undetected, stats.harmless, stats.timeout
    )
}

/// `Block`, `Investigate` or `Monitor`.
pub(super) fn action_word(kind: ActionKind) -> &'static str {
    match kind {
        ActionKind::Block => "Block",
        ActionKind::Investigate => "Investigate",
        ActionKind::Monitor => "Monitor",
    }
}

/// Role labels joined with `, `, or `N/A`.
pub(super) fn roles_line(roles: &[Role]) -> String {
    if roles.is_empty() {
        return MISSING.to_owned();
    }
    roles
        .iter()
        .map(|role| role.label())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `1 record` / `N records`.
pub(super) fn records_count(records: usize) -> String {
    if records == 1 {
        "1 record".to_owned()
    } else {
        format!("{records} records")
    }
}

/// The heading of the narrative section; `model` must already be escaped for the format.
pub(super) fn narrative_heading(escaped_model: &str) -> String {
    format!("Narrative (written by a language model: {escaped_model}; not verified)")
}
