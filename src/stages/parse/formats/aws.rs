//! AWS VPC Flow Logs, space-separated text records (reference §2.12).
//!
//! * In: the default v2 record of 14 fields (`version account-id interface-id srcaddr dstaddr
//!   srcport dstport protocol packets bytes start end action log-status`), or a custom record
//!   read by the stream's header line (`line.fields`, kind [`HeaderKind::AwsVpc`]; the header
//!   itself is taken by the registry).
//! * Detection: the stream has a VPC header and the line has that many fields, or the line starts
//!   like the default record: `^\d+ \d{12} (eni-|-)`. Without a header the default positions
//!   are used (0-based 3 srcaddr, 4 dstaddr, 12 action, 13 log-status).
//! * Roles: `srcaddr` source, `dstaddr` destination. `pkt-srcaddr`/`pkt-dstaddr` are the
//!   packet-level original addresses; `srcaddr`/`dstaddr` are those of the interface the flow
//!   crossed (a NAT gateway's ENI, an EKS node). When a `pkt-` address is present and differs,
//!   it is the real source/destination and the interface address is reported as nat.
//! * Direction: each connection is logged once per direction, and a record follows its packets.
//!   Only the responder sends SYN-ACK, so a record whose `tcp-flags` has the ACK bit (SYN-ACK,
//!   18) is the reply direction: its source and destination are swapped so that the source is
//!   the initiator. Without `tcp-flags` the packet direction is kept.
//! * `NODATA`/`SKIPDATA` records have `-` in every address field: no addresses, not an error.
//! * Context: vendor `AWS`, product `VPC Flow Logs`, `action` (ACCEPT/REJECT), `start` as
//!   timestamp, `interface-id` as observer (the interface that reported the flow).

use std::borrow::Cow;

use crate::model::{Event, Role};
use crate::stages::parse::fields::present;
use crate::stages::parse::headers::{
    FieldsHeader, HeaderKind, VPC_DEFAULT_FIELD_COUNT, VPC_FIELDS,
};
use crate::stages::parse::{Line, LogFormat, ParseError};

const NAME: &str = "aws_vpc_flow";

/// Format `aws_vpc_flow`.
pub(crate) struct VpcFlow;

fn vpc_header<'h>(line: &'h Line<'_>) -> Option<&'h FieldsHeader> {
    line.fields
        .as_deref()
        .filter(|h| h.kind == HeaderKind::AwsVpc)
}

fn fits(body: &str, count: usize) -> bool {
    body.split_ascii_whitespace().take(count + 1).count() == count
}

/// `^\d+ \d{12} (eni-|-)`: the start of a default record.
fn has_default_shape(body: &str) -> bool {
    let b = body.as_bytes();
    let version = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if !(1..=3).contains(&version) || b.get(version) != Some(&b' ') {
        return false;
    }
    let account = version + 1;
    b.get(account..account + 12)
        .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
        && b.get(account + 12) == Some(&b' ')
        && b.get(account + 13..)
            .is_some_and(|rest| rest.starts_with(b"eni-") || rest.starts_with(b"- "))
}

/// The fields of one record that matter here.
#[derive(Default)]
struct Record<'a> {
    srcaddr: Option<&'a str>,
    dstaddr: Option<&'a str>,
    pkt_srcaddr: Option<&'a str>,
    pkt_dstaddr: Option<&'a str>,
    tcp_flags: Option<&'a str>,
    log_status: Option<&'a str>,
    has_src_column: bool,
}

impl LogFormat for VpcFlow {
    fn uses_stream_fields(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        NAME
    }

    fn detect(&self, line: &Line<'_>) -> bool {
        vpc_header(line).is_some_and(|h| fits(line.body, h.names.len()))
            || has_default_shape(line.body)
    }

