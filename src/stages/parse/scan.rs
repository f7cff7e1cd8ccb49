//! The last-resort scanner: IP literals in free text, for lines no format recognised.
//!
//! * IPv6 candidates are maximal runs of hex digits, `:` and `.` with at least two colons and
//!   a decimal digit; a run glued to a label by `:` (`Local:2001:db8::1`) is read after the
//!   colon, an unbracketed trailing port (`2001:db8:10::5:40222`, HAProxy) is dropped when the
//!   whole run is not an address.
//! * IPv4 candidates are maximal runs of digits and dots outside the IPv6 addresses found, that
//!   are exactly four numbers: `junos@2636.1.1.1.2.129` (six numbers), OIDs, clock times and
//!   MAC addresses (`00:16:3e:aa:bb:cc`) never parse as an address.
//! * Neighbours: an address may sit next to `:`, `@`, `/`, `_` (after it), brackets, quotes,
//!   `=` and spaces (`outside:198.51.100.7/50240`, `Local:198.51.100.7:500`,
//!   `[admin@198.51.100.7_29010]`); a letter or a digit glued to it (`v1.0.0.1`,
//!   `1.2.3.4a`), a `-` (host names `ip-…`, ranges) or a `.` joining more numbers make it part
//!   of a word, not an address.
//! * Roles come from [`crate::stages::parse::roles`]: the words and key names next to each
//!   address; with none, the role is `unknown`.

use std::borrow::Cow;

use crate::model::Event;
use crate::stages::extract::parse_ip_token;
use crate::stages::parse::roles;

/// Name in `observed.format`.
pub(crate) const NAME: &str = "ip_scan";

fn is_v6_byte(b: u8) -> bool {
    b.is_ascii_hexdigit() || matches!(b, b'.' | b':')
}

fn is_v4_byte(b: u8) -> bool {
    b.is_ascii_digit() || b == b'.'
}

/// A byte before an address that makes it part of a word.
fn glues_before(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

/// A byte after an address that makes it part of a word.
fn glues_after(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'@')
}

/// Byte ranges of the IP literals in `text`, in order.
pub(crate) fn find_addresses(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut v6: Vec<(usize, usize)> = Vec::new();
    let mut found: Vec<(usize, usize)> = Vec::new();
    // IPv6 first, so that `::ffff:192.0.2.10` is one address, not an IPv4 inside one.
    if memchr::memmem::find(bytes, b":").is_some() {
        let mut i = 0;
        while i < bytes.len() {
            if !is_v6_byte(bytes[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < bytes.len() && is_v6_byte(bytes[i]) {
                i += 1;
            }
            if let Some(span) = v6_in_run(text, start, i) {
                v6.push(span);
            }
        }
    }
    let mut i = 0;
    let mut next_v6 = 0;
    while i < bytes.len() {
        if let Some(&span) = v6.get(next_v6).filter(|s| i >= s.0) {
            found.push(span);
            i = i.max(span.1);
            next_v6 += 1;
            continue;
        }
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        let limit = v6.get(next_v6).map_or(bytes.len(), |s| s.0);
        while i < limit && is_v4_byte(bytes[i]) {
            i += 1;
        }
        if let Some(span) = v4_in_run(text, start, i) {
            found.push(span);
        }
    }
    found.extend(v6[next_v6..].iter().copied());
    found
}

/// The IPv4 address that the digit-and-dot run `start..end` is, if it is one.
fn v4_in_run(text: &str, start: usize, mut end: usize) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    // A sentence's full stop is not part of the address.
    while end > start && bytes[end - 1] == b'.' {
        end -= 1;
    }
    if start > 0 && glues_before(bytes[start - 1]) {
        return None;
    }
    // More numbers joined by a dot (`2636.1.1.1.2.129` after a letter, `.1.3.6.1.4`).
    if start > 0
        && bytes[start - 1] == b'.'
        && start > 1
        && bytes[start - 2].is_ascii_alphanumeric()
    {
        return None;
    }
    if end < bytes.len() && glues_after(bytes[end]) {
        return None;
    }
    // Exactly four numbers of at most 255 (`parse_ip_token` refuses five, leading zeros, …).
    parse_ip_token(&text[start..end])
        .is_some()
        .then_some((start, end))
}

/// The IPv6 address in the hex-colon-dot run `start..end`, if there is one.
fn v6_in_run(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    let run = &text[start..end];
    if run.bytes().filter(|&b| b == b':').count() < 2 {
        return None;
    }
    if end < bytes.len() && glues_after(bytes[end]) {
        return None;
    }
    let glued = start > 0 && glues_before(bytes[start - 1]);
    let mut candidates: [Option<usize>; 3] = [None, None, None];
    if !glued {
        candidates[1] = Some(start);
    }
    // `Local:2001:db8::1`, `de:…` of `outside:…`: the label ends at the first single colon.
    // A first group without a decimal digit (`cafe:2001:db8::1`) is read as a label first:
    // real first groups (`2001`, `fe80`, `fd00`, `ff02`, `64`) have one.
    if let Some(colon) = run.find(':') {
        let after = &run[colon..];
        if !after.starts_with("::") || after.starts_with(":::") {
            let slot = if run[..colon].bytes().any(|b| b.is_ascii_digit()) {
                2
            } else {
                0
            };
            candidates[slot] = Some(start + colon + 1);
        }
    }
    for from in candidates.into_iter().flatten() {
        let mut to = end;
        // A sentence's colon or full stop after the address.
        if text[from..to].ends_with('.')
            || (text[from..to].ends_with(':') && !text[from..to].ends_with("::"))
        {
            to -= 1;
        }
        let token = &text[from..to];
        if let Some(span) = v6_token(token).map(|(a, b)| (from + a, from + b)) {
            return Some(span);
        }
    }
    None
}

/// The IPv6 address `token` is, or is followed by an unbracketed `:port`; as a sub-range.
fn v6_token(token: &str) -> Option<(usize, usize)> {
    let is_v6 = |t: &str| {
        t.len() >= 7
            && t.bytes().filter(|&b| b == b':').count() >= 2
            && t.bytes().any(|b| b.is_ascii_digit())
            && t.parse::<std::net::Ipv6Addr>().is_ok()
    };
    if is_v6(token) {
        return Some((0, token.len()));
    }
    let (host, port) = token.rsplit_once(':')?;
    (!port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()) && is_v6(host))
        .then_some((0, host.len()))
}

