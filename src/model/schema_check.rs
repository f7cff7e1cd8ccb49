//! The record schema for the unit tests in `src` (the integration tests use
//! `tests/common::valid_record`): every threat record a unit test reads from a stage's output
//! is checked against `schema/threat-record.schema.json` here first.

use std::sync::OnceLock;

/// The published payload `payload` as JSON, after checking it against the record schema;
/// panics with every schema error.
pub(crate) fn valid_record_payload(payload: &[u8]) -> serde_json::Value {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    let validator = VALIDATOR.get_or_init(|| {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../schema/threat-record.schema.json"))
                .expect("schema JSON");
        jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .expect("schema compiles")
    });
    let record: serde_json::Value = serde_json::from_slice(payload).expect("record is JSON");
    let errors: Vec<String> = validator
        .iter_errors(&record)
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "record fails the schema: {errors:?}\n{record}"
    );
    record
}
