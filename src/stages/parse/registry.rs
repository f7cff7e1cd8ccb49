//! The format registry: the formats in detection order, a topic's forced format, envelopes
//! and batches, the `key=value` and IP-scan fallbacks (for unclaimed lines, and for lines the
//! claiming format rejects while they hold an address), and the per-stream header state.

use std::borrow::Cow;
use std::collections::HashMap;

use base64::Engine;

use crate::model::Event;

use super::headers::StreamHeaders;
use super::json::{JsonDoc, JsonRef};
use super::syslog::{self, SyslogHeader};
use super::{
    formats, into_owned, scan, BatchError, Fallback, JsonFormat, Line, LogFormat, ParseError,
    Parsed, RegistryOptions, StreamId, DIRECTIVE, KV, MAX_ENVELOPE_DEPTH,
};

enum Forced {
    Text(usize),
    Json(usize),
    GenericJson,
    Kv,
    Scan,
}

/// Every format, in detection order, and the per-stream header state.
pub struct FormatRegistry {
    text: Vec<Box<dyn LogFormat>>,
    /// Index in `text` of the first format that reads the stream's field list.
    first_headed: usize,
    json: Vec<Box<dyn JsonFormat>>,
    generic_json: formats::json::GenericJson,
    topic_formats: HashMap<String, String>,
    streams: StreamHeaders,
    /// `RegistryOptions::max_event_bytes`.
    max_event_bytes: usize,
}

impl FormatRegistry {
    /// The built-in formats. Unknown names in `topic_formats` are ignored here; settings
    /// validation rejects them, naming the key.
    pub fn builtin(options: RegistryOptions) -> Self {
        // Formats that need the stream's field list go last, in their own order.
        let (mut text, headed): (Vec<_>, Vec<_>) = formats::text_formats()
            .into_iter()
            .partition(|f| !f.uses_stream_fields());
        let first_headed = text.len();
        text.extend(headed);
        FormatRegistry {
            first_headed,
            text,
            json: formats::json_formats(),
            generic_json: formats::json::GenericJson::new(options.json_ip_fields),
            topic_formats: options.topic_formats,
            streams: StreamHeaders::default(),
            max_event_bytes: options.max_event_bytes.unwrap_or(usize::MAX),
        }
    }

