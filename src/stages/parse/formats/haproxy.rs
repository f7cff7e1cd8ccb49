//! HAProxy's built-in log formats (`haproxy`), configuration manual §8.2 (reference
//! `log-formats-2.md` §1), with any syslog header: rfc3164, the default `local` header without a
//! hostname, RFC 5424, or none at all (`haproxy[pid]: …` or the bare message a collector kept).
//!
//! * `option tcplog`: `%ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq`.
//! * `option httplog` / `httpslog`: `%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS
//!   %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r` (`{…}` captures only when configured).
//! * Without an option (deprecated): `Connect from <ip>:<port> to <ip>:<port> (<frontend>/<mode>)`.
//! * Detected by `client:port [dd/Mon/yyyy:hh:mm:ss.mmm] frontend backend/server`, or by the
//!   `Connect from … to … (…/…)` sentence.
//! * Roles: `%ci` (the accepted connection's peer; with `accept-proxy` the PROXY-protocol
//!   client) → source. IPv6 is written without brackets: the port follows the last `:`. The
//!   first `{…}` block holds the captured request headers, `|`-separated: a value that is an
//!   address (list) is the captured `X-Forwarded-For` → forwarded (first hop). The deprecated
//!   sentence's `to` address is the frontend address the client connected to → destination.
//!   HAProxy's own backend-side address (`%bi`) and the server (`%si`) are not in the default
//!   formats; server names after `backend/` are names, not addresses.
//! * The `clf` variants (`option httplog clf`, `option tcplog clf`) start with the client like
//!   any Common Log Format line and are read by the `clf` format (client → source).
//! * Context: vendor/product `HAProxy`; action = the HTTP status (http) or the termination
//!   state (tcp); rule = `backend/server`; timestamp = the accept date.

use std::borrow::Cow;

use crate::model::{Event, Role};
use crate::stages::extract::parse_ip_token;
use crate::stages::parse::formats::clf::is_clf_date;
use crate::stages::parse::{Line, LogFormat, ParseError};

/// Name in `observed.format`.
pub(crate) const NAME: &str = "haproxy";

/// Format `haproxy`.
pub(crate) struct Haproxy;

/// The message without a `haproxy[pid]: ` tag a header-less line may still carry.
fn without_tag(body: &str) -> &str {
    // The name runs to the `[`: stop at its first other byte instead of searching the line.
    let open = body
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
        .count();
    if open == 0 || body.as_bytes().get(open) != Some(&b'[') {
        return body;
    }
    let Some(close) = body[open..].find("]: ") else {
        return body;
    };
    let pid = &body[open + 1..open + close];
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return body;
    }
    &body[open + close + 3..]
}

/// `ip:port`, IPv6 unbracketed: the address before the last colon.
fn client_address(token: &str) -> Option<&str> {
    let (ip, port) = token.rsplit_once(':')?;
    (!port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()))
        .then_some(ip)
        .filter(|ip| parse_ip_token(ip).is_some())
}

/// The log line's fields: client, date, and the rest after the frontend.
struct Standard<'a> {
    client: &'a str,
    date: &'a str,
    backend_server: &'a str,
    rest: &'a str,
}

fn standard(message: &str) -> Option<Standard<'_>> {
    let (client_token, rest) = message.split_once(' ')?;
    let client = client_address(client_token)?;
    let rest = rest.strip_prefix('[')?;
    let (date, rest) = rest.split_once("] ")?;
    // `[03/Mar/2026:14:02:11.207]`: the CLF date with milliseconds.
    if !is_clf_date(date.as_bytes()) || date.as_bytes().get(20) != Some(&b'.') {
        return None;
    }
    let (_frontend, rest) = rest.split_once(' ')?;
    let (backend_server, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    backend_server.contains('/').then_some(Standard {
        client,
        date,
        backend_server,
        rest,
    })
}

