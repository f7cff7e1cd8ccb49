//! The report as Markdown (CommonMark with GitHub tables).
//!
//! Contract: the Threat Report first, then the Actionable Intelligence Report, then the
//! narrative when there is one. Every outside string goes through [`escape::md_value`] (or the
//! prose/narrative variants): one line, capped, each character Markdown would read as syntax in
//! its position escaped, so a value can neither add a line nor become a link, image, HTML, heading, code or a table cell.
//! The output ends in exactly one newline and depends only on the report.

use super::escape::{self, md_value};
use super::words::{self, MISSING};
use crate::report::model::{Action, DataGap, Narrative, Report, ThreatEntry};

/// Renders both reports as Markdown.
pub(crate) fn markdown(report: &Report) -> String {
    let mut lines: Vec<String> = Vec::new();
    threat_report(report, &mut lines);
    lines.push(String::new());
    actionable_report(report, &mut lines);
    if let Some(narrative) = &report.narrative {
        lines.push(String::new());
        narrative_section(narrative, &mut lines);
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

fn threat_report(report: &Report, lines: &mut Vec<String>) {
    lines.push(format!("# {}", words::THREAT_TITLE));
    lines.push(String::new());
    lines.push(format!(
        "Summary: {}",
        words::found_line(report.suspicious_count)
    ));
    if let Some(more) = words::below_level_line(report.suspicious_count, report.total_count) {
        lines.push(String::new());
        lines.push(more);
    }
    for entry in &report.threats {
        lines.push(String::new());
        threat_entry(entry, lines);
    }
}

fn threat_entry(entry: &ThreatEntry, lines: &mut Vec<String>) {
    lines.push(format!("### Threat #{} - {}", entry.rank, md(&entry.ip)));
    lines.push(String::new());
    lines.push("| Field | Value |".to_owned());
    lines.push("|---|---|".to_owned());
    let virustotal = entry.virustotal.as_ref().map(words::virustotal_line);
    let rows: [(&str, String); 12] = [
        ("Indicator", md(&entry.indicator)),
        ("Verdict", words::verdict_word(entry.verdict).to_owned()),
        ("Severity", words::severity_line(entry)),
        ("Source IP", md_optional(entry.source_ip.as_deref())),
        (
            "Cisco Talos Reputation",
            md_optional(entry.talos_reputation.as_deref()),
        ),
        (
            "Cisco Talos Owner",
            md_optional(entry.talos_owner.as_deref()),
        ),
        (
            "VirusTotal Stats",
            virustotal.unwrap_or_else(|| MISSING.to_owned()),
        ),
        ("ASN", md_optional(entry.asn.as_deref())),
        ("Organization", md_optional(entry.organization.as_deref())),
        ("Country", md_optional(entry.country.as_deref())),
        ("RIR", md_optional(entry.rir.as_deref())),
        ("Summary", md(&entry.summary)),
    ];
    for (label, value) in rows {
        lines.push(format!("| {label} | {value} |"));
    }
}

fn actionable_report(report: &Report, lines: &mut Vec<String>) {
    lines.push(format!("# {}", words::ACTIONABLE_TITLE));
    lines.push(String::new());
    lines.push(format!("Date: {}", md(&report.date)));
    lines.push(String::new());
    lines.push(format!("Subject: {}", md(&report.subject)));
    lines.push(String::new());
    lines.push("## Executive Summary".to_owned());
    lines.push(String::new());
    lines.push(or_missing(escape::markdown(
        &escape::one_line(&report.executive_summary, escape::PROSE_CAP),
        escape::MdPosition::LineStart,
    )));

    lines.push(String::new());
    lines.push("## Critical Threats".to_owned());
    let mut any_critical = false;
    for entry in report.threats.iter().filter(|entry| entry.critical) {
        any_critical = true;
        lines.push(String::new());
        critical_threat(entry, lines);
    }
    if !any_critical {
        lines.push(String::new());
        lines.push(words::NO_CRITICAL.to_owned());
    }

    lines.push(String::new());
    lines.push("## Immediate Actions".to_owned());
    lines.push(String::new());
    action_list(&report.immediate_actions, words::NO_IMMEDIATE, lines);

    lines.push(String::new());
    lines.push("## Follow-up Actions".to_owned());
    lines.push(String::new());
    action_list(&report.follow_up_actions, words::NO_FOLLOW_UP, lines);

    lines.push(String::new());
    lines.push("## Data Gaps".to_owned());
    lines.push(String::new());
    data_gaps(&report.data_gaps, lines);
}

fn critical_threat(entry: &ThreatEntry, lines: &mut Vec<String>) {
    lines.push(format!("### Threat #{} - {}", entry.rank, md(&entry.ip)));
    lines.push(String::new());
    let seen = &entry.seen_in;
    let items: [(&str, String); 11] = [
        ("Severity", words::severity_line(entry)),
        ("Verdict", words::verdict_word(entry.verdict).to_owned()),
        ("Indicator", md(&entry.indicator)),
        ("Roles", words::roles_line(&entry.roles)),
        ("Sightings", entry.sightings.to_string()),
        ("First seen", md(&entry.first_seen)),
        ("Last seen", md(&entry.last_seen)),
        (
            "Seen in",
            format!(
                "format {}, vendor {}, product {}",
                md(&seen.format),
                md_optional(seen.vendor.as_deref()),
                md_optional(seen.product.as_deref())
            ),
        ),
        ("Device action", md_optional(seen.action.as_deref())),
        ("Rule", md_optional(seen.rule.as_deref())),
        ("Peer", md_optional(seen.peer_ip.as_deref())),
    ];
    for (label, value) in items {
        lines.push(format!("- {label}: {value}"));
    }
    lines.push(String::new());
    if entry.evidence.is_empty() {
        lines.push(words::NO_EVIDENCE.to_owned());
        return;
    }
    lines.push("| Evidence source | Detail | Weight |".to_owned());
    lines.push("|---|---|---|".to_owned());
    for reason in &entry.evidence {
        lines.push(format!(
            "| {} | {} | {} |",
            md(&reason.source),
            md(&reason.detail),
            reason.weight
        ));
    }
}

fn action_list(actions: &[Action], none: &str, lines: &mut Vec<String>) {
    if actions.is_empty() {
        lines.push(none.to_owned());
        return;
    }
    for action in actions {
        lines.push(format!(
            "- {} {}: {}",
            words::action_word(action.kind),
            md(&action.ip),
            md(&action.text)
        ));
    }
}

fn data_gaps(gaps: &[DataGap], lines: &mut Vec<String>) {
    if gaps.is_empty() {
        lines.push(words::NO_GAPS.to_owned());
        return;
    }
    for gap in gaps {
        lines.push(format!(
            "- {} (affects {})",
            md(&gap.message),
            words::records_count(gap.records)
        ));
    }
}

fn narrative_section(narrative: &Narrative, lines: &mut Vec<String>) {
    lines.push(format!(
        "## {}",
        words::narrative_heading(&md(&narrative.model))
    ));
    let paragraphs = escape::paragraphs(&narrative.text, escape::NARRATIVE_CAP);
    if paragraphs.is_empty() {
        lines.push(String::new());
        lines.push(MISSING.to_owned());
    }
    for paragraph in paragraphs {
        lines.push(String::new());
        lines.push(escape::markdown(&paragraph, escape::MdPosition::LineStart));
    }
}

/// An outside value: one line, capped, escaped; `N/A` when nothing is left.
fn md(value: &str) -> String {
    or_missing(md_value(value))
}

/// An optional outside value, escaped, or `N/A`.
fn md_optional(value: Option<&str>) -> String {
    value.map_or_else(|| MISSING.to_owned(), md)
}

/// `N/A` for a value that is empty after escaping (blank or only control characters), so no
/// field or table cell is ever left empty.
fn or_missing(escaped: String) -> String {
    if escaped.is_empty() {
        MISSING.to_owned()
    } else {
        escaped
    }
}
