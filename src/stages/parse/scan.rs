//! The last-resort scanner: IP literals in free text, for lines no format recognised.
//!
//! Candidates are maximal runs of address characters, so `junos@2636.1.1.1.2.129` (six
//! numbers), MAC addresses (`00:16:3e:aa:bb:cc`), clock times and hex flags never parse as an
//! address. An address right after `from` or `src` is the source, after `to` or `dst` the
//! destination; every other one has role `unknown`.

use std::borrow::Cow;

use crate::model::{Event, Role};
use crate::stages::extract::parse_ip_token;

/// Name in `observed.format`.
pub(crate) const NAME: &str = "ip_scan";

fn is_candidate_byte(b: u8) -> bool {
    b.is_ascii_hexdigit() || matches!(b, b'.' | b':')
}

/// Pushes every IP literal in `text` onto `event.addresses`; returns how many were found.
pub(crate) fn scan_addresses<'a>(text: &'a str, event: &mut Event<'a>) -> usize {
    let bytes = text.as_bytes();
    let mut found = 0;
    let mut i = 0;
    while i < bytes.len() {
        if !is_candidate_byte(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_candidate_byte(bytes[i]) {
            i += 1;
        }
        // A letter, digit-glued word or `@`/`-` before the run makes it part of a word.
        let glued_before = start > 0
            && (bytes[start - 1].is_ascii_alphanumeric()
                || matches!(bytes[start - 1], b'@' | b'_' | b'-' | b'/'));
        let glued_after = i < bytes.len()
            && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b'-' | b'@'));
        let mut token = &text[start..i];
        token = token.trim_end_matches(['.', ':']);
        if glued_before || glued_after || token.len() < 7 {
            continue;
        }
        if !(token.contains('.') || token.matches(':').count() >= 2) {
            continue;
        }
        if parse_ip_token(token).is_none() {
            continue;
        }
        let role = role_from_keyword(&text[..start]);
        event.addresses.push((role, Cow::Borrowed(token)));
        found += 1;
    }
    found
}

fn role_from_keyword(before: &str) -> Role {
    let before = before.trim_end_matches([' ', '=', ':', '(', '[']);
    // By bytes: the byte after the last non-letter byte always starts a character.
    let word_start = before
        .bytes()
        .rposition(|b| !b.is_ascii_alphabetic())
        .map_or(0, |i| i + 1);
    match before[word_start..].to_ascii_lowercase().as_str() {
        "from" | "src" | "source" => Role::Source,
        "to" | "dst" | "destination" => Role::Destination,
        _ => Role::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn regex_traps_are_not_addresses() {
        for text in [
            "junos@2636.1.1.1.2.129",
            "MAC=00:16:3e:aa:bb:cc:00:16:3e:dd:ee:ff:08:00",
            "at 12:00:00 flags 0x400064",
            "AppThreat-8000-1234 v1.0.0.1",
            "10.0.0.0-10.255.255.255x",
            "999.1.1.1",
            "deadbeef:cafe",
        ] {
            assert!(scan(text).is_empty(), "{text}");
        }
    }
}
