//! Cisco Secure Web Appliance (WSA, IronPort) access log pushed over syslog
//! (log-formats-2.md §7; Cisco TN 225832 and the AsyncOS user guide's access-log table).
//!
//! * In: the squid-like default access-log line behind an `Info:` severity word, as Syslog
//!   Push writes it (`<PRI>… wsa01 accesslogs: Info: 1772550900.123 245 <client>
//!   TCP_MISS/200 5120 GET <url> <user> DIRECT/<server> <mime> <ACL tag> <verdicts> …`).
//!   The same line without the `Info:` word and the tag is squid's shape and read by `squid`.
//! * Detect: the body starts with `Info: ` (or the tag is `accesslogs`, also left in the body
//!   by a collector that forwarded only the MSG) and then
//!   `<epoch>.<ms> <elapsed> <client> <CODE>/<status> `.
//! * Roles: field 3 (`%a`, "Client IP address"; a downstream proxy when there is one) →
//!   source; field 9 `<hierarchy>/<server>` ("the upstream host contacted") → destination
//!   when it is an address and the hierarchy is `DIRECT`; a `*PARENT*` hierarchy names an
//!   upstream proxy → unknown; for `CONNECT`/`TCP_CONNECT` requests to `ip:port` with no
//!   address in field 9, that target → destination. Host names are skipped.
//! * Context: vendor Cisco, product Secure Web Appliance; action = the result code
//!   (`TCP_MISS/200`); rule = the ACL decision tag (field 11); timestamp = field 1.
//! * Malformed: fewer than 9 fields.

use std::borrow::Cow;

use crate::model::{Event, Role};
use crate::stages::extract::parse_ip_token;
use crate::stages::parse::formats::phrases::push;
use crate::stages::parse::{Line, LogFormat, ParseError};

/// Name in `observed.format`.
pub(crate) const NAME: &str = "cisco_wsa";

/// Format `cisco_wsa`.
pub(crate) struct CiscoWsa;

/// The access-log line after the `Info:` word, when the line is one.
fn access_line<'a>(line: &Line<'a>) -> Option<&'a str> {
    // A collector that forwarded only the MSG leaves the tag.
    let body = line.body.strip_prefix("accesslogs: ").unwrap_or(line.body);
    let rest = match body.strip_prefix("Info: ") {
        Some(rest) => rest,
        None if line.app() == Some("accesslogs") || body.len() < line.body.len() => body,
        None => return None,
    };
    let mut fields = rest.split_ascii_whitespace();
    let (Some(time), Some(elapsed), Some(_client), Some(code)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return None;
    };
    let (seconds, millis) = time.split_once('.')?;
    let shaped = (9..=10).contains(&seconds.len())
        && seconds.bytes().all(|b| b.is_ascii_digit())
        && millis.bytes().all(|b| b.is_ascii_digit())
        && elapsed.bytes().all(|b| b.is_ascii_digit())
        && code.split_once('/').is_some_and(|(word, status)| {
            !word.is_empty()
                && word.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
                && status.len() == 3
                && status.bytes().all(|b| b.is_ascii_digit())
        });
    shaped.then_some(rest)
}

impl LogFormat for CiscoWsa {
    fn name(&self) -> &'static str {
        NAME
    }

    fn detect(&self, line: &Line<'_>) -> bool {
        access_line(line).is_some()
    }

    fn parse<'a>(&self, line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        let text = access_line(line).unwrap_or(line.body);
        let mut fields = [""; 11];
        let mut count = 0;
        for (slot, token) in fields.iter_mut().zip(text.split_ascii_whitespace()) {
            *slot = token;
            count += 1;
        }
        if count < 9 {
            return Err(ParseError::malformed(
                NAME,
                format!("{count} fields, the server is field 9"),
            ));
        }
        let mut event = Event {
            format: NAME,
            vendor: Some(Cow::Borrowed("Cisco")),
            product: Some(Cow::Borrowed("Secure Web Appliance")),
            timestamp: Some(Cow::Borrowed(fields[0])),
            action: Some(Cow::Borrowed(fields[3])),
            rule: (count > 10 && fields[10] != "-").then(|| Cow::Borrowed(fields[10])),
            ..Event::default()
        };
        let is_address = |t: &str| parse_ip_token(t).is_some();
        push(
            &mut event,
            Role::Source,
            Some(fields[2]).filter(|c| is_address(c)),
        );
        let (hierarchy, server) = fields[8].split_once('/').unwrap_or((fields[8], ""));
        let mut destination = None;
        if is_address(server) {
            if hierarchy.contains("PARENT") {
                push(&mut event, Role::Unknown, Some(server));
            } else {
                destination = Some(server);
            }
        }
        if destination.is_none() && fields[5].ends_with("CONNECT") && is_address(fields[6]) {
            destination = Some(fields[6]);
        }
        push(&mut event, Role::Destination, destination);
        Ok(event)
    }
}
