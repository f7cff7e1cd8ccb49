//! SonicWall SonicOS enhanced syslog (reference §2.8).
//!
//! * In: `line.body`, space-separated pairs `id=firewall sn=<serial> time="…" fw=<ip> pri=<n>
//!   c=<n> m=<n> msg="…" … src=IP:PORT:IFACE[:host] dst=…`.
//! * Detect: `id=firewall` and ` sn=` in the body.
//! * Roles: `src`/`srcV6` source, `dst`/`dstV6` destination; `natSrc`/`natDst` and
//!   `natSrcV6`/`natDstV6` nat, skipped when equal to the pre-NAT address of that side (SonicOS
//!   repeats the original when nothing was translated). Values are split by
//!   [`address_part`]: `IPv4:port:iface[:host]`, `[IPv6]:port`, bare IPv6, or IPv6 followed by
//!   `:port:iface[:host]`. Placeholders `not_an_IP`, `0.0.0.0`, `::`, `-`, empty are skipped.
//! * `fw=` is the firewall's own address: the observer, never an address.
//! * Context: vendor SonicWall, product SonicOS, action `fw_action` (unless `NA`), rule
//!   `rule`, timestamp `time`. A line without the `m=` message id is malformed; events such
//!   as system messages legitimately hold no address.

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::model::{Event, Role};
use crate::stages::parse::fields::Needle;
use crate::stages::parse::fields::{present, KvPairs};
use crate::stages::parse::{Line, LogFormat, ParseError};

static ID_FIREWALL: Needle = Needle::new(b"id=firewall");
static SN: Needle = Needle::new(b" sn=");

const NAME: &str = "sonicwall";
const NO_ADDRESS: [&str; 5] = ["0.0.0.0", "::", "-", "not_an_IP", "N/A"];

/// Format `sonicwall`.
pub(crate) struct SonicWall;

/// d-siem: the port after `address` in a SonicWall endpoint value (`192.0.2.10:51544:X0`,
/// `[2001:db8::5]:443:X1`).
fn port_part<'a>(value: &'a str, address: &str) -> Option<&'a str> {
    let at = value.find(address)? + address.len();
    let rest = value[at..].strip_prefix(']').unwrap_or(&value[at..]);
    let port = rest.strip_prefix(':')?.split(':').next()?;
    (!port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())).then_some(port)
}

/// The address in a SonicWall endpoint value, without port, interface or host name.
pub(crate) fn address_part(value: &str) -> Option<&str> {
    let value = present(value, &NO_ADDRESS)?;
    if let Some(inner) = value.strip_prefix('[') {
        return inner.split_once(']').map(|(ip, _)| ip);
    }
    let first = value.split(':').next().unwrap_or(value);
    if first.contains('.') {
        // IPv4, possibly followed by `:port:iface:host`.
        return first.parse::<Ipv4Addr>().is_ok().then_some(first);
    }
    if value.parse::<Ipv6Addr>().is_ok() {
        return Some(value);
    }
    // Unbracketed IPv6 followed by `:port:iface` or `:port:iface:host`.
    let mut end = value.len();
    for dropped in 1..=3 {
        end = value[..end].rfind(':')?;
        if dropped < 2 {
            continue;
        }
        let (ip, tail) = value.split_at(end);
        let port = tail[1..].split(':').next().unwrap_or("");
        if !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
            && ip.parse::<Ipv6Addr>().is_ok()
        {
            return Some(ip);
        }
    }
    None
}

