//! WatchGuard Firebox syslog (reference §2.10).
//!
//! * Reads: `[<device-name>] <serial> (YYYY-MM-DDThh:mm:ss) <process>[pid]: msg_id="XXXX-YYYY"
//!   <message>`, usually behind a syslog header (whose HOSTNAME is the device name).
//! * Detects: a `(YYYY-MM-DDThh:mm:ss)` stamp in the first 96 bytes and `msg_id="`.
//! * Traffic and proxy messages: `<disposition> <in-iface> <out-iface> …` then the first two
//!   address tokens are source and destination (packet-filter lines put len/proto/hdr-len/ttl
//!   before them, proxy lines only the protocol); ICMP has no ports. The policy is the first
//!   `(…)` group outside quotes after the addresses (`(Outgoing-00)`). Trailing pairs
//!   `src_ip_nat="…"` / `dst_ip_nat="…"` (names unverified) are nat when they differ from the
//!   originals. Other messages (authentication, system): an address right after ` from ` is
//!   the source, else no addresses.
//! * vendor `WatchGuard`, product `Firebox`, action = disposition (`Allow`/`Deny`), rule =
//!   policy, timestamp = the stamp. The device name before the serial is the observer when the
//!   syslog header had no HOSTNAME.
//! * Malformed: no `msg_id="…"`, or a `3000-` (packet filter) message with a disposition but
//!   fewer than two addresses.

use std::borrow::Cow;

use crate::model::{Event, Role};
use crate::stages::extract::parse_ip_token;
use crate::stages::parse::fields::Needle;
use crate::stages::parse::fields::{present, KvPairs};
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
        stamp(line.body).is_some() && MSG_ID.find(line.body.as_bytes()).is_some()
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
        let msg_at = body[from..]
            .find("msg_id=\"")
            .map(|i| from + i + 8)
            .ok_or_else(|| ParseError::malformed(NAME, "no msg_id=\"…\""))?;
        let close = body[msg_at..]
            .find('"')
            .ok_or_else(|| ParseError::malformed(NAME, "unterminated msg_id"))?;
        let msg_id = &body[msg_at..msg_at + close];
        let message = body[msg_at + close + 1..].trim_start_matches(' ');

        let mut words = message.split(' ').filter(|w| !w.is_empty());
        let disposition = words.next().filter(|w| is_disposition(w));
        if disposition.is_none() {
            // Authentication and system messages: `… from IP …`.
            let source = message.find(" from ").and_then(|at| {
                let rest = &message[at + 6..];
                let token = &rest[..rest.find([' ', ',']).unwrap_or(rest.len())];
                parse_ip_token(token).is_some().then_some(token)
            });
            push(&mut event, Role::Source, source);
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
