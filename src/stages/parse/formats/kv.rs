//! Generic `key=value` lines: the text reader of last resort before the IP scanner.
//!
//! Keys are matched case-insensitively against common names (`src`, `srcip`, `src_ip`, …),
//! then against the key-name rules of [`crate::stages::parse::roles`] (`connsrcip`,
//! `lb_server`, `remote_addr`, …; those only when the value is an address); an
//! X-Forwarded-For list gives its first hop. When a key named at least one address, the
//! addresses elsewhere in the line (other keys' values, free text) are added by the scanner
//! with the roles its words give. A line with no pair is not this format.

use std::borrow::Cow;

use crate::model::{Event, Role};
use crate::stages::extract::parse_ip_token;
use crate::stages::parse::fields::{present, KvPairs};
use crate::stages::parse::{roles, scan, Line, ParseError};

/// Name in `observed.format`.
pub(crate) const NAME: &str = "kv";

/// The role of an address key, if it is one.
fn address_role(key: &str) -> Option<Role> {
    let mut lower = [0u8; 24];
    if key.len() > lower.len() {
        return None;
    }
    for (dst, src) in lower.iter_mut().zip(key.bytes()) {
        *dst = src.to_ascii_lowercase();
    }
    Some(match &lower[..key.len()] {
        b"src" | b"srcip" | b"src_ip" | b"source_ip" | b"sourceip" | b"source_address"
        | b"src_addr" | b"saddr" | b"srcaddr" | b"sourceaddress" => Role::Source,
        b"dst"
        | b"dstip"
        | b"dst_ip"
        | b"dest"
        | b"dest_ip"
        | b"destip"
        | b"destination_ip"
        | b"destinationip"
        | b"dst_addr"
        | b"daddr"
        | b"dstaddr"
        | b"destinationaddress" => Role::Destination,
        b"client_ip" | b"clientip" | b"c-ip" => Role::Client,
        b"transip" | b"tranip" | b"nat_src_ip" | b"nat_dst_ip" | b"xlatesrc" | b"xlatedst" => {
            Role::Nat
        }
        b"x_forwarded_for" | b"xff" | b"forwarded_for" => Role::Forwarded,
        _ => return None,
    })
}

/// d-siem: the slot of a port, transport or direction key (`spt`, `srcport`, `src_port`,
/// `dpt`, `dstport`, `proto`, `protocol`, `direction`, …), matched case-insensitively.
fn connection_slot<'e, 'a>(
    key: &str,
    event: &'e mut Event<'a>,
) -> Option<&'e mut Option<Cow<'a, str>>> {
    let mut lower = [0u8; 16];
    if key.len() > lower.len() {
        return None;
    }
    for (dst, src) in lower.iter_mut().zip(key.bytes()) {
        *dst = src.to_ascii_lowercase();
    }
    Some(match &lower[..key.len()] {
        b"spt" | b"sport" | b"srcport" | b"src_port" | b"source_port" | b"sourceport" => {
            &mut event.src_port
        }
        b"dpt" | b"dport" | b"dstport" | b"dst_port" | b"dest_port" | b"destination_port"
        | b"destinationport" => &mut event.dst_port,
        b"proto" | b"protocol" | b"ip_proto" => &mut event.protocol,
        b"direction" | b"dir" | b"conn_direction" => &mut event.direction,
        _ => return None,
    })
}

/// Parses generic pairs; `Unrecognized` when there are none.
pub(crate) fn parse<'a>(line: &Line<'a>) -> Result<Event<'a>, ParseError> {
    let mut event = Event {
        format: NAME,
        ..Event::default()
    };
    let mut pairs = 0usize;
    // Values whose key gave them a role: the scanner does not read them again.
    let mut read: Vec<(usize, usize)> = Vec::new();
    let base = line.body.as_ptr() as usize;
    for (key, value) in KvPairs::new(line.body) {
        pairs += 1;
        // A name on the list claims its value (a host name there is counted as invalid); a
        // name the rules match holds an address only when its value is one.
        let role = address_role(key).or_else(|| {
            roles::key_role(key).filter(|_| {
                let first = value.split(',').next().unwrap_or(value);
                parse_ip_token(first).is_some()
            })
        });
        if let Some(role) = role {
            // XFF may list several hops: the first is the original client.
            let first = if role == Role::Forwarded {
                value.split(',').next().unwrap_or(value).trim()
            } else {
                value
            };
            // A value that is no address token (`dst=198.51.100.7_80`) is left to the scanner.
            if parse_ip_token(first).is_some() {
                let start = value.as_ptr() as usize - base;
                read.push((start, start + value.len()));
            }
            // `0.0.0.0`, `::`, `-`: the vendor's "no address" (no NAT), not an address.
            if let Some(address) = present(first, &["0.0.0.0", "::", "-"]) {
                event.addresses.push((role, Cow::Borrowed(address)));
            }
            continue;
        }
        let slot = if key.eq_ignore_ascii_case("action") || key.eq_ignore_ascii_case("act") {
            &mut event.action
        } else if ["rule", "rule_name", "policy", "policyname", "policyid"]
            .iter()
            .any(|k| k.eq_ignore_ascii_case(key))
        {
            &mut event.rule
        } else if key.eq_ignore_ascii_case("vendor") {
            &mut event.vendor
        } else if key.eq_ignore_ascii_case("product") {
            &mut event.product
        } else if key.eq_ignore_ascii_case("timestamp") || key.eq_ignore_ascii_case("eventtime") {
            &mut event.timestamp
        } else if let Some(slot) = connection_slot(key, &mut event) {
            slot
        } else {
            continue;
        };
        slot.get_or_insert(Cow::Borrowed(value));
    }
    if pairs == 0 {
        return Err(ParseError::Unrecognized);
    }
    if !event.addresses.is_empty() {
        scan::scan_addresses_outside(line.body, &read, &mut event);
    }
    Ok(event)
}
