//! Header directives remembered per stream: W3C/ELFF `#Fields:` (with `#Software:`), Zeek
//! `#separator` and `#fields`, and the AWS VPC flow log header line. Data lines that follow are
//! read by these field lists until the stream sends another.
//!
//! A stream is (topic, partition, key). At most [`MAX_STREAMS`] are remembered; past that the
//! table starts over, and lines fall back to each format's default field order.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::StreamId;

/// Streams remembered before the table is cleared.
pub(crate) const MAX_STREAMS: usize = 10_000;

/// Which directive a field list came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderKind {
    /// `#Fields:` (W3C extended, ELFF, IIS, Windows Firewall).
    W3c,
    /// Zeek `#fields`.
    Zeek,
    /// AWS VPC flow log header line (`version account-id interface-id …`).
    AwsVpc,
}

/// A field list and what came with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldsHeader {
    /// Directive kind.
    pub kind: HeaderKind,
    /// Field names in column order.
    pub names: Vec<String>,
    /// Column separator of the data lines.
    pub separator: u8,
    /// `#Software:` value seen before the field list (W3C).
    pub software: Option<String>,
}

impl FieldsHeader {
    /// Column index of `name` (case-insensitive).
    pub(crate) fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n.eq_ignore_ascii_case(name))
    }
}

#[derive(Debug, Default)]
struct StreamState {
    software: Option<String>,
    separator: Option<u8>,
    fields: Option<Arc<FieldsHeader>>,
}

/// Per-stream directive state.
#[derive(Debug, Default)]
pub(crate) struct StreamHeaders {
    active: AtomicBool,
    streams: Mutex<HashMap<u64, StreamState>>,
}

/// Field names of AWS VPC flow logs (versions 2–5); the first
/// [`VPC_DEFAULT_FIELD_COUNT`] are the default (v2) record, in order.
pub(crate) const VPC_FIELDS: &[&str] = &[
    "version",
    "account-id",
    "interface-id",
    "srcaddr",
    "dstaddr",
    "srcport",
    "dstport",
    "protocol",
    "packets",
    "bytes",
    "start",
    "end",
    "action",
    "log-status",
    "vpc-id",
    "subnet-id",
    "instance-id",
    "tcp-flags",
    "type",
    "pkt-srcaddr",
    "pkt-dstaddr",
    "region",
    "az-id",
    "sublocation-type",
    "sublocation-id",
    "pkt-src-aws-service",
    "pkt-dst-aws-service",
    "flow-direction",
    "traffic-path",
    "ecs-cluster-arn",
    "ecs-cluster-name",
    "ecs-container-instance-arn",
    "ecs-container-instance-id",
    "ecs-container-id",
    "ecs-second-container-id",
    "ecs-service-name",
    "ecs-task-definition-arn",
    "ecs-task-arn",
    "ecs-task-id",
    "reject-reason",
];

/// FNV-1a over (topic, partition, key): every line pays for this once a directive was seen, so
/// it must be cheaper than SipHash; streams are not attacker-chosen keys of a large table.
/// How many of [`VPC_FIELDS`] make the default (v2) record.
pub(crate) const VPC_DEFAULT_FIELD_COUNT: usize = 14;

fn stream_hash(stream: StreamId<'_>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    feed(stream.topic.as_bytes());
    feed(&stream.partition.to_le_bytes());
    match stream.key {
        Some(key) => {
            feed(&[1]);
            feed(key);
        }
        None => feed(&[0]),
    }
    hash
}

impl StreamHeaders {
    /// The stream's current field list.
    pub(crate) fn current(&self, stream: StreamId<'_>) -> Option<Arc<FieldsHeader>> {
        if !self.active.load(Ordering::Relaxed) {
            return None;
        }
        let streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        streams.get(&stream_hash(stream))?.fields.clone()
    }

