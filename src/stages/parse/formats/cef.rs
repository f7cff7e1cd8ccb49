//! ArcSight CEF (reference §4.1), including Check Point, FortiGate and Forcepoint CEF output.
//!
//! * In: `line.body`; the record starts at `CEF:<digits>|`, at the start of the body (after a
//!   syslog header) or after other text. Header:
//!   `CEF:Version|Vendor|Product|Version|Signature ID|Name|Severity|Extension`, with `\|` and
//!   `\\` escaped. The extension is `key=value` separated by spaces; a value runs to the next
//!   ` key=` whose `=` is not escaped (`\=`), so values may hold spaces.
//! * Detect: `CEF:` followed by digits and `|`.
//! * Roles: `src`/`sourceAddress` source, `dst`/`destinationAddress` destination,
//!   `sourceTranslatedAddress`/`destinationTranslatedAddress` nat (`0.0.0.0`, `::`, `-` = none).
//!   `c6a1..c6a4` (`deviceCustomIPv6AddressN`) by their `c6aNLabel`: a label with "source" is
//!   source, with "destination" destination, any other label is ignored (device addresses);
//!   without a label the ArcSight convention applies (`c6a2` source, `c6a3` destination).
//!   `csN` strings only when labelled as X-Forwarded-For (`forwarded`/`xff` in the label):
//!   forwarded, first hop. FortiGate keys `FTNTFGTtransip`/`FTNTFGTtranip` nat, `FTNTFGTremip`
//!   source, `FTNTFGTlocip` destination, `FTNTFGTforwardedfor` forwarded.
//! * `dvc`/`deviceAddress` is the reporting device: the observer. `shost`/`dhost` are names.
//! * Context: vendor and product from the header (unescaped, owned only when the field held an
//!   escape), rule = Name (else Signature ID), action `act`, timestamp `rt`.
//! * A header with fewer than seven `|`-terminated fields is malformed.

use std::borrow::Cow;

use crate::model::{Event, Role};
use crate::stages::parse::fields::present;
use crate::stages::parse::fields::Needle;
use crate::stages::parse::{Line, LogFormat, ParseError};

static CEF: Needle = Needle::new(b"CEF:");

const NAME: &str = "cef";
const NO_ADDRESS: [&str; 3] = ["0.0.0.0", "::", "-"];

/// Format `cef`.
pub(crate) struct Cef;

/// Byte offset of a `CEF:<digits>|` prefix in `text`.
fn cef_start(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    CEF.find_iter(bytes).find(|&at| {
        let rest = &bytes[at + 4..];
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        digits > 0 && rest.get(digits) == Some(&b'|')
    })
}

/// The seven header fields (raw, escapes as written) and the extension.
fn split_header(record: &str) -> Option<([&str; 7], &str)> {
    let bytes = record.as_bytes();
    let mut fields = [""; 7];
    let mut start = 0;
    let mut index = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'|' => {
                fields[index] = &record[start..i];
                index += 1;
                start = i + 1;
                if index == 7 {
                    return Some((fields, &record[start..]));
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// A header field with `\|` and `\\` unescaped; borrowed unless it held an escape.
fn unescape_header(field: &str) -> Cow<'_, str> {
    if !field.contains('\\') {
        return Cow::Borrowed(field);
    }
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                if next != '|' && next != '\\' {
                    out.push('\\');
                }
                out.push(next);
                continue;
            }
        }
        out.push(c);
    }
    Cow::Owned(out)
}

/// An extension value with `\=`, `\\`, `\n`, `\r` unescaped; borrowed unless it held one.
fn unescape_value(value: &str) -> Cow<'_, str> {
    if !value.contains('\\') {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some(next @ ('=' | '\\'))) => {
                out.push(next);
                chars.next();
            }
            ('\\', Some('n')) => {
                out.push('\n');
                chars.next();
            }
            ('\\', Some('r')) => {
                out.push('\r');
                chars.next();
            }
            _ => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'[' | b']')
}

/// `key=value` pairs of a CEF extension.
#[derive(Debug, Clone)]
struct Extension<'a> {
    text: &'a str,
    /// Where to look for the next unescaped `=`.
    pos: usize,
    /// The key whose value starts at `pos`, and where that value starts.
    pending: Option<(&'a str, usize)>,
}