/// `Connect from A:p to B:p (frontend/mode)`: (source, destination).
fn connect_sentence(message: &str) -> Option<(&str, &str)> {
    let rest = message.strip_prefix("Connect from ")?;
    let (from, rest) = rest.split_once(" to ")?;
    let (to, rest) = rest.split_once(" (")?;
    if !(rest.ends_with(')') && rest.contains('/')) {
        return None;
    }
    Some((client_address(from)?, client_address(to)?))
}

fn haproxy_event<'a>() -> Event<'a> {
    Event {
        format: NAME,
        vendor: Some(Cow::Borrowed("HAProxy")),
        product: Some(Cow::Borrowed("HAProxy")),
        ..Event::default()
    }
}

impl LogFormat for Haproxy {
    fn name(&self) -> &'static str {
        NAME
    }

    fn detect(&self, line: &Line<'_>) -> bool {
        // Most lines that reach this test start with a digit (W3C, Zeek, VPC flow): the tag
        // search is only for lines that start with a name.
        let message = match line.body.as_bytes().first() {
            Some(b) if b.is_ascii_digit() => line.body,
            _ => without_tag(line.body),
        };
        // Cheap first test: a digit or hex digit starts the client, or the sentence.
        match message.as_bytes().first() {
            Some(b'C') => connect_sentence(message).is_some(),
            Some(b) if b.is_ascii_hexdigit() => standard(message).is_some(),
            _ => false,
        }
    }

    fn parse<'a>(&self, line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        let message = without_tag(line.body);
        let mut event = haproxy_event();
        if let Some((source, destination)) = connect_sentence(message) {
            event.addresses.push((Role::Source, Cow::Borrowed(source)));
            event
                .addresses
                .push((Role::Destination, Cow::Borrowed(destination)));
            return Ok(event);
        }
        let fields = standard(message).ok_or_else(|| {
            ParseError::malformed(
                NAME,
                "no `client:port [dd/Mon/yyyy:hh:mm:ss.mmm] frontend backend/server`",
            )
        })?;
        event.timestamp = Some(Cow::Borrowed(fields.date));
        event.rule = Some(Cow::Borrowed(fields.backend_server));
        event
            .addresses
            .push((Role::Source, Cow::Borrowed(fields.client)));
        let mut rest = fields.rest.split(' ');
        let _timers = rest.next();
        let next = rest.next().unwrap_or("");
        if next.len() == 3 && next.bytes().all(|b| b.is_ascii_digit()) {
            // httplog: status, bytes, cookies, termination state.
            event.action = Some(Cow::Borrowed(next));
        } else if let Some(state) = rest.next() {
            // tcplog: bytes, then the termination state.
            event.action = Some(Cow::Borrowed(state));
        }
        // The first `{…}` block: captured request headers.
        if let Some(open) = fields.rest.find('{') {
            let block = &fields.rest[open + 1..];
            let block = &block[..block.find('}').unwrap_or(block.len())];
            for value in block.split('|') {
                let first = value.split(',').next().unwrap_or(value).trim();
                if parse_ip_token(first).is_some() {
                    event
                        .addresses
                        .push((Role::Forwarded, Cow::Borrowed(first)));
                    break;
                }
            }
        }
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_clients_and_sentences() {
        assert_eq!(
            without_tag("haproxy[2101]: 192.0.2.1:1 [x"),
            "192.0.2.1:1 [x"
        );
        assert_eq!(without_tag("[x] y"), "[x] y");
        assert_eq!(
            client_address("2001:db8:10::5:40222"),
            Some("2001:db8:10::5")
        );
        assert_eq!(client_address("192.0.2.1:80"), Some("192.0.2.1"));
        assert_eq!(client_address("unix:1"), None);
        assert_eq!(
            connect_sentence("Connect from 192.0.2.1:5000 to 203.0.113.9:80 (www/HTTP)"),
            Some(("192.0.2.1", "203.0.113.9"))
        );
        assert!(standard("192.0.2.1:5000 [03/Mar/2026:14:02:11] fe be/s").is_none());
        assert!(standard("192.0.2.1:5000 [03/Mar/2026:14:02:11.207] fe be").is_none());
    }
}