    /// Names of every format, in detection order (JSON formats first).
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.json
            .iter()
            .map(|f| f.name())
            .chain([formats::json::ECS, formats::json::GENERIC])
            .chain(self.text.iter().map(|f| f.name()))
            .chain([KV, scan::NAME])
    }

    /// Whether `name` is a format this registry can be forced to.
    pub fn knows(&self, name: &str) -> bool {
        self.forced(name).is_some()
    }

    /// The first text format whose `detect` accepts the line; the stream's field list is
    /// looked up only when the formats that read it are reached.
    fn detect_text(&self, line: &mut Line<'_>, stream: StreamId<'_>) -> Option<&dyn LogFormat> {
        let (plain, headed) = self.text.split_at(self.first_headed);
        if let Some(format) = plain.iter().find(|f| f.detect(line)) {
            return Some(format.as_ref());
        }
        line.fields = self.streams.current(stream);
        headed.iter().find(|f| f.detect(line)).map(|f| f.as_ref())
    }

    fn forced_name(&self, forced: &Forced) -> &'static str {
        match forced {
            Forced::Text(i) => self.text[*i].name(),
            Forced::Json(i) => self.json[*i].name(),
            Forced::GenericJson => formats::json::GENERIC,
            Forced::Kv => KV,
            Forced::Scan => scan::NAME,
        }
    }

    fn forced(&self, name: &str) -> Option<Forced> {
        if let Some(i) = self.text.iter().position(|f| f.name() == name) {
            return Some(Forced::Text(i));
        }
        if let Some(i) = self.json.iter().position(|f| f.name() == name) {
            return Some(Forced::Json(i));
        }
        match name {
            formats::json::ECS | formats::json::GENERIC => Some(Forced::GenericJson),
            KV => Some(Forced::Kv),
            scan::NAME => Some(Forced::Scan),
            _ => None,
        }
    }

    /// The format detection would pick for a text line, without parsing it (JSON lines give
    /// `json`, which is decided on the parsed document). For benches and diagnostics.
    pub fn detect_format(&self, line: &str, stream: StreamId<'_>) -> &'static str {
        let text = line.trim_start_matches('\u{feff}').trim();
        let (syslog, body) = syslog::strip_headers(text);
        if text.starts_with('{') || body.starts_with('{') {
            return formats::json::GENERIC;
        }
        if body.starts_with('#') {
            return DIRECTIVE;
        }
        let mut line = Line {
            text,
            body,
            syslog,
            fields: None,
        };
        self.detect_text(&mut line, stream).map_or(KV, |f| f.name())
    }

    /// Parses a line with the topic's hinted format, or the first format that detects it.
    pub fn parse_line<'a>(
        &self,
        line: &'a str,
        stream: StreamId<'_>,
    ) -> Result<Parsed<'a>, ParseError> {
        let forced = self
            .topic_formats
            .get(stream.topic)
            .and_then(|name| self.forced(name));
        self.parse_with(line, stream, forced)
    }

    /// Parses a line as the named format (`parse --format NAME`); `None` if the name is unknown.
    pub fn parse_line_as<'a>(
        &self,
        line: &'a str,
        format: &str,
        stream: StreamId<'_>,
    ) -> Option<Result<Parsed<'a>, ParseError>> {
        let forced = self.forced(format)?;
        Some(self.parse_with(line, stream, Some(forced)))
    }

    fn parse_with<'a>(
        &self,
        line: &'a str,
        stream: StreamId<'_>,
        forced: Option<Forced>,
    ) -> Result<Parsed<'a>, ParseError> {
        let mut parsed = Parsed {
            format: DIRECTIVE,
            events: Vec::with_capacity(1),
            errors: Vec::new(),
            fallbacks: Vec::new(),
        };
        let format = self.parse_text(line, stream, forced.as_ref(), 0, &mut parsed)?;
        parsed.format = parsed.events.first().map_or(format, |e| e.format);
        Ok(parsed)
    }

    /// Parses one line into `out`; returns the format name to count when no event came out.
    /// A line the format claimed but rejected, that still holds an address, is read by the
    /// IP scanner instead and the rejection is kept in `out.fallbacks`: no line that holds an
    /// address is dead-lettered.
    fn parse_text<'a>(
        &self,
        line: &'a str,
        stream: StreamId<'_>,
        forced: Option<&Forced>,
        depth: usize,
        out: &mut Parsed<'a>,
    ) -> Result<&'static str, ParseError> {
        let (events, fallbacks) = (out.events.len(), out.fallbacks.len());
        let error = match self.parse_claimed(line, stream, forced, depth, out) {
            Err(error) if falls_back(&error, forced) => error,
            other => return other,
        };
        let text = line.trim_start_matches('\u{feff}').trim();
        let (syslog, body) = syslog::strip_headers(text);
        let mut event = Event {
            format: scan::NAME,
            observer: syslog.and_then(|h| h.observer()).map(Cow::Borrowed),
            ..Event::default()
        };
        if scan::scan_addresses(body, &mut event) == 0 && body.len() < text.len() {
            // An address in a header slot a vendor fills with its own words (Meraki's
            // `flows dst=A …` reads as APP-NAME and PROCID); the device itself is not one.
            let device = syslog.map(|h| [h.hostname, h.origin_ip]);
            scan::scan_addresses(text, &mut event);
            event
                .addresses
                .retain(|(_, a)| !device.is_some_and(|d| d.contains(&Some(a.as_ref()))));
        }
        if event.addresses.is_empty() {
            return Err(error);
        }
        // What the rejected attempt left behind is not part of the line's result.
        out.events.truncate(events);
        out.fallbacks.truncate(fallbacks);
        let from = match (&error, forced) {
            (ParseError::Malformed { format, .. }, _) => *format,
            (_, Some(forced)) => self.forced_name(forced),
            _ => formats::json::GENERIC,
        };
        out.fallbacks.push(Fallback {
            event: out.events.len(),
            from,
            error,
        });
        out.events.push(event);
        Ok(scan::NAME)
    }

    /// [`Self::parse_text`] without the scanner fallback: the claiming format's result.
    fn parse_claimed<'a>(
        &self,
        line: &'a str,
        stream: StreamId<'_>,
        forced: Option<&Forced>,
        depth: usize,
        out: &mut Parsed<'a>,
    ) -> Result<&'static str, ParseError> {
        let text = line.trim_start_matches('\u{feff}').trim();
        if text.is_empty() {
            return Err(ParseError::Empty);
        }
        // Envelopes and batches are unwrapped whatever the format; a forced format applies to
        // the events inside them. A JSON array is a batch (Vector, HTTP shippers); a text
        // line that merely starts with `[` is not JSON and goes on below.
        if text.starts_with('{')
            || (text.starts_with('[') && text.ends_with(']') && JsonDoc::parse(text).is_ok())
        {
            return self.parse_json(text, None, stream, forced, depth, out);
        }
        let (syslog, body) = syslog::strip_headers(text);
        if !body.starts_with('{') {
            self.check_event_len(text.len())?;
        }
        if body.starts_with('{') {
            // JSON behind a syslog header (Suricata EVE, shippers over syslog).
            let start = out.events.len();
            let format = self.parse_json(body, syslog, stream, forced, depth, out)?;
            if let Some(observer) = syslog.and_then(|h| h.observer()) {
                for event in &mut out.events[start..] {
                    event.observer.get_or_insert(Cow::Borrowed(observer));
                }
            }
            return Ok(format);
        }
        if let Some(name) = self.streams.directive(body, stream) {
            return Ok(name);
        }
        let mut line = Line {
            text,
            body,
            syslog,
            fields: None,
        };
        if forced.is_some() {
            line.fields = self.streams.current(stream);
        }
        let mut event = match forced {
            Some(Forced::Text(i)) => self.text[*i].parse(&line)?,
            Some(Forced::Kv) => formats::kv::parse(&line)?,
            Some(Forced::Scan) => scan_line(&line)?,
            Some(Forced::Json(_) | Forced::GenericJson) => {
                return Err(ParseError::InvalidJson(
                    "expected a JSON object (the format is configured as JSON)".to_owned(),
                ))
            }
            None => match self.detect_text(&mut line, stream) {
                Some(format) => format.parse(&line)?,
                None => fallback(&line)?,
            },
        };
        if event.observer.is_none() {
            event.observer = syslog.and_then(|h| h.observer()).map(Cow::Borrowed);
        }
        let format = event.format;
        out.events.push(event);
        Ok(format)
    }

    fn parse_json<'a>(
        &self,
        text: &'a str,
        syslog: Option<SyslogHeader<'a>>,
        stream: StreamId<'_>,
        forced: Option<&Forced>,
        depth: usize,
        out: &mut Parsed<'a>,
    ) -> Result<&'static str, ParseError> {
        let _ = syslog;
        let doc = match JsonDoc::parse(text) {
            Ok(doc) => doc,
            // Too long for one event, and no batch to split.
            Err(_) if text.len() > self.max_event_bytes => {
                return Err(ParseError::TooLarge {
                    len: text.len(),
                    limit: self.max_event_bytes,
                })
            }
            Err(error) => return Err(error),
        };
        let root = doc.root();
        if root.is_array() {
            self.parse_batch(root, stream, forced, depth, out);
            return Ok(formats::json::BATCH);
        }
        if !root.is_object() {
            return Err(ParseError::NotAnObject);
        }
        // Batches: Azure Event Hub `records`, CloudWatch Logs `logEvents`.
        if let Some(records) = root.member("records").filter(|r| r.is_array()) {
            self.parse_batch(records, stream, forced, depth, out);
            return Ok(formats::json::BATCH);
        }
        if let Some(log_events) = root.member("logEvents").filter(|r| r.is_array()) {
            // CloudWatch health checks carry no log lines.
            if root
                .member("messageType")
                .is_some_and(|t| t.is_str("CONTROL_MESSAGE"))
            {
                return Ok(formats::json::BATCH);
            }
            for (index, item) in log_events.items().enumerate() {
                let Some(message) = item.get("message").and_then(|m| m.str()) else {
                    continue;
                };
                let text = message.to_string();
                let parsed = self
                    .check_event_len(message.len())
                    .and_then(|()| self.parse_inner(message, stream, forced, depth, out));
                if let Err(error) = parsed {
                    out.errors.push(BatchError { index, error, text });
                }
            }
            return Ok(formats::json::BATCH);
        }
        // Not a batch: the document is one event.
        self.check_event_len(text.len())?;
        let event = self.parse_json_object(root, stream, forced, depth, out)?;
        let format = event.format;
        if event.format != formats::json::ENVELOPE {
            out.events.push(event);
        }
        Ok(format)
    }

    /// Items of a JSON array, each an event object; one bad item is that item's error, not
    /// the whole batch's.
    fn parse_batch<'a>(
        &self,
        records: JsonRef<'_, 'a>,
        stream: StreamId<'_>,
        forced: Option<&Forced>,
        depth: usize,
        out: &mut Parsed<'a>,
    ) {
        for (index, record) in records.items().enumerate() {
            if !record.is_object() {
                out.errors.push(BatchError {
                    index,
                    error: ParseError::NotAnObject,
                    text: String::new(),
                });
                continue;
            }
            if let Err(error) = self.check_event_len(record.compact_len()) {
                out.errors.push(BatchError {
                    index,
                    error,
                    text: String::new(),
                });
                continue;
            }
            match self.parse_json_object(record, stream, forced, depth, out) {
                Ok(event) if event.format == formats::json::ENVELOPE => {}
                Ok(event) => out.events.push(event),
                Err(error) => out.errors.push(BatchError {
                    index,
                    error,
                    text: String::new(),
                }),
            }
        }
    }

    /// One JSON object: a known format, a Pub/Sub or shipper envelope, or generic JSON.
    /// Envelope contents are pushed to `out` directly and an `ENVELOPE` marker is returned.
    fn parse_json_object<'a>(
        &self,
        object: JsonRef<'_, 'a>,
        stream: StreamId<'_>,
        forced: Option<&Forced>,
        depth: usize,
        out: &mut Parsed<'a>,
    ) -> Result<Event<'a>, ParseError> {
        match forced {
            // An envelope around the forced format's document is unwrapped first.
            Some(Forced::Json(i)) if !self.json[*i].detect(object) => {
                if let Some(inner) = envelope_line(object) {
                    self.parse_inner(inner, stream, forced, depth, out)?;
                    return Ok(envelope_marker());
                }
                return self.json[*i].parse(object);
            }
            Some(Forced::Json(i)) => return self.json[*i].parse(object),
            Some(Forced::GenericJson) => return Ok(self.generic_json.parse(object)),
            // A text format: read the line inside the envelope with it.
            Some(text_format) => {
                let Some(inner) = envelope_line(object) else {
                    return Err(ParseError::malformed(
                        self.forced_name(text_format),
                        "a JSON object without a `message` line where a text line was expected",
                    ));
                };
                self.parse_inner(inner, stream, forced, depth, out)?;
                return Ok(envelope_marker());
            }
            None => {}
        }
        // ECS first: one walk, and the common case for shipped logs.
        if formats::json::GenericJson::may_have_addresses(object) {
            let mut event = self.generic_json.parse_ecs(object);
            if !event.addresses.is_empty() {
                self.generic_json.add_extra_fields(object, &mut event);
                return Ok(event);
            }
        }
        if let Some(format) = self.json.iter().find(|f| f.detect(object)) {
            return format.parse(object);
        }
        let mut event = self.generic_json.parse_ecs(object);
        self.generic_json.add_extra_fields(object, &mut event);
        if !event.addresses.is_empty() {
            return Ok(event);
        }
        if let Some(inner) = envelope_line(object) {
            let start = out.events.len();
            match self.parse_inner(inner, stream, None, depth, out) {
                Ok(_) => return Ok(envelope_marker()),
                // Not a log line after all: the object is the event.
                Err(ParseError::Unrecognized) => out.events.truncate(start),
                Err(other) => return Err(other),
            }
        }
        Ok(event)
    }

    /// One event of `len` bytes is within `max_event_bytes`.
    fn check_event_len(&self, len: usize) -> Result<(), ParseError> {
        if len > self.max_event_bytes {
            return Err(ParseError::TooLarge {
                len,
                limit: self.max_event_bytes,
            });
        }
        Ok(())
    }

    fn parse_inner<'a>(
        &self,
        inner: Cow<'a, str>,
        stream: StreamId<'_>,
        forced: Option<&Forced>,
        depth: usize,
        out: &mut Parsed<'a>,
    ) -> Result<&'static str, ParseError> {
        if depth >= MAX_ENVELOPE_DEPTH {
            return Err(ParseError::malformed(
                formats::json::ENVELOPE,
                "envelopes nested deeper than 3 levels",
            ));
        }
        match inner {
            Cow::Borrowed(text) => self.parse_text(text, stream, forced, depth + 1, out),
            Cow::Owned(text) => {
                let mut inner = Parsed::default();
                let format = self.parse_text(&text, stream, forced, depth + 1, &mut inner)?;
                let offset = out.events.len();
                for event in inner.events {
                    let owned: Event<'a> = into_owned(event);
                    out.events.push(owned);
                }
                out.errors.extend(inner.errors);
                out.fallbacks
                    .extend(inner.fallbacks.into_iter().map(|f| Fallback {
                        event: f.event + offset,
                        ..f
                    }));
                Ok(format)
            }
        }
    }
}

