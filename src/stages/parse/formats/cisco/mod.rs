//! Cisco ASA / FTD / FWSM / PIX syslog (reference §2.3).
//!
//! * Reads: a message `%ASA-<sev>-<id>: text` (also `%FTD-`, `%FWSM-`, `%PIX-`, `%NGIPS-`,
//!   `%Threat Defense-` (product FTD), and the class form `%FTD-session-5-106100:`) anywhere in
//!   the first 128 bytes of the header-stripped body; the same prefix without its `%`
//!   (`ASA-6-302013:`) at the start of the body or after a space or colon. Collectors that
//!   forward only the message text (reference part 2 §0) leave no prefix at all: then the id is
//!   inferred from wording only Cisco writes (see [`bare_message`]) and the product is unknown.
//!   vendor `Cisco`, product from the prefix; the syslog HOSTNAME (set by the registry) is the
//!   observer.
//! * Address notation: `ifname:ip/port`, `ip/port`, `(ip)`; interface names may contain spaces, so
//!   every endpoint is anchored on a keyword (`for`, `to`, `from`, `src`, `dst`, `faddr`, `gaddr`,
//!   `laddr`). A mapped address in parentheses right after the real one is role `nat` when it
//!   differs from the real address; user/FQDN annotations `(LOCAL\alice)` are ignored. A hostname
//!   in place of the address (`dmz:OCSP_Server/5678`) and the unspecified address `0.0.0.0`/`::`
//!   (106016 spoof from `(0.0.0.0)`) are not pushed: they are no endpoint to enrich.
//! * Roles by message id: from/to and src/dst messages (106001/6/7/10/14/15/16/21/23, 313001,
//!   419002, 710002/3/5, 304002 `SRC`/`DEST`) give source/destination; 106100
//!   `ifc/ip(port) -> ifc/ip(port)` left = source; 305011/305012 real = source, mapped = nat;
//!   304001 `IP Accessed URL IP:url`; 733100 `[ IP]` = source (LOW confidence: the object is the
//!   host the rate applies to, usually the sender); 733101 attacking = source, targeted =
//!   destination; 113004/113005 server = destination (and 113005 `user IP` = source);
//!   716039/722051 `IP <ip>` = source (the assigned pool address is not pushed); FTD 430001–430005
//!   `Key: value, …` with `SrcIP`/`DstIP`, `NAT_InitiatorAddress`/`NAT_InitiatorIP` and
//!   `NAT_ResponderAddress`/`NAT_ResponderIP` nat, `OriginalClientIP` forwarded (key names
//!   unverified). VPN, AAA and management messages (reference part 2 §14, templates marked
//!   inferred there): 716059 both `IP` addresses (old and new public address of the client)
//!   source; 725001–725007 `with client ifc:A/p to B/p` A source, B (the device) destination,
//!   `with server` the reverse; 750001–750012 `Remote:R:p` source, `Local:L:p` (the device)
//!   destination; 602303/602304 `between L and R` R (peer) source, L destination; 111007
//!   `Begin configuration: A` source. Any other id: `src … dst …`, else `from … to …`, else
//!   the client named in words — `IP = A` (113019, 713xxx), `IP <A>`, `IP address: A` (611101),
//!   `Assigned IP=A` (109201: the tunnel address, still the client), `User … IP A` (722023,
//!   722033), `from IP A` (111010) — as source, else `Local:/Remote:`, else an event without
//!   addresses (not an error).
//! * Built/Teardown (302013–302016, ICMP 302020/302021): `for A to B`; `inbound` means A
//!   initiated (A source, B destination), `outbound` swaps them. Teardown lines have no direction
//!   word: the direction of the Built line is remembered per (syslog hostname, connection id) —
//!   for ICMP, which has no id, per (hostname, faddr, gaddr, laddr) — in a map cleared when it
//!   exceeds 65,536 entries. A Teardown whose Built line was not seen (other consumer instance,
//!   restart, cleared map) reports both endpoints with role `unknown`: the line itself does not
//!   say who initiated. It does say which side is which: the `for` endpoint is on the outside
//!   (lower-security, "foreign") interface, the `to` endpoint on the inside ("local") one —
//!   other parsers' "the `for` side is the source" is right only for inbound connections.
//! * action: `Built`/`Teardown`/`Deny`/`Denied`, 106100 `permitted`/`denied`/`est-allowed`,
//!   710xxx `permitted`/`denied`/`discarded`, 113xxx `Successful`/`Rejected`, 430xxx
//!   `AccessControlRuleAction`; rule: 106023 access-group, 106100 access-list, 430xxx
//!   `AccessControlRuleName`, 733100 the object name when it is not an address. threat: FTD
//!   430001 (intrusion event) `Message` (key name unverified).
//! * Malformed: no message header, or a table id whose keywords are missing (e.g. 302013
//!   without `for … to …`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;

