//! Clavister cOS Core syslog (log-formats-2.md §4; Clavister "cOS Core Log Reference Guide"
//! 15.00, §1.2 message structure, §1.3 context parameters, §2.13 CONN).
//!
//! * In: `[YYYY-MM-DD hh:mm:ss] EFW: <CATEGORY>: prio=… id=<8 digits> rev=… event=… action=…
//!   <name>=<value> …`, usually behind a syslog PRI or header.
//! * Detect: the body starts with `EFW: ` or with a `[date time]` stamp and `EFW: ` in its
//!   first 40 bytes, or `EFW` is the syslog tag.
//! * Roles: connection context `connsrcip` → source (before NAT), `conndestip` → destination
//!   (as originally addressed), `connnewsrcip` / `connnewdestip` (the `*_natsat` messages)
//!   → nat when they differ from the originals; packet context `srcip` → source and
//!   `destip` → destination when the connection context is absent. Other addresses
//!   (`ipaddr`, `gateway`, …) are not read.
//! * Context: vendor Clavister, product cOS Core; action `action`; rule `rule`.

use std::borrow::Cow;

use crate::model::{Event, Role};
use crate::stages::extract::parse_ip_token;
use crate::stages::parse::fields::{present, KvPairs, Needle};
use crate::stages::parse::formats::phrases::push;
use crate::stages::parse::{Line, LogFormat, ParseError};

/// Name in `observed.format`.
pub(crate) const NAME: &str = "clavister";

static EFW: Needle = Needle::new(b"EFW: ");

const NO_ADDRESS: [&str; 3] = ["-", "0.0.0.0", "::"];

/// Format `clavister`.
pub(crate) struct Clavister;

impl LogFormat for Clavister {
    fn name(&self) -> &'static str {
        NAME
    }

    fn detect(&self, line: &Line<'_>) -> bool {
        let body = line.body.as_bytes();
        line.app() == Some("EFW")
            || body.starts_with(b"EFW: ")
            || (body.starts_with(b"[") && EFW.find(&body[..body.len().min(40)]).is_some())
    }

    fn parse<'a>(&self, line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        let mut event = Event {
            format: NAME,
            vendor: Some(Cow::Borrowed("Clavister")),
            product: Some(Cow::Borrowed("cOS Core")),
            ..Event::default()
        };
        let mut slots: [Option<&'a str>; 6] = [None; 6];
        for (key, value) in KvPairs::new(line.body) {
            let slot = match key {
                "connsrcip" => 0,
                "conndestip" => 1,
                "connnewsrcip" => 2,
                "connnewdestip" => 3,
                "srcip" => 4,
                "destip" => 5,
                "action" => {
                    event.action = present(value, &[]).map(Cow::Borrowed);
                    continue;
                }
                "rule" => {
                    event.rule = present(value, &[]).map(Cow::Borrowed);
                    continue;
                }
                // d-siem: the connection's ports and transport (before NAT).
                "connsrcport" => {
                    event.src_port = present(value, &[]).map(Cow::Borrowed);
                    continue;
                }
                "conndestport" => {
                    event.dst_port = present(value, &[]).map(Cow::Borrowed);
                    continue;
                }
                "connipproto" => {
                    event.protocol = present(value, &[]).map(Cow::Borrowed);
                    continue;
                }
                _ => continue,
            };
            slots[slot] = present(value, &NO_ADDRESS).filter(|v| parse_ip_token(v).is_some());
        }
        let [src, dst, new_src, new_dst, packet_src, packet_dst] = slots;
        let differs = |new: Option<&'a str>, original: Option<&'a str>| {
            new.filter(|n| original.is_none_or(|o| parse_ip_token(o) != parse_ip_token(n)))
        };
        push(&mut event, Role::Source, src.or(packet_src));
        push(&mut event, Role::Destination, dst.or(packet_dst));
        push(&mut event, Role::Nat, differs(new_src, src));
        push(&mut event, Role::Nat, differs(new_dst, dst));
        Ok(event)
    }
}
