//! Juniper SRX security logs: `RT_FLOW`, `APPTRACK_SESSION`, `RT_IDP`, `RT_UTM`, `RT_SCREEN`
//! (reference §2.7).
//!
//! * Reads three shapes: RFC 5424 structured data `[junos@2636.… source-address="…" …]`
//!   (`line.syslog.structured_data`); the same pairs flattened into the message text
//!   (`source-address="…"`); and the text format
//!   `RT_FLOW_SESSION_CREATE: session created SRC/SPORT->DST/DPORT 0x0 service
//!   NATSRC/NATSPORT->NATDST/NATDPORT …` (CLOSE: `session closed <reason>: …`, DENY: one tuple;
//!   APPTRACK and RT_IDP `<src/p->dst/p>` the same way, RT_UTM `ip(port)->ip(port)`), and
//!   RT_SCREEN `source: IP, destination: IP`.
//! * Detects: the syslog tag/APP-NAME `RT_FLOW`, `RT_IDP`, `RT_UTM`, `RT_SCREEN`, `RT_IDS`; an
//!   RFC 5424 MSGID or message starting with `RT_`/`APPTRACK_SESSION`; or structured data with
//!   SD-ID `junos@2636`. A `junos@2636` elsewhere in free text is not enough (it is also an
//!   IP-regex trap the scanner handles). Once detected, the pairs are read from the structured
//!   data whatever its SD-ID (`junos@2636.<platform>` varies by model, and relays rewrite it to
//!   another `name@PEN`); when the structured data holds no address, the message text is read.
//! * Logins (reference part 2 §15): the events `UI_LOGIN_EVENT`, `UI_LOGOUT_EVENT`,
//!   `UI_AUTH_EVENT`, `SSHD_LOGIN_FAILED`, `SSHD_LOGIN_ATTEMPTS_THRESHOLD`, `LOGIN_FAILED`
//!   (as MSGID or leading word). `ssh-connection 'A p B q'` (text) or `ssh-connection="A p B q"`
//!   (structured data) mirrors OpenSSH's `SSH_CONNECTION`: A the SSH client (source), B the
//!   device's address it connected to (destination). `from host 'A'` / `from A` = the client.
//!   Plain OpenSSH text under an `sshd`/`rshd` tag (`Accepted password for u from A port p`) is
//!   claimed only with Junos structured data; without it the line could be any host's sshd.
//! * Roles: `source-address` / first tuple left → source; `destination-address` / first tuple
//!   right → destination; `nat-source-address`, `nat-destination-address` / the second tuple →
//!   nat, but only when they differ from the original (SRX writes the original when there is no
//!   NAT) and are not a placeholder (`N/A`, `0.0.0.0`, `::`).
//! * vendor `Juniper`, product `SRX`, action = the event name (`RT_FLOW_SESSION_DENY`), rule =
//!   `policy-name` (else `attack-name`); in the text format the policy is the word after the
//!   protocol number (`6` / `6(0)`) that follows the last tuple — a heuristic over the fixed
//!   field order. The syslog HOSTNAME is the observer.
//! * Threat: an RT_IDP event's `attack-name` (text format: `name=` after `attack:`).
//! * Malformed: an `RT_FLOW_SESSION_CREATE|CLOSE|DENY` event without a source address; a forced line with neither
//!   an event name nor addresses.

use std::borrow::Cow;

use crate::model::{Event, Role};
use crate::stages::extract::parse_ip_token;
use crate::stages::parse::fields::Needle;
use crate::stages::parse::fields::{present, KvPairs};
use crate::stages::parse::{Line, LogFormat, ParseError};

static JUNOS_2636: Needle = Needle::new(b"junos@2636");
static SOURCE_ADDRESS: Needle = Needle::new(b"source-address=");

/// Name in `observed.format`.
pub(crate) const NAME: &str = "juniper_srx";

/// Values meaning "no address".
const PLACEHOLDERS: [&str; 5] = ["N/A", "0.0.0.0", "::", "-", "None"];

/// Format `juniper_srx`.
pub(crate) struct JuniperSrx;

/// The addresses found, before NAT is compared with the originals.
#[derive(Default)]
struct Found<'a> {
    src: Option<&'a str>,
    dst: Option<&'a str>,
    nat_src: Option<&'a str>,
    nat_dst: Option<&'a str>,
    /// IDP `attack-name` (or the text format's `name=`).
    attack: Option<&'a str>,
}

fn junos_sd<'a>(line: &Line<'a>) -> Option<&'a str> {
    line.syslog
        .and_then(|h| h.structured_data)
        .filter(|sd| JUNOS_2636.find(sd.as_bytes()).is_some())
}

/// The structured data holding pairs, whatever its SD-ID.
fn any_sd<'a>(line: &Line<'a>) -> Option<&'a str> {
    line.syslog
        .and_then(|h| h.structured_data)
        .filter(|sd| sd.contains('='))
}

/// Junos login and authentication events.
fn is_login_event(name: &str) -> bool {
    matches!(
        name,
        "UI_LOGIN_EVENT"
            | "UI_LOGOUT_EVENT"
            | "UI_AUTH_EVENT"
            | "SSHD_LOGIN_FAILED"
            | "SSHD_LOGIN_ATTEMPTS_THRESHOLD"
            | "LOGIN_FAILED"
    )
}