/// Pushes every IP literal in `text` onto `event.addresses`, each with the role the words
/// around it give; returns how many were found.
pub(crate) fn scan_addresses<'a>(text: &'a str, event: &mut Event<'a>) -> usize {
    let spans = find_addresses(text);
    let inferred = roles::infer(text, &spans);
    for (&(start, end), inferred) in spans.iter().zip(&inferred) {
        event
            .addresses
            .push((inferred.role, Cow::Borrowed(&text[start..end])));
    }
    spans.len()
}

/// Pushes the IP literals of `text` outside `skip` (byte ranges already read), with roles.
pub(crate) fn scan_addresses_outside<'a>(
    text: &'a str,
    skip: &[(usize, usize)],
    event: &mut Event<'a>,
) {
    let spans = find_addresses(text);
    let read = |&(start, end): &(usize, usize)| skip.iter().any(|&(s, e)| start < e && s < end);
    // Usually every address is in a value a key already named: no words to read then.
    if spans.iter().all(read) {
        return;
    }
    let inferred = roles::infer(text, &spans);
    for (span, inferred) in spans.iter().zip(&inferred) {
        if read(span) {
            continue;
        }
        let &(start, end) = span;
        event
            .addresses
            .push((inferred.role, Cow::Borrowed(&text[start..end])));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Role;

    fn scan(text: &str) -> Vec<(Role, String)> {
        let mut event = Event::default();
        scan_addresses(text, &mut event);
        event
            .addresses
            .into_iter()
            .map(|(r, t)| (r, t.into_owned()))
            .collect()
    }

    #[test]
    fn finds_addresses_and_keywords() {
        assert_eq!(
            scan("denied connection from 203.0.113.7 port 51544 to 192.0.2.1."),
            [
                (Role::Source, "203.0.113.7".to_owned()),
                (Role::Destination, "192.0.2.1".to_owned())
            ]
        );
        assert_eq!(
            scan("peer 2001:db8::7 seen, mapped ::ffff:192.0.2.10"),
            [
                (Role::Source, "2001:db8::7".to_owned()),
                (Role::Nat, "::ffff:192.0.2.10".to_owned())
            ]
        );
        assert_eq!(
            scan("seen 2001:db8::7, then ::ffff:192.0.2.10"),
            [
                (Role::Unknown, "2001:db8::7".to_owned()),
                (Role::Unknown, "::ffff:192.0.2.10".to_owned())
            ]
        );
    }

    #[test]
    fn a_multibyte_character_before_an_address_is_fine() {
        // Found by the fuzzer: the keyword search used to slice inside 'Ͼ'.
        assert_eq!(
            scan("hhhϾ192.0.2.1 and ϾFROM 192.0.2.2"),
            [
                (Role::Unknown, "192.0.2.1".to_owned()),
                (Role::Source, "192.0.2.2".to_owned())
            ]
        );
    }

    #[test]
    fn addresses_next_to_colons_at_signs_underscores_and_slashes() {
        let cases: [(&str, &[(Role, &str)]); 7] = [
            (
                "Deny tcp src outside:198.51.100.7/50240 dst inside:10.1.1.2/23",
                &[
                    (Role::Source, "198.51.100.7"),
                    (Role::Destination, "10.1.1.2"),
                ],
            ),
            (
                "Local:198.51.100.7:500 Remote:203.0.113.9:500",
                &[
                    (Role::Destination, "198.51.100.7"),
                    (Role::Source, "203.0.113.9"),
                ],
            ),
            (
                "[admin@198.51.100.7_29010] login",
                &[(Role::Unknown, "198.51.100.7")],
            ),
            (
                "Local:2001:db8::1 src:2001:db8::2",
                &[
                    (Role::Destination, "2001:db8::1"),
                    (Role::Source, "2001:db8::2"),
                ],
            ),
            ("cafe:2001:db8::1 seen", &[(Role::Unknown, "2001:db8::1")]),
            (
                "haproxy 2001:db8:10::5:40222 [x]",
                &[(Role::Unknown, "2001:db8:10::5")],
            ),
            (
                "http://198.51.100.7/index.html at 192.0.2.1.",
                &[
                    (Role::Unknown, "198.51.100.7"),
                    (Role::Unknown, "192.0.2.1"),
                ],
            ),
        ];
        for (text, want) in cases {
            let want: Vec<(Role, String)> =
                want.iter().map(|(r, a)| (*r, (*a).to_owned())).collect();
            assert_eq!(scan(text), want, "{text}");
        }
    }

    /// Text that may stand right before an address (a word, then one separator), and after it.
    const BEFORE: &str = "[ -~]{0,10} [a-zA-Z]{0,8}[ :@/_=\\[(<{\"',;|]";
    const AFTER_V4: &str = "[ :/_\\])>}\"',;|][0-9]{0,5} [ -~]{0,10}";
    const AFTER_V6: &str = "[ /_%\\])>}\"',;|][0-9]{0,4} [ -~]{0,10}";

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2000, ..Default::default() })]

        /// A line that holds a dotted quad, whatever punctuation surrounds it, yields it.
        #[test]
        fn any_dotted_quad_in_punctuation_is_found(
            before in BEFORE, bits: u32, after in AFTER_V4,
        ) {
            let ip = std::net::Ipv4Addr::from(bits);
            let line = format!("{before}{ip}{after}");
            let found = found_ips(&line);
            proptest::prop_assert!(found.contains(&std::net::IpAddr::V4(ip)), "{} not found in {:?}: {:?}", ip, line, found);
        }

        /// The same for IPv6 written as an address is (`::` forms and IPv4-mapped included;
        /// tokens shorter than 7 characters or without a decimal digit are left out by design).
        #[test]
        fn any_ipv6_in_punctuation_is_found(
            before in BEFORE, bits: u128, after in AFTER_V6,
        ) {
            let ip = std::net::Ipv6Addr::from(bits);
            let text = ip.to_string();
            proptest::prop_assume!(text.len() >= 7 && text.bytes().any(|b| b.is_ascii_digit()));
            let line = format!("{before}{text}{after}");
            let found = found_ips(&line);
            let want = std::net::IpAddr::V6(ip).to_canonical();
            proptest::prop_assert!(found.contains(&want), "{} not found in {:?}: {:?}", text, line, found);
        }
    }

    fn found_ips(line: &str) -> Vec<std::net::IpAddr> {
        scan(line)
            .iter()
            .filter_map(|(_, token)| parse_ip_token(token))
            .collect()
    }

    #[test]
    fn regex_traps_are_not_addresses() {
        for text in [
            "junos@2636.1.1.1.2.129",
            "MAC=00:16:3e:aa:bb:cc:00:16:3e:dd:ee:ff:08:00",
            "at 12:00:00 flags 0x400064",
            "AppThreat-8000-1234 v1.0.0.1",
            "10.0.0.0-10.255.255.255x",
            "999.1.1.1",
            "deadbeef:cafe",
            "OID 1.3.6.1.4.1.9.9 at 2024-03-01T12:00:00.000Z",
            "build ab.1.2.3.4 and ip-192-0-2-1 and 198.51.100.7-198.51.100.9",
            "trap Error:: at a1:b2:c3",
        ] {
            assert!(scan(text).is_empty(), "{text}");
        }
    }
}
