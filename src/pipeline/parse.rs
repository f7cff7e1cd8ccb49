//! Parse: one line of text → [`Event`]. Pure and synchronous.
//!
//! * In: a line (already split from its Kafka message, UTF-8 checked).
//! * Out: an `Event` whose address tokens borrow from the line, or a [`ParseError`] whose
//!   `kind()` is the DLQ reason and the `parse_errors_total{kind}` label.
//! * Formats live in a [`FormatRegistry`]: each is a [`LogFormat`] with a cheap `detect` and a
//!   `parse`; the first format whose `detect` accepts the line parses it. Adding a vendor format
//!   is one new module and one line in [`FormatRegistry::builtin`].
//! * Built in: JSON (ECS fields, configured field paths, and shipper envelopes whose `message`
//!   holds the real line) and a generic `key=value` fallback.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::model::{Event, Role};

/// Why a line could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The message had no bytes (or only whitespace).
    #[error("empty message")]
    Empty,
    /// The bytes are not UTF-8.
    #[error("not valid UTF-8 (first bad byte at {at})")]
    InvalidUtf8 {
        /// Byte index of the first invalid sequence.
        at: usize,
    },
    /// The line is longer than `parse.max_line_bytes`.
    #[error("line of {len} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Length of the line.
        len: usize,
        /// Configured limit.
        limit: usize,
    },
    /// Looked like JSON, did not parse.
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// JSON, but not an object.
    #[error("JSON value is not an object")]
    NotAnObject,
    /// No format recognised the line.
    #[error("no known format: neither JSON nor key=value pairs")]
    Unrecognized,
    /// Processing the message failed inside threatsift (a bug); kept for analysis.
    #[error("internal error while processing this message")]
    Internal,
}

impl ParseError {
    /// Bounded label for metrics and the DLQ `reason`.
    pub fn kind(&self) -> &'static str {
        match self {
            ParseError::Empty => "empty",
            ParseError::InvalidUtf8 { .. } => "invalid_utf8",
            ParseError::TooLarge { .. } => "too_large",
            ParseError::InvalidJson(_) => "invalid_json",
            ParseError::NotAnObject => "not_an_object",
            ParseError::Unrecognized => "unrecognized_format",
            ParseError::Internal => "internal_error",
        }
    }
}

/// A log format the registry can detect and parse.
pub trait LogFormat: Send + Sync {
    /// Name used in `observed.format` and `events_parsed_total{format}`.
    fn name(&self) -> &'static str;
    /// Cheap test on the line; no allocation.
    fn detect(&self, line: &str) -> bool;
    /// Parses a line this format detected.
    fn parse<'a>(&self, line: &'a str) -> Result<Event<'a>, ParseError>;
}

/// Ordered formats: the first whose `detect` accepts a line parses it.
pub struct FormatRegistry {
    formats: Vec<Box<dyn LogFormat>>,
}

impl FormatRegistry {
    /// The built-in formats, in detection order. `json_ip_fields` are extra JSON paths.
    pub fn builtin(json_ip_fields: Vec<(String, Role)>) -> Self {
        let mut registry = FormatRegistry {
            formats: Vec::new(),
        };
        registry.register(JsonFormat::new(json_ip_fields));
        registry.register(KeyValueFormat);
        registry
    }

    /// Adds a format after the existing ones.
    pub fn register(&mut self, format: impl LogFormat + 'static) {
        self.formats.push(Box::new(format));
    }

    /// Names of the registered formats, in detection order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.formats.iter().map(|f| f.name())
    }

    /// Parses a line with the first format that detects it.
    pub fn parse_line<'a>(&self, line: &'a str) -> Result<Event<'a>, ParseError> {
        let line = line.trim_start_matches('\u{feff}').trim();
        if line.is_empty() {
            return Err(ParseError::Empty);
        }
        match self.formats.iter().find(|f| f.detect(line)) {
            Some(format) => format.parse(line),
            None => Err(ParseError::Unrecognized),
        }
    }
}

// ------------------------------------------------------------------------------------------
// JSON

/// ECS address fields and their roles. `host.ip` and `observer.ip` are the reporting device,
/// never a traffic endpoint, so they are not here.
const ECS_IP_FIELDS: [(&str, Role); 9] = [
    ("source.ip", Role::Source),
    ("destination.ip", Role::Destination),
    ("client.ip", Role::Client),
    ("server.ip", Role::Destination),
    ("source.nat.ip", Role::Nat),
    ("destination.nat.ip", Role::Nat),
    ("client.nat.ip", Role::Nat),
    ("network.forwarded_ip", Role::Forwarded),
    ("related.ip", Role::Unknown),
];

