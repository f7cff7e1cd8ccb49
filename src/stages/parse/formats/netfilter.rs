//! Linux netfilter (iptables / nftables) kernel `LOG` lines (reference §2.6).
//!
//! * Detects: ` SRC=` in the message and either the tag `kernel` or `IN=`.
//! * Reads: space-separated `KEY=value` tokens outside `[ … ]`: the first `SRC=` is the source,
//!   the first `DST=` the destination. ICMP errors quote the offending packet in brackets
//!   (`[SRC=… DST=… ]`): those belong to the quoted packet and are skipped, as are the uptime
//!   stamp `[123456.789012]` and bracketed prefixes. `MAC=` (a colon string that looks like
//!   IPv6) is never read. IPv6 is printed fully expanded; `extract` canonicalises it.
//! * Roles: source / destination as the hook saw them (in FORWARD, DNAT is already applied);
//!   no NAT role.
//! * vendor `Linux`, product `netfilter`, rule = the log prefix before `IN=` without brackets or
//!   a trailing colon (`[UFW BLOCK]` → `UFW BLOCK`, `FINAL_REJECT:` → `FINAL_REJECT`).
//! * Malformed: no `SRC=` outside brackets (a truncated kernel line).

use std::borrow::Cow;

use crate::model::{Event, Role};
use crate::stages::parse::fields::Needle;
use crate::stages::parse::{Line, LogFormat, ParseError};

static IN: Needle = Needle::new(b"IN=");
static SRC: Needle = Needle::new(b" SRC=");

/// Name in `observed.format`.
pub(crate) const NAME: &str = "netfilter";

/// Format `netfilter`.
pub(crate) struct Netfilter;

/// The log prefix: text before `IN=`, after the uptime stamp.
fn prefix(body: &str) -> Option<&str> {
    let end = IN.find(body.as_bytes())?;
    // `kernel:` stays in the message when the line had no syslog header.
    let text = body[..end].trim();
    let mut text = text.strip_prefix("kernel:").unwrap_or(text).trim_start();
    // `[123456.789012]` uptime stamp.
    if let Some(inner) = text.strip_prefix('[') {
        if let Some(close) = inner.find(']') {
            if inner[..close]
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'.' || b == b' ')
            {
                text = inner[close + 1..].trim();
            }
        }
    }
    let text = text.trim_end_matches(':').trim();
    let text = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text)
        .trim();
    (!text.is_empty()).then_some(text)
}

impl LogFormat for Netfilter {
    fn name(&self) -> &'static str {
        NAME
    }

    fn detect(&self, line: &Line<'_>) -> bool {
        let body = line.body.as_bytes();
        SRC.find(body).is_some() && (line.app() == Some("kernel") || IN.find(body).is_some())
    }

    fn parse<'a>(&self, line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        let mut src = None;
        let mut dst = None;
        // d-siem: PROTO=, SPT=, DPT= of the logged packet.
        let (mut proto, mut spt, mut dpt) = (None, None, None);
        let mut depth = 0usize;
        for token in line.body.split(' ') {
            depth += token.bytes().filter(|&b| b == b'[').count();
            if depth == 0 {
                if let Some(value) = token.strip_prefix("SRC=") {
                    src.get_or_insert(value);
                } else if let Some(value) = token.strip_prefix("DST=") {
                    dst.get_or_insert(value);
                } else if let Some(value) = token.strip_prefix("PROTO=") {
                    proto.get_or_insert(value);
                } else if let Some(value) = token.strip_prefix("SPT=") {
                    spt.get_or_insert(value);
                } else if let Some(value) = token.strip_prefix("DPT=") {
                    dpt.get_or_insert(value);
                }
            }
            depth = depth.saturating_sub(token.bytes().filter(|&b| b == b']').count());
        }
        let src = src.ok_or_else(|| ParseError::malformed(NAME, "no SRC= outside brackets"))?;
        let mut event = Event {
            format: NAME,
            vendor: Some(Cow::Borrowed("Linux")),
            product: Some(Cow::Borrowed("netfilter")),
            rule: prefix(line.body).map(Cow::Borrowed),
            protocol: proto.map(Cow::Borrowed),
            src_port: spt.map(Cow::Borrowed),
            dst_port: dpt.map(Cow::Borrowed),
            ..Event::default()
        };
        event.addresses.push((Role::Source, Cow::Borrowed(src)));
        if let Some(dst) = dst.filter(|d| !d.is_empty()) {
            event
                .addresses
                .push((Role::Destination, Cow::Borrowed(dst)));
        }
        Ok(event)
    }
}
