//! WatchGuard Firebox syslog (reference §2.10).
//!
//! * Reads: `[<device-name>] <serial> (YYYY-MM-DDThh:mm:ss) <process>[pid]: msg_id="XXXX-YYYY"
//!   <message>`, usually behind a syslog header (whose HOSTNAME is the device name).
//! * Detects: a `(YYYY-MM-DDThh:mm:ss)` stamp in the first 96 bytes and `msg_id="`, or the
//!   stamp followed by a process tag (`dhcpd[123]: `, `admd: `): some processes (dhcpd, sshd,
//!   iked) write without a message id.
//! * Traffic and proxy messages: `<disposition> <in-iface> <out-iface> …` then the first two
//!   address tokens are source and destination (packet-filter lines put len/proto/hdr-len/ttl
//!   before them, proxy lines only the protocol); ICMP has no ports. The policy is the first
//!   `(…)` group outside quotes after the addresses (`(Outgoing-00)`). Trailing pairs
//!   `src_ip_nat="…"` / `dst_ip_nat="…"` (names unverified) are nat when they differ from the
//!   originals. Other messages (authentication, DHCP, system), also inside a `msg="…"` value:
//!   the DHCP client's address (`DHCPACK on A`, `DHCPOFFER on A`, `DHCPREQUEST for A`,
//!   `DHCPRELEASE of A`, `DHCPDECLINE of A`, `DHCPINFORM from A`) is the source and the relay
//!   or interface address after ` via ` unknown; else an address right after ` from ` is the
//!   source; else no addresses.
//! * vendor `WatchGuard`, product `Firebox`, action = disposition (`Allow`/`Deny`), rule =
//!   policy, timestamp = the stamp. The device name before the serial is the observer when the
//!   syslog header had no HOSTNAME.
//! * Malformed: neither `msg_id="…"` nor a process tag after the stamp, or a `3000-` (packet
//!   filter) message with a disposition but fewer than two addresses.

use std::borrow::Cow;

use crate::model::{Event, Role};
use crate::stages::extract::parse_ip_token;
use crate::stages::parse::fields::Needle;
use crate::stages::parse::fields::{present, KvPairs};
use crate::stages::parse::formats::phrases::address_after;
use crate::stages::parse::{Line, LogFormat, ParseError};

static MSG_ID: Needle = Needle::new(b"msg_id=\"");

/// Name in `observed.format`.
pub(crate) const NAME: &str = "watchguard";

/// Values meaning "no NAT".
const NO_NAT: [&str; 3] = ["0.0.0.0", "::", "-"];

/// Format `watchguard`.
pub(crate) struct WatchGuard;

/// Offset of the `(` of a `(YYYY-MM-DDThh:mm:ss)` stamp in the first 96 bytes.
fn stamp(body: &str) -> Option<usize> {
    let window = &body.as_bytes()[..body.len().min(96)];
    memchr::memchr_iter(b'(', window).find(|&at| {
        let b = &body.as_bytes()[at + 1..];
        b.len() >= 20
            && b[..4].iter().all(u8::is_ascii_digit)
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b'T'
            && b[13] == b':'
            && b[16] == b':'
            && b[19] == b')'
    })
}

fn is_disposition(word: &str) -> bool {
    matches!(word, "Allow" | "Deny" | "Drop" | "Block" | "Reject")
}

/// The first `(…)` group outside double quotes.
fn policy(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    let mut in_quotes = false;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'"' => in_quotes = !in_quotes,
            b'(' if !in_quotes && (i == 0 || bytes[i - 1] == b' ') => {
                let inner = &text[i + 1..];
                let close = inner.find(')')?;
                return Some(&inner[..close]).filter(|p| !p.is_empty());
            }
            _ => {}
        }
    }
    None
}

/// The text after `) process[pid]: ` (the stamp's closing parenthesis and a tag).
fn process_message(from_stamp: &str) -> Option<&str> {
    let rest = from_stamp.get(21..)?.trim_start_matches(' ');
    let tag_len = rest
        .bytes()
        .take(40)
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'[' | b']'))
        .count();
    (tag_len > 0 && rest[tag_len..].starts_with(": ")).then(|| &rest[tag_len + 2..])
}

/// DHCP client markers, each followed by the client's address.
const DHCP: [&str; 6] = [
    "DHCPACK on ",
    "DHCPOFFER on ",
    "DHCPREQUEST for ",
    "DHCPRELEASE of ",
    "DHCPDECLINE of ",
    "DHCPINFORM from ",
];

