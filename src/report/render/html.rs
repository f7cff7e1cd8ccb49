//! The report as one self-contained HTML page.
//!
//! Contract: same sections and wording as the Markdown renderer. The page loads nothing: one
//! inline `<style>`, no script, no external stylesheet, font or image, and a Content Security
//! Policy that forbids them anyway (`default-src 'none'`), so a mistake in escaping could still
//! not fetch or run anything. Every outside string goes through [`escape::html_value`]: one line,
//! capped, `& < > " '` as entities. The output depends only on the report.

use super::escape::{self, html_value};
use super::words::{self, MISSING};
use crate::report::model::{Action, DataGap, Narrative, Report, ThreatEntry};

/// The page's only styling: inline, no external resources.
const STYLE: &str = "\
body{font-family:system-ui,-apple-system,\"Segoe UI\",sans-serif;max-width:64rem;margin:2rem auto;padding:0 1rem;line-height:1.45;color:#1b1b1b;background:#fff}
h1{border-bottom:2px solid #333;padding-bottom:.25rem;margin-top:2.5rem}
table{border-collapse:collapse;margin:.5rem 0 1rem}
th,td{border:1px solid #c8c8c8;padding:.25rem .6rem;text-align:left;vertical-align:top}
th{background:#f2f2f2;font-weight:600}
td{overflow-wrap:anywhere}
.narrative{border-left:4px solid #c27c0e;padding-left:1rem;background:#fffaf0}
";

/// Renders both reports as one HTML page.
pub(crate) fn html(report: &Report) -> String {
    let mut lines: Vec<String> = Vec::new();
    head(report, &mut lines);
    lines.push("<body>".to_owned());
    threat_report(report, &mut lines);
    actionable_report(report, &mut lines);
    if let Some(narrative) = &report.narrative {
        narrative_section(narrative, &mut lines);
    }
    lines.push("</body>".to_owned());
    lines.push("</html>".to_owned());
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

fn head(report: &Report, lines: &mut Vec<String>) {
    lines.push("<!DOCTYPE html>".to_owned());
    lines.push("<html lang=\"en\">".to_owned());
    lines.push("<head>".to_owned());
    lines.push("<meta charset=\"utf-8\">".to_owned());
    lines.push(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'\">"
            .to_owned(),
    );
    lines.push("<meta name=\"referrer\" content=\"no-referrer\">".to_owned());
    lines.push(
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">".to_owned(),
    );
    lines.push(format!(
        "<title>{} {}</title>",
        words::THREAT_TITLE,
        h(&report.date)
    ));
    lines.push("<style>".to_owned());
    lines.push(STYLE.trim_end().to_owned());
    lines.push("</style>".to_owned());
    lines.push("</head>".to_owned());
}

fn threat_report(report: &Report, lines: &mut Vec<String>) {
    lines.push(format!("<h1>{}</h1>", words::THREAT_TITLE));
    lines.push(format!(
        "<p>Summary: {}</p>",
        words::found_line(report.suspicious_count)
    ));
    if let Some(more) = words::below_level_line(report.suspicious_count, report.total_count) {
        lines.push(format!("<p>{more}</p>"));
    }
    for entry in &report.threats {
        threat_entry(entry, lines);
    }
}

fn threat_entry(entry: &ThreatEntry, lines: &mut Vec<String>) {
    lines.push("<section>".to_owned());
    lines.push(format!(
        "<h3>Threat #{} - {}</h3>",
        entry.rank,
        h(&entry.ip)
    ));
    let virustotal = entry.virustotal.as_ref().map(words::virustotal_line);
    let rows: [(&str, String); 12] = [
        ("Indicator", h(&entry.indicator)),
        ("Verdict", words::verdict_word(entry.verdict).to_owned()),
        ("Severity", escape::html(&words::severity_line(entry))),
        ("Source IP", h_optional(entry.source_ip.as_deref())),
        (
            "Cisco Talos Reputation",
            h_optional(entry.talos_reputation.as_deref()),
        ),
        (
            "Cisco Talos Owner",
            h_optional(entry.talos_owner.as_deref()),
        ),
        (
            "VirusTotal Stats",
            virustotal.unwrap_or_else(|| MISSING.to_owned()),
        ),
        ("ASN", h_optional(entry.asn.as_deref())),
        ("Organization", h_optional(entry.organization.as_deref())),
        ("Country", h_optional(entry.country.as_deref())),
        ("RIR", h_optional(entry.rir.as_deref())),
        ("Summary", h(&entry.summary)),
    ];
    field_table(&rows, lines);
    lines.push("</section>".to_owned());
}

fn actionable_report(report: &Report, lines: &mut Vec<String>) {
    lines.push(format!("<h1>{}</h1>", words::ACTIONABLE_TITLE));
    lines.push(format!("<p>Date: {}</p>", h(&report.date)));
    lines.push(format!("<p>Subject: {}</p>", h(&report.subject)));
    lines.push("<h2>Executive Summary</h2>".to_owned());
    lines.push(format!(
        "<p>{}</p>",
        or_missing(escape::html(&escape::one_line(
            &report.executive_summary,
            escape::PROSE_CAP
        )))
    ));

    lines.push("<h2>Critical Threats</h2>".to_owned());
    let mut any_critical = false;
    for entry in report.threats.iter().filter(|entry| entry.critical) {
        any_critical = true;
        critical_threat(entry, lines);
    }
    if !any_critical {
        lines.push(format!("<p>{}</p>", words::NO_CRITICAL));
    }

    lines.push("<h2>Immediate Actions</h2>".to_owned());
    action_list(&report.immediate_actions, words::NO_IMMEDIATE, lines);
    lines.push("<h2>Follow-up Actions</h2>".to_owned());
    action_list(&report.follow_up_actions, words::NO_FOLLOW_UP, lines);
    lines.push("<h2>Data Gaps</h2>".to_owned());
    data_gaps(&report.data_gaps, lines);
}

fn critical_threat(entry: &ThreatEntry, lines: &mut Vec<String>) {
    lines.push("<section>".to_owned());
    lines.push(format!(
        "<h3>Threat #{} - {}</h3>",
        entry.rank,
        h(&entry.ip)
    ));
    let seen = &entry.seen_in;
    let rows: [(&str, String); 13] = [
        ("Severity", escape::html(&words::severity_line(entry))),
        ("Verdict", words::verdict_word(entry.verdict).to_owned()),
        ("Indicator", h(&entry.indicator)),
        ("Roles", escape::html(&words::roles_line(&entry.roles))),
        ("Sightings", entry.sightings.to_string()),
        ("First seen", h(&entry.first_seen)),
        ("Last seen", h(&entry.last_seen)),
        ("Format", h(&seen.format)),
        ("Vendor", h_optional(seen.vendor.as_deref())),
        ("Product", h_optional(seen.product.as_deref())),
        ("Device action", h_optional(seen.action.as_deref())),
        ("Rule", h_optional(seen.rule.as_deref())),
        ("Peer", h_optional(seen.peer_ip.as_deref())),
    ];
    field_table(&rows, lines);
    if entry.evidence.is_empty() {
        lines.push(format!("<p>{}</p>", words::NO_EVIDENCE));
    } else {
        lines.push("<table>".to_owned());
        lines.push(
            "<thead><tr><th>Evidence source</th><th>Detail</th><th>Weight</th></tr></thead>"
                .to_owned(),
        );
        lines.push("<tbody>".to_owned());
        for reason in &entry.evidence {
            lines.push(format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                h(&reason.source),
                h(&reason.detail),
                reason.weight
            ));
        }
        lines.push("</tbody>".to_owned());
        lines.push("</table>".to_owned());
    }
    lines.push("</section>".to_owned());
}

fn field_table(rows: &[(&str, String)], lines: &mut Vec<String>) {
    lines.push("<table>".to_owned());
    for (label, value) in rows {
        lines.push(format!(
            "<tr><th scope=\"row\">{label}</th><td>{value}</td></tr>"
        ));
    }
    lines.push("</table>".to_owned());
}

fn action_list(actions: &[Action], none: &str, lines: &mut Vec<String>) {
    if actions.is_empty() {
        lines.push(format!("<p>{}</p>", escape::html(none)));
        return;
    }
    lines.push("<ul>".to_owned());
    for action in actions {
        lines.push(format!(
            "<li><strong>{}</strong> {}: {}</li>",
            words::action_word(action.kind),
            h(&action.ip),
            h(&action.text)
        ));
    }
    lines.push("</ul>".to_owned());
}

fn data_gaps(gaps: &[DataGap], lines: &mut Vec<String>) {
    if gaps.is_empty() {
        lines.push(format!("<p>{}</p>", words::NO_GAPS));
        return;
    }
    lines.push("<ul>".to_owned());
    for gap in gaps {
        lines.push(format!(
            "<li>{} (affects {})</li>",
            h(&gap.message),
            words::records_count(gap.records)
        ));
    }
    lines.push("</ul>".to_owned());
}

fn narrative_section(narrative: &Narrative, lines: &mut Vec<String>) {
    lines.push("<section class=\"narrative\">".to_owned());
    lines.push(format!(
        "<h2>{}</h2>",
        words::narrative_heading(&h(&narrative.model))
    ));
    let paragraphs = escape::paragraphs(&narrative.text, escape::NARRATIVE_CAP);
    if paragraphs.is_empty() {
        lines.push(format!("<p>{MISSING}</p>"));
    }
    for paragraph in paragraphs {
        lines.push(format!("<p>{}</p>", escape::html(&paragraph)));
    }
    lines.push("</section>".to_owned());
}

/// An outside value: one line, capped, escaped; `N/A` when nothing is left.
fn h(value: &str) -> String {
    or_missing(html_value(value))
}

/// An optional outside value, escaped, or `N/A`.
fn h_optional(value: Option<&str>) -> String {
    value.map_or_else(|| MISSING.to_owned(), h)
}

/// `N/A` for a value that is empty after escaping, so no cell is ever left empty.
fn or_missing(escaped: String) -> String {
    if escaped.is_empty() {
        MISSING.to_owned()
    } else {
        escaped
    }
}
