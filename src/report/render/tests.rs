//! Renderer tests: layout (golden Markdown), hostile input in Markdown and HTML, self-contained
//! HTML, JSON round trip, fixed golden bytes in every format, and the narrative's place and label.

use super::json::REPORT_SCHEMA;
use super::{html, json, markdown};
use crate::model::Role;
use crate::model::{ProviderStatus, Reason, Severity, Verdict};
use crate::report::model::{
    priority, Action, ActionKind, DataGap, Narrative, Report, SeenIn, ThreatEntry, VirusTotalStats,
};

// ---------------------------------------------------------------------------------------------
// Fixtures

fn blocked_threat() -> ThreatEntry {
    ThreatEntry {
        rank: 1,
        ip: "203.0.113.7".to_owned(),
        indicator: "Listed on local-blocklist".to_owned(),
        verdict: Verdict::Malicious,
        severity: Severity::High,
        priority: priority(Severity::High),
        score: 75,
        critical: true,
        source_ip: Some("203.0.113.7".to_owned()),
        talos_reputation: None,
        talos_owner: None,
        virustotal: Some(VirusTotalStats {
            malicious: 7,
            suspicious: 4,
            undetected: 26,
            harmless: 58,
            timeout: 0,
        }),
        asn: Some("AS64500".to_owned()),
        organization: None,
        country: Some("NL".to_owned()),
        rir: None,
        summary: "Listed on local-blocklist; 7 VirusTotal engines flag it".to_owned(),
        evidence: vec![
            Reason {
                source: "feeds".to_owned(),
                detail: "listed on local-blocklist".to_owned(),
                weight: 40,
            },
            Reason {
                source: "virustotal".to_owned(),
                detail: "7 engines flag it malicious".to_owned(),
                weight: 35,
            },
        ],
        roles: vec![Role::Source],
        sightings: 3,
        first_seen: "2026-11-03T10:00:00Z".to_owned(),
        last_seen: "2026-11-03T10:05:00Z".to_owned(),
        seen_in: SeenIn {
            format: "cisco_asa".to_owned(),
            vendor: Some("Cisco".to_owned()),
            product: Some("ASA".to_owned()),
            action: Some("allow".to_owned()),
            rule: None,
            peer_ip: Some("10.0.0.5".to_owned()),
        },
    }
}

fn one_threat_report() -> Report {
    Report {
        date: "2026-11-03".to_owned(),
        subject: "Threat records from 1 address".to_owned(),
        suspicious_count: 1,
        total_count: 1,
        executive_summary:
            "1 of 1 address is suspicious or malicious. Top: 203.0.113.7 (score 75).".to_owned(),
        threats: vec![blocked_threat()],
        immediate_actions: vec![Action {
            kind: ActionKind::Block,
            ip: "203.0.113.7".to_owned(),
            text: "Add a block rule: the device let it through".to_owned(),
        }],
        follow_up_actions: Vec::new(),
        data_gaps: vec![DataGap {
            provider: "VirusTotal".to_owned(),
            status: ProviderStatus::Unauthorized,
            records: 1,
            message: "VirusTotal: 401 Unauthorized - check the configured API key".to_owned(),
        }],
        narrative: None,
    }
}

const ONE_THREAT_MARKDOWN: &str = r"# Threat Report

Summary: Found 1 suspicious IP address.

### Threat #1 - 203.0.113.7

| Field | Value |
|---|---|
| Indicator | Listed on local-blocklist |
| Verdict | malicious |
| Severity | High (score 75/100, priority P2 (act today)) |
| Source IP | 203.0.113.7 |
| Cisco Talos Reputation | N/A |
| Cisco Talos Owner | N/A |
| VirusTotal Stats | malicious 7, suspicious 4, undetected 26, harmless 58, timeout 0 |
| ASN | AS64500 |
| Organization | N/A |
| Country | NL |
| RIR | N/A |
| Summary | Listed on local-blocklist; 7 VirusTotal engines flag it |

# Actionable Intelligence Report

Date: 2026-11-03

Subject: Threat records from 1 address

## Executive Summary

1 of 1 address is suspicious or malicious. Top: 203.0.113.7 (score 75).

## Critical Threats

### Threat #1 - 203.0.113.7

