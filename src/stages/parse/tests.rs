//! Tests of the registry: batch item errors, configured JSON fields and error kinds.

use super::*;
use crate::settings::Settings;

fn parse(line: &str) -> Result<Parsed<'_>, ParseError> {
    FormatRegistry::builtin(RegistryOptions::default()).parse_line(line, StreamId::default())
}

#[test]
fn batch_items_that_are_not_objects_are_item_errors() {
    let parsed = parse(r#"["a", {"source.ip":"203.0.113.9"}, 3]"#).unwrap();
    assert_eq!(parsed.events.len(), 1);
    let errors: Vec<_> = parsed
        .errors
        .iter()
        .map(|e| (e.index, e.error.kind()))
        .collect();
    assert_eq!(errors, [(0, "not_an_object"), (2, "not_an_object")]);
    // Text that starts with `[` is not a batch.
    assert_eq!(
        parse("[UFW BLOCK] from 203.0.113.9]").unwrap().format,
        "ip_scan"
    );
}

#[test]
fn configured_json_fields_and_error_kinds() {
    let registry = FormatRegistry::builtin(RegistryOptions {
        json_ip_fields: vec![("data.attacker.addr".into(), Role::Source)],
        ..RegistryOptions::default()
    });
    let parsed = registry
        .parse_line(
            r#"{"data":{"attacker":{"addr":"203.0.113.7"}}}"#,
            StreamId::default(),
        )
        .unwrap();
    assert_eq!(parsed.format, "json");
    assert_eq!(
        parsed.events[0].addresses,
        [(Role::Source, Cow::Borrowed("203.0.113.7"))]
    );
    assert_eq!(parse("").unwrap_err().kind(), "empty");
    assert_eq!(parse("\u{feff} \r").unwrap_err().kind(), "empty");
    assert_eq!(parse("{\"a\":").unwrap_err().kind(), "invalid_json");
    assert_eq!(
        parse("kernel: hello world").unwrap_err().kind(),
        "unrecognized_format"
    );
}

#[test]
fn unknown_topic_format_names_the_key_and_the_known_formats() {
    // The whole check: the section, then the forced formats against the registry.
    let load = |toml: &str| {
        let settings = Settings::from_toml_overrides(toml)?;
        check_topic_formats(&settings.parse.topic_formats).map(|()| settings)
    };
    let err = load("[parse.topic_formats]\nfw = \"paloalto2\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("parse.topic_formats.fw"), "{err}");
    assert!(
        err.contains("paloalto2") && err.contains("cisco_asa"),
        "{err}"
    );
    load("[parse.topic_formats]\nfw = \"cisco_asa\"\n").unwrap();
}

#[test]
fn every_parse_error_kind_is_a_known_label() {
    let every = [
        ParseError::Empty,
        ParseError::InvalidUtf8 { at: 0 },
        ParseError::TooLarge { len: 2, limit: 1 },
        ParseError::InvalidGzip(String::new()),
        ParseError::InvalidJson(String::new()),
        ParseError::NotAnObject,
        ParseError::malformed("kv", ""),
        ParseError::Unrecognized,
        ParseError::Internal,
        ParseError::TooManyErrors { more: 1, limit: 1 },
    ];
    let kinds: Vec<_> = every.iter().map(ParseError::kind).collect();
    assert_eq!(kinds, ParseError::KINDS);
    assert_eq!(ParseError::Encode(String::new()).kind(), "internal_error");
}

// i12-fallback: a line the format that claimed it rejects, holding addresses, is read by the
// IP scanner; the rejection is kept beside the event.

/// A PAN-OS TRAFFIC record cut short after its addresses (paloalto needs the rule column).
const CUT_SHORT_PANOS: &str =
    "1,2024/03/01 12:00:12,012345678901,TRAFFIC,end,2816,2024/03/01 12:00:12,192.0.2.10,198.51.100.20";

fn fallbacks(parsed: &Parsed<'_>) -> Vec<(usize, &'static str, &'static str)> {
    parsed
        .fallbacks
        .iter()
        .map(|f| (f.event, f.from, f.error.kind()))
        .collect()
}

#[test]
fn a_rejected_line_with_addresses_is_scanned_and_keeps_the_rejection() {
    let line = format!("<14>Mar  1 12:00:12 PA-VM-01 {CUT_SHORT_PANOS}");
    let parsed = parse(&line).unwrap();
    assert_eq!(parsed.format, scan::NAME);
    assert_eq!(parsed.events.len(), 1);
    let event = &parsed.events[0];
    assert_eq!(
        event.addresses,
        [
            (Role::Unknown, Cow::Borrowed("192.0.2.10")),
            (Role::Unknown, Cow::Borrowed("198.51.100.20"))
        ]
    );
    // The syslog host is the device, not an address of the traffic.
    assert_eq!(event.observer.as_deref(), Some("PA-VM-01"));
    assert_eq!(fallbacks(&parsed), [(0, "paloalto", "malformed")]);
    let detail = parsed.fallbacks[0].error.to_string();
    assert!(detail.contains("TRAFFIC log with 9 fields"), "{detail}");

    // Without an address the rejection is the result, as before.
    let error = parse("1,2024/03/01 12:00:13,012345678901,TRAFFIC,end,2816,2024/03/01 12:00:13")
        .unwrap_err();
    assert_eq!(error.kind(), "malformed");
    // A line no format claims was scanned already: no fallback, no second scan.
    let parsed = parse("seen 203.0.113.8 today").unwrap();
    assert_eq!((parsed.format, parsed.fallbacks.len()), (scan::NAME, 0));
}

#[test]
fn forced_formats_fall_back_too_and_name_the_forced_format() {
    let registry = FormatRegistry::builtin(RegistryOptions::default());
    let stream = StreamId::default();
    let parsed = registry
        .parse_line_as(CUT_SHORT_PANOS, "paloalto", stream)
        .unwrap()
        .unwrap();
    assert_eq!(fallbacks(&parsed), [(0, "paloalto", "malformed")]);
    // A text line on a topic configured as a JSON format.
    let parsed = registry
        .parse_line_as("deny from 203.0.113.9", "suricata_eve", stream)
        .unwrap()
        .unwrap();
    assert_eq!(fallbacks(&parsed), [(0, "suricata_eve", "invalid_json")]);
    assert_eq!(
        parsed.events[0].addresses,
        [(Role::Source, Cow::Borrowed("203.0.113.9"))]
    );
    // `kv` forced on a line without pairs.
    let parsed = registry
        .parse_line_as("seen 203.0.113.8 today", "kv", stream)
        .unwrap()
        .unwrap();
    assert_eq!(fallbacks(&parsed), [(0, "kv", "unrecognized_format")]);
    // The scanner forced finds nothing: its own error, no fallback to itself.
    let error = registry
        .parse_line_as("kernel: hello world", "ip_scan", stream)
        .unwrap()
        .unwrap_err();
    assert_eq!(error.kind(), "unrecognized_format");
}

#[test]
fn fallbacks_inside_a_batch_point_at_their_own_event() {
    // The second message is escaped (`\u002c` is a comma), so its text is owned: its events
    // are moved into the batch's and the fallback's index must follow them.
    let escaped = CUT_SHORT_PANOS.replacen(',', "\\u002c", 1);
    let batch = format!(
        r#"{{"logEvents":[{{"message":"src=203.0.113.21 dst=198.51.100.21"}},{{"message":"{escaped}"}},{{"message":"1,2024/03/01 12:00:13,012345678901,TRAFFIC,end"}},{{"message":"{CUT_SHORT_PANOS}"}}]}}"#
    );
    let parsed = parse(&batch).unwrap();
    let formats: Vec<_> = parsed.events.iter().map(|e| e.format).collect();
    assert_eq!(formats, ["kv", scan::NAME, scan::NAME]);
    assert_eq!(
        fallbacks(&parsed),
        [(1, "paloalto", "malformed"), (2, "paloalto", "malformed")]
    );
    let errors: Vec<_> = parsed
        .errors
        .iter()
        .map(|e| (e.index, e.error.kind()))
        .collect();
    assert_eq!(errors, [(2, "malformed")]);
}
