//! IBM QRadar LEEF 1.0 and 2.0 (reference §4.2), including Check Point LEEF output.
//!
//! * In: `line.body`; the record starts at `LEEF:1.0|` or `LEEF:2.0|`.
//!   1.0: `LEEF:1.0|Vendor|Product|Version|EventID|` then attributes separated by TAB.
//!   2.0: `LEEF:2.0|Vendor|Product|Version|EventID|Delimiter|` then attributes separated by
//!   the delimiter: one character (`^`, `|` written as `||`), hex (`x09`, `0x09`, `0x5E`), or
//!   empty = TAB. A 2.0 header whose sixth field already holds `key=value` has no delimiter
//!   field (TAB). Attributes split at their first `=`; there is no escaping.
//!   When the delimiter is TAB but the attributes hold no TAB, they are read as
//!   space-separated pairs (producers that ignore the TAB rule).
//! * Detect: `LEEF:1.0|` or `LEEF:2.0|` in the body.
//! * Roles: the source is `srcPreNAT` when present, else `src`. `src` is only a NAT
//!   (post-translation) address when a differing `srcPreNAT` is present; `srcPostNAT` is nat
//!   unless it repeats the source. Same rules for `dst`, `dstPreNAT`, `dstPostNAT` (the
//!   destination is the pre-NAT one). `identSrc` (the IP of the identity's host) is source.
//!   `0.0.0.0`, `::`, `-` and empty are absent.
//! * Context: vendor and product from the header; action `action`/`act`; rule
//!   `rule`/`rule_name`/`policy`, else the EventID; timestamp `devTime`; observer `origin`
//!   (Check Point's logging gateway). A header with fewer than five fields is malformed.

use std::borrow::Cow;

use crate::model::{Event, Role};
use crate::stages::parse::fields::Needle;
use crate::stages::parse::fields::{delimited_pairs, present, KvPairs};
use crate::stages::parse::{Line, LogFormat, ParseError};

static LEEF: Needle = Needle::new(b"LEEF:");

const NAME: &str = "leef";
const NO_ADDRESS: [&str; 3] = ["0.0.0.0", "::", "-"];

/// Format `leef`.
pub(crate) struct Leef;

/// Byte offset of `LEEF:1.0|` / `LEEF:2.0|` in `text`, and whether it is 2.0.
fn leef_start(text: &str) -> Option<(usize, bool)> {
    let bytes = text.as_bytes();
    LEEF.find_iter(bytes)
        .find_map(|at| match bytes.get(at + 5..at + 9) {
            Some(b"1.0|") => Some((at, false)),
            Some(b"2.0|") => Some((at, true)),
            _ => None,
        })
}

/// A 2.0 delimiter field: one character or hex `x09`/`0x09`; empty = TAB.
fn delimiter_byte(field: &str) -> Option<u8> {
    if field.is_empty() {
        return Some(b'\t');
    }
    if field.len() == 1 {
        return Some(field.as_bytes()[0]);
    }
    let hex = field
        .strip_prefix("0x")
        .or_else(|| field.strip_prefix("0X"))
        .or_else(|| field.strip_prefix('x'))
        .or_else(|| field.strip_prefix('X'))?;
    u8::from_str_radix(hex, 16).ok().filter(u8::is_ascii)
}

/// Header fields (vendor, product, version, event id), the delimiter and the attributes.
fn split_record(record: &str, v2: bool) -> Result<([&str; 4], u8, &str), ParseError> {
    // Skip `LEEF:x.0|`.
    let mut rest = &record[9..];
    let mut header = [""; 4];
    for (index, slot) in header.iter_mut().enumerate() {
        let (field, after) = rest.split_once('|').ok_or_else(|| {
            ParseError::malformed(NAME, format!("header ends after {} of 5 fields", index + 1))
        })?;
        *slot = field;
        rest = after;
    }
    if !v2 {
        return Ok((header, b'\t', rest));
    }
    if let Some(after) = rest.strip_prefix("||") {
        return Ok((header, b'|', after));
    }
    let Some((field, after)) = rest.split_once('|') else {
        return Ok((header, b'\t', rest));
    };
    if field.contains('=') {
        // No delimiter field: the attributes start right after the event id.
        return Ok((header, b'\t', rest));
    }
    let delimiter = delimiter_byte(field).ok_or_else(|| {
        ParseError::malformed(
            NAME,
            format!("LEEF 2.0 delimiter field {field:?} is not a character or hex byte"),
        )
    })?;
    Ok((header, delimiter, after))
}

