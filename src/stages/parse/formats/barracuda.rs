//! Barracuda CloudGen Firewall: JSON (reference §4.8) and the Firewall Activity Log as text
//! (log-formats-2.md §8; Barracuda Campus "Firewall Activity Log").
//!
//! **JSON** (`barracuda`)
//! * Detection: top-level `src_ip` and `dst_ip` with `src_ip_nat`, `dst_ip_nat` or `fw_rule`
//!   (Suricata writes `dest_ip`, so its records never match).
//! * Roles: `src_ip` source, `dst_ip` destination, `src_ip_nat` and `dst_ip_nat` nat — unless
//!   empty, `-`, `0.0.0.0` or `::`, which mean "not translated".
//! * Context: vendor `Barracuda`, product `CloudGen Firewall`; action = `action`, rule =
//!   `fw_rule`, timestamp = `timestamp` (epoch seconds or text, as written).
//!
//! **Activity log text** (`barracuda_activity`)
//! * In: `YYYY MM DD hh:mm:ss <Security|Info> <±hh:mm> <Action>: <pairs>` in the box's own
//!   file, or `<Action>: <pairs>` behind a syslog header (where `Action` reads as the tag).
//!   Pairs are `key=value` joined by `|`: `type=FWD|proto=TCP|srcIF=…|srcIP=…|srcPort=…|
//!   srcMAC=…|dstIP=…|dstPort=…|dstService=…|dstIF=…|rule=…|info=…|srcNAT=…|dstNAT=…|…`. Older
//!   firmware writes the same values without keys, in that order (`LOUT|UDP|eth0|<src>|<sport>|
//!   <srcmac>|<dst>|<dport>|<service>|<dstIF>|<rule>|<info>|<srcNAT>|<dstNAT>|…`; the order is
//!   inferred from the keyed form, the vendor pages reached do not show it).
//! * Detect: an action word (`Allow`, `Block`, `Drop`, `Deny`, `Remove`, `Fail`, `Detect`,
//!   `Reject`, `Reset`) followed by `: ` and a payload that starts with `type=` or a
//!   documented connection type (`LIN`, `LOUT`, `LB`, `FWD`, `IFWD`, `PXY`, `TPXY`) and `|`.
//! * Roles: `srcIP` source (before NAT; for `LOUT` the firewall's own address, which did
//!   initiate), `dstIP` destination, `srcNAT` / `dstNAT` nat (`0.0.0.0` = not translated).
//! * Context: vendor Barracuda, product CloudGen Firewall; action = the action word; rule =
//!   `rule`. Malformed: no source address field.

use std::borrow::Cow;

use crate::model::{Event, Role};
use crate::stages::extract::parse_ip_token;
use crate::stages::parse::fields::{delimited_pairs, present};
use crate::stages::parse::formats::phrases::push;
use crate::stages::parse::json::JsonRef;
use crate::stages::parse::{JsonFormat, Line, LogFormat, ParseError};

const NAME: &str = "barracuda";

/// Format `barracuda`.
pub(crate) struct Barracuda;

/// A string value that is not a "no address" placeholder.
fn address<'a>(doc: JsonRef<'_, 'a>, key: &str) -> Option<Cow<'a, str>> {
    doc.member(key)
        .and_then(|v| v.str())
        .filter(|s| !matches!(s.trim(), "" | "-" | "0.0.0.0" | "::"))
}

impl JsonFormat for Barracuda {
    fn name(&self) -> &'static str {
        NAME
    }

    fn detect(&self, doc: JsonRef<'_, '_>) -> bool {
        doc.member("src_ip").is_some()
            && doc.member("dst_ip").is_some()
            && (doc.member("fw_rule").is_some()
                || doc.member("src_ip_nat").is_some()
                || doc.member("dst_ip_nat").is_some())
    }

    fn parse<'a>(&self, doc: JsonRef<'_, 'a>) -> Result<Event<'a>, ParseError> {
        let mut event = Event {
            format: NAME,
            vendor: Some(Cow::Borrowed("Barracuda")),
            product: Some(Cow::Borrowed("CloudGen Firewall")),
            action: doc.member("action").and_then(|a| a.str()),
            rule: doc.member("fw_rule").and_then(|r| r.str()),
            timestamp: doc.member("timestamp").and_then(|t| t.text()),
            // d-siem: ports and IANA protocol number.
            src_port: doc.member("src_port").and_then(|p| p.text()),
            dst_port: doc.member("dst_port").and_then(|p| p.text()),
            protocol: doc.member("ip_proto").and_then(|p| p.text()),
            ..Event::default()
        };
        let source = address(doc, "src_ip");
        let destination = address(doc, "dst_ip");
        if source.is_none() && destination.is_none() {
            return Err(ParseError::malformed(NAME, "no src_ip or dst_ip address"));
        }
        for (role, value) in [
            (Role::Source, source),
            (Role::Destination, destination),
            (Role::Nat, address(doc, "src_ip_nat")),
            (Role::Nat, address(doc, "dst_ip_nat")),
        ] {
            if let Some(value) = value {
                event.addresses.push((role, value));
            }
        }
        Ok(event)
    }
}