use crate::model::{Event, Role};
use crate::stages::extract::parse_ip_token;
use crate::stages::parse::{Line, LogFormat, ParseError};

/// Name in `observed.format`.
pub(crate) const NAME: &str = "cisco_asa";

/// Built directions remembered at most; the map is cleared beyond this.
const MAX_CONNECTIONS: usize = 65_536;

/// Format `cisco_asa`. Remembers the direction of Built lines for their Teardown.
#[derive(Default)]
pub(crate) struct CiscoAsa {
    /// (hash of hostname, connection key) → inbound?
    directions: Mutex<HashMap<(u64, u64), bool>>,
}

/// The parsed `%ASA-6-302013:` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header<'a> {
    /// `ASA`, `FTD`, `FWSM`, `PIX`, `NGIPS`; `None` for a message text without its prefix.
    product: Option<&'a str>,
    id: u32,
    message: &'a str,
}

/// Product prefixes, each with the product it names.
const PRODUCTS: [(&str, &str); 6] = [
    ("ASA", "ASA"),
    ("FTD", "FTD"),
    ("FWSM", "FWSM"),
    ("PIX", "PIX"),
    ("NGIPS", "NGIPS"),
    ("Threat Defense", "FTD"),
];

/// Finds and splits the message header in the first 128 bytes of `body`: `%ASA-6-302013:`, or
/// the same without its `%` (`ASA-6-302013:`, as some collectors forward it) at the start of
/// the body or after a space; else, for a body that is the message text alone, the id its
/// wording identifies ([`bare_message`]).
fn header(body: &str) -> Option<Header<'_>> {
    let window = &body.as_bytes()[..body.len().min(128)];
    for dash in memchr::memchr_iter(b'-', window) {
        // A severity digit or a class name follows the product's dash.
        if !matches!(window.get(dash + 1), Some(b'0'..=b'7' | b'a'..=b'z')) {
            continue;
        }
        // The last letter of a product prefix precedes the dash (a cheap test before the list).
        if !matches!(
            dash.checked_sub(1).map(|at| window[at]),
            Some(b'A' | b'D' | b'M' | b'X' | b'S' | b'e')
        ) {
            continue;
        }
        let before = &body[..dash];
        for (prefix, product) in PRODUCTS {
            let Some(start) = before.strip_suffix(prefix).map(str::len) else {
                continue;
            };
            let boundary = start == 0 || matches!(window[start - 1], b'%' | b' ' | b':');
            if boundary {
                if let Some(mut header) = header_at(&body[start..]) {
                    header.product = Some(product);
                    return Some(header);
                }
            }
        }
    }
    bare_message(body)
}

/// `ASA-6-302013: text` or `FTD-session-5-106100: text` (after the `%`).
fn header_at(text: &str) -> Option<Header<'_>> {
    let (prefix, product) = PRODUCTS.iter().find(|(p, _)| {
        text.strip_prefix(p)
            .is_some_and(|rest| rest.starts_with('-'))
    })?;
    let mut rest = &text[prefix.len() + 1..];
    // Optional class: `session-`.
    let class_len = rest.bytes().take_while(u8::is_ascii_lowercase).count();
    if class_len > 0 {
        rest = rest[class_len..].strip_prefix('-')?;
    }
    let b = rest.as_bytes();
    if b.len() < 9 || !(b'0'..=b'7').contains(&b[0]) || b[1] != b'-' {
        return None;
    }
    // `get`: byte 8 may fall inside a multi-byte character (found by the fuzzer).
    let digits = rest.get(2..8)?;
    if !digits.bytes().all(|c| c.is_ascii_digit()) || b[8] != b':' {
        return None;
    }
    let id = digits.parse().ok()?;
    Some(Header {
        product: Some(product),
        id,
        message: rest[9..].trim_start_matches(' '),
    })
}

