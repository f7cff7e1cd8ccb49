//! Netskope events and alerts as JSON (log-formats-2.md §10; Netskope "REST API events and
//! alerts response descriptions"). Transaction logs (`#Fields:` with `x-cs-userip`) are read
//! by `w3c`.
//!
//! * Detect: top-level `userip` with `srcip`, `dstip` or a Netskope key (`access_method`,
//!   `traffic_type`, `ns_activity`); or `srcip` and `dstip` together with a Netskope key.
//! * Roles: `userip` ("IP address of User") → source; `srcip` ("IP address of source/user") →
//!   source when there is no `userip`, and when it differs from `userip` it is the public
//!   egress address the steered traffic left from → nat (inferred from the two
//!   descriptions); `dstip` ("IP address where the destination app is hosted") →
//!   destination. Empty values are absent.
//! * Context: vendor Netskope, product Netskope; action `action`; rule `policy`; timestamp
//!   `timestamp`.

use std::borrow::Cow;

use crate::model::{Event, Role};
use crate::stages::extract::parse_ip_token;
use crate::stages::parse::json::JsonRef;
use crate::stages::parse::{JsonFormat, ParseError};

/// Name in `observed.format`.
pub(crate) const NAME: &str = "netskope";

/// Format `netskope`.
pub(crate) struct Netskope;

fn address<'a>(doc: JsonRef<'_, 'a>, key: &str) -> Option<Cow<'a, str>> {
    doc.member(key)
        .and_then(|v| v.str())
        .filter(|s| parse_ip_token(s).is_some())
}

impl JsonFormat for Netskope {
    fn name(&self) -> &'static str {
        NAME
    }

    fn detect(&self, doc: JsonRef<'_, '_>) -> bool {
        let netskope_key = || {
            doc.member("access_method").is_some()
                || doc.member("traffic_type").is_some()
                || doc.member("ns_activity").is_some()
        };
        let has_src = doc.member("srcip").is_some();
        let has_dst = doc.member("dstip").is_some();
        if doc.member("userip").is_some() {
            has_src || has_dst || netskope_key()
        } else {
            has_src && has_dst && netskope_key()
        }
    }

    fn parse<'a>(&self, doc: JsonRef<'_, 'a>) -> Result<Event<'a>, ParseError> {
        let mut event = Event {
            format: NAME,
            vendor: Some(Cow::Borrowed("Netskope")),
            product: Some(Cow::Borrowed("Netskope")),
            action: doc.member("action").and_then(|a| a.str()),
            rule: doc.member("policy").and_then(|r| r.str()),
            timestamp: doc.member("timestamp").and_then(|t| t.text()),
            ..Event::default()
        };
        let user = address(doc, "userip");
        let source = address(doc, "srcip");
        let destination = address(doc, "dstip");
        match (user, source) {
            (Some(user), Some(egress)) if parse_ip_token(&user) != parse_ip_token(&egress) => {
                event.addresses.push((Role::Source, user));
                event.addresses.push((Role::Nat, egress));
            }
            (user, source) => {
                if let Some(ip) = user.or(source) {
                    event.addresses.push((Role::Source, ip));
                }
            }
        }
        if let Some(ip) = destination {
            event.addresses.push((Role::Destination, ip));
        }
        Ok(event)
    }
}
