//! Cisco Meraki MX (and MR/MS) syslog (log-formats-2.md §3; Meraki "Syslog Server Overview and
//! Configuration" and "Syslog Event Types and Log Samples").
//!
//! * In: `<PRI>1 <epoch>.<nanoseconds> <device> <category> <body>`, also behind a receiver's
//!   own `Mmm dd hh:mm:ss <sender>` header. This is not RFC 5424 (no PROCID/MSGID), so the body
//!   is found again in the whole line after the category word.
//! * Detect: `1 ` then an epoch of 10 digits and a `.`, right after the PRI, at the start of
//!   the line or of the body after a receiver's header, then the device name and a category
//!   word (`urls`, `flows`, `firewall`, `vpn_firewall`, `events`,
//!   `ids-alerts`, `security_event`, `ip_flow_start`, …).
//! * Roles: `src` → source (the initiator: the LAN client outbound, the Internet host
//!   inbound), `dst` → destination (both may carry `:port`); `translated_src_ip`,
//!   `translated_dst_ip` → nat. Events: `peer_contact='A:p'` (site-to-site VPN peer),
//!   `Peer IP=A`, `connected from A` (client VPN) → source, the tunnel's `local ip A` →
//!   unknown; `lease of ip A` (DHCP lease given to a client) → source; other event text:
//!   the generic scanner's `from`/`to` keywords, else unknown (the DHCP `host = A` is the MX
//!   itself). `mac=` is a MAC, never an address.
//! * Context: vendor Cisco Meraki, product MX; observer = the device name; action = the
//!   `pattern:` verdict (`allow`/`deny`; inbound rules write `1` deny, `0` allow) or the
//!   `action=` / IDS `decision=` value; rule = the `pattern:` text (`allow all`, `1 all`) or
//!   the IDS `signature=`.
//! * Malformed: a traffic category (`urls`, `flows`, `*firewall`) without `src=`.

use std::borrow::Cow;

use crate::model::{Event, Role};
use crate::stages::parse::fields::{present, KvPairs};
use crate::stages::parse::formats::phrases::{
    add_others_as_unknown, address_after, push, token_address,
};
use crate::stages::parse::{scan, Line, LogFormat, ParseError};

/// Name in `observed.format`.
pub(crate) const NAME: &str = "meraki";

/// Format `meraki`.
pub(crate) struct Meraki;

/// `1 <10 digits>.` at the start of `text`.
fn starts_with_epoch_header(text: &str) -> bool {
    let b = text.as_bytes();
    b.starts_with(b"1 ")
        && b.get(2..12)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
        && b.get(12) == Some(&b'.')
}

/// Where the `1 <epoch>` header starts: right after the PRI, or (a receiver's file) the body
/// after the receiver's own header.
fn header_start<'a>(line: &Line<'a>) -> Option<&'a str> {
    let after_pri = line
        .text
        .strip_prefix('<')
        .and_then(|rest| rest.find('>').map(|end| &rest[end + 1..]));
    [after_pri, Some(line.body), Some(line.text)]
        .into_iter()
        .flatten()
        .find(|t| starts_with_epoch_header(t))
}

/// `(device, category, body)` of a Meraki line.
fn split<'a>(line: &Line<'a>) -> Option<(&'a str, &'a str, &'a str)> {
    let text = header_start(line)?;
    let mut parts = text[2..].splitn(4, ' ');
    let epoch = parts.next()?;
    if !epoch[11..].bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let device = parts.next().filter(|d| !d.is_empty())?;
    let category = parts.next().filter(|c| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'))
    })?;
    Some((device, category, parts.next().unwrap_or("")))
}

fn is_traffic(category: &str) -> bool {
    matches!(category, "urls" | "flows") || category.ends_with("firewall")
}

/// The verdict after `pattern: ` (`allow all`, `deny …`, inbound `1 all` / `0 all`).
fn pattern_action(body: &str) -> Option<&str> {
    let at = body.find("pattern: ")? + 9;
    match body[at..].split(' ').next()? {
        "1" => Some("deny"),
        "0" => Some("allow"),
        word @ ("allow" | "deny" | "Allow" | "Deny") => Some(word),
        _ => None,
    }
}