    fn parse<'a>(&self, line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        let body = line.body;
        let header = vpc_header(line).filter(|h| fits(body, h.names.len()));
        let mut event = Event {
            format: NAME,
            vendor: Some(Cow::Borrowed("AWS")),
            product: Some(Cow::Borrowed("VPC Flow Logs")),
            ..Event::default()
        };
        let mut record = Record::default();
        let mut count = 0;
        for (i, value) in body.split_ascii_whitespace().enumerate() {
            count += 1;
            let name = match header {
                Some(h) => h.names.get(i).map(String::as_str),
                None => VPC_FIELDS[..VPC_DEFAULT_FIELD_COUNT].get(i).copied(),
            };
            let Some(name) = name else { break };
            let value_present = present(value, &["-"]);
            match name {
                "srcaddr" => {
                    record.has_src_column = true;
                    record.srcaddr = value_present;
                }
                "dstaddr" => record.dstaddr = value_present,
                "pkt-srcaddr" => {
                    record.has_src_column = true;
                    record.pkt_srcaddr = value_present;
                }
                "pkt-dstaddr" => record.pkt_dstaddr = value_present,
                "tcp-flags" => record.tcp_flags = value_present,
                "log-status" => record.log_status = value_present,
                "action" => event.action = value_present.map(Cow::Borrowed),
                "start" => event.timestamp = value_present.map(Cow::Borrowed),
                // d-siem: ports, IANA protocol number, and (v5) `flow-direction`.
                "srcport" => event.src_port = value_present.map(Cow::Borrowed),
                "dstport" => event.dst_port = value_present.map(Cow::Borrowed),
                "protocol" => event.protocol = value_present.map(Cow::Borrowed),
                "flow-direction" => event.direction = value_present.map(Cow::Borrowed),
                "interface-id" => event.observer = value_present.map(Cow::Borrowed),
                _ => {}
            }
        }
        if matches!(record.log_status, Some("NODATA" | "SKIPDATA")) {
            return Ok(event);
        }
        if !record.has_src_column {
            return Err(ParseError::malformed(
                NAME,
                format!("{count} fields, srcaddr is field 4 (or named by the header line)"),
            ));
        }
        let (source, source_nat) = original_and_interface(record.pkt_srcaddr, record.srcaddr);
        let (destination, destination_nat) =
            original_and_interface(record.pkt_dstaddr, record.dstaddr);
        let (source, destination) = if is_reply(record.tcp_flags) {
            (destination, source)
        } else {
            (source, destination)
        };
        let addresses = [
            (Role::Source, source),
            (Role::Destination, destination),
            (Role::Nat, source_nat),
            (Role::Nat, destination_nat),
        ];
        for (role, address) in addresses {
            if let Some(address) = address {
                event.addresses.push((role, Cow::Borrowed(address)));
            }
        }
        Ok(event)
    }
}

/// (real address, interface address when it differs): the packet-level address wins.
fn original_and_interface<'a>(
    packet: Option<&'a str>,
    interface: Option<&'a str>,
) -> (Option<&'a str>, Option<&'a str>) {
    match (packet, interface) {
        (Some(packet), Some(interface)) if packet != interface => (Some(packet), Some(interface)),
        (Some(packet), _) => (Some(packet), None),
        (None, interface) => (interface, None),
    }
}

/// Whether `tcp-flags` holds the ACK bit, which only the SYN-ACK reply sets.
fn is_reply(tcp_flags: Option<&str>) -> bool {
    tcp_flags
        .and_then(|f| f.parse::<u16>().ok())
        .is_some_and(|f| f & 0x10 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_shape() {
        assert!(has_default_shape(
            "2 123456789012 eni-0a1b2c3d4e5f60001 192.0.2.10"
        ));
        assert!(has_default_shape("5 123456789012 - - - -"));
        assert!(!has_default_shape("2 12345678901 eni-0a1b"));
        assert!(!has_default_shape("1709294400.123 150 192.0.2.10"));
    }

    #[test]
    fn packet_addresses_win() {
        assert_eq!(
            original_and_interface(Some("a"), Some("b")),
            (Some("a"), Some("b"))
        );
        assert_eq!(
            original_and_interface(Some("a"), Some("a")),
            (Some("a"), None)
        );
        assert_eq!(original_and_interface(None, Some("b")), (Some("b"), None));
        assert!(is_reply(Some("19")) && !is_reply(Some("3")) && !is_reply(None));
    }
}
