//! Address tokens inside vendor free text, shared by the formats that read messages written
//! in words (`… from A …`, `A:p -> B:p`, `client IP A`). Borrowing, no allocation.

use std::borrow::Cow;

use crate::model::{Event, Role};
use crate::stages::extract::parse_ip_token;
use crate::stages::parse::scan;

/// The address in `token`, with a port (`A:p`, `A/p`, `[v6]:p`, v6 `A.p`) and the
/// punctuation around it (`(`, `'`, `"`, `,`, `;`, `)`, a final `.`) allowed; `None` when it
/// holds no address.
pub(crate) fn token_address(token: &str) -> Option<&str> {
    let token = token
        .trim_start_matches(['(', '\'', '"', '<'])
        .trim_end_matches([',', ';', ')', '\'', '"', '>', '.']);
    if token.len() < 3 {
        return None;
    }
    if parse_ip_token(token).is_some() {
        return Some(token);
    }
    // `A:p:` before a message (`… -> 192.0.2.1:51234: Connection error`).
    if let Some(bare) = token.strip_suffix(':') {
        if parse_ip_token(bare).is_some() {
            return Some(bare);
        }
    }
    // IPv6 with a `.port` suffix (`2001:db8::5.443`).
    let (host, port) = token.rsplit_once('.')?;
    (host.contains(':')
        && !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && host.parse::<std::net::Ipv6Addr>().is_ok())
    .then_some(host)
}

/// The address of the first token after the first `marker` in `text`.
pub(crate) fn address_after<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
    let at = text.find(marker)? + marker.len();
    let rest = text[at..].trim_start_matches([' ', '\'', '"', '=', ':']);
    let end = rest
        .find([' ', ',', ';', ')', '\'', '"'])
        .unwrap_or(rest.len());
    token_address(&rest[..end])
}

/// `A -> B` (each with or without a port): the tokens either side of the first ` -> `, when
/// both are addresses.
pub(crate) fn arrow(text: &str) -> Option<(&str, &str)> {
    let at = text.find(" -> ")?;
    let left = text[..at].rsplit(' ').next()?;
    let right = text[at + 4..].split(' ').next()?;
    Some((token_address(left)?, token_address(right)?))
}

/// Every other address of `text` (by the generic scanner) that `event` does not hold yet, as
/// `unknown`; subnet masks (`255.…`) are not hosts and are skipped.
pub(crate) fn add_others_as_unknown<'a>(text: &'a str, event: &mut Event<'a>) {
    let mut others = Event::default();
    scan::scan_addresses(text, &mut others);
    for (_, other) in others.addresses {
        let ip = parse_ip_token(&other);
        let mask = matches!(ip, Some(std::net::IpAddr::V4(v4)) if v4.octets()[0] == 255);
        let known = event
            .addresses
            .iter()
            .any(|(_, have)| parse_ip_token(have) == ip);
        if !mask && !known {
            event.addresses.push((Role::Unknown, other));
        }
    }
}

/// Pushes `value` with `role` when it is present.
pub(crate) fn push<'a>(event: &mut Event<'a>, role: Role, value: Option<&'a str>) {
    if let Some(value) = value {
        event.addresses.push((role, Cow::Borrowed(value)));
    }
}

/// The first hop of a forwarded-for list (`A, B`); `None` for the placeholders `-`, `N/A`.
pub(crate) fn first_hop(value: &str) -> Option<&str> {
    let hop = value.split(',').next()?.trim();
    token_address(hop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_with_ports_and_punctuation() {
        assert_eq!(
            token_address("198.51.100.5:52311"),
            Some("198.51.100.5:52311")
        );
        assert_eq!(token_address("(203.0.113.9)"), Some("203.0.113.9"));
        assert_eq!(token_address("'192.0.2.1',"), Some("192.0.2.1"));
        assert_eq!(token_address("2001:db8::5.443"), Some("2001:db8::5"));
        assert_eq!(
            token_address("[2001:db8::5]:443"),
            Some("[2001:db8::5]:443")
        );
        assert_eq!(token_address("192.0.2.1:51234:"), Some("192.0.2.1:51234"));
        assert_eq!(token_address("v1.2.3"), None);
        assert_eq!(token_address("12:00:00"), None);
    }

    #[test]
    fn markers_and_arrows() {
        let text =
            "New session from client IP 198.51.100.7 (ST=/CC=/C=) at VIP 203.0.113.10 Listener";
        assert_eq!(address_after(text, "client IP "), Some("198.51.100.7"));
        assert_eq!(address_after(text, " at VIP "), Some("203.0.113.10"));
        assert_eq!(address_after(text, "Listener"), None);
        assert_eq!(
            arrow("failed for TCP 198.51.100.5:52311 -> 203.0.113.10:443"),
            Some(("198.51.100.5:52311", "203.0.113.10:443"))
        );
        assert_eq!(arrow("a -> b"), None);
        assert_eq!(first_hop("192.0.2.150, 198.51.100.1"), Some("192.0.2.150"));
        assert_eq!(first_hop("N/A"), None);
        let mut event = Event::default();
        let text = "lease of ip 192.0.2.50 on subnet 255.255.255.0 from router 192.0.2.1";
        push(
            &mut event,
            Role::Source,
            address_after(text, "lease of ip "),
        );
        add_others_as_unknown(text, &mut event);
        let roles: Vec<_> = event
            .addresses
            .iter()
            .map(|(r, a)| (*r, a.as_ref()))
            .collect();
        assert_eq!(
            roles,
            [(Role::Source, "192.0.2.50"), (Role::Unknown, "192.0.2.1")]
        );
    }
}