/// JSON objects: ECS fields, configured paths, and `message` envelopes.
pub struct JsonFormat {
    extra_fields: Vec<(String, Role)>,
    envelope_inner: KeyValueFormat,
}

impl JsonFormat {
    /// A JSON format that also reads `extra_fields` (dotted paths).
    pub fn new(extra_fields: Vec<(String, Role)>) -> Self {
        JsonFormat {
            extra_fields,
            envelope_inner: KeyValueFormat,
        }
    }
}

impl LogFormat for JsonFormat {
    fn name(&self) -> &'static str {
        "json"
    }

    fn detect(&self, line: &str) -> bool {
        line.starts_with('{')
    }

    fn parse<'a>(&self, line: &'a str) -> Result<Event<'a>, ParseError> {
        let value: Value =
            serde_json::from_str(line).map_err(|e| ParseError::InvalidJson(e.to_string()))?;
        let Value::Object(object) = value else {
            return Err(ParseError::NotAnObject);
        };
        let mut event = Event {
            format: "ecs_json",
            ..Event::default()
        };
        for (path, role) in ECS_IP_FIELDS {
            push_json_addresses(&object, path, role, &mut event.addresses);
        }
        if event.addresses.is_empty() {
            event.format = "json";
        }
        for (path, role) in &self.extra_fields {
            push_json_addresses(&object, path, *role, &mut event.addresses);
        }
        if event.addresses.is_empty() {
            // A shipper envelope (Filebeat, Logstash, Vector): the real line is in `message`.
            if let Some(Value::String(inner)) = lookup(&object, "message") {
                if self.envelope_inner.detect(inner) {
                    let inner_event = self.envelope_inner.parse(inner)?;
                    return Ok(into_owned(inner_event));
                }
            }
        }
        event.vendor = json_text(&object, "observer.vendor");
        event.product = json_text(&object, "observer.product");
        event.action = json_text(&object, "event.action");
        event.rule = json_text(&object, "rule.name");
        event.timestamp = json_text(&object, "@timestamp");
        Ok(event)
    }
}

/// Finds a dotted path, accepting nested objects, dotted keys, or a mix of both.
fn lookup<'v>(object: &'v Map<String, Value>, path: &str) -> Option<&'v Value> {
    if let Some(value) = object.get(path) {
        return Some(value);
    }
    let mut rest = path;
    while let Some(dot) = rest.find('.') {
        let consumed = path.len() - rest.len() + dot;
        if let Some(Value::Object(inner)) = object.get(&path[..consumed]) {
            if let Some(found) = lookup(inner, &path[consumed + 1..]) {
                return Some(found);
            }
        }
        rest = &rest[dot + 1..];
    }
    None
}

fn push_json_addresses<'a>(
    object: &Map<String, Value>,
    path: &str,
    role: Role,
    out: &mut Vec<(Role, Cow<'a, str>)>,
) {
    match lookup(object, path) {
        Some(Value::String(text)) => out.push((role, Cow::Owned(text.clone()))),
        Some(Value::Array(items)) => {
            for item in items {
                if let Value::String(text) = item {
                    out.push((role, Cow::Owned(text.clone())));
                }
            }
        }
        _ => {}
    }
}

fn json_text<'a>(object: &Map<String, Value>, path: &str) -> Option<Cow<'a, str>> {
    match lookup(object, path)? {
        Value::String(text) => Some(Cow::Owned(text.clone())),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        _ => None,
    }
}