const ACTIVITY: &str = "barracuda_activity";

const ACTIONS: [&str; 9] = [
    "Allow", "Block", "Drop", "Deny", "Remove", "Fail", "Detect", "Reject", "Reset",
];

const TYPES: [&str; 7] = ["LIN", "LOUT", "LB", "FWD", "IFWD", "PXY", "TPXY"];

/// Keys of the keyed form, in the order the older positional form writes their values.
const POSITIONS: [&str; 14] = [
    "type",
    "proto",
    "srcIF",
    "srcIP",
    "srcPort",
    "srcMAC",
    "dstIP",
    "dstPort",
    "dstService",
    "dstIF",
    "rule",
    "info",
    "srcNAT",
    "dstNAT",
];

/// Format `barracuda_activity`.
pub(crate) struct BarracudaActivity;

fn is_payload(text: &str) -> bool {
    if text.starts_with("type=") {
        return text.contains('|');
    }
    text.split_once('|')
        .is_some_and(|(first, _)| TYPES.contains(&first))
}

/// `(action, payload)`: from the syslog tag, or from `<Action>: ` in the first 64 bytes.
fn split_activity<'a>(line: &Line<'a>) -> Option<(&'a str, &'a str)> {
    if let Some(app) = line.app().filter(|a| ACTIONS.contains(a)) {
        if is_payload(line.body) {
            return Some((app, line.body));
        }
    }
    let body = line.body;
    // The box's own file starts `YYYY MM DD hh:mm:ss …`; a relayed body may start with the
    // action word itself.
    let b = body.as_bytes();
    let dated = b.len() > 5 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b' ';
    if !dated && !ACTIONS.iter().any(|a| body.starts_with(a)) {
        return None;
    }
    let mut end = body.len().min(64);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    let window = &body[..end];
    let colon = window.find(": ")?;
    let action = window[..colon].rsplit(' ').next()?;
    let payload = &body[colon + 2..];
    (ACTIONS.contains(&action) && is_payload(payload)).then_some((action, payload))
}

impl LogFormat for BarracudaActivity {
    fn name(&self) -> &'static str {
        ACTIVITY
    }

    fn detect(&self, line: &Line<'_>) -> bool {
        split_activity(line).is_some()
    }

    fn parse<'a>(&self, line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        let (action, payload) = split_activity(line).ok_or_else(|| {
            ParseError::malformed(ACTIVITY, "no `<Action>: type=…|…` activity entry")
        })?;
        let mut event = Event {
            format: ACTIVITY,
            vendor: Some(Cow::Borrowed("Barracuda")),
            product: Some(Cow::Borrowed("CloudGen Firewall")),
            action: Some(Cow::Borrowed(action)),
            ..Event::default()
        };
        let mut values: [Option<&'a str>; 14] = [None; 14];
        if payload.starts_with("type=") {
            for (key, value) in delimited_pairs(payload, b'|') {
                if let Some(i) = POSITIONS.iter().position(|k| *k == key) {
                    values[i] = Some(value);
                }
            }
        } else {
            for (slot, value) in values.iter_mut().zip(payload.split('|')) {
                *slot = Some(value);
            }
        }
        let address = |i: usize| {
            values[i]
                .and_then(|v| present(v, &["0.0.0.0", "::", "-"]))
                .filter(|v| parse_ip_token(v).is_some())
        };
        let (source, destination) = (address(3), address(6));
        if source.is_none() {
            return Err(ParseError::malformed(
                ACTIVITY,
                "no source address (srcIP, field 4)",
            ));
        }
        event.rule = values[10].and_then(|r| present(r, &[])).map(Cow::Borrowed);
        push(&mut event, Role::Source, source);
        push(&mut event, Role::Destination, destination);
        let differs = |nat: Option<&'a str>, original: Option<&'a str>| {
            nat.filter(|n| original.is_none_or(|o| parse_ip_token(o) != parse_ip_token(n)))
        };
        push(&mut event, Role::Nat, differs(address(12), source));
        push(&mut event, Role::Nat, differs(address(13), destination));
        Ok(event)
    }
}
