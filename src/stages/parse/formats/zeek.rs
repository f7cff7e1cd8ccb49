//! Zeek logs (conn.log, http.log, dns.log, notice.log …) as TSV and as JSON (reference §4.6).
//!
//! * TSV (`zeek_tsv`): data lines read by the stream's `#fields` list (`line.fields`, kind
//!   [`HeaderKind::Zeek`], split on its `#separator`); the directives are taken by the registry.
//!   Detected only when such a list is known and the line has exactly that many columns. Columns
//!   are found by name, never by position; `-` is unset and `(empty)` an empty set.
//! * JSON (`zeek`): Zeek's writer uses literal dotted keys (`"id.orig_h"`); some shippers nest
//!   them under `"id"`. Detected by either form of `id.orig_h`.
//! * Roles: `id.orig_h` source (Zeek's initiator), `id.resp_h` destination. notice.log's
//!   `src`/`dst` stand in when the record has no `id`. http.log `proxied` holds
//!   `HEADER -> value` items (X-Forwarded-For, Forwarded, Client-IP …): the first hop of a
//!   value that is an address is forwarded; `Via`-style values that are not are skipped.
//! * Context: vendor/product `Zeek`, `ts` timestamp, notice.log `note` as rule. Logs without
//!   connection endpoints (files, stats …) give an event with no addresses; a record with an
//!   `id` but no addresses is malformed.

use std::borrow::Cow;

use crate::model::{Event, Role};
use crate::stages::extract::parse_ip_token;
use crate::stages::parse::fields::present;
use crate::stages::parse::headers::{FieldsHeader, HeaderKind};
use crate::stages::parse::json::JsonRef;
use crate::stages::parse::{JsonFormat, Line, LogFormat, ParseError};

const TSV: &str = "zeek_tsv";
const JSON: &str = "zeek";
/// Zeek's unset and empty-set markers.
const PLACEHOLDERS: [&str; 2] = ["-", "(empty)"];

/// Format `zeek_tsv`.
pub(crate) struct ZeekTsv;

/// Format `zeek`.
pub(crate) struct ZeekJson;

fn zeek_event<'a>(format: &'static str) -> Event<'a> {
    Event {
        format,
        vendor: Some(Cow::Borrowed("Zeek")),
        product: Some(Cow::Borrowed("Zeek")),
        ..Event::default()
    }
}

fn zeek_header<'h>(line: &'h Line<'_>) -> Option<&'h FieldsHeader> {
    line.fields
        .as_deref()
        .filter(|h| h.kind == HeaderKind::Zeek)
}

fn column_count(body: &str, separator: u8) -> usize {
    memchr::memchr_iter(separator, body.as_bytes()).count() + 1
}

/// The forwarded client in one `proxied` item (`X-FORWARDED-FOR -> 192.0.2.10, 203.0.113.1`,
/// `FORWARDED -> for=192.0.2.10`), if it is an address.
fn proxied_client(item: &str) -> Option<&str> {
    let value = item.split_once("-> ").map_or(item, |(_, value)| value);
    let hop = value.split([',', ';', '\\']).next().unwrap_or(value).trim();
    let hop = strip_prefix_ci(hop, "for=")
        .unwrap_or(hop)
        .trim_matches('"');
    parse_ip_token(hop).is_some().then_some(hop)
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// Endpoints found in a record, pushed in one place for TSV and JSON.
struct Endpoints<'a> {
    orig: Option<Cow<'a, str>>,
    resp: Option<Cow<'a, str>>,
    notice_src: Option<Cow<'a, str>>,
    notice_dst: Option<Cow<'a, str>>,
}

impl<'a> Endpoints<'a> {
    fn push_into(self, event: &mut Event<'a>) {
        let has_id = self.orig.is_some() || self.resp.is_some();
        let (source, destination) = if has_id {
            (self.orig, self.resp)
        } else {
            (self.notice_src, self.notice_dst)
        };
        if let Some(source) = source {
            event.addresses.push((Role::Source, source));
        }
        if let Some(destination) = destination {
            event.addresses.push((Role::Destination, destination));
        }
    }
}

impl LogFormat for ZeekTsv {
    fn uses_stream_fields(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        TSV
    }

    fn detect(&self, line: &Line<'_>) -> bool {
        zeek_header(line).is_some_and(|h| column_count(line.body, h.separator) == h.names.len())
    }

