//! Palo Alto Networks PAN-OS syslog in the default CSV layout (reference §2.1).
//!
//! * In: `line.body`, the CSV record after the syslog header: field 0 a FUTURE_USE number,
//!   field 1 the receive time `YYYY/MM/DD hh:mm:ss`, field 2 the serial, field 3 the log type.
//!   Fields are RFC 4180 quoted.
//! * Detect: that shape — digits, `,`, the receive time at a fixed offset, the serial, then a
//!   known log type followed by `,`.
//! * Roles (0-based, TRAFFIC, THREAT incl. url, DECRYPTION): 7 source, 8 destination (both
//!   pre-NAT), 9 NAT source and 10 NAT destination (nat; `0.0.0.0`/`::`/empty = no NAT),
//!   a NAT field equal to the original address is not a translation and is skipped;
//!   THREAT 48 X-Forwarded-For (forwarded, first hop), and a source-user field 12 written as
//!   `x-fwd-for: IP` (forwarded). Rule 11, action 30; a THREAT's rule is its threat name
//!   (32) unless it is the URL placeholder `(9999)`. Timestamp: generated time (6).
//! * Threat: a THREAT log's threat name (32) when its subtype (4) is a detection (virus,
//!   spyware, vulnerability, scan, flood, wildfire, …), not `url`, `file` or `data`.
//! * Other log types by their documented column positions (reference part 2 §13, 0-based here):
//!   USERID and AUTHENTICATION 8 Source IP = the user's device (source); GLOBALPROTECT 15/16
//!   Public IP/IPv6 = the endpoint's address before the tunnel (source), 17/18 Private
//!   IP/IPv6 = the address assigned inside the tunnel (nat); HIPMATCH 11 Source Address and 26
//!   IPv6 Source Address (source; its Source User comes before Virtual System); CONFIG 7 Host =
//!   the administrator's client machine (source, when it is an address). SYSTEM has no address
//!   column: its Description (14) is read for `From: A`, `Login from: A`, `from A`,
//!   `initiated by: A`, `peer IP A` (source) and `server address 'A'` (destination); the
//!   wording is not documented by the vendor (assumed from real messages' shape). A column that
//!   does not hold an address (another release's layout) gives nothing, never an error.
//!   `0.0.0.0`/`::` are placeholders there too.
//! * Only the fields needed are split; extra trailing columns of newer releases are ignored,
//!   and so are the location fields, which hold IP *ranges*.

use std::borrow::Cow;

use crate::model::{Event, Role};
use crate::stages::extract::parse_ip_token;
use crate::stages::parse::fields::{present, CsvFields};
use crate::stages::parse::{Line, LogFormat, ParseError};

const NAME: &str = "paloalto";

/// Log types whose fields 7–10 are traffic addresses.
const TRAFFIC_TYPES: [&str; 3] = ["TRAFFIC", "THREAT", "DECRYPTION"];
/// Every log type `detect` accepts.
const LOG_TYPES: [&str; 17] = [
    "TRAFFIC",
    "THREAT",
    "DECRYPTION",
    "SYSTEM",
    "CONFIG",
    "HIPMATCH",
    "GLOBALPROTECT",
    "USERID",
    "AUTHENTICATION",
    "AUTH",
    "HIP-MATCH",
    "TUNNEL",
    "SCTP",
    "IPTAG",
    "CORRELATION",
    "GTP",
    "AUDIT",
];
/// THREAT subtypes (field 4) that record policy (URL filtering, file blocking, data
/// filtering), not a threat detection: their field 32 is no threat name.
const NOT_DETECTIONS: [&str; 3] = ["url", "file", "data"];
/// Values of the NAT columns that mean "no translation".
const NO_NAT: [&str; 3] = ["0.0.0.0", "::", "-"];

/// Format `paloalto`.
pub(crate) struct PanOs;

/// `YYYY/MM/DD hh:mm:ss`.
fn is_receive_time(b: &[u8]) -> bool {
    const DIGITS: [usize; 14] = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18];
    b.len() >= 19
        && DIGITS.iter().all(|&i| b[i].is_ascii_digit())
        && b[4] == b'/'
        && b[7] == b'/'
        && b[10] == b' '
        && b[13] == b':'
        && b[16] == b':'
}

/// The log type (field 3) if the body has the PAN-OS CSV shape.
fn log_type(body: &str) -> Option<&str> {
    let b = body.as_bytes();
    let first = memchr::memchr(b',', b.get(..8)?)?;
    if !b[..first].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let time = first + 1;
    if !is_receive_time(b.get(time..)?) || b.get(time + 19) != Some(&b',') {
        return None;
    }
    let serial = time + 20;
    let after_serial = serial + memchr::memchr(b',', b.get(serial..)?)? + 1;
    let rest = &b[after_serial..];
    let end = memchr::memchr(b',', rest)?;
    let kind = &body[after_serial..after_serial + end];
    LOG_TYPES.contains(&kind).then_some(kind)
}

