//! F5 BIG-IP syslog: ASM / Advanced WAF and AFM remote-logging `key="value"` pairs, LTM request
//! logging, `<8-hex>:<severity>:` system messages (LTM, APM) and iRule `log` lines
//! (log-formats-2.md §2; F5 Telemetry Streaming docs, techdocs "About logging profiles",
//! K16197 for the message code).
//!
//! * Key-value (`f5_bigip`, product by module): `key="value"` pairs joined by `,`, behind a
//!   syslog header. Detected by that shape (`k="v",` first) and an F5 key: `ip_client=`
//!   (ASM), `bigip_mgmt_ip=` (AFM), `management_ip_address=` (ASM) or
//!   `event_source="request_logging"` (LTM request log). Roles: `ip_client`, `source_ip`,
//!   `client_ip`, CGNAT `cli` → source; `dest_ip`, `server_ip` (the pool member) →
//!   destination; `translated_source_ip`, `translated_dest_ip`, CGNAT `nat` → nat (empty or
//!   equal to the original = not translated); `x_forwarded_for_header_value` → forwarded
//!   (first hop; `N/A` when absent); `management_ip_address`, `bigip_mgmt_ip` → observer (the
//!   BIG-IP itself, never an endpoint). Action `request_status` or `action`; rule
//!   `policy_name` or `acl_rule_name`.
//! * Message code (`tmm[pid]: 01260013:4: …`, the tag already stripped): `8 hex digits` `:`
//!   severity `:`. Roles from the words: `A:p -> B:p` (LTM connection and handshake messages)
//!   → source A, destination B; APM `client IP A`, `clientip is A` → source, `at VIP B` →
//!   destination; a pool `member /Partition/A:p` → destination (a server). Messages without
//!   such words: addresses by the generic scanner's keywords (`from`, `to`), else unknown.
//!   Other addresses of a message with role words (an APM tunnel address, a second
//!   listener) are unknown.
//! * iRule `log` lines, `Rule /Common/name <EVENT>: free text`: the same words, plus
//!   `Client A` / `client A` → source, `server A` / `Server A` → destination.
//! * Context: vendor F5, product BIG-IP (module named when the keys say it); the syslog host
//!   is the observer unless a management address key names the BIG-IP.

use std::borrow::Cow;

use crate::model::{Event, Role};
use crate::stages::extract::parse_ip_token;
use crate::stages::parse::fields::{present, KvPairs, Needle};
use crate::stages::parse::formats::phrases::{
    add_others_as_unknown, address_after, arrow, first_hop, push, token_address,
};
use crate::stages::parse::{scan, Line, LogFormat, ParseError};

/// Name in `observed.format`.
pub(crate) const NAME: &str = "f5_bigip";

static IP_CLIENT: Needle = Needle::new(b"ip_client=\"");
static MGMT_IP: Needle = Needle::new(b"bigip_mgmt_ip=\"");
static MANAGEMENT_IP: Needle = Needle::new(b"management_ip_address=\"");
static REQUEST_LOG: Needle = Needle::new(b"event_source=\"request_logging\"");

const NO_ADDRESS: [&str; 6] = ["", "-", "N/A", "0.0.0.0", "::", "any"];

/// Format `f5_bigip`.
pub(crate) struct F5BigIp;

/// BIG-IP's local syslog writes the level before the tag (`bigip1 warning tmm1[123]: …`),
/// ASM its module name glued to the pairs (`ASM:unit_hostname="…"`), and a collector that
/// forwarded only the syslog MSG leaves the tag (`tmm[123]: 01260013:4: …`): the text after
/// them.
fn message(body: &str) -> &str {
    if let Some(pairs) = body
        .strip_prefix("ASM:")
        .or_else(|| body.strip_prefix("AFM:"))
    {
        return pairs;
    }
    let rest = match body.split_once(' ') {
        Some((level, rest)) if LEVELS.contains(&level) => rest,
        _ => body,
    };
    // `process[pid]: ` or `process: `.
    let name_len = rest
        .bytes()
        .take(32)
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
        .count();
    let mut end = name_len;
    if name_len > 0 && rest.as_bytes().get(end) == Some(&b'[') {
        end += rest[end..]
            .find(']')
            .filter(|&close| close <= 12)
            .map_or(0, |close| close + 1);
    }
    match rest.get(end..end + 2) {
        Some(": ") if name_len > 0 => &rest[end + 2..],
        _ if rest.len() < body.len() => rest,
        _ => body,
    }
}

const LEVELS: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// `01260013:4: ` at the start: BIG-IP's message code and severity.
fn has_message_code(body: &str) -> bool {
    let b = body.as_bytes();
    b.len() > 11
        && b[..8].iter().all(u8::is_ascii_hexdigit)
        && b[8] == b':'
        && b[9].is_ascii_digit()
        && b[10] == b':'
}

/// `Rule /Partition/name <EVENT>: …`: the text after the event, when the line is an iRule log.
fn irule_text(body: &str) -> Option<&str> {
    let rest = body.strip_prefix("Rule ")?;
    let open = rest.find(" <")?;
    let close = rest[open..].find(">: ")? + open;
    rest[..open]
        .bytes()
        .all(|b| b.is_ascii_graphic())
        .then(|| &rest[close + 3..])
}