/// `'A p B q'` (OpenSSH `SSH_CONNECTION`): client address, client port, server address, port.
fn ssh_connection<'a>(value: &'a str, found: &mut Found<'a>) {
    let mut words = value.split_ascii_whitespace();
    let client = words.next();
    let server = words.nth(1);
    if client.is_some_and(|c| parse_ip_token(c).is_some()) {
        found.src = client;
        found.dst = server.filter(|s| parse_ip_token(s).is_some());
    }
}

/// Login text: `ssh-connection 'A p B q'`, else `from host 'A'` / `from A`.
fn read_login<'a>(message: &'a str, found: &mut Found<'a>) {
    if let Some(at) = message.find("ssh-connection '") {
        let rest = &message[at + "ssh-connection '".len()..];
        ssh_connection(&rest[..rest.find('\'').unwrap_or(rest.len())], found);
        if found.src.is_some() {
            return;
        }
    }
    for (at, _) in message.match_indices(" from ") {
        let rest = message[at + " from ".len()..].trim_start_matches("host ");
        let rest = rest.trim_start_matches(['\'', '"']);
        let end = rest.find([' ', '\'', '"', ',']).unwrap_or(rest.len());
        let word = &rest[..end];
        if parse_ip_token(word).is_some() {
            found.src = Some(word);
            return;
        }
    }
}

fn is_event_prefix(text: &str) -> bool {
    text.starts_with("RT_") || text.starts_with("APPTRACK_SESSION")
}

/// The leading upper-case event word of `text` and the text after it.
fn leading_event(text: &str) -> Option<(&str, &str)> {
    let len = text
        .bytes()
        .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
        .count();
    if len < 3 || !matches!(text.as_bytes().get(len), None | Some(b':' | b' ' | b'[')) {
        return None;
    }
    let rest = text[len..].strip_prefix(':').unwrap_or(&text[len..]);
    Some((&text[..len], rest.trim_start_matches(' ')))
}

fn same_ip(a: &str, b: &str) -> bool {
    a == b || (parse_ip_token(a).is_some() && parse_ip_token(a) == parse_ip_token(b))
}

/// Reads the structured-data (or flattened) pairs.
fn read_pairs<'a>(text: &'a str, found: &mut Found<'a>, event: &mut Event<'a>) {
    for (key, value) in KvPairs::new(text) {
        match key {
            "source-address" => found.src = Some(value),
            "destination-address" => found.dst = Some(value),
            "nat-source-address" => found.nat_src = Some(value),
            "nat-destination-address" => found.nat_dst = Some(value),
            "policy-name" if present(value, &PLACEHOLDERS).is_some() => {
                event.rule = Some(Cow::Borrowed(value));
            }
            "attack-name" => found.attack = present(value, &PLACEHOLDERS),
            "ssh-connection" => ssh_connection(value, found),
            // d-siem: RT_FLOW ports and IP protocol number.
            "source-port" => event.src_port = present(value, &PLACEHOLDERS).map(Cow::Borrowed),
            "destination-port" => {
                event.dst_port = present(value, &PLACEHOLDERS).map(Cow::Borrowed);
            }
            "protocol-id" => event.protocol = present(value, &PLACEHOLDERS).map(Cow::Borrowed),
            _ => {}
        }
    }
    if event.rule.is_none() {
        event.rule = found.attack.map(Cow::Borrowed);
    }
}

/// One side of a tuple: `ip/port`, `ip:port` or `ip(port)`.
fn tuple_side(side: &str) -> &str {
    match side.find('(') {
        Some(open) if side.ends_with(')') => &side[..open],
        _ => side,
    }
}

/// The `A->B` token at or after `from`; returns (A, B, end of the token).
fn tuple(text: &str, from: usize) -> Option<(&str, &str, usize)> {
    let arrow = from + text.get(from..)?.find("->")?;
    let bytes = text.as_bytes();
    let start = bytes[..arrow]
        .iter()
        .rposition(|b| matches!(b, b' ' | b'<' | b','))
        .map_or(0, |i| i + 1);
    let end = arrow
        + 2
        + bytes[arrow + 2..]
            .iter()
            .position(|b| matches!(b, b' ' | b'>' | b','))
            .unwrap_or(bytes.len() - arrow - 2);
    Some((
        tuple_side(&text[start..arrow]),
        tuple_side(&text[arrow + 2..end]),
        end,
    ))
}

/// The policy: the word after the protocol number (`6`, `6(0)`) following `from`.
fn policy_after(text: &str) -> Option<&str> {
    let mut words = text.split(' ').filter(|w| !w.is_empty()).take(14);
    while let Some(word) = words.next() {
        let number = word.split('(').next().unwrap_or(word);
        if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) {
            return words.next().filter(|w| present(w, &PLACEHOLDERS).is_some());
        }
    }
    None
}