impl LogFormat for Meraki {
    fn name(&self) -> &'static str {
        NAME
    }

    fn detect(&self, line: &Line<'_>) -> bool {
        split(line).is_some()
    }

    fn parse<'a>(&self, line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        /// The port of an `a.b.c.d:port` or `[v6]:port` endpoint (`192.0.2.23:53012`).
        fn port_after(value: &str) -> Option<&str> {
            let (host, port) = value.rsplit_once(':')?;
            let host_ok = (host.contains('.') && !host.contains(':'))
                || (host.starts_with('[') && host.ends_with(']'));
            (host_ok && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
                .then_some(port)
        }
        let (device, category, body) = split(line).ok_or_else(|| {
            ParseError::malformed(NAME, "no `1 <epoch>.<ns> <device> <category>` header")
        })?;
        let mut event = Event {
            format: NAME,
            vendor: Some(Cow::Borrowed("Cisco Meraki")),
            product: Some(Cow::Borrowed("MX")),
            observer: Some(Cow::Borrowed(device)),
            rule: body
                .find(" pattern: ")
                .map(|at| Cow::Borrowed(body[at + 10..].trim())),
            action: pattern_action(body).map(Cow::Borrowed),
            ..Event::default()
        };
        // Pairs end at the free-text tail (`pattern:`, `request:`, IDS `message:`).
        let tail = [" pattern: ", " request: ", " message: "]
            .iter()
            .filter_map(|m| body.find(m))
            .min()
            .unwrap_or(body.len());
        let pairs = &body[..tail];
        let (mut source, mut destination) = (None, None);
        let mut has_src = false;
        for (key, value) in KvPairs::new(pairs) {
            let value = present(value, &["-", "0.0.0.0", "::"]);
            match key {
                "src" => {
                    has_src = true;
                    source = value.and_then(token_address);
                    // d-siem: `src=192.0.2.23:53012` (urls, IDS) carries the port.
                    if event.src_port.is_none() {
                        event.src_port = value.and_then(port_after).map(Cow::Borrowed);
                    }
                }
                "dst" => {
                    destination = value.and_then(token_address);
                    if event.dst_port.is_none() {
                        event.dst_port = value.and_then(port_after).map(Cow::Borrowed);
                    }
                }
                // d-siem: flows' ports, transport (`tcp`, IDS `tcp/ip`) and IDS direction.
                "sport" => event.src_port = value.map(Cow::Borrowed),
                "dport" => event.dst_port = value.map(Cow::Borrowed),
                "protocol" => event.protocol = value.map(Cow::Borrowed),
                "direction" => event.direction = value.map(Cow::Borrowed),
                "translated_src_ip" | "translated_dst_ip" => {
                    push(&mut event, Role::Nat, value.and_then(token_address));
                }
                "peer_contact" => source = source.or(value.and_then(token_address)),
                "signature" if event.rule.is_none() => event.rule = value.map(Cow::Borrowed),
                "action" | "decision" if event.action.is_none() => {
                    event.action = value.map(Cow::Borrowed);
                }
                _ => {}
            }
        }
        if is_traffic(category) && !has_src {
            return Err(ParseError::malformed(
                NAME,
                format!("a `{category}` line without src="),
            ));
        }
        if source.is_none() && destination.is_none() {
            // Event text: VPN peers and DHCP leases in words.
            source = ["Peer IP=", "connected from ", "lease of ip "]
                .iter()
                .find_map(|m| address_after(body, m));
            if source.is_none() && event.addresses.is_empty() {
                scan::scan_addresses(body, &mut event);
                return Ok(event);
            }
            if source.is_some() {
                // The other addresses of the text (tunnel address, router, DNS) have no role.
                push(&mut event, Role::Source, source);
                add_others_as_unknown(body, &mut event);
                push(&mut event, Role::Destination, destination);
                return Ok(event);
            }
        }
        push(&mut event, Role::Source, source);
        push(&mut event, Role::Destination, destination);
        Ok(event)
    }
}
