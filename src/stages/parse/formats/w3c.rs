//! W3C extended / ELFF access logs (IIS, Blue Coat ProxySG, generic) and the Windows Defender
//! Firewall `pfirewall.log` (reference §3.4, §3.7, §2.11).
//!
//! * In: space-separated data lines (`"…"` quotes a value, `-` is empty) read by the stream's
//!   `#Fields:` list (`line.fields`, kind [`HeaderKind::W3c`]). The directives themselves
//!   (`#Software:`, `#Fields:`, `#Version:`) are taken by the registry and never reach us.
//! * Detection: `w3c` only when the stream has a W3C `#Fields:` list and the line has exactly
//!   that many fields. `windows_firewall` when the list comes from Windows Firewall
//!   (`#Software: Microsoft Windows Firewall`, or a list with `src-ip` and `path`) and fits, or,
//!   with no such header, when the line has the default shape
//!   `YYYY-MM-DD hh:mm:ss (ALLOW|DROP|INFO-EVENTS-LOST) …` (files are often shipped without
//!   their header; the default field order is then used).
//! * Roles, `w3c`: `c-ip` source (the connection peer: a load balancer or downstream proxy may
//!   sit there); `X-Forwarded-For` / `cs(X-Forwarded-For)` forwarded (first hop). `s-ip`
//!   depends on who wrote the log: for a web server (IIS, generic) it is the server that was
//!   contacted → destination; for a proxy (ProxySG: `#Software: SGOS …`, or a list with
//!   `s-action`, `r-ip` or `s-supplier-ip`) it is the proxy's own address → observer, and the
//!   origin is `r-ip` → destination. `s-supplier-ip` (the upstream actually contacted) is the
//!   destination when there is no `r-ip`; when it differs from `r-ip` it is a parent proxy, not
//!   the origin → unknown. Host names (`cs-host`) are ignored.
//! * Roles, `windows_firewall`: `src-ip` source, `dst-ip` destination, whatever the `path`
//!   (SEND: the local host initiated, RECEIVE: the remote one; the packet's source is the
//!   initiator either way). `INFO-EVENTS-LOST` lines carry no addresses.
//! * Context: `date`+`time` timestamp (one slice of the line when adjacent), ProxySG `s-action`
//!   and the firewall's `action` as action; vendor/product from `#Software:` where known.

use std::borrow::Cow;

use crate::model::{Event, Role};
use crate::stages::extract::parse_ip_token;
use crate::stages::parse::fields::{present, spaced_fields};
use crate::stages::parse::headers::{FieldsHeader, HeaderKind};
use crate::stages::parse::{Line, LogFormat, ParseError};

const W3C: &str = "w3c";
const WINDOWS_FIREWALL: &str = "windows_firewall";

/// Field order of `pfirewall.log` when its header is missing.
const FIREWALL_DEFAULT_FIELDS: [&str; 17] = [
    "date", "time", "action", "protocol", "src-ip", "dst-ip", "src-port", "dst-port", "size",
    "tcpflags", "tcpsyn", "tcpack", "tcpwin", "icmptype", "icmpcode", "info", "path",
];

/// Format `windows_firewall`.
pub(crate) struct WindowsFirewall;

/// Format `w3c`.
pub(crate) struct W3c;

/// The stream's `#Fields:` list, if it is a W3C one.
fn w3c_header<'h>(line: &'h Line<'_>) -> Option<&'h FieldsHeader> {
    line.fields.as_deref().filter(|h| h.kind == HeaderKind::W3c)
}

/// Whether a W3C field list was written by Windows Firewall.
fn is_firewall_header(header: &FieldsHeader) -> bool {
    header
        .software
        .as_deref()
        .is_some_and(|s| s.contains("Windows Firewall"))
        || (header.index("src-ip").is_some() && header.index("path").is_some())
}