- Severity: High (score 75/100, priority P2 (act today))
- Verdict: malicious
- Indicator: Listed on local-blocklist
- Roles: source
- Sightings: 3
- First seen: 2026-11-03T10:00:00Z
- Last seen: 2026-11-03T10:05:00Z
- Seen in: format cisco_asa, vendor Cisco, product ASA
- Device action: allow
- Rule: N/A
- Peer: 10.0.0.5

| Evidence source | Detail | Weight |
|---|---|---|
| feeds | listed on local-blocklist | 40 |
| virustotal | 7 engines flag it malicious | 35 |

## Immediate Actions

- Block 203.0.113.7: Add a block rule: the device let it through

## Follow-up Actions

No follow-up actions.

## Data Gaps

- VirusTotal: 401 Unauthorized - check the configured API key (affects 1 record)
";

/// A report whose every outside string is `value`, shaped like [`one_threat_report`] with a
/// second, non-critical threat, a follow-up action and a narrative.
fn report_with_every_string(value: &str) -> Report {
    let text = || value.to_owned();
    let some = || Some(value.to_owned());
    let mut threat = blocked_threat();
    threat.ip = text();
    threat.indicator = text();
    threat.source_ip = some();
    threat.talos_reputation = some();
    threat.talos_owner = some();
    threat.asn = some();
    threat.organization = some();
    threat.country = some();
    threat.rir = some();
    threat.summary = text();
    threat.first_seen = text();
    threat.last_seen = text();
    threat.seen_in = SeenIn {
        format: text(),
        vendor: some(),
        product: some(),
        action: some(),
        rule: some(),
        peer_ip: some(),
    };
    for reason in &mut threat.evidence {
        reason.source = text();
        reason.detail = text();
    }
    let mut quiet = threat.clone();
    quiet.rank = 2;
    quiet.critical = false;
    quiet.verdict = Verdict::Unknown;
    quiet.severity = Severity::Info;
    quiet.priority = priority(Severity::Info);
    quiet.score = 0;
    Report {
        date: text(),
        subject: text(),
        suspicious_count: 1,
        total_count: 2,
        executive_summary: text(),
        threats: vec![threat, quiet],
        immediate_actions: vec![Action {
            kind: ActionKind::Block,
            ip: text(),
            text: text(),
        }],
        follow_up_actions: vec![Action {
            kind: ActionKind::Monitor,
            ip: text(),
            text: text(),
        }],
        data_gaps: vec![DataGap {
            provider: text(),
            status: ProviderStatus::Timeout,
            records: 2,
            message: text(),
        }],
        narrative: Some(Narrative {
            model: text(),
            text: text(),
        }),
    }
}

/// Hostile values: each must stay plain text on its line, whatever the format.
fn hostile_cases() -> Vec<(&'static str, String)> {
    vec![
        ("markdown link", "[x](http://evil)".to_owned()),
        ("markdown image", "![x](http://evil/x.png)".to_owned()),
        ("autolink", "<http://evil> www.evil.com".to_owned()),
        ("html img", "<img src=x onerror=alert(1)>".to_owned()),
        ("html script", "<script>alert(1)</script>".to_owned()),
        (
            "attribute break",
            "\" onmouseover=\"alert(1)' x='".to_owned(),
        ),
        ("entity", "&lt;script&gt; &#60;img&#62;".to_owned()),
        ("heading", "x\n# heading\n\n## another".to_owned()),
        ("table pipe", "a | b || c".to_owned()),
        ("backtick", "`code` ```fence".to_owned()),
        ("emphasis", "*a* _b_ ~~c~~ $x$".to_owned()),
        ("list markers", "- a\n1. b\n+ c\n> quote".to_owned()),
        ("backslash", "\\<img\\](x)\\".to_owned()),
        ("crlf and tab", "a\r\nb\tc\rd\ne".to_owned()),
        (
            "control characters",
            "a\u{0}b\u{7}c\u{1b}[31md\u{7f}e\u{85}f".to_owned(),
        ),
        ("unicode separators", "a\u{2028}b\u{2029}c".to_owned()),
        ("bidi override", "invoice\u{202e}fdp.exe\u{200b}".to_owned()),
        ("only whitespace", " \n\t\r ".to_owned()),
        ("10,000 characters", "A".repeat(10_000)),
        ("10,000 angle brackets", "<".repeat(10_000)),
    ]
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// Counts, per Markdown-special character, the occurrences that are *not* backslash-escaped.
fn unescaped_markdown_specials(text: &str) -> std::collections::BTreeMap<char, usize> {
    let mut counts = std::collections::BTreeMap::new();
    let mut escaped = false;
    let mut chars = text.chars().peekable();
    while let Some(ch) = chars.next() {
        if escaped {
            escaped = false;
            continue;
        }
        if ch == '\\' {
            escaped = true;
            continue;
        }
        // Only what is syntax wherever it stands (see `escape::markdown`): `(`, `#`, `.`, `-`, …
        // open nothing inside a line, a block marker at a line start is caught by the line count
        // and the heading check, and `<`/`&` are syntax only before a tag or entity name.
        let next = chars.peek().copied();
        let syntax = match ch {
            '`' | '*' | '[' | ']' | '|' | '~' | '$' => true,
            '<' => next.is_some_and(|n| n.is_ascii_alphabetic() || "/!?".contains(n)),
            '&' => next.is_some_and(|n| n.is_ascii_alphanumeric() || n == '#'),
            _ => false,
        };
        if syntax {
            *counts.entry(ch).or_insert(0) += 1;
        }
    }
    counts
}

/// The text before `marker` (all of it when absent).
fn before<'a>(text: &'a str, marker: &str) -> &'a str {
    text.find(marker).map_or(text, |at| &text[..at])
}