/// The text format's attack name: `… attack: repeat=0, action=DROP, threat-severity=HIGH,
/// name=HTTP:INVALID:MSNG-HTTP-VER, NAT …`.
fn text_attack_name(message: &str) -> Option<&str> {
    let attack = &message[message.find("attack: ")?..];
    let rest = &attack[attack.find(" name=")? + " name=".len()..];
    present(
        rest[..rest.find(',').unwrap_or(rest.len())].trim(),
        &PLACEHOLDERS,
    )
}

/// The text format: session tuples, or RT_SCREEN `source: IP, destination: IP`.
fn read_text<'a>(message: &'a str, found: &mut Found<'a>, event: &mut Event<'a>) {
    if let Some((src, dst, end)) = tuple(message, 0) {
        if parse_ip_token(src).is_some() {
            found.src = Some(src);
            found.dst = Some(dst);
            let mut last = end;
            if let Some((nat_src, nat_dst, end)) = tuple(message, end) {
                if parse_ip_token(nat_src).is_some() {
                    found.nat_src = Some(nat_src);
                    found.nat_dst = Some(nat_dst);
                    last = end;
                }
            }
            if event.rule.is_none() {
                event.rule = policy_after(&message[last..]).map(Cow::Borrowed);
            }
            return;
        }
    }
    let field = |name: &str| {
        let at = message.find(name)? + name.len();
        let rest = &message[at..];
        Some(&rest[..rest.find([',', ' ']).unwrap_or(rest.len())])
    };
    found.src = field("source: ");
    found.dst = field("destination: ");
}

impl LogFormat for JuniperSrx {
    fn name(&self) -> &'static str {
        NAME
    }

    fn detect(&self, line: &Line<'_>) -> bool {
        let header = line.syslog.unwrap_or_default();
        matches!(
            header.app,
            Some("RT_FLOW" | "RT_IDP" | "RT_UTM" | "RT_SCREEN" | "RT_IDS")
        ) || header
            .msgid
            .is_some_and(|m| is_event_prefix(m) || is_login_event(m))
            || is_event_prefix(line.body)
            || line.body.starts_with("[junos@2636")
            || junos_sd(line).is_some()
            || leading_event(line.body).is_some_and(|(name, _)| is_login_event(name))
    }

    fn parse<'a>(&self, line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        let mut event = Event {
            format: NAME,
            vendor: Some(Cow::Borrowed("Juniper")),
            product: Some(Cow::Borrowed("SRX")),
            ..Event::default()
        };
        let msgid = line.syslog.and_then(|h| h.msgid);
        let (name, message) = match leading_event(line.body) {
            Some((name, rest)) => (Some(name), rest),
            None => (None, line.body),
        };
        let name = msgid
            .filter(|m| is_event_prefix(m) || is_login_event(m))
            .or(name);
        event.action = name.map(Cow::Borrowed);
        let mut found = Found::default();
        if let Some(sd) = any_sd(line) {
            read_pairs(sd, &mut found, &mut event);
        }
        let app = line.syslog.and_then(|h| h.app);
        if found.src.is_none() && found.dst.is_none() {
            if SOURCE_ADDRESS.find(message.as_bytes()).is_some() {
                read_pairs(message, &mut found, &mut event);
            } else if name.is_some_and(is_login_event)
                || matches!(app, Some("sshd" | "rshd" | "mgd" | "login"))
            {
                read_login(message, &mut found);
            } else {
                read_text(message, &mut found, &mut event);
                found.attack = text_attack_name(message);
            }
        }
        let idp = line.syslog.and_then(|h| h.app) == Some("RT_IDP")
            || name.is_some_and(|n| n.starts_with("RT_IDP") || n.starts_with("IDP_"));
        if idp {
            event.threat = found.attack.map(Cow::Borrowed);
        }
        let src = found.src.and_then(|v| present(v, &PLACEHOLDERS));
        let dst = found.dst.and_then(|v| present(v, &PLACEHOLDERS));
        if src.is_none() {
            if name.is_some_and(|n| {
                matches!(
                    n,
                    "RT_FLOW_SESSION_CREATE" | "RT_FLOW_SESSION_CLOSE" | "RT_FLOW_SESSION_DENY"
                )
            }) {
                return Err(ParseError::malformed(
                    NAME,
                    "session event without a source address (source-address or SRC/PORT->DST/PORT)",
                ));
            }
            if name.is_none() && dst.is_none() {
                return Err(ParseError::malformed(
                    NAME,
                    "no Junos event name, structured data or session tuple",
                ));
            }
        }
        let nat = |nat: Option<&'a str>, original: Option<&'a str>| {
            nat.and_then(|v| present(v, &PLACEHOLDERS))
                .filter(|v| !original.is_some_and(|o| same_ip(o, v)))
        };
        let nat_src = nat(found.nat_src, src);
        let nat_dst = nat(found.nat_dst, dst);
        for (role, value) in [
            (Role::Source, src),
            (Role::Destination, dst),
            (Role::Nat, nat_src),
            (Role::Nat, nat_dst),
        ] {
            if let Some(value) = value {
                event.addresses.push((role, Cow::Borrowed(value)));
            }
        }
        Ok(event)
    }
}