/// IIS's default `#Fields:` (IIS 7 and later), used for data lines without their header.
fn iis_default_header() -> &'static FieldsHeader {
    static HEADER: std::sync::OnceLock<FieldsHeader> = std::sync::OnceLock::new();
    HEADER.get_or_init(|| FieldsHeader {
        kind: HeaderKind::W3c,
        names: "date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip \
                cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken"
            .split(' ')
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect(),
        separator: b' ',
        software: Some("Microsoft Internet Information Services".to_owned()),
    })
}

fn default_header(
    cell: &'static std::sync::OnceLock<FieldsHeader>,
    names: &str,
) -> &'static FieldsHeader {
    cell.get_or_init(|| FieldsHeader {
        kind: HeaderKind::W3c,
        names: names
            .split(' ')
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect(),
        separator: b' ',
        software: Some("SGOS (predefined format)".to_owned()),
    })
}

/// SGOS's predefined `main` access-log format.
fn proxysg_main_header() -> &'static FieldsHeader {
    static HEADER: std::sync::OnceLock<FieldsHeader> = std::sync::OnceLock::new();
    default_header(
        &HEADER,
        "date time time-taken c-ip sc-status s-action sc-bytes cs-bytes cs-method cs-uri-scheme \
         cs-host cs-uri-port cs-uri-path cs-uri-query cs-username cs-auth-group s-hierarchy \
         s-supplier-name rs(Content-Type) cs(Referer) cs(User-Agent) sc-filter-result \
         cs-categories x-virus-id s-ip",
    )
}

/// SGOS's predefined `bcreportermain_v1` access-log format.
fn proxysg_reporter_header() -> &'static FieldsHeader {
    static HEADER: std::sync::OnceLock<FieldsHeader> = std::sync::OnceLock::new();
    default_header(
        &HEADER,
        "date time time-taken c-ip cs-username cs-auth-group x-exception-id sc-filter-result \
         cs-categories cs(Referer) sc-status s-action cs-method rs(Content-Type) cs-uri-scheme \
         cs-host cs-uri-port cs-uri-path cs-uri-query cs-uri-extension cs(User-Agent) s-ip \
         sc-bytes cs-bytes x-virus-id",
    )
}

/// The predefined field list a headerless line is in, by its shape: IIS's default, or
/// ProxySG's `main` or `bcreportermain_v1`.
fn assumed_header(body: &str) -> Option<&'static FieldsHeader> {
    // Both default layouts start with a `YYYY-MM-DD` field: a cheap test of its dash first,
    // since every line no other format claims (key=value, VPC flow, plain text) is tried here.
    if body.trim_start_matches(' ').as_bytes().get(4) != Some(&b'-') {
        return None;
    }
    if has_iis_default_shape(body) {
        return Some(iis_default_header());
    }
    let mut fields = spaced_fields(body);
    let (Some(date), Some(time), Some(taken), Some(client)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return None;
    };
    if !(date.len() == 10
        && date.as_bytes()[4] == b'-'
        && time.len() >= 8
        && time.as_bytes()[2] == b':'
        && !taken.is_empty()
        && taken.bytes().all(|b| b.is_ascii_digit())
        && crate::stages::extract::parse_ip_token(client).is_some())
    {
        return None;
    }
    let (Some(fifth), Some(sixth)) = (fields.next(), fields.next()) else {
        return None;
    };
    let rest = fields.count();
    let is_action = |w: &str| w.len() > 3 && w.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
    if fifth.len() == 3 && fifth.bytes().all(|b| b.is_ascii_digit()) && is_action(sixth) {
        return (rest + 6 == 25).then(proxysg_main_header);
    }
    // bcreportermain_v1: field 8 is sc-filter-result.
    let mut again = spaced_fields(body).skip(7);
    let filter = again.next().unwrap_or("");
    (rest + 6 == 25 && matches!(filter, "OBSERVED" | "DENIED" | "PROXIED"))
        .then(proxysg_reporter_header)
}