/// The pre-NAT address, the plain one and the post-NAT one of one side.
#[derive(Default, Clone, Copy)]
struct Side<'a> {
    pre: Option<&'a str>,
    plain: Option<&'a str>,
    post: Option<&'a str>,
}

impl<'a> Side<'a> {
    fn push(self, event: &mut Event<'a>, role: Role) {
        let original = self.pre.or(self.plain);
        if let Some(ip) = original {
            event.addresses.push((role, Cow::Borrowed(ip)));
        }
        for nat in [self.pre.and(self.plain), self.post] {
            if let Some(ip) = nat.filter(|&ip| Some(ip) != original) {
                event.addresses.push((Role::Nat, Cow::Borrowed(ip)));
            }
        }
    }
}

impl LogFormat for Leef {
    fn name(&self) -> &'static str {
        NAME
    }

    fn detect(&self, line: &Line<'_>) -> bool {
        leef_start(line.body).is_some()
    }

    fn parse<'a>(&self, line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        let (start, v2) = leef_start(line.body)
            .ok_or_else(|| ParseError::malformed(NAME, "no LEEF:1.0| or LEEF:2.0| prefix"))?;
        let (header, delimiter, attributes) = split_record(&line.body[start..], v2)?;
        let mut event = Event {
            format: NAME,
            vendor: present(header[0], &[]).map(Cow::Borrowed),
            product: present(header[1], &[]).map(Cow::Borrowed),
            ..Event::default()
        };
        let mut source = Side::default();
        let mut destination = Side::default();
        let mut rule = None;
        let mut read = |key: &str, value: &'a str| {
            let value = value.trim();
            let slot = match key {
                "src" => &mut source.plain,
                "srcPreNAT" => &mut source.pre,
                "srcPostNAT" => &mut source.post,
                "dst" => &mut destination.plain,
                "dstPreNAT" => &mut destination.pre,
                "dstPostNAT" => &mut destination.post,
                "identSrc" => {
                    if let Some(ip) = present(value, &NO_ADDRESS) {
                        event.addresses.push((Role::Source, Cow::Borrowed(ip)));
                    }
                    return;
                }
                "origin" => {
                    event.observer = present(value, &NO_ADDRESS).map(Cow::Borrowed);
                    return;
                }
                "action" | "act" => {
                    event.action = present(value, &[]).map(Cow::Borrowed);
                    return;
                }
                "devTime" => {
                    event.timestamp = present(value, &[]).map(Cow::Borrowed);
                    return;
                }
                // d-siem: ports and transport (LEEF predefined attributes).
                "srcPort" | "srcPreNATPort" => {
                    event.src_port = event
                        .src_port
                        .take()
                        .or(present(value, &[]).map(Cow::Borrowed));
                    return;
                }
                "dstPort" | "dstPreNATPort" => {
                    event.dst_port = event
                        .dst_port
                        .take()
                        .or(present(value, &[]).map(Cow::Borrowed));
                    return;
                }
                "proto" => {
                    event.protocol = present(value, &[]).map(Cow::Borrowed);
                    return;
                }
                "rule" | "rule_name" | "policy" => {
                    rule = rule.or(present(value, &[]));
                    return;
                }
                _ => return,
            };
            *slot = present(value, &NO_ADDRESS);
        };
        if delimiter == b'\t' && memchr::memchr(b'\t', attributes.as_bytes()).is_none() {
            KvPairs::new(attributes).for_each(|(k, v)| read(k, v));
        } else {
            delimited_pairs(attributes, delimiter).for_each(|(k, v)| read(k, v));
        }
        source.push(&mut event, Role::Source);
        destination.push(&mut event, Role::Destination);
        event.rule = rule.or(present(header[3], &[])).map(Cow::Borrowed);
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters() {
        assert_eq!(delimiter_byte(""), Some(b'\t'));
        assert_eq!(delimiter_byte("^"), Some(b'^'));
        assert_eq!(delimiter_byte("x09"), Some(b'\t'));
        assert_eq!(delimiter_byte("0x5E"), Some(b'^'));
        assert_eq!(delimiter_byte("0xFF"), None);
        assert_eq!(delimiter_byte("ab"), None);
        let (_, d, rest) = split_record("LEEF:2.0|V|P|1|E|||src=1|dst=2", true).unwrap();
        assert_eq!((d, rest), (b'|', "src=1|dst=2"));
        let (_, d, rest) = split_record("LEEF:2.0|V|P|1|E|src=1\tdst=2", true).unwrap();
        assert_eq!((d, rest), (b'\t', "src=1\tdst=2"));
        assert!(split_record("LEEF:1.0|V|P", false).is_err());
    }
}