impl<'a> Extension<'a> {
    /// Pairs of `text`.
    fn new(text: &'a str) -> Self {
        let mut extension = Extension {
            text,
            pos: 0,
            pending: None,
        };
        extension.pending = extension
            .next_boundary()
            .map(|(key_start, eq)| (&text[key_start..eq], eq + 1));
        extension
    }

    /// (key start, `=` position) of the next valid key at or after `pos`.
    fn next_boundary(&mut self) -> Option<(usize, usize)> {
        let bytes = self.text.as_bytes();
        let mut i = self.pos;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 1,
                b'=' => {
                    let key_start = bytes[..i]
                        .iter()
                        .rposition(|&b| !is_key_byte(b))
                        .map_or(0, |p| p + 1);
                    let starts_word = key_start == 0 || bytes[key_start - 1] == b' ';
                    if key_start < i && starts_word {
                        self.pos = i + 1;
                        return Some((key_start, i));
                    }
                }
                _ => {}
            }
            i += 1;
        }
        self.pos = bytes.len();
        None
    }
}

impl<'a> Iterator for Extension<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let (key, value_start) = self.pending.take()?;
        let value_end = match self.next_boundary() {
            Some((key_start, eq)) => {
                self.pending = Some((&self.text[key_start..eq], eq + 1));
                key_start
            }
            None => self.text.len(),
        };
        let value = self.text.get(value_start..value_end).unwrap_or("");
        Some((key, value.trim_end_matches([' ', '\r', '\n'])))
    }
}

/// Whether `haystack` contains `needle` (lowercase ASCII), ignoring ASCII case.
fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Index 0..4 of `c6aN`/`deviceCustomIPv6AddressN`, and whether the key is its label.
fn ipv6_custom(key: &str) -> Option<(usize, bool)> {
    let rest = key
        .strip_prefix("c6a")
        .or_else(|| key.strip_prefix("deviceCustomIPv6Address"))?;
    let (digit, label) = match rest.strip_suffix("Label") {
        Some(digit) => (digit, true),
        None => (rest, false),
    };
    match digit {
        "1" | "2" | "3" | "4" => Some((usize::from(digit.as_bytes()[0] - b'1'), label)),
        _ => None,
    }
}

/// Index 0..6 of `csN`/`deviceCustomStringN`, and whether the key is its label.
fn custom_string(key: &str) -> Option<(usize, bool)> {
    let rest = key
        .strip_prefix("cs")
        .or_else(|| key.strip_prefix("deviceCustomString"))?;
    let (digit, label) = match rest.strip_suffix("Label") {
        Some(digit) => (digit, true),
        None => (rest, false),
    };
    match digit.as_bytes() {
        [d @ b'1'..=b'6'] => Some((usize::from(d - b'1'), label)),
        _ => None,
    }
}

