//! Parse: one line of text → the [`Event`]s it holds. Pure and synchronous, apart from the
//! per-stream header directives it remembers (W3C `#Fields:`, Zeek `#fields`, VPC flow headers).
//!
//! * In: a line (already split from its Kafka message, UTF-8 checked) and the stream it came
//!   from (topic, partition, key).
//! * Out: [`Parsed`]: zero or more events whose text borrows from the line where it can (a
//!   cloud batch such as `{"records":[…]}` holds many; a header directive holds none), or a
//!   [`ParseError`] whose `kind()` is the DLQ reason and the `parse_errors_total{kind}` label.
//! * JSON: ECS fields are read first (one walk over the document); a document without ECS
//!   addresses goes to the first JSON vendor format whose `detect` accepts it, then to the
//!   configured `parse.json_ip_fields`, then to envelope unwrapping.
//! * Order of work: envelopes are unwrapped (shipper JSON `message`, Azure `records`,
//!   CloudWatch `logEvents`, Pub/Sub base64 `data`), syslog headers are stripped (repeatedly),
//!   then the format is picked: the topic's configured hint if there is one, else the first
//!   format in [`crate::stages::parse::formats`] whose cheap `detect` accepts the line. A generic `key=value`
//!   reader and a last-resort IP scanner come last.
//! * A line the picked format rejects (`malformed`, `invalid_json`, …) but that holds an address
//!   is read by the IP scanner instead, and the rejection is kept in [`Parsed::fallbacks`]
//!   (`parse_fallbacks_total{format,reason}`): no line holding an address is dead-lettered.
//! * The syslog HOSTNAME and a device's own address field become `Event::observer`, never an
//!   address to enrich.

pub(crate) mod fields;
pub(crate) mod formats;
pub(crate) mod headers;
pub(crate) mod json;
mod registry;
pub(crate) mod roles;
pub(crate) mod scan;
pub(crate) mod syslog;

pub use registry::FormatRegistry;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use crate::model::{Event, Role};
use crate::settings::{Settings, SettingsError};
use headers::FieldsHeader;
use json::JsonRef;
use syslog::SyslogHeader;

/// Envelopes nest at most this deep (a syslog line inside a shipper envelope inside a batch).
const MAX_ENVELOPE_DEPTH: usize = 3;

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
    /// A gzip payload that does not decompress, or decompresses to too much.
    #[error("gzip payload: {0}")]
    InvalidGzip(String),
    /// Looked like JSON, did not parse.
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// JSON, but not an object.
    #[error("JSON value is not an object")]
    NotAnObject,
    /// The format was recognised (or configured) but the line does not follow it.
    #[error("malformed {format} event: {detail}")]
    Malformed {
        /// The format that rejected the line.
        format: &'static str,
        /// What was wrong, e.g. "8 fields, the source address is field 7".
        detail: String,
    },
    /// No format recognised the line.
    #[error("no known format recognised the line and it holds no IP address")]
    Unrecognized,
    /// Processing the message failed inside threatsift (a bug); kept for analysis.
    #[error("internal error while processing this message")]
    Internal,
    /// A record made from this line could not be serialised (a bug); kept for analysis.
    #[error("internal error: {0}")]
    Encode(String),
    /// The message made more DLQ entries than `dlq.max_entries_per_message`: this one entry
    /// stands for the rest and carries the whole message.
    #[error(
        "{more} more lines or items of this message could not be processed (each is counted in \
         parse_errors_total); only the first {limit} have DLQ entries of their own, and this \
         entry carries the whole message"
    )]
    TooManyErrors {
        /// Errors without an entry of their own.
        more: u64,
        /// `dlq.max_entries_per_message`.
        limit: usize,
    },
}

impl ParseError {
    /// Every [`ParseError::kind`], for resolving metric children once.
    pub const KINDS: [&'static str; 10] = crate::model::PARSE_ERROR_KINDS;

    /// Bounded label for metrics and the DLQ `reason`.
    pub fn kind(&self) -> &'static str {
        match self {
            ParseError::Empty => "empty",
            ParseError::InvalidUtf8 { .. } => "invalid_utf8",
            ParseError::TooLarge { .. } => "too_large",
            ParseError::InvalidGzip(_) => "invalid_gzip",
            ParseError::InvalidJson(_) => "invalid_json",
            ParseError::NotAnObject => "not_an_object",
            ParseError::Malformed { .. } => "malformed",
            ParseError::Unrecognized => "unrecognized_format",
            ParseError::Internal | ParseError::Encode(_) => "internal_error",
            ParseError::TooManyErrors { .. } => "too_many_errors",
        }
    }

    /// A `Malformed` error.
    pub fn malformed(format: &'static str, detail: impl Into<String>) -> Self {
        ParseError::Malformed {
            format,
            detail: detail.into(),
        }
    }
}

/// A text line as a format sees it: whole, and with its syslog headers stripped.
#[derive(Debug, Clone)]
pub(crate) struct Line<'a> {
    /// The whole line, trimmed.
    pub text: &'a str,
    /// The message after every syslog header (and tag); `text` when there was none.
    pub body: &'a str,
    /// The innermost syslog header, if there was one.
    pub syslog: Option<SyslogHeader<'a>>,
    /// The stream's last field-list directive (`#Fields:`, `#fields`, VPC flow header).
    pub fields: Option<Arc<FieldsHeader>>,
}

impl<'a> Line<'a> {
    /// A line with no stream state, its headers stripped (for tests).
    #[cfg(test)]
    pub(crate) fn new(text: &'a str) -> Self {
        let (syslog, body) = syslog::strip_headers(text);
        Line {
            text,
            body,
            syslog,
            fields: None,
        }
    }

