//! Squid `access.log`: the native format and the `combined` logformat (reference §3.1, §3.2),
//! bare or behind a syslog header (`access_log syslog:…`).
//!
//! * Native (`squid`): whitespace-separated `time.ms elapsed client code/status bytes method URL
//!   user hierarchy/peer mime [headers…]`. Detected by its start:
//!   `^\d{9,10}\.\d{3} +\d+ +\S+ +[A-Z_]+/\d{3} `.
//! * Combined (`squid_combined`): `client ident user [time] "request" status bytes "referer"
//!   "agent" Ss:Sh`. Detected by a `] "` and a last token `[A-Z_]+:[A-Z_]+…` (Squid's `%Ss:%Sh`,
//!   e.g. `TCP_MISS:HIER_DIRECT`).
//! * Roles: the client field is the source (the proxy's connection peer; with
//!   `log_uses_indirect_client` Squid may already have put the X-Forwarded-For client there —
//!   the line does not say). The peer after `HIER_*/` is the server the proxy connected to →
//!   destination. A peer reached through a `*_PARENT`, `*SIBLING*`, `CD_*` or `CARP` code is
//!   another proxy, not the origin server: it is reported as unknown, never as the destination.
//!   `HIER_NONE/-` (cache hits) has no peer. Host names (client with `log_fqdn`, named peers)
//!   are not addresses and are skipped.
//! * Context: vendor/product `Squid`; action = the result code as written (`TCP_MISS/200`, or
//!   `TCP_MISS` in combined); timestamp = the epoch field / the `[…]` time.
//! * Combined carries no destination address unless a custom format appended `/ip` to `%Sh`.

use std::borrow::Cow;

use crate::model::{Event, Role};
use crate::stages::extract::parse_ip_token;
use crate::stages::parse::{Line, LogFormat, ParseError};

const NATIVE: &str = "squid";
const COMBINED: &str = "squid_combined";

/// Format `squid`.
pub(crate) struct SquidNative;

/// Format `squid_combined`.
pub(crate) struct SquidCombined;

fn squid_event<'a>(format: &'static str) -> Event<'a> {
    Event {
        format,
        vendor: Some(Cow::Borrowed("Squid")),
        product: Some(Cow::Borrowed("Squid")),
        ..Event::default()
    }
}

/// `[A-Z_]+/\d{3}`: a native result code with its HTTP status.
fn is_result_code(token: &str) -> bool {
    let Some((code, status)) = token.split_once('/') else {
        return false;
    };
    is_code_word(code) && status.len() == 3 && status.bytes().all(|b| b.is_ascii_digit())
}

fn is_code_word(word: &str) -> bool {
    !word.is_empty() && word.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
}

fn is_native(body: &str) -> bool {
    let b = body.as_bytes();
    let seconds = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if !(9..=10).contains(&seconds)
        || b.get(seconds) != Some(&b'.')
        || !b
            .get(seconds + 1..seconds + 4)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
        || b.get(seconds + 4) != Some(&b' ')
    {
        return false;
    }
    let mut tokens = body[seconds + 4..].split_ascii_whitespace();
    let elapsed = tokens.next().unwrap_or("");
    let _client = tokens.next();
    !elapsed.is_empty()
        && elapsed.bytes().all(|b| b.is_ascii_digit())
        && tokens.next().is_some_and(is_result_code)
}

/// Role of the peer named by a hierarchy code, or `None` when the code names no peer.
fn peer_role(code: &str) -> Option<Role> {
    if code == "HIER_NONE" || code == "NONE" {
        None
    } else if code.contains("PARENT")
        || code.contains("SIBLING")
        || code.starts_with("CD_")
        || code == "CARP"
    {
        // Another proxy (parent or sibling cache), not the origin server.
        Some(Role::Unknown)
    } else {
        Some(Role::Destination)
    }
}