/// A message text without its `%ASA-…:` prefix (rsyslog `%msg%` after a tag-stripping relay):
/// the id is inferred from wording only Cisco writes, and only for messages whose layout is
/// unambiguous: Built/Teardown connections and translations, 106023/106014/106010 `Deny … src …
/// dst …`, 106100 `access-list … -> … hit-cnt`, the from/to denies (106001/106006/106015/106016),
/// 710003 ACL drops, 113019/713xxx `Group = …, IP = …`, 722xxx `Group … User … IP …`.
fn bare_message(body: &str) -> Option<Header<'_>> {
    let message = body.trim_start_matches(' ');
    let has = |needle: &str| message.contains(needle);
    let id = match message.as_bytes().first()? {
        b'T' if message.starts_with("TCP access denied by ACL from ")
            || message.starts_with("TCP request discarded from ") =>
        {
            710003
        }
        b'B' | b'T' => {
            let rest = message
                .strip_prefix("Built ")
                .or_else(|| message.strip_prefix("Teardown "))?;
            let built = message.starts_with('B');
            if has(" translation from ") && has(" to ") {
                if built {
                    305011
                } else {
                    305012
                }
            } else if has(" ICMP connection for faddr ") && has(" laddr ") {
                if built {
                    302020
                } else {
                    302021
                }
            } else if has(" connection ") && has(" for ") && has(" to ") {
                let udp = rest.contains("UDP connection");
                match (built, udp) {
                    (true, false) => 302013,
                    (false, false) => 302014,
                    (true, true) => 302015,
                    (false, true) => 302016,
                }
            } else {
                return None;
            }
        }
        b'D' if message.starts_with("Deny ") => {
            if has(" src ") && has(" dst ") && has(" by access-group \"") {
                106023
            } else if message.starts_with("Deny inbound ") && has(" src ") && has(" dst ") {
                106014
            } else if has(" from ") && has(" on interface ") {
                106015
            } else {
                return None;
            }
        }
        b'a' if message.starts_with("access-list ") && has(" -> ") && has(" hit-cnt ") => 106100,
        b'I' if message.starts_with("Inbound TCP connection denied from ") => 106001,
        b'G' if message.starts_with("Group ") && client_ip(message).is_some() => {
            if message.starts_with("Group = ") {
                113019
            } else if has(" User ") {
                722023
            } else {
                return None;
            }
        }
        _ => return None,
    };
    Some(Header {
        product: None,
        id,
        message,
    })
}

/// One endpoint as written after a keyword.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Endpoint<'a> {
    /// The real address token (`ip`, `ip/port`), if it is an address.
    addr: Option<&'a str>,
    /// The mapped address in parentheses right after it, if it is an address.
    mapped: Option<&'a str>,
}

impl<'a> Endpoint<'a> {
    /// The mapped address when it differs from the real one.
    fn nat(&self) -> Option<&'a str> {
        let mapped = self.mapped?;
        match self.addr {
            Some(addr) if same_ip(addr, mapped) => None,
            _ => Some(mapped),
        }
    }
}

fn is_ip(token: &str) -> bool {
    parse_ip_token(token).is_some_and(|ip| !ip.is_unspecified())
}

fn same_ip(a: &str, b: &str) -> bool {
    parse_ip_token(a).is_some() && parse_ip_token(a) == parse_ip_token(b)
}

/// End of an address token: a space, a parenthesis or a comma.
fn token_end(text: &str) -> usize {
    text.bytes()
        .position(|b| matches!(b, b' ' | b'(' | b')' | b',' | b';'))
        .unwrap_or(text.len())
}