    /// If `body` is a directive, remembers what it says and returns the name to count it under.
    pub(crate) fn directive(&self, body: &str, stream: StreamId<'_>) -> Option<&'static str> {
        if let Some(directive) = body.strip_prefix('#') {
            self.apply(directive, stream);
            return Some(super::DIRECTIVE);
        }
        // A VPC header is lowercase names only: a line with `=` (every kv line) is not one.
        if body.starts_with(|c: char| c.is_ascii_lowercase())
            && memchr::memchr(b'=', body.as_bytes()).is_none()
            && is_vpc_header(body)
        {
            let names = body.split_ascii_whitespace().map(str::to_owned).collect();
            self.update(stream, |state| {
                state.fields = Some(Arc::new(FieldsHeader {
                    kind: HeaderKind::AwsVpc,
                    names,
                    separator: b' ',
                    software: None,
                }));
            });
            return Some(super::DIRECTIVE);
        }
        None
    }

    fn apply(&self, directive: &str, stream: StreamId<'_>) {
        if let Some(value) = strip_prefix_ci(directive, "Software:") {
            let software = value.trim().to_owned();
            self.update(stream, |state| state.software = Some(software));
        } else if let Some(value) = strip_prefix_ci(directive, "Fields:") {
            let names = value.split_ascii_whitespace().map(str::to_owned).collect();
            self.update(stream, |state| {
                state.fields = Some(Arc::new(FieldsHeader {
                    kind: HeaderKind::W3c,
                    names,
                    separator: b' ',
                    software: state.software.clone(),
                }));
            });
        } else if let Some(value) = directive.strip_prefix("separator") {
            let separator = parse_separator(value.trim());
            self.update(stream, |state| state.separator = separator);
        } else if let Some(value) = directive.strip_prefix("fields") {
            self.update(stream, |state| {
                let separator = state.separator.unwrap_or(b'\t');
                let names = value
                    .split(separator as char)
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned)
                    .collect();
                state.fields = Some(Arc::new(FieldsHeader {
                    kind: HeaderKind::Zeek,
                    names,
                    separator,
                    software: None,
                }));
            });
        }
    }

    fn update(&self, stream: StreamId<'_>, change: impl FnOnce(&mut StreamState)) {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        if streams.len() >= MAX_STREAMS {
            streams.clear();
        }
        change(streams.entry(stream_hash(stream)).or_default());
        self.active.store(true, Ordering::Relaxed);
    }
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// `\x09`, `\t`, or a single literal character.
fn parse_separator(value: &str) -> Option<u8> {
    if let Some(hex) = value.strip_prefix("\\x") {
        return u8::from_str_radix(hex, 16).ok();
    }
    match value {
        "\\t" => Some(b'\t'),
        _ if value.len() == 1 => Some(value.as_bytes()[0]),
        _ => None,
    }
}

fn is_vpc_header(body: &str) -> bool {
    let mut count = 0;
    let mut has_src = false;
    for token in body.split_ascii_whitespace() {
        if !VPC_FIELDS.contains(&token) {
            return false;
        }
        has_src |= token == "srcaddr" || token == "pkt-srcaddr";
        count += 1;
    }
    count >= 3 && has_src
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(partition: i32) -> StreamId<'static> {
        StreamId {
            topic: "t",
            partition,
            key: None,
        }
    }

    #[test]
    fn w3c_fields_follow_software_per_stream() {
        let headers = StreamHeaders::default();
        assert!(headers.current(stream(0)).is_none());
        assert!(headers
            .directive("#Software: Microsoft Windows Firewall", stream(0))
            .is_some());
        headers.directive("#Fields: date time c-ip", stream(0));
        let fields = headers.current(stream(0)).unwrap();
        assert_eq!(fields.kind, HeaderKind::W3c);
        assert_eq!(fields.index("C-IP"), Some(2));
        assert_eq!(
            fields.software.as_deref(),
            Some("Microsoft Windows Firewall")
        );
        assert!(headers.current(stream(1)).is_none());
    }

    #[test]
    fn zeek_separator_and_vpc_header() {
        let headers = StreamHeaders::default();
        headers.directive("#separator \\x09", stream(0));
        headers.directive("#fields\tts\tuid\tid.orig_h", stream(0));
        let fields = headers.current(stream(0)).unwrap();
        assert_eq!(fields.kind, HeaderKind::Zeek);
        assert_eq!(fields.names, ["ts", "uid", "id.orig_h"]);
        assert_eq!(
            headers.directive("version account-id interface-id srcaddr dstaddr", stream(1)),
            Some("directive")
        );
        assert_eq!(headers.current(stream(1)).unwrap().kind, HeaderKind::AwsVpc);
        assert_eq!(headers.directive("srcip=1 dstip=2", stream(1)), None);
    }
}
