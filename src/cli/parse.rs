//! `threatsift parse`: raw events in, one JSON object per input line out, in the same order.
//!
//! * In: lines (stdin or a file), each one raw event; `--format NAME` skips detection.
//! * Out per line: `{"line", "format", "source_ip", "destination_ip", "ips": [{ip, role}],
//!   "observer", "vendor", "product", "action", "rule"}`; `"events": N` when the line held a
//!   batch of N ≠ 1 events (addresses are then the union) and `"errors"` for its unreadable
//!   items; `"fallback_from"` and `"fallback_error"` when the format that claimed the line
//!   rejected it and the IP scanner read it instead; or `{"line", "error", "reason"}`.
//! * Never stops on a bad line; the lines of one run share one stream, so W3C/Zeek header
//!   directives apply to the lines after them.

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::ExitCode;

use serde_json::{json, Map, Value};

use crate::model::{Event, IpObservation, Role};
use crate::stages::extract::{extract_ip_observations, parse_ip_token};
use crate::stages::parse::{FormatRegistry, ParseError, StreamId};

/// Counts of one run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ParseSummary {
    /// Lines read.
    pub lines: u64,
    /// Lines that produced an error object.
    pub errors: u64,
}

/// Reads `input` to the end, writing one object per line to `out`.
pub fn run_parse(
    registry: &FormatRegistry,
    format: Option<&str>,
    input: impl BufRead,
    mut out: impl Write,
) -> std::io::Result<ParseSummary> {
    let mut summary = ParseSummary::default();
    for line in input.split(b'\n') {
        let bytes = line?;
        summary.lines += 1;
        let value = describe_line(registry, format, &bytes, summary.lines);
        if value.get("error").is_some() {
            summary.errors += 1;
        }
        serde_json::to_writer(&mut out, &value)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(summary)
}

/// The output object for one raw line (1-based `number`).
pub fn describe_line(
    registry: &FormatRegistry,
    format: Option<&str>,
    bytes: &[u8],
    number: u64,
) -> Value {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            return error_object(
                number,
                &ParseError::InvalidUtf8 {
                    at: e.valid_up_to(),
                },
            )
        }
    };
    let stream = StreamId::default();
    let parsed = match format {
        Some(name) => registry
            .parse_line_as(text, name, stream)
            .unwrap_or(Err(ParseError::Unrecognized)),
        None => registry.parse_line(text, stream),
    };
    match parsed {
        Err(error) => error_object(number, &error),
        Ok(parsed) => {
            let mut ips = Vec::new();
            for event in &parsed.events {
                extract_ip_observations(event, &mut ips);
            }
            let mut object = Map::new();
            object.insert("line".into(), json!(number));
            object.insert("format".into(), json!(parsed.format));
            object.insert(
                "source_ip".into(),
                json!(first(&ips, &[Role::Source, Role::Client])),
            );
            object.insert(
                "destination_ip".into(),
                json!(first(&ips, &[Role::Destination])),
            );
            object.insert(
                "ips".into(),
                ips.iter()
                    .map(|o| json!({"ip": o.ip.to_string(), "role": o.role}))
                    .collect(),
            );
            if let Some(event) = parsed.events.first() {
                describe_context(event, &mut object);
            }
            // A line its format rejected, read by the IP scanner: which format and why.
            if let Some(fallback) = parsed.fallbacks.first() {
                object.insert("fallback_from".into(), json!(fallback.from));
                object.insert("fallback_error".into(), json!(fallback.error.to_string()));
            }
            if parsed.events.len() != 1 {
                object.insert("events".into(), json!(parsed.events.len()));
            }
            if !parsed.errors.is_empty() {
                let errors: Vec<Value> = parsed
                    .errors
                    .iter()
                    .map(|e| json!({"item": e.index, "error": e.error.to_string(), "reason": e.error.kind()}))
                    .collect();
                object.insert("errors".into(), Value::Array(errors));
            }
            Value::Object(object)
        }
    }
}

fn first(ips: &[IpObservation], roles: &[Role]) -> Option<String> {
    roles.iter().find_map(|role| {
        ips.iter()
            .find(|o| o.role == *role)
            .map(|o| o.ip.to_string())
    })
}

fn describe_context(event: &Event<'_>, object: &mut Map<String, Value>) {
    if let Some(observer) = &event.observer {
        let shown =
            parse_ip_token(observer).map_or_else(|| observer.to_string(), |ip| ip.to_string());
        object.insert("observer".into(), json!(shown));
    }
    for (key, value) in [
        ("vendor", &event.vendor),
        ("product", &event.product),
        ("action", &event.action),
        ("rule", &event.rule),
        ("src_port", &event.src_port),
        ("dst_port", &event.dst_port),
        ("protocol", &event.protocol),
        ("direction", &event.direction),
    ] {
        if let Some(value) = value {
            object.insert(key.into(), json!(value));
        }
    }
}

fn error_object(number: u64, error: &ParseError) -> Value {
    json!({"line": number, "error": error.to_string(), "reason": error.kind()})
}

/// `threatsift parse`: one JSON object per input line on stdout.
pub fn parse_command(config: Option<&Path>, format: Option<&str>, file: Option<&Path>) -> ExitCode {
    let settings = match super::load_settings(config) {
        Ok(settings) => settings,
        Err(e) => return super::config_error(&e),
    };
    let registry = match crate::stages::parse::RegistryOptions::from_settings(&settings) {
        Ok(options) => crate::stages::parse::FormatRegistry::builtin(options),
        Err(e) => return super::config_error(&e),
    };
    if let Some(name) = format {
        if !registry.knows(name) {
            return super::config_error(&format!(
                "--format: unknown format {name:?}; known formats: {}",
                registry.names().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    let input: Box<dyn std::io::BufRead> = match file {
        Some(path) => match std::fs::File::open(path) {
            Ok(f) => Box::new(std::io::BufReader::new(f)),
            Err(e) => return super::config_error(&format!("cannot read {}: {e}", path.display())),
        },
        None => Box::new(std::io::stdin().lock()),
    };
    let stdout = std::io::stdout();
    let out = std::io::BufWriter::new(stdout.lock());
    match run_parse(&registry, format, input, out) {
        Ok(_) => ExitCode::SUCCESS,
        // A closed stdout (`| head`) ends the run quietly.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => super::fail(&e),
    }
}