/// Pushes the peer of `HIER_CODE/peer` when it is an address.
fn push_peer<'a>(event: &mut Event<'a>, hierarchy: &'a str) {
    let Some((code, peer)) = hierarchy.split_once('/') else {
        return;
    };
    if let Some(role) = peer_role(code) {
        if parse_ip_token(peer).is_some() {
            event.addresses.push((role, Cow::Borrowed(peer)));
        }
    }
}

/// Pushes the client as the source when it is an address (not a `log_fqdn` host name).
fn push_client<'a>(event: &mut Event<'a>, client: &'a str) {
    if parse_ip_token(client).is_some() {
        event.addresses.push((Role::Source, Cow::Borrowed(client)));
    }
}

impl LogFormat for SquidNative {
    fn name(&self) -> &'static str {
        NATIVE
    }

    fn detect(&self, line: &Line<'_>) -> bool {
        is_native(line.body)
    }

    fn parse<'a>(&self, line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        let mut event = squid_event(NATIVE);
        let mut fields = [""; 9];
        let mut count = 0;
        for (slot, token) in fields.iter_mut().zip(line.body.split_ascii_whitespace()) {
            *slot = token;
            count += 1;
        }
        if count < 9 {
            return Err(ParseError::malformed(
                NATIVE,
                format!("{count} fields, the hierarchy/peer is field 9"),
            ));
        }
        event.timestamp = Some(Cow::Borrowed(fields[0]));
        push_client(&mut event, fields[2]);
        event.action = Some(Cow::Borrowed(fields[3]));
        push_peer(&mut event, fields[8]);
        Ok(event)
    }
}

/// The `%Ss:%Sh` tail of a combined line, split at the colon.
fn combined_tail(body: &str) -> Option<(&str, &str)> {
    let last = body.rsplit(' ').next()?;
    let (status, hierarchy) = last.split_once(':')?;
    let code = hierarchy.split('/').next().unwrap_or(hierarchy);
    (is_code_word(status) && is_code_word(code) && code.contains('_'))
        .then_some((status, hierarchy))
}

impl LogFormat for SquidCombined {
    fn name(&self) -> &'static str {
        COMBINED
    }

    fn detect(&self, line: &Line<'_>) -> bool {
        combined_tail(line.body).is_some() && line.body.contains("] \"")
    }

    fn parse<'a>(&self, line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        let body = line.body;
        let mut event = squid_event(COMBINED);
        let (status, hierarchy) = combined_tail(body).ok_or_else(|| {
            ParseError::malformed(COMBINED, "no trailing %Ss:%Sh (e.g. TCP_MISS:HIER_DIRECT)")
        })?;
        let open = body
            .find(" [")
            .ok_or_else(|| ParseError::malformed(COMBINED, "no [time] field"))?;
        let client = body.split(' ').next().unwrap_or("");
        if let Some(close) = body[open + 2..].find(']') {
            event.timestamp = Some(Cow::Borrowed(&body[open + 2..open + 2 + close]));
        }
        push_client(&mut event, client);
        event.action = Some(Cow::Borrowed(status));
        push_peer(&mut event, hierarchy);
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_start_and_tail() {
        assert!(is_native(
            "1709294400.123    150 192.0.2.10 TCP_MISS/200 5120 GET http://x/ -"
        ));
        assert!(!is_native(
            "1709294400.123 150 192.0.2.10 TCP_MISS:HIER_DIRECT"
        ));
        assert!(!is_native("170929440.1 150 a TCP_MISS/200"));
        assert_eq!(
            combined_tail("x \"y\" TCP_MISS:HIER_DIRECT"),
            Some(("TCP_MISS", "HIER_DIRECT"))
        );
        assert_eq!(combined_tail("x y NONE:NONE"), None);
        assert_eq!(peer_role("FIRSTUP_PARENT"), Some(Role::Unknown));
        assert_eq!(peer_role("ORIGINAL_DST"), Some(Role::Destination));
    }
}