impl LogFormat for SonicWall {
    fn name(&self) -> &'static str {
        NAME
    }

    fn detect(&self, line: &Line<'_>) -> bool {
        let body = line.body.as_bytes();
        ID_FIREWALL.find(body).is_some() && SN.find(body).is_some()
    }

    fn parse<'a>(&self, line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        let mut event = Event {
            format: NAME,
            vendor: Some(Cow::Borrowed("SonicWall")),
            product: Some(Cow::Borrowed("SonicOS")),
            ..Event::default()
        };
        // Pre-NAT and NAT address of each side, compared once every pair is read.
        let mut sides: [[Option<&'a str>; 2]; 2] = [[None; 2]; 2];
        let mut has_message_id = false;
        let mut ports: [Option<&'a str>; 2] = [None; 2];
        for (key, value) in KvPairs::new(line.body) {
            let (side, nat) = match key {
                "src" | "srcV6" => (0, 0),
                "dst" | "dstV6" => (1, 0),
                "natSrc" | "natSrcV6" => (0, 1),
                "natDst" | "natDstV6" => (1, 1),
                "fw" => {
                    event.observer = present(value, &NO_ADDRESS).map(Cow::Borrowed);
                    continue;
                }
                "m" => {
                    has_message_id = true;
                    continue;
                }
                "fw_action" => {
                    event.action = present(value, &["NA"]).map(Cow::Borrowed);
                    continue;
                }
                "rule" => {
                    event.rule = present(value, &[]).map(Cow::Borrowed);
                    continue;
                }
                "time" => {
                    event.timestamp = present(value, &[]).map(Cow::Borrowed);
                    continue;
                }
                // `tcp/https`, `udp/53`: the transport before the slash.
                "proto" => {
                    event.protocol = present(value, &[])
                        .map(|p| Cow::Borrowed(p.split('/').next().unwrap_or(p)));
                    continue;
                }
                _ => continue,
            };
            let slot = &mut sides[side][nat];
            if slot.is_none() {
                *slot = address_part(value);
                if let (0, Some(ip)) = (nat, *slot) {
                    ports[side] = port_part(value, ip);
                }
            }
        }
        event.src_port = ports[0].map(Cow::Borrowed);
        event.dst_port = ports[1].map(Cow::Borrowed);
        if !has_message_id {
            return Err(ParseError::malformed(NAME, "no m= message id"));
        }
        let [[source, source_nat], [destination, destination_nat]] = sides;
        if let Some(ip) = source {
            event.addresses.push((Role::Source, Cow::Borrowed(ip)));
        }
        if let Some(ip) = destination {
            event.addresses.push((Role::Destination, Cow::Borrowed(ip)));
        }
        for (nat, original) in [(source_nat, source), (destination_nat, destination)] {
            if let Some(ip) = nat.filter(|&nat| Some(nat) != original) {
                event.addresses.push((Role::Nat, Cow::Borrowed(ip)));
            }
        }
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::{address_part, port_part};

    #[test]
    fn endpoint_ports() {
        assert_eq!(
            port_part("192.0.2.10:51544:X0", "192.0.2.10"),
            Some("51544")
        );
        assert_eq!(
            port_part("[2001:db8::5]:443:X1", "2001:db8::5"),
            Some("443")
        );
        assert_eq!(
            port_part("2001:db8::5:443:X1:host", "2001:db8::5"),
            Some("443")
        );
        assert_eq!(port_part("192.0.2.10", "192.0.2.10"), None);
        assert_eq!(port_part("192.0.2.10:X0", "192.0.2.10"), None);
    }

    #[test]
    fn endpoint_notation() {
        assert_eq!(address_part("192.0.2.10:51544:X0"), Some("192.0.2.10"));
        assert_eq!(
            address_part("198.51.100.20:443:X1:www.example.com"),
            Some("198.51.100.20")
        );
        assert_eq!(address_part("203.0.113.1"), Some("203.0.113.1"));
        assert_eq!(address_part("[2001:db8::5]:40212"), Some("2001:db8::5"));
        assert_eq!(address_part("2001:db8::5"), Some("2001:db8::5"));
        assert_eq!(address_part("2001:db8::5:443:X1"), Some("2001:db8::5"));
        assert_eq!(address_part("2001:db8::5:443:X1:host"), Some("2001:db8::5"));
        assert_eq!(address_part("not_an_IP"), None);
        assert_eq!(address_part("www.example.com:443"), None);
        assert_eq!(address_part("a:b:c:d"), None);
        assert_eq!(address_part("[2001:db8::5"), None);
    }
}
