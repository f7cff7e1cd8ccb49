//! Web and reverse-proxy access logs in the NCSA Common/Combined Log Format (`clf`), as nginx,
//! Apache httpd, Varnish (`varnishncsa`), Kong and Traefik write them, bare or behind a syslog
//! header.
//!
//! * Layout (Apache mod_log_config `common`/`combined`, nginx `log_format combined`):
//!   `%h %l %u [%t] "%r" %>s %b` then, in combined, `"%{Referer}i" "%{User-agent}i"`. Apache
//!   `vhost_combined` puts `%v:%p` first. Detected by the `[dd/Mon/yyyy:hh:mm:ss zone] "`
//!   bracket after three (or four, with the vhost) space-separated tokens.
//! * Roles: `%h` / `$remote_addr` (the third token before the date) is the client of the HTTP
//!   connection → source. It is a host name with `HostnameLookups On` (no address then), and
//!   behind another proxy it is that proxy (the line does not say). A request target that is an
//!   IP literal (`CONNECT 198.51.100.20:443`, `GET http://198.51.100.20/`) is the server the
//!   client asked for → destination. nginx's common `main` format appends
//!   `"$http_x_forwarded_for"` after the user agent: a list of addresses there → forwarded (its
//!   first hop, the original client). Traefik's CLF appends `<requests> "<router>"
//!   "<server URL>" <duration>ms`: an IP-literal server URL is the backend → destination.
//!   The `%v` virtual host is the server's own name: not read.
//! * Context: product = the syslog tag when there is one (`nginx`, `httpd`, `varnishncsa`);
//!   action = the HTTP status as written; timestamp = the bracketed time.
//! * Squid's `combined` (trailing `TCP_…:HIER_…`) is its own format, tried before this one.

use std::borrow::Cow;

use crate::model::{Event, Role};
use crate::stages::extract::parse_ip_token;
use crate::stages::parse::fields::{find_closing, spaced_fields};
use crate::stages::parse::{Line, LogFormat, ParseError};

/// Name in `observed.format`.
pub(crate) const NAME: &str = "clf";

/// Format `clf`.
pub(crate) struct Clf;

/// `dd/Mon/yyyy:hh:mm:ss` at the start of `text`.
pub(crate) fn is_clf_date(text: &[u8]) -> bool {
    let digits = |range: std::ops::Range<usize>| {
        text.get(range)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    text.len() >= 20
        && digits(0..2)
        && text[2] == b'/'
        && text[3..6].iter().all(u8::is_ascii_alphabetic)
        && text[6] == b'/'
        && digits(7..11)
        && text[11] == b':'
        && digits(12..14)
        && text[14] == b':'
        && digits(15..17)
        && text[17] == b':'
        && digits(18..20)
}

/// The parts of a CLF line: client, bracketed time, the rest after `] `.
struct Parts<'a> {
    client: &'a str,
    time: &'a str,
    rest: &'a str,
}

fn split(body: &str) -> Option<Parts<'_>> {
    // The date bracket follows `%h %l %u` (or `%v:%p %h %l %u`): at most a few hundred bytes in.
    let head = &body.as_bytes()[..body.len().min(512)];
    let open = memchr::memchr(b'[', head)?;
    if open == 0 || head[open - 1] != b' ' {
        return None;
    }
    let after = &body[open + 1..];
    if !is_clf_date(after.as_bytes()) {
        return None;
    }
    let close = after.find(']')?;
    let rest = after[close + 1..].strip_prefix(' ')?;
    if !rest.starts_with('"') {
        return None;
    }
    let tokens: Vec<&str> = body[..open - 1].split(' ').collect();
    if !(3..=4).contains(&tokens.len()) || tokens.iter().any(|t| t.is_empty()) {
        return None;
    }
    Some(Parts {
        client: tokens[tokens.len() - 3],
        time: &after[..close],
        rest,
    })
}