/// `YYYY-MM-DD hh:mm:ss <s-ip> <METHOD> …` with at least IIS's 15 default fields (custom
/// fields such as X-Forwarded-For may follow and are not read without a header).
fn has_iis_default_shape(body: &str) -> bool {
    let mut fields = spaced_fields(body);
    let (Some(date), Some(time), Some(server), Some(method)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return false;
    };
    date.len() == 10
        && date.as_bytes()[4] == b'-'
        && time.len() >= 8
        && time.as_bytes()[2] == b':'
        && crate::stages::extract::parse_ip_token(server).is_some()
        && !method.is_empty()
        && method.bytes().all(|b| b.is_ascii_uppercase())
        && fields.take(11).count() == 11
}

/// Whether `body` has exactly `count` W3C fields.
fn fits(body: &str, count: usize) -> bool {
    spaced_fields(body).take(count + 1).count() == count
}

/// `YYYY-MM-DD hh:mm:ss (ALLOW|DROP|INFO-EVENTS-LOST) `: a headerless `pfirewall.log` line.
fn has_firewall_shape(body: &str) -> bool {
    let b = body.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        b.get(range)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    if !(digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10)
        && b.get(10) == Some(&b' ')
        && digits(11..13)
        && b.get(13) == Some(&b':')
        && digits(14..16)
        && b.get(16) == Some(&b':')
        && digits(17..19)
        && b.get(19) == Some(&b' '))
    {
        return false;
    }
    let rest = &body[20..];
    rest.starts_with("ALLOW ") || rest.starts_with("DROP ") || rest.starts_with("INFO-EVENTS-LOST ")
}

/// The slice of `body` from the start of `first` to the end of `last` (both sub-slices of it).
fn span<'a>(body: &'a str, first: &str, last: &str) -> Option<&'a str> {
    let base = body.as_ptr() as usize;
    let start = (first.as_ptr() as usize).checked_sub(base)?;
    let end = (last.as_ptr() as usize).checked_sub(base)? + last.len();
    body.get(start..end)
}

/// `date` and `time` as one borrowed timestamp when they are adjacent in the line.
fn timestamp<'a>(body: &'a str, date: Option<&'a str>, time: Option<&'a str>) -> Option<&'a str> {
    match (date, time) {
        (Some(date), Some(time)) => {
            span(body, date, time).filter(|s| s.len() == date.len() + 1 + time.len())
        }
        (date, time) => date.or(time),
    }
}

/// The first hop of an X-Forwarded-For value (IIS writes spaces as `+`).
fn first_hop(value: &str) -> &str {
    value
        .split(',')
        .next()
        .unwrap_or(value)
        .trim_matches(|c| c == ' ' || c == '+')
}

impl LogFormat for WindowsFirewall {
    fn uses_stream_fields(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        WINDOWS_FIREWALL
    }

    fn detect(&self, line: &Line<'_>) -> bool {
        match w3c_header(line) {
            // The stream's own field list decides when the line fits it.
            Some(header) if fits(line.body, header.names.len()) => is_firewall_header(header),
            _ => has_firewall_shape(line.body),
        }
    }

    fn parse<'a>(&self, line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        let body = line.body;
        // The header's order only when it is Windows Firewall's and the line fits it.
        let header =
            w3c_header(line).filter(|h| is_firewall_header(h) && fits(body, h.names.len()));
        let mut event = Event {
            format: WINDOWS_FIREWALL,
            vendor: Some(Cow::Borrowed("Microsoft")),
            product: Some(Cow::Borrowed("Windows Firewall")),
            ..Event::default()
        };
        let (mut date, mut time, mut source, mut destination) = (None, None, None, None);
        let mut count = 0;
        for (i, value) in spaced_fields(body).enumerate() {
            count += 1;
            let name = match header {
                Some(h) => h.names.get(i).map(String::as_str),
                None => FIREWALL_DEFAULT_FIELDS.get(i).copied(),
            };
            match name {
                Some("date") => date = Some(value),
                Some("time") => time = Some(value),
                Some("action") => event.action = present(value, &["-"]).map(Cow::Borrowed),
                Some("src-ip") => source = Some(value),
                Some("dst-ip") => destination = Some(value),
                _ => {}
            }
        }
        event.timestamp = timestamp(body, date, time).map(Cow::Borrowed);
        if event.action.as_deref() == Some("INFO-EVENTS-LOST") {
            return Ok(event);
        }
        let (Some(source), Some(destination)) = (source, destination) else {
            return Err(ParseError::malformed(
                WINDOWS_FIREWALL,
                format!(
                    "{count} fields, src-ip and dst-ip are fields 5 and 6 (or named by #Fields:)"
                ),
            ));
        };
        if let Some(source) = present(source, &["-"]) {
            event.addresses.push((Role::Source, Cow::Borrowed(source)));
        }
        if let Some(destination) = present(destination, &["-"]) {
            event
                .addresses
                .push((Role::Destination, Cow::Borrowed(destination)));
        }
        Ok(event)
    }
}