fn into_owned(event: Event<'_>) -> Event<'static> {
    let own = |v: Option<Cow<'_, str>>| v.map(|c| Cow::Owned(c.into_owned()));
    Event {
        format: event.format,
        vendor: own(event.vendor),
        product: own(event.product),
        action: own(event.action),
        rule: own(event.rule),
        timestamp: own(event.timestamp),
        addresses: event
            .addresses
            .into_iter()
            .map(|(role, text)| (role, Cow::Owned(text.into_owned())))
            .collect(),
    }
}

// ------------------------------------------------------------------------------------------
// key=value

/// Generic `key=value` lines (values may be double-quoted). Keys are matched case-insensitively.
pub struct KeyValueFormat;

const KV_SOURCE: &[&str] = &[
    "src",
    "srcip",
    "src_ip",
    "source_ip",
    "sourceip",
    "source_address",
    "src_addr",
    "saddr",
    "srcaddr",
];
const KV_DESTINATION: &[&str] = &[
    "dst",
    "dstip",
    "dst_ip",
    "dest",
    "dest_ip",
    "destip",
    "destination_ip",
    "destinationip",
    "dst_addr",
    "daddr",
    "dstaddr",
];
const KV_CLIENT: &[&str] = &["client_ip", "clientip", "c-ip"];
const KV_NAT: &[&str] = &[
    "transip",
    "tranip",
    "nat_src_ip",
    "nat_dst_ip",
    "xlatesrc",
    "xlatedst",
];
const KV_FORWARDED: &[&str] = &["x_forwarded_for", "xff", "forwarded_for"];
const KV_ACTION: &[&str] = &["action", "act"];
const KV_RULE: &[&str] = &["rule", "rule_name", "policy", "policyname", "policyid"];
const KV_VENDOR: &[&str] = &["vendor"];
const KV_PRODUCT: &[&str] = &["product"];
const KV_TIME: &[&str] = &["timestamp", "eventtime"];

impl LogFormat for KeyValueFormat {
    fn name(&self) -> &'static str {
        "kv"
    }

    fn detect(&self, line: &str) -> bool {
        KvPairs::new(line).next().is_some()
    }

    fn parse<'a>(&self, line: &'a str) -> Result<Event<'a>, ParseError> {
        let mut event = Event {
            format: "kv",
            ..Event::default()
        };
        let mut pairs = 0usize;
        for (key, value) in KvPairs::new(line) {
            pairs += 1;
            let is = |names: &[&str]| names.iter().any(|n| n.eq_ignore_ascii_case(key));
            let role = if is(KV_SOURCE) {
                Some(Role::Source)
            } else if is(KV_DESTINATION) {
                Some(Role::Destination)
            } else if is(KV_CLIENT) {
                Some(Role::Client)
            } else if is(KV_NAT) {
                Some(Role::Nat)
            } else if is(KV_FORWARDED) {
                Some(Role::Forwarded)
            } else {
                None
            };
            if let Some(role) = role {
                // XFF may list several hops: the first is the original client.
                let first = if role == Role::Forwarded {
                    value.split(',').next().unwrap_or(value).trim()
                } else {
                    value
                };
                event.addresses.push((role, Cow::Borrowed(first)));
            } else if is(KV_ACTION) {
                event.action.get_or_insert(Cow::Borrowed(value));
            } else if is(KV_RULE) {
                event.rule.get_or_insert(Cow::Borrowed(value));
            } else if is(KV_VENDOR) {
                event.vendor.get_or_insert(Cow::Borrowed(value));
            } else if is(KV_PRODUCT) {
                event.product.get_or_insert(Cow::Borrowed(value));
            } else if is(KV_TIME) {
                event.timestamp.get_or_insert(Cow::Borrowed(value));
            }
        }
        if pairs == 0 {
            return Err(ParseError::Unrecognized);
        }
        Ok(event)
    }
}

/// Iterator over `key=value` pairs. Keys are `[A-Za-z0-9_.-]+` right before `=`; a value is a
/// double-quoted string (quotes removed, escapes left as written) or runs to the next space.
struct KvPairs<'a> {
    rest: &'a str,
}

impl<'a> KvPairs<'a> {
    fn new(line: &'a str) -> Self {
        KvPairs { rest: line }
    }
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

impl<'a> Iterator for KvPairs<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let eq = memchr::memchr(b'=', self.rest.as_bytes())?;
            let bytes = self.rest.as_bytes();
            let key_start = bytes[..eq]
                .iter()
                .rposition(|&b| !is_key_byte(b))
                .map_or(0, |i| i + 1);
            let key = &self.rest[key_start..eq];
            let after = &self.rest[eq + 1..];
            let (value, rest) = if let Some(quoted) = after.strip_prefix('"') {
                let end = find_closing_quote(quoted).unwrap_or(quoted.len());
                (&quoted[..end], quoted.get(end + 1..).unwrap_or(""))
            } else {
                let end = after.find([' ', '\t']).unwrap_or(after.len());
                (&after[..end], &after[end..])
            };
            self.rest = rest;
            if !key.is_empty() {
                return Some((key, value));
            }
        }
    }
}