impl LogFormat for PanOs {
    fn name(&self) -> &'static str {
        NAME
    }

    fn detect(&self, line: &Line<'_>) -> bool {
        log_type(line.body).is_some()
    }

    fn parse<'a>(&self, line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        let mut event = Event {
            format: NAME,
            vendor: Some(Cow::Borrowed("Palo Alto Networks")),
            product: Some(Cow::Borrowed("PAN-OS")),
            ..Event::default()
        };
        let mut fields = CsvFields::new(line.body, b',');
        // Fields 0..=11 of every layout, and as many as a traffic type needs after that.
        let mut head = [""; 13];
        let mut count = 0;
        for (slot, field) in head.iter_mut().zip(fields.by_ref()) {
            *slot = field;
            count += 1;
        }
        let kind = head[3];
        if count < 4 || !LOG_TYPES.contains(&kind) {
            return Err(ParseError::malformed(
                NAME,
                "no PAN-OS log type in field 3 (0-based)",
            ));
        }
        event.timestamp = present(head[6], &[])
            .or(present(head[1], &[]))
            .map(Cow::Borrowed);
        if !TRAFFIC_TYPES.contains(&kind) {
            // The other layouts read at most column 26.
            let mut all = [""; 27];
            all[..13].copy_from_slice(&head);
            for (slot, field) in all[13..].iter_mut().zip(fields) {
                *slot = field;
            }
            other_type(kind, &all, &mut event);
            return Ok(event);
        }
        if count < 12 {
            return Err(ParseError::malformed(
                NAME,
                format!("{kind} log with {count} fields; NAT destination is field 10, rule 11"),
            ));
        }
        let source = present(head[7], &[]).ok_or_else(|| {
            ParseError::malformed(NAME, "empty source address (field 7, 0-based)")
        })?;
        event.addresses.push((Role::Source, Cow::Borrowed(source)));
        if let Some(destination) = present(head[8], &[]) {
            event
                .addresses
                .push((Role::Destination, Cow::Borrowed(destination)));
        }
        // PAN-OS repeats the original address when that side was not translated.
        for (nat, original) in [(head[9], head[7]), (head[10], head[8])] {
            if let Some(nat) = present(nat, &NO_NAT) {
                if !same_address(nat, original) {
                    event.addresses.push((Role::Nat, Cow::Borrowed(nat)));
                }
            }
        }
        event.rule = present(head[11], &[]).map(Cow::Borrowed);
        // Some deployments write the XFF client into the source-user field.
        if let Some(xff) = head[12].strip_prefix("x-fwd-for: ") {
            push_forwarded(&mut event, xff);
        }
        // Fields 13..=30 (action), then 31.. for THREAT; `fields` resumes at 13.
        let threat = kind == "THREAT";
        let last = if threat { 48 } else { 30 };
        for (index, field) in (13..=last).zip(fields) {
            match index {
                // d-siem: source port, destination port, IP protocol (0-based 24, 25, 29).
                24 => event.src_port = present(field, &[]).map(Cow::Borrowed),
                25 => event.dst_port = present(field, &[]).map(Cow::Borrowed),
                29 => event.protocol = present(field, &[]).map(Cow::Borrowed),
                30 => event.action = present(field, &[]).map(Cow::Borrowed),
                32 => {
                    if let Some(name) = present(field, &[]).filter(|n| !n.starts_with('(')) {
                        event.rule = Some(Cow::Borrowed(name));
                        if !NOT_DETECTIONS.contains(&head[4]) {
                            event.threat = Some(Cow::Borrowed(name));
                        }
                    }
                }
                48 => push_forwarded(&mut event, field),
                _ => {}
            }
        }
        Ok(event)
    }
}

/// Addresses of the non-traffic log types, by column (0-based).
fn other_type<'a>(kind: &str, fields: &[&'a str; 27], event: &mut Event<'a>) {
    let columns: &[(usize, Role)] = match kind {
        "USERID" | "AUTHENTICATION" | "AUTH" => &[(8, Role::Source)],
        "GLOBALPROTECT" => &[
            (15, Role::Source),
            (16, Role::Source),
            (17, Role::Nat),
            (18, Role::Nat),
        ],
        "HIPMATCH" | "HIP-MATCH" => &[(11, Role::Source), (26, Role::Source)],
        "CONFIG" => &[(7, Role::Source)],
        "SYSTEM" => {
            system_description(fields[14], event);
            return;
        }
        _ => &[],
    };
    for &(column, role) in columns {
        if let Some(address) = address_in(fields[column]) {
            event.addresses.push((role, Cow::Borrowed(address)));
        }
    }
}

/// The field when it is an address (not a placeholder).
fn address_in(field: &str) -> Option<&str> {
    let field = field.trim();
    parse_ip_token(field)
        .is_some_and(|ip| !ip.is_unspecified())
        .then_some(field)
}

/// SYSTEM Description phrases naming the client (source) or a server (destination).
fn system_description<'a>(text: &'a str, event: &mut Event<'a>) {
    const LABELS: [(&str, Role); 7] = [
        ("From: ", Role::Source),
        ("from: ", Role::Source),
        ("initiated by: ", Role::Source),
        ("initiated by ", Role::Source),
        ("peer IP ", Role::Source),
        (" from ", Role::Source),
        ("server address ", Role::Destination),
    ];
    let mut seen_source = false;
    for (label, role) in LABELS {
        if role == Role::Source && seen_source {
            continue;
        }
        for (at, _) in text.match_indices(label) {
            let rest = text[at + label.len()..].trim_start_matches(['\'', '"']);
            let end = rest
                .find([' ', ',', '\'', '"', '[', '(', ';'])
                .unwrap_or(rest.len());
            let word = &rest[..end];
            let word = word.strip_suffix('.').unwrap_or(word);
            if let Some(address) = address_in(word) {
                event.addresses.push((role, Cow::Borrowed(address)));
                seen_source |= role == Role::Source;
                break;
            }
        }
    }
}

/// An X-Forwarded-For value: its first hop is the original client.
fn push_forwarded<'a>(event: &mut Event<'a>, value: &'a str) {
    let first = value.split(',').next().unwrap_or(value);
    if let Some(first) = present(first, &["-"]) {
        event
            .addresses
            .push((Role::Forwarded, Cow::Borrowed(first)));
    }
}

/// Whether two address fields name the same address (compared parsed, not as text).
fn same_address(a: &str, b: &str) -> bool {
    match (parse_ip_token(a), parse_ip_token(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a == b,
    }
}