    fn parse<'a>(&self, line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        let header = zeek_header(line).ok_or_else(|| {
            ParseError::malformed(TSV, "no #fields directive was seen on this stream")
        })?;
        let body = line.body;
        let columns = column_count(body, header.separator);
        if columns != header.names.len() {
            return Err(ParseError::malformed(
                TSV,
                format!(
                    "{columns} columns, the #fields directive names {}",
                    header.names.len()
                ),
            ));
        }
        let mut event = zeek_event(TSV);
        let mut endpoints = Endpoints {
            orig: None,
            resp: None,
            notice_src: None,
            notice_dst: None,
        };
        let mut has_id_column = false;
        let values = body.split(header.separator as char);
        for (name, value) in header.names.iter().zip(values) {
            let Some(value) = present(value, &PLACEHOLDERS) else {
                has_id_column |= name == "id.orig_h";
                continue;
            };
            match name.as_str() {
                "ts" => event.timestamp = Some(Cow::Borrowed(value)),
                "id.orig_h" => {
                    has_id_column = true;
                    endpoints.orig = Some(Cow::Borrowed(value));
                }
                "id.resp_h" => endpoints.resp = Some(Cow::Borrowed(value)),
                "src" => endpoints.notice_src = Some(Cow::Borrowed(value)),
                "dst" => endpoints.notice_dst = Some(Cow::Borrowed(value)),
                "note" => event.rule = Some(Cow::Borrowed(value)),
                "id.orig_p" => event.src_port = Some(Cow::Borrowed(value)),
                "id.resp_p" => event.dst_port = Some(Cow::Borrowed(value)),
                "proto" => event.protocol = Some(Cow::Borrowed(value)),
                "proxied" => {
                    // A set: items joined by the #set_separator (`,` by default) — each item
                    // is `HEADER -> value`, so split on the arrow rather than on commas.
                    for item in value.split("-> ").skip(1) {
                        if let Some(client) = proxied_client(item) {
                            event
                                .addresses
                                .push((Role::Forwarded, Cow::Borrowed(client)));
                        }
                    }
                }
                _ => {}
            }
        }
        let empty = endpoints.orig.is_none()
            && endpoints.resp.is_none()
            && endpoints.notice_src.is_none()
            && endpoints.notice_dst.is_none();
        endpoints.push_into(&mut event);
        if has_id_column && empty {
            return Err(ParseError::malformed(
                TSV,
                "id.orig_h and id.resp_h are both unset",
            ));
        }
        Ok(event)
    }
}

/// `id.orig_h` either as a dotted key or nested under `id`.
fn id_field<'d, 'a>(doc: JsonRef<'d, 'a>, dotted: &str, nested: &str) -> Option<JsonRef<'d, 'a>> {
    doc.member(dotted)
        .or_else(|| doc.member("id").and_then(|id| id.member(nested)))
}

impl JsonFormat for ZeekJson {
    fn name(&self) -> &'static str {
        JSON
    }

    fn detect(&self, doc: JsonRef<'_, '_>) -> bool {
        id_field(doc, "id.orig_h", "orig_h").is_some()
    }

    fn parse<'a>(&self, doc: JsonRef<'_, 'a>) -> Result<Event<'a>, ParseError> {
        let mut event = zeek_event(JSON);
        event.timestamp = doc.member("ts").and_then(|t| t.text());
        event.rule = doc.member("note").and_then(|n| n.str());
        if let Some(proxied) = doc.member("proxied") {
            let mut push = |item: Cow<'a, str>| match item {
                Cow::Borrowed(text) => {
                    if let Some(client) = proxied_client(text) {
                        event
                            .addresses
                            .push((Role::Forwarded, Cow::Borrowed(client)));
                    }
                }
                Cow::Owned(text) => {
                    if let Some(client) = proxied_client(&text) {
                        event
                            .addresses
                            .push((Role::Forwarded, Cow::Owned(client.to_owned())));
                    }
                }
            };
            if let Some(item) = proxied.str() {
                push(item);
            }
            for item in proxied.items().filter_map(|i| i.str()) {
                push(item);
            }
        }
        let endpoints = Endpoints {
            orig: id_field(doc, "id.orig_h", "orig_h").and_then(|v| v.str()),
            resp: id_field(doc, "id.resp_h", "resp_h").and_then(|v| v.str()),
            notice_src: doc.member("src").and_then(|v| v.str()),
            notice_dst: doc.member("dst").and_then(|v| v.str()),
        };
        // d-siem: the connection's ports and transport.
        event.src_port = id_field(doc, "id.orig_p", "orig_p").and_then(|v| v.text());
        event.dst_port = id_field(doc, "id.resp_p", "resp_p").and_then(|v| v.text());
        event.protocol = doc.member("proto").and_then(|v| v.text());
        let has_id = id_field(doc, "id.orig_h", "orig_h").is_some();
        let empty = endpoints.orig.is_none() && endpoints.resp.is_none();
        let no_notice = endpoints.notice_src.is_none() && endpoints.notice_dst.is_none();
        endpoints.push_into(&mut event);
        if empty && (has_id || no_notice) {
            return Err(ParseError::malformed(
                JSON,
                "no id.orig_h / id.resp_h address (top-level dotted or under \"id\")",
            ));
        }
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxied_items() {
        assert_eq!(
            proxied_client("X-FORWARDED-FOR -> 192.0.2.10, 203.0.113.1"),
            Some("192.0.2.10")
        );
        assert_eq!(
            proxied_client("FORWARDED -> for=192.0.2.11;proto=https"),
            Some("192.0.2.11")
        );
        // Zeek escapes the set separator inside a value.
        assert_eq!(
            proxied_client("X-FORWARDED-FOR -> 192.0.2.12\\x2c 203.0.113.1"),
            Some("192.0.2.12")
        );
        assert_eq!(proxied_client("VIA -> 1.1 proxy.example.com"), None);
    }
}
