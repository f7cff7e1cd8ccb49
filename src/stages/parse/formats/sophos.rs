//! Sophos XG / SFOS and Sophos UTM `key=value` syslog (reference §2.9).
//!
//! **Sophos XG / SFOS** (`sophos_xg`)
//! * In: `line.body`, `device="SFW" date=… time=… … log_id=… log_type="…" log_component="…"
//!   src_ip=… dst_ip=…`; values quoted or bare, empty values (`tran_dst_ip= `), bare values
//!   with spaces (the extra words are skipped), an unterminated final quote (runs to the end).
//! * Detect: the body starts with `device="SFW"` or (SFOS 19.5 and later) `device_name="SFW"`,
//!   else has ` log_component=` (which SFOS always writes next to `log_type=`, wherever
//!   `device` is; Cyberoam-era lines start with `date=` and carry it too).
//! * Roles: `src_ip` source, `dst_ip` destination, `tran_src_ip`/`tran_dst_ip` (and the
//!   unverified newer names `src_trans_ip`/`dst_trans_ip`) nat; `0.0.0.0`, `::`, `-` and
//!   empty are no NAT. VPN event logs name the tunnel peer `remote_ip` → source when there is
//!   no `src_ip`, and the firewall's own end `local_ip` → unknown (names inferred).
//! * Context: vendor Sophos, product XG Firewall; action `status`, else `log_subtype`; rule
//!   `fw_rule_name`, else `fw_rule_id`; timestamp `timestamp`, else `date`. A line without
//!   `log_type` is malformed; non-traffic log types may hold no address.
//!
//! **Sophos UTM** (`sophos_utm`)
//! * In: `YYYY:MM:DD-hh:mm:ss host ulogd[pid]: id="…" severity="…" sys="SecureNet"
//!   sub="packetfilter" … srcip="…" dstip="…"` (also `httpproxy`, `named`, …); the syslog
//!   stripper already removed the header, so `line.body` starts at `id="`.
//! * Detect: the body starts with `id="` and has ` sys="` and ` sub="`.
//! * Roles: `srcip` source, `dstip` destination (UTM logs no NAT addresses).
//! * Context: vendor Sophos, product UTM, action `action`, rule `fwrule`, timestamp the
//!   header's `YYYY:MM:DD-hh:mm:ss` when the line starts with it. A `packetfilter` line without
//!   `srcip` is malformed.

use std::borrow::Cow;

use crate::model::{Event, Role};
use crate::stages::parse::fields::Needle;
use crate::stages::parse::fields::{present, KvPairs};
use crate::stages::parse::{Line, LogFormat, ParseError};

static LOG_COMPONENT: Needle = Needle::new(b" log_component=");
static SUB: Needle = Needle::new(b" sub=\"");
static SYS: Needle = Needle::new(b" sys=\"");

const XG: &str = "sophos_xg";
const UTM: &str = "sophos_utm";
const NO_ADDRESS: [&str; 3] = ["0.0.0.0", "::", "-"];

/// Format `sophos_xg`.
pub(crate) struct SophosXg;

