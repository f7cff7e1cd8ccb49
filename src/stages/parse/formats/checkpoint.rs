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
//! * Malformed: no `key:"value"` pair in the bracket.

use std::borrow::Cow;

use crate::model::{Event, Role};
use crate::stages::parse::fields::Needle;
use crate::stages::parse::fields::{find_closing, present};
use crate::stages::parse::{Line, LogFormat, ParseError};

static LOGUID_0X: Needle = Needle::new(b"loguid:\"{0x");
static PRODUCT_VPN_1: Needle = Needle::new(b"product:\"VPN-1");

/// Name in `observed.format`.
pub(crate) const NAME: &str = "checkpoint";

/// Values of `xlatesrc`/`xlatedst` meaning "not translated".
const NO_NAT: [&str; 3] = ["0.0.0.0", "::", "-"];

/// Format `checkpoint`.
pub(crate) struct CheckPoint;

/// The `[key:"value"; …]` text: structured data first, then the message.
fn bracket<'a>(line: &Line<'a>) -> Option<&'a str> {
    if let Some(sd) = line.syslog.and_then(|h| h.structured_data) {
        if starts_with_pair(sd) {
            return Some(sd);
        }
    }
    let body = line.body.trim_start_matches(' ');
    starts_with_pair(body).then_some(body)
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
        let Some(text) = bracket(line) else {
            return false;
        };
        line.app()
            .is_some_and(|a| a.eq_ignore_ascii_case("CheckPoint"))
            || LOGUID_0X.find(text.as_bytes()).is_some()
            || PRODUCT_VPN_1.find(text.as_bytes()).is_some()
    }

    fn parse<'a>(&self, line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        let text = bracket(line)
            .ok_or_else(|| ParseError::malformed(NAME, "no [key:\"value\"; …] message"))?;
        let mut event = Event {
            format: NAME,
            vendor: Some(Cow::Borrowed("Check Point")),
            ..Event::default()
        };
        let mut pairs = 0usize;
        for (key, value) in (Pairs { rest: text }) {
            pairs += 1;
            let borrowed = Cow::Borrowed(value);
            match key {
                "src" => event.addresses.push((Role::Source, borrowed)),
                "dst" => event.addresses.push((Role::Destination, borrowed)),
                "xlatesrc" | "xlatedst" if present(value, &NO_NAT).is_some() => {
                    event.addresses.push((Role::Nat, borrowed));
                }
                "proxy_src_ip" => event.addresses.push((Role::Forwarded, borrowed)),
                "origin" => event.observer = Some(borrowed),
                "product" => event.product = Some(borrowed),
                "action" => event.action = Some(borrowed),
                "rule_name" => event.rule = Some(borrowed),
                "time" => event.timestamp = Some(borrowed),
                _ => {}
            }
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