impl LogFormat for Cef {
    fn name(&self) -> &'static str {
        NAME
    }

    fn detect(&self, line: &Line<'_>) -> bool {
        cef_start(line.body).is_some()
    }

    fn parse<'a>(&self, line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        let start = cef_start(line.body)
            .ok_or_else(|| ParseError::malformed(NAME, "no CEF:<version>| prefix"))?;
        let record = &line.body[start..];
        let (header, extension) = split_header(record).ok_or_else(|| {
            ParseError::malformed(NAME, "header has fewer than 7 |-terminated fields")
        })?;
        let mut event = Event {
            format: NAME,
            vendor: present(header[1], &[]).map(unescape_header),
            product: present(header[2], &[]).map(unescape_header),
            rule: present(header[5], &[])
                .or(present(header[4], &[]))
                .map(unescape_header),
            ..Event::default()
        };
        let mut ipv6: [(Option<&'a str>, Option<&'a str>); 4] = [(None, None); 4];
        let mut strings: [(Option<&'a str>, Option<&'a str>); 6] = [(None, None); 6];
        for (key, value) in Extension::new(extension) {
            let role = match key {
                "src" | "sourceAddress" | "FTNTFGTremip" => Role::Source,
                "dst" | "destinationAddress" | "FTNTFGTlocip" => Role::Destination,
                "sourceTranslatedAddress"
                | "destinationTranslatedAddress"
                | "FTNTFGTtransip"
                | "FTNTFGTtranip" => Role::Nat,
                "FTNTFGTforwardedfor" => {
                    push_forwarded(&mut event, value);
                    continue;
                }
                "dvc" | "deviceAddress" => {
                    event.observer = present(value, &NO_ADDRESS).map(Cow::Borrowed);
                    continue;
                }
                "act" | "deviceAction" => {
                    event.action = present(value, &[]).map(unescape_value);
                    continue;
                }
                "rt" | "deviceReceiptTime" => {
                    event.timestamp = present(value, &[]).map(unescape_value);
                    continue;
                }
                // d-siem: the connection's ports, transport and direction (CEF dictionary).
                "spt" | "sourcePort" => {
                    event.src_port = present(value, &[]).map(Cow::Borrowed);
                    continue;
                }
                "dpt" | "destinationPort" => {
                    event.dst_port = present(value, &[]).map(Cow::Borrowed);
                    continue;
                }
                "proto" | "transportProtocol" => {
                    event.protocol = present(value, &[]).map(Cow::Borrowed);
                    continue;
                }
                "deviceDirection" => {
                    event.direction = present(value, &[]).map(Cow::Borrowed);
                    continue;
                }
                _ => {
                    if let Some((n, label)) = ipv6_custom(key) {
                        let slot = &mut ipv6[n];
                        *if label { &mut slot.1 } else { &mut slot.0 } = Some(value);
                    } else if let Some((n, label)) = custom_string(key) {
                        let slot = &mut strings[n];
                        *if label { &mut slot.1 } else { &mut slot.0 } = Some(value);
                    }
                    continue;
                }
            };
            if let Some(ip) = present(value, &NO_ADDRESS) {
                event.addresses.push((role, Cow::Borrowed(ip)));
            }
        }
        for (n, (value, label)) in ipv6.into_iter().enumerate() {
            let Some(ip) = value.and_then(|v| present(v, &NO_ADDRESS)) else {
                continue;
            };
            let role = match label {
                Some(label) if contains_ignore_case(label, "source") => Role::Source,
                Some(label) if contains_ignore_case(label, "destination") => Role::Destination,
                Some(_) => continue,
                None if n == 1 => Role::Source,
                None if n == 2 => Role::Destination,
                None => continue,
            };
            event.addresses.push((role, Cow::Borrowed(ip)));
        }
        for (value, label) in strings {
            if let (Some(value), Some(label)) = (value, label) {
                if contains_ignore_case(label, "forwarded") || contains_ignore_case(label, "xff") {
                    push_forwarded(&mut event, value);
                }
            }
        }
        Ok(event)
    }
}

/// An X-Forwarded-For list: its first hop is the original client.
fn push_forwarded<'a>(event: &mut Event<'a>, value: &'a str) {
    let first = value.split(',').next().unwrap_or(value);
    if let Some(ip) = present(first, &NO_ADDRESS) {
        event.addresses.push((Role::Forwarded, Cow::Borrowed(ip)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_values_run_to_the_next_key() {
        let pairs: Vec<_> =
            Extension::new(r"src=192.0.2.10 msg=rule a\=b matched in C:\\rules act=allow x=")
                .collect();
        assert_eq!(
            pairs,
            [
                ("src", "192.0.2.10"),
                ("msg", r"rule a\=b matched in C:\\rules"),
                ("act", "allow"),
                ("x", "")
            ]
        );
        assert_eq!(Extension::new("").count(), 0);
        assert_eq!(Extension::new("=a =b c= d\\").count(), 1);
        assert_eq!(unescape_value(r"a\=b\\c\n"), "a=b\\c\n");
        assert_eq!(unescape_header(r"Example\|Vendor\\x"), r"Example|Vendor\x");
    }

    #[test]
    fn header_escapes() {
        let (header, ext) = split_header(r"CEF:0|A\|B|P|1|2|N|3|src=1").unwrap();
        assert_eq!(header[1], r"A\|B");
        assert_eq!(ext, "src=1");
        assert!(split_header("CEF:0|a|b|c").is_none());
        assert_eq!(cef_start("junk CEF:x CEF:12|a"), Some(11));
    }
}