/// The host of a request target or URL when it is an IP literal.
pub(crate) fn target_address(target: &str) -> Option<&str> {
    let authority = match target.find("://") {
        Some(i) => &target[i + 3..],
        None => target,
    };
    let authority = authority.split(['/', '?']).next().unwrap_or(authority);
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    parse_ip_token(authority).is_some().then_some(authority)
}

impl LogFormat for Clf {
    fn name(&self) -> &'static str {
        NAME
    }

    fn detect(&self, line: &Line<'_>) -> bool {
        split(line.body).is_some()
    }

    fn parse<'a>(&self, line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        let parts = split(line.body).ok_or_else(|| {
            ParseError::malformed(
                NAME,
                "no `host ident user [dd/Mon/yyyy:hh:mm:ss zone] \"…\"`",
            )
        })?;
        let mut event = Event {
            format: NAME,
            product: line.app().map(Cow::Borrowed),
            timestamp: Some(Cow::Borrowed(parts.time)),
            ..Event::default()
        };
        if parse_ip_token(parts.client).is_some() {
            event
                .addresses
                .push((Role::Source, Cow::Borrowed(parts.client)));
        }
        // `"%r"`: Apache escapes quotes inside it with a backslash.
        let quoted = &parts.rest[1..];
        let end = find_closing(quoted, b'"').unwrap_or(quoted.len());
        let request = &quoted[..end];
        if let Some(target) = request.split(' ').nth(1) {
            if let Some(address) = target_address(target) {
                event
                    .addresses
                    .push((Role::Destination, Cow::Borrowed(address)));
            }
        }
        let tail = quoted.get(end + 1..).unwrap_or("");
        let mut fields = spaced_fields(tail);
        if let Some(status) = fields.next() {
            event.action = Some(Cow::Borrowed(status));
        }
        // bytes, referer, user agent; then the extensions.
        let extra: Vec<&str> = fields.skip(3).take(4).collect();
        match extra.as_slice() {
            // Traefik: `<requests> "<router>" "<server URL>" <duration>ms`.
            [count, _router, url, ..] if count.bytes().all(|b| b.is_ascii_digit()) => {
                if let Some(address) = target_address(url) {
                    event
                        .addresses
                        .push((Role::Destination, Cow::Borrowed(address)));
                }
            }
            // nginx `main`: `"$http_x_forwarded_for"`, the first hop the original client.
            [xff, ..] => {
                let first = xff.split(',').next().unwrap_or(xff).trim();
                if parse_ip_token(first).is_some() {
                    event
                        .addresses
                        .push((Role::Forwarded, Cow::Borrowed(first)));
                }
            }
            [] => {}
        }
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_bracket_and_tokens() {
        assert!(is_clf_date(b"10/Oct/2000:13:55:36 -0700]"));
        assert!(!is_clf_date(b"10/Oct/2000 13:55:36"));
        let parts = split(r#"192.0.2.1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 1"#)
            .expect("common");
        assert_eq!(parts.client, "192.0.2.1");
        let vhost = split(
            r#"www.example.com:443 192.0.2.1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 1"#,
        )
        .expect("vhost_combined");
        assert_eq!(vhost.client, "192.0.2.1");
        // Two tokens before the bracket, or no quote after it: not CLF.
        assert!(split(r#"192.0.2.1 - [10/Oct/2000:13:55:36 -0700] "GET""#).is_none());
        assert!(split("192.0.2.1 - - [10/Oct/2000:13:55:36 -0700] GET").is_none());
    }

    #[test]
    fn request_targets() {
        assert_eq!(
            target_address("198.51.100.20:443"),
            Some("198.51.100.20:443")
        );
        assert_eq!(
            target_address("http://[2001:db8::20]:8080/x?y"),
            Some("[2001:db8::20]:8080")
        );
        assert_eq!(target_address("/index.html"), None);
        assert_eq!(target_address("http://www.example.com/"), None);
    }
}