/// `key="value",` at the start: the shape of BIG-IP's remote-logging pairs.
fn has_kv_shape(body: &str) -> bool {
    let b = body.as_bytes();
    let key_len = b
        .iter()
        .take(40)
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count();
    if key_len == 0 || b.get(key_len..key_len + 2) != Some(b"=\"") {
        return false;
    }
    let value = &b[key_len + 2..];
    memchr::memchr(b'"', value).is_some_and(|close| value.get(close + 1) == Some(&b','))
}

fn kv_module(body: &[u8]) -> Option<&'static str> {
    if IP_CLIENT.find(body).is_some() || MANAGEMENT_IP.find(body).is_some() {
        Some("BIG-IP ASM")
    } else if MGMT_IP.find(body).is_some() {
        Some("BIG-IP AFM")
    } else if REQUEST_LOG.find(body).is_some() {
        Some("BIG-IP LTM")
    } else {
        None
    }
}

fn event<'a>(product: &'static str) -> Event<'a> {
    Event {
        format: NAME,
        vendor: Some(Cow::Borrowed("F5")),
        product: Some(Cow::Borrowed(product)),
        ..Event::default()
    }
}

/// Roles from the words of a message or an iRule line; the scanner when none are there.
fn text_roles<'a>(text: &'a str, event: &mut Event<'a>, irule: bool) {
    if let Some((from, to)) = arrow(text) {
        push(event, Role::Source, Some(from));
        push(event, Role::Destination, Some(to));
        add_others_as_unknown(text, event);
        return;
    }
    let mut sources: Vec<&str> = vec![
        "client IP ",
        "clientip is ",
        "Client IP: ",
        "clientip' set to ",
    ];
    let mut destinations: Vec<&str> = vec![" at VIP ", "member /"];
    if irule {
        sources.extend(["Client ", "client "]);
        destinations.extend(["Server ", "server "]);
    }
    let source = sources.iter().find_map(|m| address_after(text, m));
    let destination = destinations.iter().find_map(|m| {
        if *m == "member /" {
            // `member /Common/10.0.2.12:80`: the address is the path's last part.
            let at = text.find(m)? + m.len();
            let token = text[at..].split(' ').next()?;
            token_address(token.rsplit('/').next()?)
        } else {
            address_after(text, m)
        }
    });
    push(event, Role::Source, source);
    push(event, Role::Destination, destination);
    if source.is_none() && destination.is_none() {
        scan::scan_addresses(text, event);
    } else {
        add_others_as_unknown(text, event);
    }
}

impl LogFormat for F5BigIp {
    fn name(&self) -> &'static str {
        NAME
    }

    fn detect(&self, line: &Line<'_>) -> bool {
        let body = message(line.body);
        has_message_code(body)
            || irule_text(body).is_some()
            || (has_kv_shape(body) && kv_module(body.as_bytes()).is_some())
    }

    fn parse<'a>(&self, line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        let body = message(line.body);
        if has_message_code(body) {
            let mut event = event("BIG-IP");
            text_roles(body[11..].trim_start(), &mut event, false);
            return Ok(event);
        }
        if let Some(text) = irule_text(body) {
            let mut event = event("BIG-IP LTM");
            text_roles(text, &mut event, true);
            return Ok(event);
        }
        let product = kv_module(body.as_bytes()).unwrap_or("BIG-IP");
        let mut event = event(product);
        let (mut source, mut destination) = (None, None);
        let mut nat = Vec::new();
        let (mut action, mut rule) = (None, None);
        for (key, value) in KvPairs::separated_by(body, b',') {
            let value = present(value, &NO_ADDRESS);
            match key {
                "ip_client" | "source_ip" | "client_ip" | "cli" => {
                    source = source.or(value.and_then(token_address));
                }
                "dest_ip" | "server_ip" => {
                    destination = destination.or(value.and_then(token_address));
                }
                "translated_source_ip" | "translated_dest_ip" | "nat" => {
                    if let Some(ip) = value.and_then(token_address) {
                        nat.push(ip);
                    }
                }
                "x_forwarded_for_header_value" => {
                    push(&mut event, Role::Forwarded, value.and_then(first_hop));
                }
                "management_ip_address" | "bigip_mgmt_ip" if event.observer.is_none() => {
                    event.observer = value.map(Cow::Borrowed);
                }
                "request_status" | "action" => action = action.or(value),
                "policy_name" | "acl_rule_name" => rule = rule.or(value),
                _ => {}
            }
        }
        if source.is_none() && destination.is_none() {
            return Err(ParseError::malformed(
                NAME,
                "no client (ip_client, source_ip, client_ip) or destination (dest_ip, server_ip)",
            ));
        }
        push(&mut event, Role::Source, source);
        push(&mut event, Role::Destination, destination);
        for ip in nat {
            let same = |original: Option<&str>| {
                original.is_some_and(|o| parse_ip_token(o) == parse_ip_token(ip))
            };
            if !same(source) && !same(destination) {
                push(&mut event, Role::Nat, Some(ip));
            }
        }
        event.action = action.map(Cow::Borrowed);
        event.rule = rule.map(Cow::Borrowed);
        Ok(event)
    }
}
