//! Fortinet FortiGate and FortiProxy `key=value` syslog (reference §2.2, §4.8).
//!
//! * In: `line.body`, space-separated pairs (`date=… time=… devname="…" devid="…" logid="…"
//!   type="…" …`); string values double-quoted, numbers and addresses often bare.
//! * Detect: `logid=` and then `devid=` or `devname=` in the body. CEF output of FortiOS
//!   (`FTNTFGT…` keys) is read by `cef`, which is tried first.
//! * Roles: `srcip`/`srcip6` source, `dstip`/`dstip6` destination (the `*6` keys are accepted
//!   defensively); `transip` (SNAT) and `tranip` (DNAT) nat; VPN `remip` source (the remote
//!   peer) source; `locip` (the FortiGate's own tunnel address) is the observer, never an
//!   endpoint to enrich (the reference calls it the destination; our rule for a device's own
//!   address wins); SSL-VPN `tunnelip`/`assignip` (the
//!   address handed to the client) nat; the admin address in `ui="https(IP)"` source;
//!   `forwardedfor` (name unverified) forwarded, first hop. NAT placeholders `0.0.0.0`, `::`,
//!   `-`, empty are skipped.
//! * Context: vendor Fortinet, product FortiProxy when `devid` starts with `FPX`, else
//!   FortiGate; `action`; rule = `policyname`, else `policyid`; timestamp `eventtime`, else
//!   `date`. `devname` is a name, so the observer stays the syslog header's.
//! * Threat: a `type="utm"` log of subtype `ips`, `virus` or `anomaly` (older FortiOS:
//!   `type="ips"`, …) is a detection; its threat is `attack`, else `virus`, else `logdesc`.
//! * A `type="traffic"` log without `srcip` is malformed; other log types may hold no address.

use std::borrow::Cow;

use crate::model::{Event, Role};
use crate::stages::parse::fields::Needle;
use crate::stages::parse::fields::{present, KvPairs};
use crate::stages::parse::{Line, LogFormat, ParseError};

static DEVID: Needle = Needle::new(b"devid=");
static DEVNAME: Needle = Needle::new(b"devname=");
static LOGID: Needle = Needle::new(b"logid=");

const NAME: &str = "fortigate";
const NO_ADDRESS: [&str; 3] = ["0.0.0.0", "::", "-"];

/// Format `fortigate`.
pub(crate) struct Fortigate;

impl LogFormat for Fortigate {
    fn name(&self) -> &'static str {
        NAME
    }

    fn detect(&self, line: &Line<'_>) -> bool {
        let body = line.body.as_bytes();
        LOGID.find(body).is_some() && (DEVID.find(body).is_some() || DEVNAME.find(body).is_some())
    }

    fn parse<'a>(&self, line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        let mut event = Event {
            format: NAME,
            vendor: Some(Cow::Borrowed("Fortinet")),
            product: Some(Cow::Borrowed("FortiGate")),
            ..Event::default()
        };
        let mut policy_id = None;
        let mut policy_name = None;
        let mut date = None;
        let mut is_traffic = false;
        let (mut log_type, mut subtype) = ("", "");
        let (mut attack, mut virus, mut logdesc) = (None, None, None);
        let mut has_source = false;
        // `set format csv` separates the pairs with commas instead of spaces.
        let pairs = match memchr::memchr2(b' ', b',', line.body.as_bytes()) {
            Some(at) if line.body.as_bytes()[at] == b',' => KvPairs::separated_by(line.body, b','),
            _ => KvPairs::new(line.body),
        };
        for (key, value) in pairs {
            let role = match key {
                "srcip" | "srcip6" => {
                    has_source = true;
                    Role::Source
                }
                "dstip" | "dstip6" => Role::Destination,
                "transip" | "tranip" | "tunnelip" | "assignip" => Role::Nat,
                "remip" => Role::Source,
                // The FortiGate's own tunnel address: the device, not an endpoint to enrich.
                "locip" => {
                    if let Some(local) = present(value, &NO_ADDRESS) {
                        event.observer.get_or_insert(Cow::Borrowed(local));
                    }
                    continue;
                }
                "ui" => {
                    // `https(192.0.2.1)`, `ssh(…)`; `console`/`jsconsole` carry no address.
                    if let Some(inner) = value
                        .split_once('(')
                        .and_then(|(_, rest)| rest.split_once(')'))
                        .map(|(inner, _)| inner)
                    {
                        push(&mut event, Role::Source, inner);
                    }
                    continue;
                }
                "forwardedfor" => {
                    let first = value.split(',').next().unwrap_or(value);
                    push(&mut event, Role::Forwarded, first);
                    continue;
                }
                "devid" => {
                    if value.starts_with("FPX") {
                        event.product = Some(Cow::Borrowed("FortiProxy"));
                    }
                    continue;
                }
                "type" => {
                    is_traffic = value == "traffic";
                    log_type = value;
                    continue;
                }
                "subtype" => {
                    subtype = value;
                    continue;
                }
                "attack" => {
                    attack = present(value, &[]);
                    continue;
                }
                "virus" => {
                    virus = present(value, &[]);
                    continue;
                }
                "logdesc" => {
                    logdesc = present(value, &[]);
                    continue;
                }
                "action" => {
                    event.action = present(value, &[]).map(Cow::Borrowed);
                    continue;
                }
                "policyid" => {
                    policy_id = present(value, &[]);
                    continue;
                }
                "policyname" => {
                    policy_name = present(value, &[]);
                    continue;
                }
                "eventtime" => {
                    event.timestamp = present(value, &[]).map(Cow::Borrowed);
                    continue;
                }
                // d-siem: ports and IP protocol number (FortiOS log reference).
                "srcport" => {
                    event.src_port = present(value, &[]).map(Cow::Borrowed);
                    continue;
                }
                "dstport" => {
                    event.dst_port = present(value, &[]).map(Cow::Borrowed);
                    continue;
                }
                "proto" => {
                    event.protocol = present(value, &[]).map(Cow::Borrowed);
                    continue;
                }
                "date" => {
                    date = present(value, &[]);
                    continue;
                }
                _ => continue,
            };
            push(&mut event, role, value);
        }
        if is_traffic && !has_source {
            return Err(ParseError::malformed(NAME, "traffic log without srcip"));
        }
        event.rule = policy_name.or(policy_id).map(Cow::Borrowed);
        // FortiOS 5.4+ writes `type=utm subtype=ips`; older releases `type=ips`.
        let detection = |kind: &str| matches!(kind, "ips" | "virus" | "anomaly");
        if (log_type == "utm" && detection(subtype)) || detection(log_type) {
            event.threat = attack.or(virus).or(logdesc).map(Cow::Borrowed);
        }
        if event.timestamp.is_none() {
            event.timestamp = date.map(Cow::Borrowed);
        }
        Ok(event)
    }
}

fn push<'a>(event: &mut Event<'a>, role: Role, value: &'a str) {
    if let Some(value) = present(value, &NO_ADDRESS) {
        event.addresses.push((role, Cow::Borrowed(value)));
    }
}
