//! pfSense / OPNsense `filterlog` CSV (reference §2.5).
//!
//! * Detects: the syslog tag `filterlog[pid]:` (RFC 3164, hostname often absent) or the RFC 5424
//!   APP-NAME `filterlog`; the message is the comma-separated record. Without the tag (a
//!   collector that forwarded only the MSG, reference part 2 §0), by the record's shape alone:
//!   1-based field 1 a rule number or empty, 6 a pf reason word (`match`, …), 7 an action
//!   (`pass`, `block`, …), 8 `in`/`out`, 9 `4`/`6` — a combination no other format writes.
//! * Layout (1-based): 1 rule number, 4 tracker, 7 action, 8 direction, 9 IP version; IPv4:
//!   19 source, 20 destination; IPv6: 16 source, 17 destination. Only these positions are read:
//!   the tails differ per protocol (TCP/UDP/ICMP/CARP/…) and are ignored.
//! * Roles: source / destination as logged. NAT is not visible in filterlog (a rule logs pre- or
//!   post-NAT addresses depending on where it sits), so no nat role.
//! * vendor `pfSense/OPNsense` (the record does not say which), product `filterlog`, action =
//!   field 7 (`pass`/`block`), rule = field 1 (the rule number; the tracker when it is empty).
//! * Malformed: IP version not 4/6, or too few fields for the version's address positions.

use std::borrow::Cow;

use crate::model::{Event, Role};
use crate::stages::parse::{Line, LogFormat, ParseError};

/// Name in `observed.format`.
pub(crate) const NAME: &str = "pfsense_filterlog";

/// Fields read at most (IPv4 destination is 1-based 20).
const READ: usize = 20;

/// Format `pfsense_filterlog`.
pub(crate) struct Filterlog;

/// pf reason codes (field 6), as pf prints them.
const REASONS: [&str; 16] = [
    "match",
    "bad-offset",
    "fragment",
    "short",
    "normalize",
    "memory",
    "bad-timestamp",
    "congestion",
    "ip-option",
    "proto-cksum",
    "state-mismatch",
    "state-insert",
    "state-limit",
    "src-limit",
    "synproxy",
    "translate",
];
/// pf actions (field 7).
const ACTIONS: [&str; 8] = [
    "pass", "block", "reject", "scrub", "nat", "rdr", "binat", "match",
];

/// The headerless record shape: the first 9 fields as pf writes them.
fn is_filterlog_record(body: &str) -> bool {
    let first = body.as_bytes().first();
    if !matches!(first, Some(b',' | b'0'..=b'9')) {
        return false;
    }
    // The rule number, digits or empty, ends at the first comma: a cheap test before the split
    // of lines that start with a digit but are no CSV (VPC flow, W3C, plain text).
    let rule = body.bytes().take_while(u8::is_ascii_digit).count();
    if body.as_bytes().get(rule) != Some(&b',') {
        return false;
    }
    let mut fields = body.splitn(10, ',');
    let mut head = [""; 9];
    for slot in &mut head {
        match fields.next() {
            Some(field) => *slot = field,
            None => return false,
        }
    }
    head[0].bytes().all(|b| b.is_ascii_digit())
        && REASONS.contains(&head[5])
        && ACTIONS.contains(&head[6])
        && matches!(head[7], "in" | "out")
        && matches!(head[8], "4" | "6")
}

impl LogFormat for Filterlog {
    fn name(&self) -> &'static str {
        NAME
    }

    fn detect(&self, line: &Line<'_>) -> bool {
        line.app() == Some("filterlog") || is_filterlog_record(line.body)
    }

    fn parse<'a>(&self, line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        let mut fields = [""; READ];
        let mut count = 0;
        for (slot, field) in fields.iter_mut().zip(line.body.split(',')) {
            *slot = field.trim();
            count += 1;
        }
        // 0-based indexes of the addresses.
        let (src, dst) = match fields[8] {
            "4" => (18, 19),
            "6" => (15, 16),
            other => {
                return Err(ParseError::malformed(
                    NAME,
                    format!("field 9 (IP version) is {other:?}, expected 4 or 6"),
                ))
            }
        };
        if count <= dst || fields[src].is_empty() {
            return Err(ParseError::malformed(
                NAME,
                format!(
                    "{count} fields; IPv{} addresses are fields {} and {}",
                    fields[8],
                    src + 1,
                    dst + 1
                ),
            ));
        }
        let rule = if fields[0].is_empty() {
            fields[3]
        } else {
            fields[0]
        };
        let text = |s: &'a str| (!s.is_empty()).then_some(Cow::Borrowed(s));
        let mut event = Event {
            format: NAME,
            vendor: Some(Cow::Borrowed("pfSense/OPNsense")),
            product: Some(Cow::Borrowed("filterlog")),
            action: text(fields[6]),
            rule: text(rule),
            ..Event::default()
        };
        event
            .addresses
            .push((Role::Source, Cow::Borrowed(fields[src])));
        if !fields[dst].is_empty() {
            event
                .addresses
                .push((Role::Destination, Cow::Borrowed(fields[dst])));
        }
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_shape_without_the_tag() {
        assert!(is_filterlog_record(
            "5,,,1000000103,igb1,match,block,in,4,0x0,,64,1,0,DF,6,tcp,60,203.0.113.7,192.0.2.1"
        ));
        assert!(is_filterlog_record(
            ",,,1000000104,em0,match,block,in,6,0x00,0x00000,255,ipv6-icmp,58,32,2001:db8::99"
        ));
        // Other CSVs: a `4` in column 9 alone is not enough; a PAN-OS record; too few fields.
        for other in [
            "1,2,3,4,5,6,7,8,4,203.0.113.68",
            "1,2024/03/01 12:00:00,0123,TRAFFIC,end,1,2024/03/01 12:00:00,192.0.2.1",
            "5,,,1000000103,igb1,match,block,in",
            "x5,,,1,igb1,match,block,in,4,",
        ] {
            assert!(!is_filterlog_record(other), "{other}");
        }
    }
}