/// Reads `[ifc:]ip[/port] [(mapped[/port])] [(annotation)]…` or `(ip)` at the start of `text`.
fn endpoint(text: &str) -> Endpoint<'_> {
    let text = text.trim_start_matches(' ');
    if let Some(inner) = text.strip_prefix('(') {
        let end = inner.find(')').unwrap_or(inner.len());
        let addr = &inner[..end];
        return Endpoint {
            addr: is_ip(addr).then_some(addr),
            mapped: None,
        };
    }
    let end = token_end(text);
    let token = &text[..end];
    // A sentence-ending period (`… packet from A to B.`).
    let token = token
        .strip_suffix('.')
        .filter(|t| is_ip(t))
        .unwrap_or(token);
    let (addr, rest) = if is_ip(token) {
        (Some(token), &text[end..])
    } else if let Some(colon) = memchr::memchr(b':', &text.as_bytes()[..text.len().min(64)]) {
        // `ifc:ip/port`; the interface name may contain spaces but never a colon.
        let after = &text[colon + 1..];
        let end = token_end(after);
        let candidate = &after[..end];
        let spaces = text[..colon].bytes().filter(|&b| b == b' ').count();
        let addr = (spaces <= 3 && is_ip(candidate)).then_some(candidate);
        (addr, &after[end..])
    } else {
        (None, &text[end..])
    };
    let rest = rest.trim_start_matches(' ');
    let mapped = rest.strip_prefix('(').and_then(|inner| {
        let candidate = &inner[..inner.find(')')?];
        is_ip(candidate).then_some(candidate)
    });
    Endpoint { addr, mapped }
}

/// The text after the first `keyword` in `text`.
fn after<'a>(text: &'a str, keyword: &str) -> Option<&'a str> {
    text.find(keyword).map(|at| &text[at + keyword.len()..])
}

/// 106100's `ifc/ip(port)` (interface names may hold spaces, addresses never hold `/` or `(`).
fn slash_endpoint(text: &str) -> Option<&str> {
    let text = text.trim_start_matches(' ');
    let open = text.find('(').unwrap_or_else(|| token_end(text));
    let head = &text[..open];
    let addr = head.rsplit_once('/').map_or(head, |(_, ip)| ip);
    is_ip(addr).then_some(addr)
}

/// The word right after `keyword`, e.g. the access-list name.
fn word_after<'a>(text: &'a str, keyword: &str) -> Option<&'a str> {
    let rest = after(text, keyword)?.trim_start_matches(' ');
    let end = rest.find(' ').unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

/// The first of `words` that occurs in `text`, borrowed from `text`.
fn first_word<'a>(text: &'a str, words: &[&str]) -> Option<&'a str> {
    words
        .iter()
        .filter_map(|w| text.find(w).map(|at| (at, w.len())))
        .min()
        .map(|(at, len)| &text[at..at + len])
}

/// FNV-1a, for map keys that must not allocate.
fn fnv(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain([0xff]) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// Collects addresses and context while a message is read.
struct Out<'a> {
    event: Event<'a>,
}

impl<'a> Out<'a> {
    fn push(&mut self, role: Role, addr: Option<&'a str>) {
        if let Some(addr) = addr {
            self.event.addresses.push((role, Cow::Borrowed(addr)));
        }
    }

    fn action(&mut self, action: Option<&'a str>) {
        if let Some(action) = action {
            self.event.action = Some(Cow::Borrowed(action));
        }
    }

    fn rule(&mut self, rule: Option<&'a str>) {
        if let Some(rule) = rule {
            self.event.rule = Some(Cow::Borrowed(rule));
        }
    }

    /// Source and destination endpoints, each followed by its NAT view.
    fn pair(&mut self, source: Endpoint<'a>, destination: Endpoint<'a>) {
        // d-siem: the real (pre-NAT) ports of `ip/port` endpoints.
        self.event.src_port = source.addr.and_then(port_of).map(Cow::Borrowed);
        self.event.dst_port = destination.addr.and_then(port_of).map(Cow::Borrowed);
        self.push(Role::Source, source.addr);
        self.push(Role::Destination, destination.addr);
        self.push(Role::Nat, source.nat());
        self.push(Role::Nat, destination.nat());
    }
}

/// d-siem: the port of an `ip/port` token (`203.0.113.7/51544`).
fn port_of(token: &str) -> Option<&str> {
    let (_, port) = token.rsplit_once('/')?;
    (!port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())).then_some(port)
}

