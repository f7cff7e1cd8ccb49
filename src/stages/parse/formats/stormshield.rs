//! Stormshield Network Security (SNS) audit logs, WELF-style `key=value` (log-formats-2.md §5;
//! Stormshield "SNS v4 – Description of Audit logs").
//!
//! * In: `id=firewall time="…" fw="<name or serial>" tz=… startime="…" … key=value …`, bare or
//!   behind a syslog header; values quoted or bare.
//! * Detect: the body starts with `id=firewall `, or with one word (a host name or tag the
//!   syslog stripper left in front) and then `id=firewall `.
//! * Roles: `src` → source ("IP address of the source host"), `dst` → destination; `modsrc`
//!   ("translated IP address of the source host") and `moddst` → nat when they differ from the
//!   originals; `origdst` (destination before translation) → unknown when it differs from
//!   `dst`; `address` (l_server, l_auth: "IP address of the client workstation that initiated
//!   the connection") → source. `localnet`/`remotenet` (VPN tunnel networks) are not read.
//! * Context: vendor Stormshield, product SNS; observer = `fw` (the firewall's name or
//!   serial); action `action`; rule `ruleid`; timestamp `time`.

use std::borrow::Cow;

use crate::model::{Event, Role};
use crate::stages::extract::parse_ip_token;
use crate::stages::parse::fields::{present, KvPairs};
use crate::stages::parse::formats::phrases::push;
use crate::stages::parse::{Line, LogFormat, ParseError};

/// Name in `observed.format`.
pub(crate) const NAME: &str = "stormshield";

const NO_ADDRESS: [&str; 3] = ["-", "0.0.0.0", "::"];

/// Format `stormshield`.
pub(crate) struct Stormshield;

impl LogFormat for Stormshield {
    fn name(&self) -> &'static str {
        NAME
    }

    fn detect(&self, line: &Line<'_>) -> bool {
        let body = line.body;
        body.starts_with("id=firewall ")
            || body
                .split_once(' ')
                .is_some_and(|(_, rest)| rest.starts_with("id=firewall "))
    }

    fn parse<'a>(&self, line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        let mut event = Event {
            format: NAME,
            vendor: Some(Cow::Borrowed("Stormshield")),
            product: Some(Cow::Borrowed("SNS")),
            ..Event::default()
        };
        let (mut src, mut dst, mut modsrc, mut moddst, mut origdst, mut client) =
            (None, None, None, None, None, None);
        for (key, value) in KvPairs::new(line.body) {
            let address = present(value, &NO_ADDRESS).filter(|v| parse_ip_token(v).is_some());
            match key {
                "src" => src = address,
                "dst" => dst = address,
                "modsrc" => modsrc = address,
                "moddst" => moddst = address,
                "origdst" => origdst = address,
                "address" => client = address,
                "fw" => event.observer = present(value, &[]).map(Cow::Borrowed),
                "action" => event.action = present(value, &[]).map(Cow::Borrowed),
                "ruleid" => event.rule = present(value, &[]).map(Cow::Borrowed),
                "time" => event.timestamp = present(value, &[]).map(Cow::Borrowed),
                // d-siem: `proto` is the application (https); `ipproto` the transport.
                "srcport" => event.src_port = present(value, &[]).map(Cow::Borrowed),
                "dstport" => event.dst_port = present(value, &[]).map(Cow::Borrowed),
                "ipproto" => event.protocol = present(value, &[]).map(Cow::Borrowed),
                _ => {}
            }
        }
        let differs = |other: Option<&'a str>, original: Option<&'a str>| {
            other.filter(|o| original.is_none_or(|v| parse_ip_token(v) != parse_ip_token(o)))
        };
        push(&mut event, Role::Source, src.or(client));
        push(&mut event, Role::Destination, dst);
        push(&mut event, Role::Nat, differs(modsrc, src));
        push(&mut event, Role::Nat, differs(moddst, dst));
        push(&mut event, Role::Unknown, differs(origdst, dst));
        Ok(event)
    }
}