/// Vendor and product named by `#Software:`, and whether that software is a proxy.
fn software_identity(software: &str) -> (Option<&'static str>, Option<&'static str>, bool) {
    if software.starts_with("SGOS")
        || software.contains("ProxySG")
        || software.contains("Blue Coat")
    {
        (Some("Symantec"), Some("ProxySG"), true)
    } else if software.contains("AsyncOS") {
        (Some("Cisco"), Some("Secure Web Appliance"), false)
    } else if software.contains("Internet Information Services") {
        (Some("Microsoft"), Some("IIS"), false)
    } else {
        (None, None, false)
    }
}

impl LogFormat for W3c {
    fn uses_stream_fields(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        W3C
    }

    fn detect(&self, line: &Line<'_>) -> bool {
        match w3c_header(line) {
            Some(header) => fits(line.body, header.names.len()),
            None => assumed_header(line.body).is_some(),
        }
    }

    fn parse<'a>(&self, line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        let header = match w3c_header(line) {
            Some(header) => header,
            // Shipped without its header: IIS's default field list (reference §1, row 17).
            None => match assumed_header(line.body) {
                Some(header) => header,
                None => {
                    return Err(ParseError::malformed(
                        W3C,
                        "no #Fields: directive was seen on this stream and the line is not in \
                         IIS's or ProxySG's default field order",
                    ))
                }
            },
        };
        let body = line.body;
        let (mut vendor, mut product, mut proxy) =
            software_identity(header.software.as_deref().unwrap_or(""));
        if header.index("x-cs-userip").is_some() || header.index("x-cs-access-method").is_some() {
            (vendor, product) = (Some("Netskope"), Some("Netskope"));
        }
        let mut event = Event {
            format: W3C,
            vendor: vendor.map(Cow::Borrowed),
            product: product.map(Cow::Borrowed),
            ..Event::default()
        };
        let (mut date, mut time) = (None, None);
        let (mut server, mut remote, mut supplier) = (None, None, None);
        let (mut client, mut user_ip, mut connect_ip, mut transparent, mut appliance) =
            (None, None, None, false, None);
        let mut hierarchy: Option<(bool, &str)> = None;
        let mut values = spaced_fields(body);
        let mut count = 0;
        for (name, value) in header.names.iter().zip(values.by_ref()) {
            count += 1;
            let value = present(value, &["-"]);
            match name.as_str() {
                "date" => date = value,
                "time" => time = value,
                "c-ip" => client = value,
                "x-cs-userip" => user_ip = value.filter(|v| parse_ip_token(v).is_some()),
                "cs-ip" => connect_ip = value.filter(|v| parse_ip_token(v).is_some()),
                "c-connect-type" => {
                    transparent = value.is_some_and(|v| v.eq_ignore_ascii_case("Transparent"));
                }
                "x-bluecoat-appliance-primary-address" => appliance = value,
                // Netskope writes `Unavailable` during SSL bypass.
                "s-ip" => server = value.filter(|v| parse_ip_token(v).is_some()),
                "r-ip" => {
                    proxy = true;
                    remote = value;
                }
                "s-supplier-ip" | "r-supplier-ip" => {
                    proxy = true;
                    supplier = value;
                }
                // Cisco WSA: `DIRECT/<server>`, the upstream host contacted.
                "x-hierarchy-origin" => {
                    if let Some((code, host)) = value.and_then(|v| v.split_once('/')) {
                        if parse_ip_token(host).is_some() {
                            hierarchy = Some((code.contains("PARENT"), host));
                        }
                    }
                }
                "s-action" => {
                    proxy = true;
                    event.action = value.map(Cow::Borrowed);
                }
                other
                    if other.eq_ignore_ascii_case("cs(X-Forwarded-For)")
                        || other.eq_ignore_ascii_case("X-Forwarded-For") =>
                {
                    if let Some(hop) = value.map(first_hop).filter(|h| !h.is_empty()) {
                        event.addresses.push((Role::Forwarded, Cow::Borrowed(hop)));
                    }
                }
                _ => {}
            }
        }
        let extra = values.count();
        // IIS's default list is assumed, not declared: custom fields may follow it.
        let assumed = w3c_header(line).is_none();
        if count + extra != header.names.len() && !(assumed && count + extra > header.names.len()) {
            return Err(ParseError::malformed(
                W3C,
                format!(
                    "{} fields, the #Fields: directive names {}",
                    count + extra,
                    header.names.len()
                ),
            ));
        }
        match (user_ip, client) {
            (Some(user), Some(seen)) if parse_ip_token(user) != parse_ip_token(seen) => {
                // The device's own address, and the (egress) address the proxy saw.
                event.addresses.push((Role::Source, Cow::Borrowed(user)));
                event.addresses.push((Role::Nat, Cow::Borrowed(seen)));
            }
            (user, seen) => {
                if let Some(ip) = seen.or(user) {
                    event.addresses.insert(0, (Role::Source, Cow::Borrowed(ip)));
                }
            }
        }
        if connect_ip.is_some() || appliance.is_some() {
            proxy = true;
        }
        if proxy {
            // The proxy's own address is the reporting device.
            event.observer = server.or(appliance).map(Cow::Borrowed);
            match connect_ip {
                Some(target) if transparent && remote.is_none() => {
                    event
                        .addresses
                        .push((Role::Destination, Cow::Borrowed(target)));
                }
                Some(own) if !transparent && event.observer.is_none() => {
                    event.observer = Some(Cow::Borrowed(own));
                }
                _ => {}
            }
            if let Some(remote) = remote {
                event
                    .addresses
                    .push((Role::Destination, Cow::Borrowed(remote)));
            }
            match (supplier, remote) {
                (Some(supplier), None) => event
                    .addresses
                    .push((Role::Destination, Cow::Borrowed(supplier))),
                (Some(supplier), Some(remote)) if supplier != remote => {
                    // A parent proxy between this proxy and the origin server.
                    event
                        .addresses
                        .push((Role::Unknown, Cow::Borrowed(supplier)));
                }
                _ => {}
            }
        } else if let Some(server) = server {
            event
                .addresses
                .push((Role::Destination, Cow::Borrowed(server)));
        }
        match hierarchy {
            Some((true, parent)) => event.addresses.push((Role::Unknown, Cow::Borrowed(parent))),
            Some((false, origin)) if server.is_none() || proxy => {
                event
                    .addresses
                    .push((Role::Destination, Cow::Borrowed(origin)));
            }
            _ => {}
        }
        event.timestamp = timestamp(body, date, time).map(Cow::Borrowed);
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firewall_shape_and_timestamp_span() {
        assert!(has_firewall_shape(
            "2024-03-01 12:00:00 DROP TCP 203.0.113.7 192.0.2.10"
        ));
        assert!(!has_firewall_shape("2024-03-01 12:00:00 198.51.100.20 GET"));
        assert!(!has_firewall_shape("2024-03-01 12:00:0é DROP"));
        let body = "2024-03-01 12:00:00 x";
        assert_eq!(
            timestamp(body, Some(&body[..10]), Some(&body[11..19])),
            Some("2024-03-01 12:00:00")
        );
        assert_eq!(first_hop("192.0.2.10,+203.0.113.1"), "192.0.2.10");
    }
}