fn malformed(id: u32, what: &str) -> ParseError {
    ParseError::malformed(NAME, format!("message {id:06}: {what}"))
}

impl CiscoAsa {
    /// Remembers (or, with `None`, recalls and forgets) the direction of a connection.
    fn direction(&self, host: Option<u64>, conn: u64, built: Option<bool>) -> Option<bool> {
        // Without a device name the ids of different firewalls would collide: no memory.
        let Some(host) = host else { return built };
        let key = (host, conn);
        let mut map = self
            .directions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match built {
            Some(inbound) => {
                if map.len() >= MAX_CONNECTIONS {
                    map.clear();
                }
                map.insert(key, inbound);
                Some(inbound)
            }
            None => map.remove(&key),
        }
    }

    /// 302013–302016: `Built inbound|outbound … connection ID for A to B`, `Teardown …`.
    fn connection<'a>(
        &self,
        host: Option<u64>,
        id: u32,
        message: &'a str,
        out: &mut Out<'a>,
    ) -> Result<(), ParseError> {
        let built = direction_word(message);
        let conn = word_after(message, "connection ")
            .and_then(|w| w.parse::<u64>().ok())
            .ok_or_else(|| malformed(id, "no connection id"))?;
        let for_at = message
            .find(" for ")
            .ok_or_else(|| malformed(id, "no `for A to B`"))?;
        let a_text = &message[for_at + 5..];
        let b_text = after(a_text, " to ").ok_or_else(|| malformed(id, "no `to B`"))?;
        let (a, b) = (endpoint(a_text), endpoint(b_text));
        let inbound = self.direction(host, conn, built);
        self.place(inbound, a, b, out);
        // d-siem: `Built inbound TCP connection`: the transport, and the direction (remembered
        // for the Teardown).
        let head = &message[..message.find(" connection ").unwrap_or(0)];
        out.event.protocol = head
            .rsplit(' ')
            .next()
            .filter(|w| !w.is_empty())
            .map(Cow::Borrowed);
        out.event.direction =
            inbound.map(|inbound| Cow::Borrowed(if inbound { "inbound" } else { "outbound" }));
        Ok(())
    }

    /// 302020/302021: `… ICMP connection for faddr F gaddr G laddr L`.
    fn icmp<'a>(
        &self,
        host: Option<u64>,
        id: u32,
        message: &'a str,
        out: &mut Out<'a>,
    ) -> Result<(), ParseError> {
        let built = direction_word(message);
        let faddr = after(message, "faddr ").map(endpoint);
        let laddr = after(message, "laddr ").map(endpoint);
        let (Some(faddr), Some(laddr)) = (faddr, laddr) else {
            return Err(malformed(id, "no `faddr … laddr …`"));
        };
        let gaddr = after(message, "gaddr ").map(endpoint).unwrap_or_default();
        let key = fnv(&[
            faddr.addr.unwrap_or(""),
            gaddr.addr.unwrap_or(""),
            laddr.addr.unwrap_or(""),
        ]);
        let inbound = self.direction(host, key, built);
        // gaddr is the global (mapped) view of laddr.
        let laddr = Endpoint {
            mapped: gaddr.addr,
            ..laddr
        };
        self.place(inbound, faddr, laddr, out);
        Ok(())
    }

    /// Applies the direction rule to `for A to B` (or faddr/laddr).
    fn place<'a>(
        &self,
        inbound: Option<bool>,
        a: Endpoint<'a>,
        b: Endpoint<'a>,
        out: &mut Out<'a>,
    ) {
        match inbound {
            Some(true) => out.pair(a, b),
            Some(false) => out.pair(b, a),
            None => {
                out.push(Role::Unknown, a.addr);
                out.push(Role::Unknown, b.addr);
                out.push(Role::Nat, a.nat());
                out.push(Role::Nat, b.nat());
            }
        }
    }
}

/// `Some(true)` for `Built inbound`, `Some(false)` for `Built outbound`, else `None`.
fn direction_word(message: &str) -> Option<bool> {
    let rest = message.strip_prefix("Built ")?;
    if rest.starts_with("inbound") {
        Some(true)
    } else if rest.starts_with("outbound") {
        Some(false)
    } else {
        None
    }
}