/// Roles in an authentication, DHCP or system message.
fn text_roles<'a>(message: &'a str, event: &mut Event<'a>) {
    if let Some(client) = DHCP.iter().find_map(|m| address_after(message, m)) {
        push(event, Role::Source, Some(client));
        push(event, Role::Unknown, address_after(message, " via "));
        return;
    }
    // Authentication and system messages: `… from IP …`.
    push(event, Role::Source, address_after(message, " from "));
}

fn push<'a>(event: &mut Event<'a>, role: Role, value: Option<&'a str>) {
    if let Some(value) = value {
        event.addresses.push((role, Cow::Borrowed(value)));
    }
}

impl LogFormat for WatchGuard {
    fn name(&self) -> &'static str {
        NAME
    }

    fn detect(&self, line: &Line<'_>) -> bool {
        stamp(line.body).is_some_and(|at| {
            MSG_ID.find(line.body.as_bytes()).is_some()
                || process_message(&line.body[at..]).is_some()
        })
    }

    fn parse<'a>(&self, line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        let body = line.body;
        let mut event = Event {
            format: NAME,
            vendor: Some(Cow::Borrowed("WatchGuard")),
            product: Some(Cow::Borrowed("Firebox")),
            ..Event::default()
        };
        let from = match stamp(body) {
            Some(at) => {
                event.timestamp = Some(Cow::Borrowed(&body[at + 1..at + 20]));
                let mut before = body[..at].split_whitespace();
                if let (Some(device), Some(_serial)) = (before.next(), before.next()) {
                    if line.syslog.and_then(|h| h.hostname).is_none() {
                        event.observer = Some(Cow::Borrowed(device));
                    }
                }
                at
            }
            None => 0,
        };
        let Some(msg_at) = body[from..].find("msg_id=\"").map(|i| from + i + 8) else {
            // A process that writes no message id: its text after the tag.
            let message = process_message(&body[from..])
                .ok_or_else(|| ParseError::malformed(NAME, "no msg_id=\"…\" and no process tag"))?;
            text_roles(message, &mut event);
            return Ok(event);
        };
        let close = body[msg_at..]
            .find('"')
            .ok_or_else(|| ParseError::malformed(NAME, "unterminated msg_id"))?;
        let msg_id = &body[msg_at..msg_at + close];
        let message = body[msg_at + close + 1..].trim_start_matches(' ');

        let mut words = message.split(' ').filter(|w| !w.is_empty());
        let disposition = words.next().filter(|w| is_disposition(w));
        if disposition.is_none() {
            text_roles(message, &mut event);
            return Ok(event);
        }
        event.action = disposition.map(Cow::Borrowed);
        let _interfaces = (words.next(), words.next());
        let mut addresses = [None, None];
        let mut found = 0;
        for word in words.by_ref().take(10) {
            if word.contains('=') || word.starts_with('(') {
                break;
            }
            // Lengths, protocol names and TTLs have neither `.` nor `:`: skip the parse.
            if word.contains(['.', ':']) && parse_ip_token(word).is_some() {
                addresses[found] = Some(word);
                found += 1;
                if found == 2 {
                    break;
                }
            }
        }
        let [src, dst] = addresses;
        if found < 2 && msg_id.starts_with("3000-") {
            return Err(ParseError::malformed(
                NAME,
                format!("msg_id {msg_id}: fewer than two addresses after the interfaces"),
            ));
        }
        let tail_at = dst.or(src).map_or(message.len(), |last| {
            last.as_ptr() as usize - message.as_ptr() as usize + last.len()
        });
        let tail = &message[tail_at..];
        event.rule = policy(tail).map(Cow::Borrowed);
        let (mut nat_src, mut nat_dst) = (None, None);
        if tail.contains("_nat=") {
            for (key, value) in KvPairs::new(tail) {
                match key {
                    "src_ip_nat" => nat_src = present(value, &NO_NAT),
                    "dst_ip_nat" => nat_dst = present(value, &NO_NAT),
                    _ => {}
                }
            }
        }
        let differs = |nat: Option<&'a str>, original: Option<&'a str>| {
            nat.filter(|n| original.is_none_or(|o| parse_ip_token(o) != parse_ip_token(n)))
        };
        push(&mut event, Role::Source, src);
        push(&mut event, Role::Destination, dst);
        push(&mut event, Role::Nat, differs(nat_src, src));
        push(&mut event, Role::Nat, differs(nat_dst, dst));
        Ok(event)
    }
}