/// Markdown without escape backslashes, to measure what a reader sees.
fn markdown_visible(line: &str) -> String {
    let mut out = String::new();
    let mut escaped = false;
    for ch in line.chars() {
        if ch == '\\' && !escaped {
            escaped = true;
            continue;
        }
        escaped = false;
        out.push(ch);
    }
    out
}

/// HTML with the renderer's entities turned back into one character each and tags removed.
fn html_visible(line: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for ch in line.chars() {
        match ch {
            '<' => in_tag = true,
            '>' => in_tag = false,
            ch if !in_tag => text.push(ch),
            _ => {}
        }
    }
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Every tag of the page, `<` to `>`.
fn html_tags(page: &str) -> Vec<&str> {
    let mut tags = Vec::new();
    let mut rest = page;
    while let Some(start) = rest.find('<') {
        let end = rest[start..]
            .find('>')
            .map_or(rest.len(), |end| start + end + 1);
        tags.push(&rest[start..end]);
        rest = &rest[end..];
    }
    tags
}

/// The longest a line holding `values` outside values (plus our own words) may be.
fn line_budget(values: usize) -> usize {
    values * super::escape::VALUE_CAP + 120
}

// ---------------------------------------------------------------------------------------------
// 1. Layout

#[test]
fn markdown_of_one_threat_matches_the_golden_text() {
    let rendered = markdown(&one_threat_report());
    assert_eq!(
        rendered, ONE_THREAT_MARKDOWN,
        "rendered:\n{rendered}\n---\nexpected:\n{ONE_THREAT_MARKDOWN}"
    );
}

#[test]
fn summary_line_is_singular_for_one_and_plural_otherwise() {
    let mut report = one_threat_report();
    for (suspicious, expected) in [
        (0, "Summary: Found 0 suspicious IP addresses.\n"),
        (1, "Summary: Found 1 suspicious IP address.\n"),
        (2, "Summary: Found 2 suspicious IP addresses.\n"),
    ] {
        report.suspicious_count = suspicious;
        report.total_count = suspicious;
        assert!(markdown(&report).contains(expected), "{suspicious}");
        let page = html(&report);
        assert!(page.contains(expected.trim_end()), "{suspicious}");
    }
}

#[test]
fn addresses_below_the_suspicious_level_are_counted() {
    let mut report = one_threat_report();
    report.total_count = 2;
    assert!(markdown(&report)
        .contains("\n\n1 more address was seen with weaker or no evidence (below suspicious).\n"));
    report.total_count = 5;
    let md = markdown(&report);
    assert!(md.contains("4 more addresses were seen with weaker or no evidence"));
    assert!(html(&report).contains("4 more addresses were seen with weaker or no evidence"));
    report.total_count = 1;
    assert!(!markdown(&report).contains("below that level"));
}

#[test]
fn missing_values_are_written_as_not_available() {
    let mut report = one_threat_report();
    let threat = &mut report.threats[0];
    threat.source_ip = None;
    threat.virustotal = None;
    threat.asn = None;
    threat.country = None;
    threat.seen_in.vendor = None;
    threat.seen_in.peer_ip = None;
    let md = markdown(&report);
    for row in [
        "| Source IP | N/A |",
        "| Cisco Talos Reputation | N/A |",
        "| Cisco Talos Owner | N/A |",
        "| VirusTotal Stats | N/A |",
        "| ASN | N/A |",
        "| Organization | N/A |",
        "| Country | N/A |",
        "| RIR | N/A |",
        "- Seen in: format cisco_asa, vendor N/A, product ASA",
        "- Rule: N/A",
        "- Peer: N/A",
    ] {
        assert!(md.contains(&format!("{row}\n")), "missing {row:?} in\n{md}");
    }
    let page = html(&report);
    for row in [
        "Source IP",
        "VirusTotal Stats",
        "ASN",
        "Country",
        "Vendor",
        "Peer",
    ] {
        let cell = format!("<tr><th scope=\"row\">{row}</th><td>N/A</td></tr>");
        assert!(page.contains(&cell), "missing {cell:?}");
    }
}

#[test]
fn empty_sections_say_so_plainly() {
    let mut report = one_threat_report();
    report.threats[0].critical = false;
    report.immediate_actions.clear();
    report.follow_up_actions.clear();
    report.data_gaps.clear();
    let md = markdown(&report);
    assert!(md.contains("## Critical Threats\n\nNo address reached high or critical severity.\n"));
    assert!(md.contains("## Immediate Actions\n\nNo immediate actions"));
    assert!(md.contains("## Follow-up Actions\n\nNo follow-up actions.\n"));
    assert!(md.ends_with("## Data Gaps\n\nEvery provider that was queried answered.\n"));
    let page = html(&report);
    assert!(page.contains("<p>No address reached high or critical severity.</p>"));
    assert!(page.contains("<p>Every provider that was queried answered.</p>"));
}

#[test]
fn actions_name_their_kind_as_a_word() {
    let mut report = one_threat_report();
    report.follow_up_actions = vec![
        Action {
            kind: ActionKind::Investigate,
            ip: "198.51.100.9".to_owned(),
            text: "Look at the proxy logs".to_owned(),
        },
        Action {
            kind: ActionKind::Monitor,
            ip: "192.0.2.1".to_owned(),
            text: "Keep watching".to_owned(),
        },
    ];
    let md = markdown(&report);
    assert!(md.contains(
        "## Follow-up Actions\n\n- Investigate 198.51.100.9: Look at the proxy logs\n\
         - Monitor 192.0.2.1: Keep watching\n"
    ));
    let page = html(&report);
    assert!(
        page.contains("<li><strong>Investigate</strong> 198.51.100.9: Look at the proxy logs</li>")
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Hostile input

#[test]
fn hostile_values_stay_plain_text_in_markdown() {
    let benign = markdown(&report_with_every_string("benign"));
    let benign_body = before(&benign, "## Narrative");
    for (name, value) in hostile_cases() {
        let md = markdown(&report_with_every_string(&value));
        let body = before(&md, "## Narrative");
        assert_ne!(body.len(), md.len(), "{name}: narrative section missing");

        // Nothing became structure: the same lines, and the same unescaped syntax characters,
        // as a report whose values are one harmless word.
        assert_eq!(
            body.lines().count(),
            benign_body.lines().count(),
            "{name}: a value added lines\n{md}"
        );
        assert_eq!(
            unescaped_markdown_specials(&md),
            unescaped_markdown_specials(&benign),
            "{name}: a value added Markdown syntax\n{md}"
        );
        assert_eq!(
            md.matches("](").count(),
            md.matches("\\](").count(),
            "{name}: link survived\n{md}"
        );
        assert_eq!(
            md.matches("://").count(),
            md.matches("\\://").count(),
            "{name}: bare URL survived\n{md}"
        );
        let specials = unescaped_markdown_specials(&md);
        for ch in ['<', '>', '`', '[', ']', '!', '~', '*', '_', '&', '$'] {
            assert_eq!(specials.get(&ch), None, "{name}: unescaped {ch:?}\n{md}");
        }
        let our_headings = [
            "# Threat Report",
            "# Actionable Intelligence Report",
            "## Executive Summary",
            "## Critical Threats",
            "## Immediate Actions",
            "## Follow-up Actions",
            "## Data Gaps",
            "## Narrative (written by a language model: ",
            "### Threat #",
        ];
        for line in md.lines().filter(|line| line.starts_with('#')) {
            assert!(
                our_headings.iter().any(|ours| line.starts_with(ours)),
                "{name}: injected heading {line:?}"
            );
        }

        // No control characters (tabs, CR, ESC, NUL …) and no invisible formatting.
        assert!(
            !md.chars()
                .any(|ch| (ch.is_control() && ch != '\n') || ch == '\u{202e}' || ch == '\u{2028}'),
            "{name}: control character survived"
        );

        // Caps: a line holds at most its values' caps; the narrative at most its own cap.
        let narrative_at = body.lines().count();
        let summary_at = md
            .lines()
            .position(|line| line == "## Executive Summary")
            .map(|heading| heading + 2);
        for (index, line) in md.lines().enumerate() {
            let visible = markdown_visible(line).chars().count();
            let budget = if index > narrative_at {
                super::escape::NARRATIVE_CAP
            } else if Some(index) == summary_at {
                super::escape::PROSE_CAP
            } else {
                // The longest line holds three values (`Seen in`).
                line_budget(3)
            };
            assert!(
                visible <= budget,
                "{name}: line {index} has {visible} characters"
            );
        }
    }
}

#[test]
fn hostile_values_stay_plain_text_in_html() {
    let benign = html(&report_with_every_string("benign"));
    let benign_body = before(&benign, "<section class=\"narrative\">");
    for (name, value) in hostile_cases() {
        let page = html(&report_with_every_string(&value));
        let body = before(&page, "<section class=\"narrative\">");
        assert_ne!(body.len(), page.len(), "{name}: narrative section missing");

        assert_eq!(
            body.lines().count(),
            benign_body.lines().count(),
            "{name}: a value added lines"
        );
        // Every `<`, `>`, `"` and `'` of the page is ours: no tag or attribute was injected.
        for ch in ['<', '>', '"', '\''] {
            assert_eq!(
                body.matches(ch).count(),
                benign_body.matches(ch).count(),
                "{name}: a value added {ch:?}"
            );
        }
        // The narrative may have more paragraphs than the benign one, and nothing else.
        for tag in html_tags(&page[body.len()..]) {
            assert!(
                [
                    "<section class=\"narrative\">",
                    "</section>",
                    "<h2>",
                    "</h2>",
                    "<p>",
                    "</p>",
                    "</body>",
                    "</html>"
                ]
                .contains(&tag),
                "{name}: tag {tag:?} in the narrative"
            );
        }
        for raw in ["<script", "<img", "<a ", "<http"] {
            assert!(
                !page.to_ascii_lowercase().contains(raw),
                "{name}: {raw} survived"
            );
        }
        assert!(
            !page
                .chars()
                .any(|ch| (ch.is_control() && ch != '\n') || ch == '\u{202e}'),
            "{name}: control character survived"
        );
        let narrative_at = body.lines().count();
        let summary_at = page
            .lines()
            .position(|line| line == "<h2>Executive Summary</h2>")
            .map(|heading| heading + 1);
        for (index, line) in page.lines().enumerate() {
            let visible = html_visible(line).chars().count();
            let budget = if index >= narrative_at {
                super::escape::NARRATIVE_CAP
            } else if Some(index) == summary_at {
                super::escape::PROSE_CAP
            } else {
                // The longest line holds two values (an evidence row, an action).
                line_budget(2)
            };
            assert!(
                visible <= budget,
                "{name}: line {index} has {visible} characters"
            );
        }
    }
}

#[test]
fn a_long_value_is_capped_at_300_characters_ending_in_an_ellipsis() {
    let long = "A".repeat(10_000);
    let report = report_with_every_string(&long);
    let kept = format!("{}…", "A".repeat(299));
    let too_much = "A".repeat(300);
    let md = markdown(&report);
    assert!(md.contains(&format!("| Indicator | {kept} |\n")));
    assert!(md.contains(&format!("### Threat #1 - {kept}\n")));
    assert!(!before(&md, "## Executive Summary").contains(&too_much));
    let page = html(&report);
    assert!(page.contains(&format!(
        "<tr><th scope=\"row\">Indicator</th><td>{kept}</td></tr>"
    )));
    // Only the executive summary and the narrative have larger caps.
    let summary = format!("{}…", "A".repeat(super::escape::PROSE_CAP - 1));
    assert!(md.contains(&format!("\n{summary}\n")));
    let narrative = format!("{}…", "A".repeat(super::escape::NARRATIVE_CAP - 1));
    assert!(md.ends_with(&format!("\n{narrative}\n")));
    assert!(!md.contains(&"A".repeat(super::escape::NARRATIVE_CAP)));
    assert!(md.len() < 40_000, "{} bytes", md.len());

    let brackets = report_with_every_string(&"<".repeat(10_000));
    let page = html(&brackets);
    let kept = format!("{}…", "&lt;".repeat(299));
    assert!(page.contains(&format!("<td>{kept}</td>")));
    assert!(!page.contains(&format!("<td>{}", "&lt;".repeat(300))));
}

#[test]
fn markdown_escapes_the_classic_injections_exactly() {
    for (value, escaped) in [
        ("[x](http://evil)", r"\[x\](http\://evil)"),
        (
            "<img src=x onerror=alert(1)>",
            r"\<img src=x onerror=alert(1)>",
        ),
        // Inside a table cell `#` opens no heading.
        ("# heading", "# heading"),
        (
            "Malicious (score 70): listed.",
            "Malicious (score 70): listed.",
        ),
        ("a | b", r"a \| b"),
        ("`tick`", r"\`tick\`"),
        ("line\r\nbreak\tand tab", "line break and tab"),
    ] {
        let mut report = one_threat_report();
        report.threats[0].indicator = value.to_owned();
        let md = markdown(&report);
        assert!(
            md.contains(&format!("| Indicator | {escaped} |\n")),
            "{value:?}:\n{md}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Self-contained HTML

#[test]
fn html_is_one_self_contained_page() {
    for (name, value) in hostile_cases()
        .into_iter()
        .chain([("plain", "plain".to_owned())])
    {
        let page = html(&report_with_every_string(&value));
        assert!(page.starts_with("<!DOCTYPE html>\n"), "{name}");
        assert!(page.contains("<meta charset=\"utf-8\">"), "{name}");
        assert!(page.contains("default-src 'none'"), "{name}: no CSP");
        assert_eq!(page.matches("<style").count(), 1, "{name}: one <style>");
        assert_eq!(page.matches("</style>").count(), 1, "{name}");
        for tag in html_tags(&page) {
            let tag = tag.to_ascii_lowercase();
            for forbidden in [
                "src=", "href=", "http:", "https:", "url(", "<script", "<link", "<img", "<iframe",
                "<object", "<embed",
            ] {
                assert!(
                    !tag.contains(forbidden),
                    "{name}: tag {tag:?} has {forbidden}"
                );
            }
        }
        let style = page
            .split("<style>")
            .nth(1)
            .and_then(|rest| rest.split("</style>").next())
            .unwrap_or_default();
        for forbidden in ["url(", "@import", "http", "@font-face"] {
            assert!(!style.contains(forbidden), "style has {forbidden}");
        }
        assert!(page.ends_with("</body>\n</html>\n"), "{name}");
    }
}

#[test]
fn html_uses_tables_for_the_threat_fields() {
    let page = html(&one_threat_report());
    assert!(page.contains(
        "<h3>Threat #1 - 203.0.113.7</h3>\n<table>\n\
         <tr><th scope=\"row\">Indicator</th><td>Listed on local-blocklist</td></tr>\n"
    ));
    assert!(page.contains(
        "<tr><th scope=\"row\">Severity</th><td>High (score 75/100, priority P2 (act today))</td></tr>"
    ));
    assert!(page.contains(
        "<tr><th scope=\"row\">VirusTotal Stats</th><td>malicious 7, suspicious 4, undetected 26, harmless 58, timeout 0</td></tr>"
    ));
    assert!(page.contains("<tr><td>feeds</td><td>listed on local-blocklist</td><td>40</td></tr>"));
    assert!(page.contains(
        "<li>VirusTotal: 401 Unauthorized - check the configured API key (affects 1 record)</li>"
    ));
}

// ---------------------------------------------------------------------------------------------
// 4. JSON

#[test]
fn json_parses_back_with_the_schema_tag_and_every_field() {
    for report in [
        one_threat_report(),
        report_with_every_string("<script>\"x\" & 'y'\u{2028}\n</script>"),
        report_with_every_string(&"é".repeat(10_000)),
    ] {
        let text = json(&report);
        assert!(text.ends_with("}\n"));
        assert!(!text.contains('<') && !text.contains('>') && !text.contains('&'));
        let parsed: serde_json::Value = match serde_json::from_str(&text) {
            Ok(parsed) => parsed,
            Err(error) => panic!("not JSON: {error}\n{text}"),
        };
        assert_eq!(parsed["schema"], REPORT_SCHEMA);
        let mut fields = parsed.clone();
        if let Some(object) = fields.as_object_mut() {
            object.remove("schema");
        }
        let expected = serde_json::to_value(&report).unwrap_or_default();
        assert_eq!(fields, expected, "JSON is lossless");
    }
}

#[test]
fn json_keeps_the_struct_field_order_after_the_schema() {
    let text = json(&one_threat_report());
    let order = [
        "\"schema\"",
        "\"date\"",
        "\"subject\"",
        "\"suspicious_count\"",
        "\"total_count\"",
        "\"executive_summary\"",
        "\"threats\"",
        "\"immediate_actions\"",
        "\"follow_up_actions\"",
        "\"data_gaps\"",
        "\"narrative\"",
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|key| text.find(key).unwrap_or(usize::MAX))
        .collect();
    assert!(positions.windows(2).all(|pair| pair[0] < pair[1]), "{text}");
    assert!(
        text.starts_with("{\n  \"schema\": \"threatsift.report/1\",\n  \"date\": \"2026-11-03\",")
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Golden bytes

/// Fixed expected output for [`report_with_every_string`] with a hostile value: a renderer
/// that depends on anything but the report (hash order, time, locale) or that changes its
/// escaping no longer matches. Reviewed by hand; a deliberate layout change updates them.
const EVERY_STRING_MARKDOWN: &str = include_str!("golden/every_string.md");
const EVERY_STRING_HTML: &str = include_str!("golden/every_string.html");
const EVERY_STRING_JSON: &str = include_str!("golden/every_string.json");

#[test]
fn every_format_renders_the_fixed_golden_bytes() {
    let report = report_with_every_string("x\u{202e}<b>|`[y](z)");
    for (format, rendered, expected) in [
        ("markdown", markdown(&report), EVERY_STRING_MARKDOWN),
        ("html", html(&report), EVERY_STRING_HTML),
        ("json", json(&report), EVERY_STRING_JSON),
    ] {
        // `UPDATE_GOLDEN=1 cargo test --lib golden` rewrites the files after a deliberate change;
        // review their diff before committing.
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            let ext = [("markdown", "md"), ("html", "html"), ("json", "json")]
                .iter()
                .find(|(name, _)| *name == format)
                .map(|(_, ext)| *ext)
                .unwrap();
            let path = format!(
                "{}/src/report/render/golden/every_string.{ext}",
                env!("CARGO_MANIFEST_DIR")
            );
            std::fs::write(path, &rendered).unwrap();
            continue;
        }
        assert!(
            rendered == expected,
            "{format} differs from golden/every_string.*:\n{rendered}\n---\nexpected:\n{expected}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Narrative

#[test]
fn narrative_appears_only_when_set_labelled_and_after_the_data_gaps() {
    let without = one_threat_report();
    assert!(!markdown(&without).contains("Narrative"));
    assert!(!html(&without).contains("Narrative"));
    assert!(!html(&without).contains("<section class=\"narrative\">"));

    let mut with = one_threat_report();
    with.narrative = Some(Narrative {
        model: "test-model".to_owned(),
        text: "First paragraph.\n\n# Not a heading\n[x](http://evil)".to_owned(),
    });
    let md = markdown(&with);
    let heading = "## Narrative (written by a language model: test-model; not verified)";
    let tail =
        format!("\n\n{heading}\n\nFirst paragraph.\n\n\\# Not a heading \\[x\\](http\\://evil)\n");
    assert!(md.ends_with(&tail), "{md}");
    // The deterministic sections are all still there, before it.
    assert!(md.starts_with(before(ONE_THREAT_MARKDOWN, "\n## Data Gaps")));
    let gaps = md.find("## Data Gaps").unwrap_or(usize::MAX);
    let gap_line = md.find("(affects 1 record)").unwrap_or(usize::MAX);
    let narrative = md.find(heading).unwrap_or(0);
    assert!(gaps < gap_line && gap_line < narrative);

    let page = html(&with);
    let heading = "<h2>Narrative (written by a language model: test-model; not verified)</h2>";
    let gaps = page.find("<h2>Data Gaps</h2>").unwrap_or(usize::MAX);
    let narrative = page.find(heading).unwrap_or(0);
    assert!(gaps < narrative, "{page}");
    assert!(page.contains("<p>First paragraph.</p>\n<p># Not a heading [x](http://evil)</p>"));
    assert_eq!(markdown(&without), before(&md, "\n## Narrative"));
}
