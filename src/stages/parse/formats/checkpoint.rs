//! Check Point Log Exporter, syslog format (reference §2.4): RFC 5424 APP-NAME `CheckPoint`
//! and one bracket `[key:"value"; key:"value"; …]`.
//!
//! * The bracket is where the RFC 5424 header parser left it: in `line.syslog.structured_data`
//!   (it reads like an SD element) or at the start of `line.body` (after a `-` SD); both are
//!   tried. CEF/LEEF exports (`CEF:0|Check Point|…`) belong to the CEF/LEEF parsers and are not
//!   claimed: the message must start with `[`.
//! * Detects: a bracketed message and either the tag/APP-NAME `CheckPoint` (any case), a
//!   `loguid:"{0x` pair or a `product:"VPN-1` pair.
//! * Pairs: key up to the first `:` (a doubled `::` is accepted), value double-quoted with `\"`
//!   escapes (left as written; values may hold `;`, `:` and `]`), pairs separated by `;`.
//! * Roles: `src` source, `dst` destination, `xlatesrc`/`xlatedst` nat unless `0.0.0.0`/`::`
//!   (Check Point's "no translation"), `proxy_src_ip` forwarded (the original client behind a
//!   downstream proxy; key unverified). `origin` is the logging gateway: observer, never an
//!   address. System/audit events carry only `origin` → an event without addresses.
//! * vendor `Check Point`, product from `product`, action from `action`, rule from `rule_name`,
//!   timestamp from `time` (epoch seconds as written).
//! * SmartLog / relay variants of the same bracket: a word in front of it
//!   (`syslog[key:"value"; …]`, as some SmartLog and syslog-ng exports write it), and the bracket
//!   alone (the MSG without its header). Without the tag these need an `origin:"` pair and a
//!   `src:"`, `dst:"` or `product:"` pair besides.
//! * "Splunk" export (reference part 2 §16): `key=value|key=value|…`, `=` escaped as `\=`
//!   inside values; detected by `product=` and `origin=`/`orig=` items. Same keys and roles.
//! * OPSEC LEA / `fwm logexport` rows: columns `num;date;time;orig;type;action;…` separated by
//!   `;` (or `,`), each optionally double-quoted; detected by a numeric first column, a Check
//!   Point date (`3Mar2026`) and a time in columns 2 and 3 (1-based). The vendor does not
//!   document the column list (reference part 2 §16), so only what every known layout shares is
//!   assumed: `orig` (4th) is the gateway (observer), the first address column after it is the
//!   source, the second the destination, later address columns (`xlatesrc`, `xlatedst`) nat.
//!   A header row (`num;date;time;orig;…`) holds no address and is left to the fallbacks.
//! * Malformed: no `key:"value"` pair in the bracket.

use std::borrow::Cow;

use crate::model::{Event, Role};
use crate::stages::extract::parse_ip_token;
use crate::stages::parse::fields::Needle;
use crate::stages::parse::fields::{find_closing, present, CsvFields};
use crate::stages::parse::{Line, LogFormat, ParseError};

static LOGUID_0X: Needle = Needle::new(b"loguid:\"{0x");
static PRODUCT_VPN_1: Needle = Needle::new(b"product:\"VPN-1");

/// Name in `observed.format`.
pub(crate) const NAME: &str = "checkpoint";

/// Values of `xlatesrc`/`xlatedst` meaning "not translated".
const NO_NAT: [&str; 3] = ["0.0.0.0", "::", "-"];

/// Format `checkpoint`.
pub(crate) struct CheckPoint;

/// The `[key:"value"; …]` text: structured data first, then the message (after a leading
/// word such as `syslog`).
fn bracket<'a>(line: &Line<'a>) -> Option<&'a str> {
    if let Some(sd) = line.syslog.and_then(|h| h.structured_data) {
        if starts_with_pair(sd) {
            return Some(sd);
        }
    }
    let body = line.body.trim_start_matches(' ');
    if starts_with_pair(body) {
        return Some(body);
    }
    let word = body
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
        .count();
    let rest = &body[word..];
    (word > 0 && word <= 32 && starts_with_pair(rest)).then_some(rest)
}

static ORIGIN_Q: Needle = Needle::new(b"origin:\"");
static SRC_Q: Needle = Needle::new(b"src:\"");
static DST_Q: Needle = Needle::new(b"dst:\"");
static PRODUCT_Q: Needle = Needle::new(b"product:\"");
static PIPE_PRODUCT: Needle = Needle::new(b"product=");

/// Which of the three layouts a line is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout<'a> {
    Bracket(&'a str),
    Pipes,
    Export(u8),
}

