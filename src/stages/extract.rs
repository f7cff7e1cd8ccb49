//! Extract: [`Event`] → [`IpObservation`]s. Pure and synchronous.
//!
//! * In: the address tokens a parser found, with roles.
//! * Out: valid addresses in canonical form (IPv4-mapped IPv6 becomes IPv4), each `(ip, role)`
//!   pair once per event, in the order the parser gave them.
//! * Dropped and counted: tokens that are not an address (hostnames, `-`, `N/A`, garbage); the
//!   caller counts them as `ip_tokens_invalid_total`.
//!
//! Token grammar: a bare IPv4 or IPv6; `[v6]` or `[v6]:port`; `v4:port`; `ip/port` (Cisco,
//! Juniper); an IPv6 zone id (`fe80::1%eth0`) is dropped.

use std::net::{IpAddr, Ipv4Addr};

use crate::model::{Event, IpObservation};

/// Placeholders vendors write where there is no address; not counted as invalid.
const PLACEHOLDERS: [&str; 6] = ["", "-", "n/a", "none", "null", "unknown"];

/// Appends the event's valid addresses to `out`; returns how many tokens were not addresses.
pub fn extract_ip_observations(event: &Event<'_>, out: &mut Vec<IpObservation>) -> u64 {
    let mut invalid = 0;
    let start = out.len();
    for (role, token) in &event.addresses {
        match parse_ip_token(token) {
            Some(ip) => {
                let observation = IpObservation { ip, role: *role };
                if !out[start..].contains(&observation) {
                    out.push(observation);
                }
            }
            None if is_placeholder(token) => {}
            None => invalid += 1,
        }
    }
    invalid
}

fn is_placeholder(token: &str) -> bool {
    let token = token.trim();
    PLACEHOLDERS.iter().any(|p| p.eq_ignore_ascii_case(token))
}

