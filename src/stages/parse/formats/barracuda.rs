//! Barracuda CloudGen Firewall JSON (reference §4.8).
//!
//! * Detection: top-level `src_ip` and `dst_ip` with `src_ip_nat`, `dst_ip_nat` or `fw_rule`
//!   (Suricata writes `dest_ip`, so its records never match).
//! * Roles: `src_ip` source, `dst_ip` destination, `src_ip_nat` and `dst_ip_nat` nat — unless
//!   empty, `-`, `0.0.0.0` or `::`, which mean "not translated".
//! * Context: vendor `Barracuda`, product `CloudGen Firewall`; action = `action`, rule =
//!   `fw_rule`, timestamp = `timestamp` (epoch seconds or text, as written).

use std::borrow::Cow;

use crate::model::{Event, Role};
use crate::stages::parse::json::JsonRef;
use crate::stages::parse::{JsonFormat, ParseError};

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