fn layout<'a>(line: &Line<'a>) -> Option<Layout<'a>> {
    if let Some(text) = bracket(line) {
        let b = text.as_bytes();
        let tagged = line
            .app()
            .is_some_and(|a| a.eq_ignore_ascii_case("CheckPoint"));
        let known = tagged
            || LOGUID_0X.find(b).is_some()
            || PRODUCT_VPN_1.find(b).is_some()
            || (ORIGIN_Q.find(b).is_some()
                && (SRC_Q.find(b).is_some()
                    || DST_Q.find(b).is_some()
                    || PRODUCT_Q.find(b).is_some()));
        return known.then_some(Layout::Bracket(text));
    }
    let body = line.body.trim_start_matches(' ');
    if is_pipe_export(body) {
        return Some(Layout::Pipes);
    }
    export_delimiter(body).map(Layout::Export)
}

/// `key=value|key=value|…` with a `product=` and an `origin=`/`orig=` item.
fn is_pipe_export(body: &str) -> bool {
    let b = body.as_bytes();
    let key = b
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'/'))
        .count();
    if key == 0 || b.get(key) != Some(&b'=') || memchr::memchr(b'|', b).is_none() {
        return false;
    }
    let has_item = |name: &str| {
        body.starts_with(name)
            || body
                .match_indices(name)
                .any(|(at, _)| at > 0 && b[at - 1] == b'|')
    };
    PIPE_PRODUCT.find(b).is_some()
        && has_item("product=")
        && (has_item("origin=") || has_item("orig="))
}

/// Items of the pipe export: `key=value` split on `|` not escaped by a backslash.
fn pipe_items(body: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut rest = Some(body);
    std::iter::from_fn(move || loop {
        let text = rest?;
        let b = text.as_bytes();
        let mut end = None;
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'\\' => i += 2,
                b'|' => {
                    end = Some(i);
                    break;
                }
                _ => i += 1,
            }
        }
        let item = match end {
            Some(end) => {
                rest = Some(&text[end + 1..]);
                &text[..end]
            }
            None => {
                rest = None;
                text
            }
        };
        if let Some((key, value)) = item.split_once('=') {
            return Some((key.trim(), value.trim()));
        }
    })
}

/// The delimiter of an OPSEC LEA / logexport row: a number, a `3Mar2026` date and an
/// `h:mm:ss` time as the first three columns.
fn export_delimiter(body: &str) -> Option<u8> {
    let b = body.as_bytes();
    if !matches!(b.first(), Some(b'0'..=b'9' | b'"')) {
        return None;
    }
    fn unquote(f: &str) -> &str {
        f.strip_prefix('"')
            .and_then(|f| f.strip_suffix('"'))
            .unwrap_or(f)
    }
    let first_end = b.iter().take(24).position(|c| matches!(c, b';' | b','))?;
    let delimiter = b[first_end];
    let mut columns = body.splitn(4, delimiter as char).map(unquote);
    let num = columns.next()?;
    let date = columns.next()?;
    let time = columns.next()?;
    columns.next()?;
    let is_date = {
        let d = date.as_bytes();
        let day = d.iter().take_while(|c| c.is_ascii_digit()).count();
        (1..=2).contains(&day)
            && d.len() == day + 7
            && d[day].is_ascii_uppercase()
            && d[day + 1..day + 3].iter().all(u8::is_ascii_lowercase)
            && d[day + 3..].iter().all(u8::is_ascii_digit)
    };
    let is_time = {
        let t = time.as_bytes();
        let hour = t.iter().take_while(|c| c.is_ascii_digit()).count();
        (1..=2).contains(&hour)
            && t.len() == hour + 6
            && t[hour] == b':'
            && t[hour + 3] == b':'
            && t[hour + 1..hour + 3].iter().all(u8::is_ascii_digit)
            && t[hour + 4..].iter().all(u8::is_ascii_digit)
    };
    (!num.is_empty() && num.bytes().all(|c| c.is_ascii_digit()) && is_date && is_time)
        .then_some(delimiter)
}

/// `[key:` at the start.
fn starts_with_pair(text: &str) -> bool {
    let Some(rest) = text.strip_prefix('[') else {
        return false;
    };
    let key_len = rest
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        .count();
    key_len > 0 && rest.as_bytes().get(key_len) == Some(&b':')
}

/// `key:"value"` pairs of a Log Exporter bracket.
struct Pairs<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest.trim_start_matches([' ', ';', '[']);
        let colon = rest.find(':')?;
        let key = rest[..colon].trim();
        if key.is_empty() || key.len() > 64 || key.contains(['"', ']', ' ']) {
            return None;
        }
        let after = rest[colon..]
            .trim_start_matches(':')
            .trim_start_matches(' ');
        let (value, rest) = if let Some(quoted) = after.strip_prefix('"') {
            let end = find_closing(quoted, b'"').unwrap_or(quoted.len());
            (&quoted[..end], quoted.get(end + 1..).unwrap_or(""))
        } else {
            let end = after.find([';', ']']).unwrap_or(after.len());
            (after[..end].trim(), &after[end..])
        };
        self.rest = rest;
        Some((key, value))
    }
}