/// The log line an envelope carries: Pub/Sub `{"message":{"data":"<base64>"}}`, or a
/// shipper's (Filebeat, Logstash, Vector) `{"message":"<line>"}`.
fn envelope_line<'a>(object: JsonRef<'_, 'a>) -> Option<Cow<'a, str>> {
    if let Some(data) = object.get("message.data").and_then(|d| d.str()) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data.as_bytes())
            .ok()?;
        return String::from_utf8(bytes).ok().map(Cow::Owned);
    }
    object.member("message").and_then(|m| m.str())
}

fn envelope_marker() -> Event<'static> {
    Event {
        format: formats::json::ENVELOPE,
        ..Event::default()
    }
}

/// Whether a rejected line goes to the IP scanner: the format (or the JSON reader) claimed it
/// and found it malformed, or a forced format did not recognise it. Limits (size, bytes that
/// are not text) never reach the registry; an unclaimed line was scanned already.
fn falls_back(error: &ParseError, forced: Option<&Forced>) -> bool {
    match error {
        ParseError::Malformed { .. } | ParseError::InvalidJson(_) | ParseError::NotAnObject => true,
        ParseError::Unrecognized => forced.is_some_and(|f| !matches!(f, Forced::Scan)),
        _ => false,
    }
}

/// Generic `key=value`, and when that finds no address, the IP scanner.
fn fallback<'a>(line: &Line<'a>) -> Result<Event<'a>, ParseError> {
    let kv = formats::kv::parse(line);
    match kv {
        Ok(event) if !event.addresses.is_empty() => Ok(event),
        other => match scan_line(line) {
            Ok(event) => Ok(event),
            Err(_) => other,
        },
    }
}

fn scan_line<'a>(line: &Line<'a>) -> Result<Event<'a>, ParseError> {
    let mut event = Event {
        format: scan::NAME,
        ..Event::default()
    };
    if scan::scan_addresses(line.body, &mut event) == 0 {
        return Err(ParseError::Unrecognized);
    }
    Ok(event)
}