/// The first word of the message, as the action.
fn leading_word(message: &str) -> Option<&str> {
    let end = message.find(' ').unwrap_or(message.len());
    (end > 0).then(|| &message[..end])
}

/// `from A to B` (to optional).
fn from_to<'a>(message: &'a str, out: &mut Out<'a>) -> bool {
    let Some(rest) = after(message, "from ") else {
        return false;
    };
    let source = endpoint(rest);
    let destination = after(rest, " to ").map(endpoint).unwrap_or_default();
    out.pair(source, destination);
    true
}

/// `src A dst B`.
fn src_dst<'a>(message: &'a str, out: &mut Out<'a>) -> bool {
    let Some(rest) = after(message, "src ") else {
        return false;
    };
    let source = endpoint(rest);
    let destination = after(rest, " dst ").map(endpoint).unwrap_or_default();
    out.pair(source, destination);
    true
}

/// 430001–430005: `Key: value, Key: value, …`; a 430001 intrusion event's `Message` (the rule
/// message) is its threat.
fn ftd_event<'a>(id: u32, message: &'a str, out: &mut Out<'a>) {
    let (mut src, mut dst, mut nat_src, mut nat_dst) = (None, None, None, None);
    let mut forwarded = None;
    for item in message.split(", ") {
        let Some((key, value)) = item.split_once(": ") else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "SrcIP" => src = Some(value),
            "DstIP" => dst = Some(value),
            "NAT_InitiatorAddress" | "NAT_InitiatorIP" => nat_src = Some(value),
            "NAT_ResponderAddress" | "NAT_ResponderIP" => nat_dst = Some(value),
            // The client behind a proxy (from X-Forwarded-For).
            "OriginalClientIP" => forwarded = Some(value),
            "AccessControlRuleAction" => out.action(Some(value)),
            "AccessControlRuleName" => out.rule(Some(value)),
            "FirstPacketSecond" => out.event.timestamp = Some(Cow::Borrowed(value)),
            "Message" if id == 430001 && !value.is_empty() => {
                out.event.threat = Some(Cow::Borrowed(value));
            }
            _ => {}
        }
    }
    let keep = |v: Option<&'a str>| v.filter(|v| is_ip(v));
    let source = Endpoint {
        addr: keep(src),
        mapped: keep(nat_src),
    };
    let destination = Endpoint {
        addr: keep(dst),
        mapped: keep(nat_dst),
    };
    out.pair(source, destination);
    out.push(Role::Forwarded, keep(forwarded));
}

/// The address at the start of `text`, up to a space, comma, period at the end, `>` or `(`.
fn ip_word(text: &str) -> Option<&str> {
    let text = text.trim_start_matches([' ', '<', '\'']);
    let end = text
        .find([' ', ',', '>', '(', ')', ';', '\''])
        .unwrap_or(text.len());
    let word = &text[..end];
    let word = word.strip_suffix('.').unwrap_or(word);
    is_ip(word).then_some(word)
}

/// The client of a VPN, AAA or management message: `IP = A`, `IP <A>`, `IP address: A`,
/// `Assigned IP=A`, `User … IP A` (the first that holds an address).
fn client_ip(message: &str) -> Option<&str> {
    [
        "IP = ",
        " IP <",
        "IP address: ",
        "Assigned IP=",
        " IP ",
        "user IP = ",
    ]
    .iter()
    .filter_map(|label| {
        message
            .match_indices(label)
            .find_map(|(at, _)| ip_word(&message[at + label.len()..]))
    })
    .next()
}

/// 750xxx `Local:L:port Remote:R:port`: the remote peer is the source, the device the
/// destination. `A:port` is split at the last colon (IPv6 `Local:2001:db8::1:500` is
/// ambiguous and read only when the whole token is an address).
fn local_remote<'a>(message: &'a str, out: &mut Out<'a>) {
    let side = |label: &str| {
        let rest = after(message, label)?;
        let token = &rest[..rest.find(' ').unwrap_or(rest.len())];
        if is_ip(token) {
            return Some(token);
        }
        let (host, port) = token.rsplit_once(':')?;
        (port.bytes().all(|b| b.is_ascii_digit()) && is_ip(host)).then_some(host)
    };
    out.push(Role::Source, side("Remote:"));
    out.push(Role::Destination, side("Local:"));
}

