//! Forcepoint (Websense) Web Security on-premises SIEM syslog, `key=value` (reference §3.6),
//! and Forcepoint NGFW (Stonesoft) SMC syslog export (log-formats-2.md §11.1).
//!
//! **Web Security** (`forcepoint`)
//! * In: `line.body`, space-separated pairs `vendor=Websense product=Security
//!   product_version=… action=… user=… src_host=<client IP> src_port=… dst_host=<name>
//!   dst_ip=<server IP> … url=…`.
//! * Detect: a `vendor=` pair whose value starts with `Websense` or `Forcepoint`.
//! * Roles: `src_host` (which holds the client's IP) source, `src`/`src_ip` source; `dst_ip`
//!   destination, `dst`/`dst_host` destination only when `dst_ip` is absent and they hold an
//!   address (usually `dst_host` is a host name).
//! * Context: vendor Forcepoint, product Web Security, action `action`, rule `policy` or
//!   `role` when present. A line with no client address key is malformed.
//! * Not read: the cloud CSV export. Its columns are chosen at export time and carry no
//!   signature of their own, so no robust detection exists; configure a topic hint to `kv` or
//!   `ip_scan` for it instead. The CEF variant is read by `cef`.
//!
//! **NGFW / Stonesoft** (`forcepoint_ngfw`)
//! * In: the SMC Log Server's syslog export, `FIELD="value"` pairs joined by `,` with the
//!   export names of the SMC help's "Exportable Firewall log entry fields" table
//!   (`TIMESTAMP`, `COMP_ID`, `EVENT`, `ACTION`, `SRC`, `Sport`, `DST`, `Dport`, `NAT_SRC`,
//!   `NAT_DST`, …). The layout (pairs, `,`) and the `SRC`/`NAT_*` names are inferred from the
//!   table's pattern; CEF and LEEF exports are read by `cef` and `leef`.
//! * Detect: the body starts with `TIMESTAMP="` and has `COMP_ID=` in its first 120 bytes.
//! * Roles: `SRC` source (before NAT), `DST` destination (before NAT), `NAT_SRC` / `NAT_DST`
//!   nat when they differ from the originals. `COMP_ID` (the engine that logged) is the
//!   observer. Action `ACTION`, rule `RULE_ID`, timestamp `TIMESTAMP`.
//! * Malformed: neither `SRC` nor `DST` holds an address.

use std::borrow::Cow;

use crate::model::{Event, Role};
use crate::stages::extract::parse_ip_token;
use crate::stages::parse::fields::Needle;
use crate::stages::parse::fields::{present, KvPairs};
use crate::stages::parse::{Line, LogFormat, ParseError};

static VENDOR: Needle = Needle::new(b"vendor=");

const NAME: &str = "forcepoint";
const NO_ADDRESS: [&str; 3] = ["-", "0.0.0.0", "::"];

/// Format `forcepoint`.
pub(crate) struct Forcepoint;

impl LogFormat for Forcepoint {
    fn name(&self) -> &'static str {
        NAME
    }

    fn detect(&self, line: &Line<'_>) -> bool {
        let body = line.body.as_bytes();
        VENDOR.find(body).is_some_and(|at| {
            let value = &body[at + 7..];
            value.starts_with(b"Websense") || value.starts_with(b"Forcepoint")
        })
    }

    fn parse<'a>(&self, line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        let mut event = Event {
            format: NAME,
            vendor: Some(Cow::Borrowed("Forcepoint")),
            product: Some(Cow::Borrowed("Web Security")),
            ..Event::default()
        };
        let mut has_client = false;
        let mut destination = None;
        let mut destination_fallback = None;
        for (key, value) in KvPairs::new(line.body) {
            match key {
                "src_host" | "src" | "src_ip" => {
                    has_client = true;
                    if let Some(ip) = present(value, &NO_ADDRESS) {
                        event.addresses.push((Role::Source, Cow::Borrowed(ip)));
                    }
                }
                "dst_ip" => destination = present(value, &NO_ADDRESS),
                "dst" | "dst_host" if destination_fallback.is_none() => {
                    destination_fallback =
                        present(value, &NO_ADDRESS).filter(|v| parse_ip_token(v).is_some());
                }
                "action" => event.action = present(value, &["-"]).map(Cow::Borrowed),
                "policy" | "role" if event.rule.is_none() => {
                    event.rule = present(value, &["-"]).map(Cow::Borrowed);
                }
                _ => {}
            }
        }
        if !has_client {
            return Err(ParseError::malformed(NAME, "no src_host (client address)"));
        }
        if let Some(ip) = destination.or(destination_fallback) {
            event.addresses.push((Role::Destination, Cow::Borrowed(ip)));
        }
        Ok(event)
    }
}

const NGFW: &str = "forcepoint_ngfw";

static COMP_ID: Needle = Needle::new(b"COMP_ID=");

/// Format `forcepoint_ngfw`.
pub(crate) struct ForcepointNgfw;

impl LogFormat for ForcepointNgfw {
    fn name(&self) -> &'static str {
        NGFW
    }

    fn detect(&self, line: &Line<'_>) -> bool {
        let body = line.body.as_bytes();
        body.starts_with(b"TIMESTAMP=\"") && COMP_ID.find(&body[..body.len().min(120)]).is_some()
    }

    fn parse<'a>(&self, line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        let mut event = Event {
            format: NGFW,
            vendor: Some(Cow::Borrowed("Forcepoint")),
            product: Some(Cow::Borrowed("NGFW")),
            ..Event::default()
        };
        let mut slots: [Option<&'a str>; 4] = [None; 4];
        for (key, value) in KvPairs::separated_by(line.body, b',') {
            let slot = match key {
                "SRC" => 0,
                "DST" => 1,
                "NAT_SRC" => 2,
                "NAT_DST" => 3,
                "COMP_ID" => {
                    event.observer = present(value, &[]).map(Cow::Borrowed);
                    continue;
                }
                "ACTION" => {
                    event.action = present(value, &[]).map(Cow::Borrowed);
                    continue;
                }
                "RULE_ID" => {
                    event.rule = present(value, &[]).map(Cow::Borrowed);
                    continue;
                }
                "TIMESTAMP" => {
                    event.timestamp = present(value, &[]).map(Cow::Borrowed);
                    continue;
                }
                _ => continue,
            };
            slots[slot] = present(value, &NO_ADDRESS).filter(|v| parse_ip_token(v).is_some());
        }
        let [source, destination, nat_source, nat_destination] = slots;
        if source.is_none() && destination.is_none() {
            return Err(ParseError::malformed(NGFW, "no SRC or DST address"));
        }
        let differs = |nat: Option<&'a str>, original: Option<&'a str>| {
            nat.filter(|n| original.is_none_or(|o| parse_ip_token(o) != parse_ip_token(n)))
        };
        for (role, value) in [
            (Role::Source, source),
            (Role::Destination, destination),
            (Role::Nat, differs(nat_source, source)),
            (Role::Nat, differs(nat_destination, destination)),
        ] {
            if let Some(ip) = value {
                event.addresses.push((role, Cow::Borrowed(ip)));
            }
        }
        Ok(event)
    }
}