    /// The syslog tag or RFC 5424 APP-NAME.
    pub(crate) fn app(&self) -> Option<&'a str> {
        self.syslog.and_then(|h| h.app)
    }
}

/// A text log format: a cheap `detect` and a `parse`.
pub(crate) trait LogFormat: Send + Sync {
    /// Name used in `observed.format`, `events_parsed_total{format}` and `parse --format`.
    fn name(&self) -> &'static str;
    /// Cheap test on the line; no allocation. Detection order is [`crate::stages::parse::formats::text_formats`].
    fn detect(&self, line: &Line<'_>) -> bool;
    /// Parses a line (detected, or forced by a hint).
    fn parse<'a>(&self, line: &Line<'a>) -> Result<Event<'a>, ParseError>;
    /// Whether `detect`/`parse` read `Line::fields`. Formats that do are tried after every
    /// format that does not, so most lines never pay for the per-stream lookup.
    fn uses_stream_fields(&self) -> bool {
        false
    }
}

/// A JSON log format, tested on the parsed document.
pub(crate) trait JsonFormat: Send + Sync {
    /// Name used in `observed.format`, `events_parsed_total{format}` and `parse --format`.
    fn name(&self) -> &'static str;
    /// Cheap test on the document's keys.
    fn detect(&self, doc: JsonRef<'_, '_>) -> bool;
    /// Reads the event out of a document.
    fn parse<'a>(&self, doc: JsonRef<'_, 'a>) -> Result<Event<'a>, ParseError>;
}

/// Where a line came from: header directives are remembered per stream.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamId<'s> {
    /// Input topic (selects the format hint).
    pub topic: &'s str,
    /// Partition.
    pub partition: i32,
    /// Message key, if any.
    pub key: Option<&'s [u8]>,
}

/// What one line held.
#[derive(Debug, Default)]
pub struct Parsed<'a> {
    /// The format that read the line (the first event's, or the directive's).
    pub format: &'static str,
    /// The events, in order; empty for a header directive or an empty batch.
    pub events: Vec<Event<'a>>,
    /// Items of a batch (`records`, `logEvents`) that could not be read; the rest were.
    pub errors: Vec<BatchError>,
    /// Events the IP scanner read because the format that claimed their line rejected it.
    pub fallbacks: Vec<Fallback>,
}

/// A line a format claimed but rejected, read by the IP scanner because it holds addresses
/// (`parse_fallbacks_total{format,reason}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallback {
    /// Index in [`Parsed::events`] of the scanner's event.
    pub event: usize,
    /// The format that rejected the line (`json` for a JSON document that did not parse).
    pub from: &'static str,
    /// Why it rejected it; `kind()` is the `reason` label.
    pub error: ParseError,
}

/// One unreadable item of a batch line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchError {
    /// 0-based position in the batch.
    pub index: usize,
    /// What was wrong.
    pub error: ParseError,
    /// The item's text when it was a string (a CloudWatch `message`), else empty.
    pub text: String,
}

/// Options of the registry that come from configuration.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Extra JSON paths that hold addresses, for JSON that is not a known format.
    pub json_ip_fields: Vec<(String, Role)>,
    /// Topic → format name: lines from that topic skip detection.
    pub topic_formats: HashMap<String, String>,
    /// Longest event, in bytes (`parse.max_line_bytes`): a text line, a JSON document that is
    /// one event, or one item of a batch (`records`, `logEvents`, an array). A batch envelope
    /// itself may be longer; its items are held to this one by one. `None`: no limit.
    pub max_event_bytes: Option<usize>,
}

impl RegistryOptions {
    /// The options `[parse]` gives, every forced format checked (see [`check_topic_formats`]).
    pub fn from_settings(settings: &Settings) -> Result<Self, SettingsError> {
        check_topic_formats(&settings.parse.topic_formats)?;
        Ok(RegistryOptions {
            json_ip_fields: settings.json_ip_fields(),
            topic_formats: settings
                .parse
                .topic_formats
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            max_event_bytes: Some(settings.parse.max_line_bytes),
        })
    }
}

/// Every format `parse.topic_formats` forces is one the registry has; the error names the key
/// and lists the known formats.
pub(crate) fn check_topic_formats<'a>(
    topic_formats: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Result<(), SettingsError> {
    let mut forced = topic_formats.into_iter().peekable();
    if forced.peek().is_none() {
        return Ok(());
    }
    let registry = FormatRegistry::builtin(RegistryOptions::default());
    for (topic, name) in forced {
        if !registry.knows(name) {
            return Err(SettingsError::invalid(
                format!("parse.topic_formats.{topic}"),
                format!(
                    "unknown format {name:?}; known formats: {}",
                    registry.names().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Name of the generic `key=value` reader.
pub(crate) const KV: &str = formats::kv::NAME;
/// Name of header directive lines.
pub(crate) const DIRECTIVE: &str = "directive";

/// An event that owns its text (for events read out of an unescaped envelope string).
pub(crate) fn into_owned(event: Event<'_>) -> Event<'static> {
    let own = |v: Option<Cow<'_, str>>| v.map(|c| Cow::Owned(c.into_owned()));
    Event {
        format: event.format,
        vendor: own(event.vendor),
        product: own(event.product),
        action: own(event.action),
        rule: own(event.rule),
        threat: own(event.threat),
        timestamp: own(event.timestamp),
        observer: own(event.observer),
        addresses: event
            .addresses
            .into_iter()
            .map(|(role, text)| (role, Cow::Owned(text.into_owned())))
            .collect(),
        src_port: own(event.src_port),
        dst_port: own(event.dst_port),
        protocol: own(event.protocol),
        direction: own(event.direction),
    }
}

#[cfg(test)]
mod tests;