impl LogFormat for CheckPoint {
    fn name(&self) -> &'static str {
        NAME
    }

    fn detect(&self, line: &Line<'_>) -> bool {
        layout(line).is_some()
    }

    fn parse<'a>(&self, line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        let mut event = Event {
            format: NAME,
            vendor: Some(Cow::Borrowed("Check Point")),
            ..Event::default()
        };
        let body = line.body.trim_start_matches(' ');
        match layout(line) {
            Some(Layout::Pipes) => {
                for (key, value) in pipe_items(body) {
                    pair(key, value, &mut event);
                }
                return Ok(event);
            }
            Some(Layout::Export(delimiter)) => {
                export_row(body, delimiter, &mut event);
                return Ok(event);
            }
            _ => {}
        }
        let text = bracket(line)
            .ok_or_else(|| ParseError::malformed(NAME, "no [key:\"value\"; …] message"))?;
        let mut pairs = 0usize;
        for (key, value) in (Pairs { rest: text }) {
            pairs += 1;
            pair(key, value, &mut event);
        }
        if pairs == 0 {
            return Err(ParseError::malformed(
                NAME,
                "no key:\"value\" pair in the bracket",
            ));
        }
        Ok(event)
    }
}

/// One `key`/`value` of the bracket or the pipe export.
fn pair<'a>(key: &str, value: &'a str, event: &mut Event<'a>) {
    let borrowed = Cow::Borrowed(value);
    match key {
        "src" => event.addresses.push((Role::Source, borrowed)),
        "dst" => event.addresses.push((Role::Destination, borrowed)),
        "xlatesrc" | "xlatedst" if present(value, &NO_NAT).is_some() => {
            event.addresses.push((Role::Nat, borrowed));
        }
        "proxy_src_ip" => event.addresses.push((Role::Forwarded, borrowed)),
        "origin" | "orig" => event.observer = Some(borrowed),
        "product" => event.product = Some(borrowed),
        "action" => event.action = Some(borrowed),
        "rule_name" => event.rule = Some(borrowed),
        "time" => event.timestamp = Some(borrowed),
        // d-siem: `service` is the destination port; `conn_direction` Incoming/Outgoing/
        // Internal/External (R80.10+); `ifdir` is the interface's, not the connection's.
        "s_port" => event.src_port = Some(borrowed),
        "service" => event.dst_port = Some(borrowed),
        "proto" => event.protocol = Some(borrowed),
        "conn_direction" => event.direction = Some(borrowed),
        _ => {}
    }
}

/// An OPSEC LEA / logexport row: `orig` is column 4; address columns after it are source,
/// destination, then nat.
fn export_row<'a>(body: &'a str, delimiter: u8, event: &mut Event<'a>) {
    let mut address_columns = 0;
    for (index, column) in CsvFields::new(body, delimiter).enumerate() {
        let column = column.trim();
        match index {
            3 => {
                if let Some(orig) = present(column, &[]) {
                    event.observer = Some(Cow::Borrowed(orig));
                }
            }
            5 => event.action = present(column, &[]).map(Cow::Borrowed),
            _ if index > 3 => {
                if parse_ip_token(column).is_none_or(|ip| ip.is_unspecified()) {
                    continue;
                }
                let role = match address_columns {
                    0 => Role::Source,
                    1 => Role::Destination,
                    _ => Role::Nat,
                };
                address_columns += 1;
                event.addresses.push((role, Cow::Borrowed(column)));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_with_quotes_and_separators() {
        let text = r#"[a:"1"; msg:"x; y: \"z\" ]"; sys_message::"hi"; bare:2; b:"]"#;
        let pairs: Vec<_> = (Pairs { rest: text }).collect();
        assert_eq!(
            pairs,
            [
                ("a", "1"),
                ("msg", r#"x; y: \"z\" ]"#),
                ("sys_message", "hi"),
                ("bare", "2"),
                // Unterminated: the value runs to the end.
                ("b", "]")
            ]
        );
        // Truncated or odd brackets: no pair without a key and a colon; an unterminated
        // quote runs to the end.
        let junk: [(&str, &[(&str, &str)]); 6] = [
            ("[", &[]),
            ("[:", &[]),
            ("[a:\"", &[("a", "")]),
            ("[a", &[]),
            ("]", &[]),
            ("[é:\"ü\"", &[("é", "ü")]),
        ];
        for (text, expected) in junk {
            let pairs: Vec<_> = (Pairs { rest: text }).collect();
            assert_eq!(pairs, expected, "{text:?}");
        }
    }
}
