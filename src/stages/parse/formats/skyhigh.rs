//! Skyhigh (McAfee) Secure Web Gateway `key=value` syslog (log-formats-2.md §9).
//!
//! The Web Gateway builds its log lines with Log Handler rules, so names and order are chosen
//! per site ("Other log files can be formatted as needed"); the vendor documents no meaning for
//! `client_ip`, `source_ip`, `server_ip` or `dest_ip`. This format reads the common `key=value`
//! syslog rule output and assumes the meanings below (inferred).
//!
//! * Detect: the syslog tag is `mwg` (the Web Gateway's syslog identifier), or the body holds
//!   both `client_ip=` and `source_ip=`.
//! * Roles: `client_ip` (the client's connection to the proxy) → source; `source_ip` → source
//!   when there is no `client_ip`, else, when it differs, the egress address the gateway used
//!   → nat; `src_ip` → source when neither is present; `server_ip`, `dest_ip`,
//!   `destination_ip`, `dst_ip` → destination. Values may be quoted; `-` and empty are
//!   absent.
//! * Context: vendor Skyhigh Security, product Secure Web Gateway; action `action`, else
//!   `block_res` / `result`; rule `rule_name`.

use std::borrow::Cow;

use crate::model::{Event, Role};
use crate::stages::extract::parse_ip_token;
use crate::stages::parse::fields::{present, KvPairs, Needle};
use crate::stages::parse::formats::phrases::push;
use crate::stages::parse::{Line, LogFormat, ParseError};

/// Name in `observed.format`.
pub(crate) const NAME: &str = "skyhigh_swg";

static CLIENT_IP: Needle = Needle::new(b"client_ip=");
static SOURCE_IP: Needle = Needle::new(b"source_ip=");

/// Format `skyhigh_swg`.
pub(crate) struct SkyhighSwg;

impl LogFormat for SkyhighSwg {
    fn name(&self) -> &'static str {
        NAME
    }

    fn detect(&self, line: &Line<'_>) -> bool {
        let body = line.body.as_bytes();
        line.app() == Some("mwg")
            || (CLIENT_IP.find(body).is_some() && SOURCE_IP.find(body).is_some())
    }

    fn parse<'a>(&self, line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        let mut event = Event {
            format: NAME,
            vendor: Some(Cow::Borrowed("Skyhigh Security")),
            product: Some(Cow::Borrowed("Secure Web Gateway")),
            ..Event::default()
        };
        let (mut client, mut source, mut src, mut destination) = (None, None, None, None);
        let (mut action, mut result) = (None, None);
        for (key, value) in KvPairs::new(line.body) {
            let address =
                || present(value, &["-", "0.0.0.0", "::"]).filter(|v| parse_ip_token(v).is_some());
            match key {
                "client_ip" => client = address(),
                "source_ip" => source = address(),
                "src_ip" => src = address(),
                "server_ip" | "dest_ip" | "destination_ip" | "dst_ip" => {
                    destination = destination.or(address());
                }
                "action" => action = present(value, &["-"]),
                "block_res" | "result" => result = result.or(present(value, &["-"])),
                "rule_name" => event.rule = present(value, &["-"]).map(Cow::Borrowed),
                _ => {}
            }
        }
        match (client, source) {
            (Some(client), Some(egress)) => {
                push(&mut event, Role::Source, Some(client));
                if parse_ip_token(client) != parse_ip_token(egress) {
                    push(&mut event, Role::Nat, Some(egress));
                }
            }
            (client, source) => push(&mut event, Role::Source, client.or(source).or(src)),
        }
        push(&mut event, Role::Destination, destination);
        event.action = action.or(result).map(Cow::Borrowed);
        Ok(event)
    }
}