fn find_closing_quote(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> FormatRegistry {
        FormatRegistry::builtin(vec![("data.attacker".into(), Role::Source)])
    }

    fn addrs(event: &Event<'_>) -> Vec<(Role, String)> {
        event
            .addresses
            .iter()
            .map(|(r, t)| (*r, t.to_string()))
            .collect()
    }

    #[test]
    fn ecs_nested_dotted_and_mixed_keys() {
        let r = registry();
        let nested = r
            .parse_line(r#"{"source":{"ip":"192.0.2.10","nat":{"ip":"203.0.113.5"}},"destination":{"ip":"198.51.100.20"},"observer":{"ip":["192.0.2.1"],"vendor":"V"},"event":{"action":"deny"}}"#)
            .unwrap();
        assert_eq!(nested.format, "ecs_json");
        assert_eq!(
            addrs(&nested),
            vec![
                (Role::Source, "192.0.2.10".into()),
                (Role::Destination, "198.51.100.20".into()),
                (Role::Nat, "203.0.113.5".into()),
            ]
        );
        assert_eq!(nested.action.as_deref(), Some("deny"));
        assert_eq!(nested.vendor.as_deref(), Some("V"));
        let dotted = r.parse_line(r#"{"source.ip":"192.0.2.10","client":{"ip":"2001:db8::1"}}"#);
        assert_eq!(
            addrs(&dotted.unwrap()),
            vec![
                (Role::Source, "192.0.2.10".into()),
                (Role::Client, "2001:db8::1".into())
            ]
        );
        let mixed = r.parse_line(
            r#"{"related":{"ip":["192.0.2.1","192.0.2.2"]},"network.forwarded_ip":"203.0.113.9"}"#,
        );
        assert_eq!(
            addrs(&mixed.unwrap()),
            vec![
                (Role::Forwarded, "203.0.113.9".into()),
                (Role::Unknown, "192.0.2.1".into()),
                (Role::Unknown, "192.0.2.2".into()),
            ]
        );
    }

    #[test]
    fn configured_json_paths_are_read() {
        let event = registry()
            .parse_line(r#"{"data":{"attacker":"203.0.113.7"}}"#)
            .unwrap();
        assert_eq!(event.format, "json");
        assert_eq!(addrs(&event), vec![(Role::Source, "203.0.113.7".into())]);
    }

    #[test]
    fn envelope_message_is_parsed_as_the_inner_line() {
        let event = registry()
            .parse_line(r#"{"@timestamp":"t","message":"srcip=203.0.113.7 dstip=10.0.0.1 action=\"deny\""}"#)
            .unwrap();
        assert_eq!(event.format, "kv");
        assert_eq!(
            addrs(&event),
            vec![
                (Role::Source, "203.0.113.7".into()),
                (Role::Destination, "10.0.0.1".into())
            ]
        );
        assert_eq!(event.action.as_deref(), Some("deny"));
    }

    #[test]
    fn key_value_quotes_case_and_roles() {
        let line = r#"date=2026-11-23 devname="fw 01" SRCIP=203.0.113.7 dst_ip="198.51.100.2" xff="192.0.2.44, 10.0.0.1" action=deny policyid=3"#;
        let event = registry().parse_line(line).unwrap();
        assert_eq!(
            addrs(&event),
            vec![
                (Role::Source, "203.0.113.7".into()),
                (Role::Destination, "198.51.100.2".into()),
                (Role::Forwarded, "192.0.2.44".into()),
            ]
        );
        assert_eq!(event.action.as_deref(), Some("deny"));
        assert_eq!(event.rule.as_deref(), Some("3"));
    }

    #[test]
    fn errors_have_kinds() {
        let r = registry();
        assert_eq!(r.parse_line("").unwrap_err().kind(), "empty");
        assert_eq!(r.parse_line(" \r").unwrap_err().kind(), "empty");
        assert_eq!(
            r.parse_line(r#"{"source":{"ip":"1"#).unwrap_err().kind(),
            "invalid_json"
        );
        assert_eq!(
            r.parse_line("kernel: hello world").unwrap_err().kind(),
            "unrecognized_format"
        );
        assert_eq!(
            r.parse_line("=== =").unwrap_err().kind(),
            "unrecognized_format"
        );
    }

    #[test]
    fn key_value_without_addresses_is_an_event() {
        let event = registry()
            .parse_line("type=event subtype=system msg=\"boot\"")
            .unwrap();
        assert!(event.addresses.is_empty());
    }

    #[test]
    fn kv_pairs_never_panic_on_odd_input() {
        for line in [
            "=",
            "a=",
            "=b",
            "a=\"unterminated",
            "a=\"x\\\"",
            "é=ü",
            "k=\"\"\"",
            "x==y",
        ] {
            let _ = KvPairs::new(line).count();
        }
    }
}