/// Parses one address token as vendors write them; `None` when it is not an address.
pub fn parse_ip_token(token: &str) -> Option<IpAddr> {
    let token = token.trim().trim_matches('"');
    if token.is_empty() || token.len() > 64 {
        return None;
    }
    // Most tokens are plain dotted quads: read them without the general parser.
    if let Some(ip) = dotted_quad(token.as_bytes()) {
        return Some(IpAddr::V4(ip));
    }
    if let Ok(ip) = token.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    // `[2001:db8::1]:443` or `[2001:db8::1]`
    if let Some(inner) = token.strip_prefix('[') {
        let end = inner.find(']')?;
        let rest = &inner[end + 1..];
        if !(rest.is_empty() || rest.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return parse_without_zone(&inner[..end]);
    }
    // `203.0.113.7:443`: exactly one colon means IPv4 with a port.
    if let Some((host, port)) = token.split_once(':') {
        if !port.contains(':') && is_port(port) {
            return host.parse::<Ipv4Addr>().ok().map(IpAddr::V4);
        }
    }
    // `ip/port`: the port follows the last slash.
    if let Some((host, port)) = token.rsplit_once('/') {
        if is_port(port) {
            if let Some(ip) = parse_without_zone(host) {
                return Some(ip);
            }
        }
    }
    parse_without_zone(token)
}

/// A dotted quad exactly as the standard parser accepts it (four decimal octets of at most
/// 255, no leading zeros, nothing else), or `None` to let the standard parser decide.
fn dotted_quad(bytes: &[u8]) -> Option<Ipv4Addr> {
    if bytes.len() < 7 || bytes.len() > 15 {
        return None;
    }
    let mut octets = [0u8; 4];
    let mut part = 0;
    let mut value: u32 = 0;
    let mut digits = 0;
    for &b in bytes {
        match b {
            b'0'..=b'9' => {
                // A leading zero is refused ("01"); a lone "0" is fine.
                if digits == 1 && value == 0 {
                    return None;
                }
                value = value * 10 + u32::from(b - b'0');
                digits += 1;
                if digits > 3 || value > 255 {
                    return None;
                }
            }
            b'.' => {
                if digits == 0 || part == 3 {
                    return None;
                }
                octets[part] = value as u8;
                part += 1;
                value = 0;
                digits = 0;
            }
            _ => return None,
        }
    }
    if part != 3 || digits == 0 {
        return None;
    }
    octets[3] = value as u8;
    Some(Ipv4Addr::from(octets))
}

fn parse_without_zone(text: &str) -> Option<IpAddr> {
    let text = text.split_once('%').map_or(text, |(ip, _zone)| ip);
    text.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

fn is_port(text: &str) -> bool {
    !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn the_dotted_quad_fast_path_never_disagrees(token in "[0-9.]{1,16}") {
            if let Some(ip) = dotted_quad(token.as_bytes()) {
                proptest::prop_assert_eq!(Some(ip), token.parse::<Ipv4Addr>().ok());
            } else if token.len() <= 15 {
                proptest::prop_assert!(token.parse::<Ipv4Addr>().is_err());
            }
        }
    }

    #[test]
    fn the_dotted_quad_fast_path_agrees_with_the_standard_parser() {
        let cases = [
            "203.0.113.7",
            "0.0.0.0",
            "255.255.255.255",
            "1.2.3.4",
            "10.0.0.1",
            "256.1.1.1",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.5",
            "1..2.3",
            ".1.2.3",
            "1.2.3.",
            "1.2.3.04",
            "1.2.3.a",
            "1.2.3.4 ",
            "00.0.0.0",
            "192.168.001.1",
            "999.9.9.9",
            "1.2.3.400",
            "12.34.56.78",
        ];
        for case in cases {
            let fast = dotted_quad(case.as_bytes());
            let std = case.parse::<Ipv4Addr>().ok();
            if let Some(ip) = fast {
                assert_eq!(Some(ip), std, "{case}");
            }
            if std.is_some() && case.len() <= 15 {
                assert_eq!(fast, std, "{case}: the fast path should take it");
            }
        }
    }
    use crate::model::Role;
    use std::borrow::Cow;

    #[test]
    fn token_grammar() {
        let cases = [
            ("203.0.113.7", Some("203.0.113.7")),
            (" 203.0.113.7 ", Some("203.0.113.7")),
            ("203.0.113.7:443", Some("203.0.113.7")),
            ("203.0.113.7/51544", Some("203.0.113.7")),
            ("2001:db8::1", Some("2001:db8::1")),
            (
                "2001:0DB8:0BAD:0001:0000:0000:0000:0007",
                Some("2001:db8:bad:1::7"),
            ),
            ("[2001:db8::1]:443", Some("2001:db8::1")),
            ("[2001:db8::1]", Some("2001:db8::1")),
            ("2001:db8::1/443", Some("2001:db8::1")),
            ("fe80::1%eth0", Some("fe80::1")),
            ("::ffff:192.0.2.10", Some("192.0.2.10")),
            ("010.1.1.1", None),
            ("256.1.1.1", None),
            ("00:16:3e:aa:bb:cc", None),
            ("host.example.com", None),
            ("1.2.3", None),
            ("[2001:db8::1]x", None),
            // `ip/port` and a CIDR look alike; address fields hold addresses, so it is the former.
            ("203.0.113.0/24", Some("203.0.113.0")),
        ];
        for (token, want) in cases {
            let got = parse_ip_token(token).map(|ip| ip.to_string());
            assert_eq!(got.as_deref(), want, "{token}");
        }
    }

    #[test]
    fn observations_are_unique_per_role_and_invalid_tokens_counted() {
        let event = Event {
            addresses: vec![
                (Role::Source, Cow::Borrowed("203.0.113.7")),
                (Role::Source, Cow::Borrowed("203.0.113.7:80")),
                (Role::Unknown, Cow::Borrowed("203.0.113.7")),
                (Role::Destination, Cow::Borrowed("-")),
                (Role::Destination, Cow::Borrowed("not-an-ip")),
            ],
            ..Event::default()
        };
        let mut out = Vec::new();
        let invalid = extract_ip_observations(&event, &mut out);
        assert_eq!(invalid, 1);
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        assert_eq!(
            out,
            vec![
                IpObservation {
                    ip,
                    role: Role::Source
                },
                IpObservation {
                    ip,
                    role: Role::Unknown
                },
            ]
        );
    }

    proptest::proptest! {
        #[test]
        fn tokens_never_panic_and_roundtrip(a: u8, b: u8, c: u8, d: u8, port in 0u16..) {
            let text = format!("{a}.{b}.{c}.{d}:{port}");
            let want = IpAddr::V4(Ipv4Addr::new(a, b, c, d));
            proptest::prop_assert_eq!(parse_ip_token(&text), Some(want));
        }

        #[test]
        fn arbitrary_text_is_none_or_an_address_spelled_in_it(s in "\\PC{0,80}") {
            check_parsed_token(&s)?;
        }

        #[test]
        fn decorated_addresses_are_none_or_an_address_spelled_in_them(s in decorated_address()) {
            check_parsed_token(&s)?;
        }
    }

    /// An address (IPv4, IPv6, IPv4-mapped IPv6) with random bracket, port, zone and quote
    /// characters around it: half parse, half do not.
    fn decorated_address() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let address = prop_oneof![
            any::<u32>().prop_map(|bits| Ipv4Addr::from(bits).to_string()),
            any::<u128>().prop_map(|bits| std::net::Ipv6Addr::from(bits).to_string()),
            any::<u32>().prop_map(|bits| format!("::ffff:{}", Ipv4Addr::from(bits))),
        ];
        let around = "[\\[\\]:/%\" 0-9a-z]{0,4}";
        (around, address, around).prop_map(|(before, ip, after)| format!("{before}{ip}{after}"))
    }

    /// What `parse_ip_token` returns for `text`: `None`, or a canonical address that some
    /// part of the text spells; and never `None` for text the standard parser reads whole.
    fn check_parsed_token(text: &str) -> Result<(), proptest::test_runner::TestCaseError> {
        let parsed = parse_ip_token(text);
        let whole = text.trim().trim_matches('"');
        if let Ok(ip) = whole.parse::<IpAddr>() {
            proptest::prop_assert_eq!(parsed, Some(ip.to_canonical()), "{:?} is an address", text);
        }
        if let Some(ip) = parsed {
            proptest::prop_assert_eq!(ip, ip.to_canonical(), "{:?} not canonical", text);
            proptest::prop_assert!(spelled_in(text, ip), "{} is not written in {:?}", ip, text);
        }
        Ok(())
    }

    /// Whether a substring of `text` reads as `ip` (after canonicalisation).
    fn spelled_in(text: &str, ip: IpAddr) -> bool {
        let starts: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        starts.iter().any(|&start| {
            text[start..]
                .char_indices()
                .map(|(i, c)| start + i + c.len_utf8())
                .any(|end| {
                    text[start..end]
                        .parse::<IpAddr>()
                        .is_ok_and(|p| p.to_canonical() == ip)
                })
        })
    }
}
