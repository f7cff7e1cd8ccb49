//! Tests of the registry: batch item errors, configured JSON fields and error kinds.

use super::*;

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