/// 304001: `IP Accessed URL IP:url` (the server address runs to the colon before the URL).
fn accessed_url<'a>(message: &'a str, out: &mut Out<'a>) {
    let client = message.split(' ').next().filter(|t| is_ip(t));
    out.push(Role::Source, client);
    if let Some(rest) = after(message, "URL ") {
        let token = &rest[..rest.find(' ').unwrap_or(rest.len())];
        let server = token
            .match_indices(':')
            .map(|(at, _)| &token[..at])
            .find(|t| is_ip(t));
        out.push(Role::Destination, server);
    }
}

impl LogFormat for CiscoAsa {
    fn name(&self) -> &'static str {
        NAME
    }

    fn detect(&self, line: &Line<'_>) -> bool {
        header(line.body).is_some()
    }

    fn parse<'a>(&self, line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        let header = header(line.body)
            .ok_or_else(|| ParseError::malformed(NAME, "no %ASA-/%FTD-<sev>-<id>: header"))?;
        let message = header.message;
        let mut out = Out {
            event: Event {
                format: NAME,
                vendor: Some(Cow::Borrowed("Cisco")),
                product: header.product.map(Cow::Borrowed),
                ..Event::default()
            },
        };
        // The device whose connection ids these are; none when the header names no device
        // (`<166>%ASA-…`) or only a loopback address (FTD's `127.0.0.1:`).
        let host = line
            .syslog
            .and_then(|h| h.hostname)
            .filter(|h| parse_ip_token(h).is_none_or(|ip| !ip.is_loopback()))
            .map(|h| fnv(&[h]));
        let id = header.id;
        match id {
            302013..=302016 => {
                out.action(leading_word(message));
                self.connection(host, id, message, &mut out)?;
            }
            302020 | 302021 => {
                out.action(leading_word(message));
                self.icmp(host, id, message, &mut out)?;
            }
            106010 | 106014 | 106023 => {
                out.action(leading_word(message));
                if !src_dst(message, &mut out) {
                    return Err(malformed(id, "no `src … dst …`"));
                }
                if let Some(acl) = after(message, "access-group \"") {
                    out.rule(acl.split('"').next());
                }
            }
            106001 | 106006 | 106007 | 106015 | 106016 | 106021 | 313001 | 419002 | 710002
            | 710003 | 710005 => {
                let action = match id {
                    106001 | 710002 | 710003 | 710005 => {
                        first_word(message, &["permitted", "denied", "discarded"])
                    }
                    419002 => None,
                    _ => leading_word(message),
                };
                out.action(action);
                if !from_to(message, &mut out) {
                    return Err(malformed(id, "no `from …`"));
                }
            }
            106100 => {
                // `access-list ACL ACTION PROTO ifc/ip(port) -> ifc/ip(port) hit-cnt …`
                let rest = after(message, "access-list ").unwrap_or("");
                let mut words = rest.splitn(4, ' ');
                out.rule(words.next());
                out.action(words.next());
                let left = words.nth(1).unwrap_or("");
                let right = after(left, "->")
                    .ok_or_else(|| malformed(id, "no `ifc/ip(port) -> ifc/ip(port)`"))?;
                out.push(Role::Source, slash_endpoint(left));
                out.push(Role::Destination, slash_endpoint(right));
            }
            305011 | 305012 => {
                out.action(leading_word(message));
                let rest = after(message, "from ").ok_or_else(|| malformed(id, "no `from`"))?;
                let real = endpoint(rest);
                let mapped = after(rest, " to ").map(endpoint).unwrap_or_default();
                out.push(Role::Source, real.addr);
                if !mapped
                    .addr
                    .is_some_and(|m| real.addr.is_some_and(|r| same_ip(r, m)))
                {
                    out.push(Role::Nat, mapped.addr);
                }
            }
            304001 => {
                out.action(Some("Accessed"));
                accessed_url(message, &mut out);
            }
            304002 => {
                out.action(
                    message
                        .starts_with("Access denied")
                        .then_some("Access denied"),
                );
                out.push(
                    Role::Source,
                    after(message, "SRC ").and_then(|r| endpoint(r).addr),
                );
                out.push(
                    Role::Destination,
                    after(message, "DEST ").and_then(|r| endpoint(r).addr),
                );
            }
            733100 => {
                let object = message
                    .strip_prefix('[')
                    .and_then(|r| r.split_once(']'))
                    .map(|(object, _)| object.trim());
                match object {
                    Some(object) if is_ip(object) => out.push(Role::Source, Some(object)),
                    other => out.rule(other),
                }
            }
            733101 => {
                let addr = word_after(message, "Host ")
                    .or_else(|| word_after(message, "Subnet "))
                    .filter(|t| is_ip(t));
                let role = if message.contains(" is targeted") {
                    Role::Destination
                } else {
                    Role::Source
                };
                out.push(role, addr);
            }
            113004 | 113005 => {
                out.action(first_word(message, &["Successful", "Rejected"]));
                let field = |name: &str| {
                    after(message, name)
                        .map(|r| r.trim_start_matches(' '))
                        .map(|r| &r[..token_end(r)])
                        .filter(|t| is_ip(t))
                };
                out.push(Role::Source, field("user IP = "));
                out.push(Role::Destination, field("server = "));
            }
            716039 | 722051 => {
                let addr = after(message, " IP <").and_then(|r| r.split('>').next());
                out.push(Role::Source, addr.filter(|t| is_ip(t)));
            }
            // `Group … User … IP A AnyConnect session resumed connection from IP A2.`: both
            // are the client's public address (before and after it moved).
            716059 => {
                out.push(Role::Source, client_ip(message));
                out.push(
                    Role::Source,
                    after(message, "connection from IP ").and_then(ip_word),
                );
            }
            // `Starting SSL handshake with client|server ifc:A/p [to B/p] for … session.`,
            // `SSL session with client|server ifc:A/p [to B/p] terminated.`: A is the remote
            // side, B the device; with a client, A initiated.
            725001..=725007 => {
                let (remote_role, local_role) = if message.contains(" with server ") {
                    (Role::Destination, Role::Source)
                } else {
                    (Role::Source, Role::Destination)
                };
                let rest = after(message, " with client ")
                    .or_else(|| after(message, " with server "))
                    .or_else(|| after(message, "client "));
                if let Some(rest) = rest {
                    out.push(remote_role, endpoint(rest).addr);
                    let local = after(rest, " to ").map(endpoint).unwrap_or_default();
                    out.push(local_role, local.addr);
                }
            }
            // `Local:L:p Remote:R:p Username:u …`: Remote is the peer that connected.
            750001..=750012 => local_remote(message, &mut out),
            // `IPSEC: An outbound … SA (SPI=…) between L and R (user= u) has been created.`
            602303 | 602304 => {
                if let Some(rest) = after(message, " between ") {
                    let local = ip_word(rest);
                    let remote = after(rest, " and ").and_then(ip_word);
                    out.push(Role::Source, remote);
                    out.push(Role::Destination, local);
                }
            }
            // `Begin configuration: A reading from terminal|network.`: A is the host
            // configuring the device (a console shows no address).
            111007 => out.push(
                Role::Source,
                after(message, "Begin configuration: ").and_then(ip_word),
            ),
            430001..=430005 => ftd_event(id, message, &mut out),
            _ => {
                out.action(
                    leading_word(message)
                        .filter(|w| matches!(*w, "Built" | "Teardown" | "Deny" | "Denied")),
                );
                // The first reading that finds an address wins.
                let before = out.event.addresses.len();
                let found = |out: &Out<'_>| out.event.addresses.len() > before;
                let _ = src_dst(message, &mut out);
                if !found(&out) {
                    let _ = from_to(message, &mut out);
                }
                if !found(&out) {
                    // VPN, AAA and management messages name the client in words:
                    // 113019/713xxx `IP = A`, 722xxx `IP A`, 611101 `IP address: A`,
                    // 109201 `Assigned IP=A` (its tunnel address, still the client).
                    out.push(Role::Source, client_ip(message));
                }
                if !found(&out) {
                    local_remote(message, &mut out);
                }
            }
        }
        Ok(out.event)
    }
}

#[cfg(test)]
mod tests;