impl LogFormat for SophosXg {
    fn name(&self) -> &'static str {
        XG
    }

    fn detect(&self, line: &Line<'_>) -> bool {
        let body = line.body.as_bytes();
        body.starts_with(b"device=\"SFW\"")
            || body.starts_with(b"device_name=\"SFW\"")
            || LOG_COMPONENT.find(body).is_some()
    }

    fn parse<'a>(&self, line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        let mut event = Event {
            format: XG,
            vendor: Some(Cow::Borrowed("Sophos")),
            product: Some(Cow::Borrowed("XG Firewall")),
            ..Event::default()
        };
        let mut has_log_type = false;
        let (mut status, mut subtype) = (None, None);
        let (mut rule_name, mut rule_id) = (None, None);
        let (mut timestamp, mut date) = (None, None);
        let (mut has_source, mut remote, mut local) = (false, None, None);
        for (key, value) in KvPairs::new(line.body) {
            let role = match key {
                "src_ip" => {
                    has_source = true;
                    Role::Source
                }
                "remote_ip" => {
                    remote = present(value, &NO_ADDRESS);
                    continue;
                }
                "local_ip" => {
                    local = present(value, &NO_ADDRESS);
                    continue;
                }
                "dst_ip" => Role::Destination,
                // d-siem: the connection's ports and transport.
                "src_port" => {
                    event.src_port = present(value, &[]).map(Cow::Borrowed);
                    continue;
                }
                "dst_port" => {
                    event.dst_port = present(value, &[]).map(Cow::Borrowed);
                    continue;
                }
                "protocol" => {
                    event.protocol = present(value, &[]).map(Cow::Borrowed);
                    continue;
                }
                "tran_src_ip" | "tran_dst_ip" | "src_trans_ip" | "dst_trans_ip" => Role::Nat,
                "log_type" => {
                    has_log_type = true;
                    continue;
                }
                "status" => {
                    status = present(value, &[]);
                    continue;
                }
                "log_subtype" => {
                    subtype = present(value, &[]);
                    continue;
                }
                "fw_rule_name" => {
                    rule_name = present(value, &[]);
                    continue;
                }
                "fw_rule_id" => {
                    rule_id = present(value, &[]);
                    continue;
                }
                "timestamp" => {
                    timestamp = present(value, &[]);
                    continue;
                }
                "date" => {
                    date = present(value, &[]);
                    continue;
                }
                _ => continue,
            };
            if let Some(ip) = present(value, &NO_ADDRESS) {
                event.addresses.push((role, Cow::Borrowed(ip)));
            }
        }
        if !has_log_type {
            return Err(ParseError::malformed(XG, "no log_type"));
        }
        if !has_source {
            // A VPN event: the tunnel peer initiated (or answered) from its public address.
            for (role, value) in [(Role::Source, remote), (Role::Unknown, local)] {
                if let Some(ip) = value {
                    event.addresses.push((role, Cow::Borrowed(ip)));
                }
            }
        }
        event.action = status.or(subtype).map(Cow::Borrowed);
        event.rule = rule_name.or(rule_id).map(Cow::Borrowed);
        event.timestamp = timestamp.or(date).map(Cow::Borrowed);
        Ok(event)
    }
}

/// Format `sophos_utm`.
pub(crate) struct SophosUtm;

/// `YYYY:MM:DD-hh:mm:ss` at the start of the whole line.
fn utm_timestamp(text: &str) -> Option<&str> {
    let stamp = text.get(..19)?;
    let b = stamp.as_bytes();
    let ok = b.iter().enumerate().all(|(i, c)| match i {
        4 | 7 | 13 | 16 => *c == b':',
        10 => *c == b'-',
        _ => c.is_ascii_digit(),
    });
    ok.then_some(stamp)
}

impl LogFormat for SophosUtm {
    fn name(&self) -> &'static str {
        UTM
    }

    fn detect(&self, line: &Line<'_>) -> bool {
        let body = line.body.as_bytes();
        body.starts_with(b"id=\"") && SYS.find(body).is_some() && SUB.find(body).is_some()
    }

    fn parse<'a>(&self, line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        let mut event = Event {
            format: UTM,
            vendor: Some(Cow::Borrowed("Sophos")),
            product: Some(Cow::Borrowed("UTM")),
            timestamp: utm_timestamp(line.text).map(Cow::Borrowed),
            ..Event::default()
        };
        let mut packet_filter = false;
        let mut has_source = false;
        for (key, value) in KvPairs::new(line.body) {
            let role = match key {
                "srcip" => {
                    has_source = true;
                    Role::Source
                }
                "dstip" => Role::Destination,
                "sub" => {
                    packet_filter = value == "packetfilter";
                    continue;
                }
                "action" => {
                    event.action = present(value, &[]).map(Cow::Borrowed);
                    continue;
                }
                "fwrule" => {
                    event.rule = present(value, &[]).map(Cow::Borrowed);
                    continue;
                }
                _ => continue,
            };
            if let Some(ip) = present(value, &NO_ADDRESS) {
                event.addresses.push((role, Cow::Borrowed(ip)));
            }
        }
        if packet_filter && !has_source {
            return Err(ParseError::malformed(
                UTM,
                "packetfilter line without srcip",
            ));
        }
        Ok(event)
    }
}
