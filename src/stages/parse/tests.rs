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
