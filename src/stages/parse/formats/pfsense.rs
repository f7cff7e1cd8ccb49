//! pfSense / OPNsense `filterlog` CSV (reference §2.5).
//!
//! * Detects: the syslog tag `filterlog[pid]:` (RFC 3164, hostname often absent) or the RFC 5424
//!   APP-NAME `filterlog`; the message is the comma-separated record.
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

impl LogFormat for Filterlog {
    fn name(&self) -> &'static str {
        NAME
    }

    fn detect(&self, line: &Line<'_>) -> bool {
        line.app() == Some("filterlog")
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
