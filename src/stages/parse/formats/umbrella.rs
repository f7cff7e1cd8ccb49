//! Cisco Umbrella S3 CSV exports: proxy, DNS and cloud-delivered firewall logs (reference §3.5).
//!
//! * In: `line.body`, a CSV record (fields double-quoted, RFC 4180; firewall logs also come
//!   unquoted) whose first column is the timestamp `YYYY-MM-DD hh:mm:ss`.
//! * Detect: the body starts with `"YYYY-MM-DD hh:mm:ss",` or `YYYY-MM-DD hh:mm:ss,`.
//! * Which log it is, by shape (1-based columns, first rule that matches):
//!   1. DNS: column 6 is the action `Allowed`/`Blocked` (any case) and column 4 is an address
//!      or empty. (Proxy logs have a content type there, firewall logs a protocol number.)
//!   2. Firewall: column 5 (direction) is not an address and columns 8 and 10 are addresses.
//!   3. Proxy: columns 3, 4 and 5 are each an address or empty.
//!
//!   Anything else is malformed.
//! * Roles: proxy — 3 internal IP source, 4 external (egress) IP nat, 5 destination; DNS —
//!   4 internal IP source, 5 external IP nat; firewall — 8 source, 10 destination, and a
//!   trailing 15th column, when it is an address, the egress IP (nat). An empty internal IP
//!   means no pre-NAT source.
//! * Context: vendor Cisco, product Umbrella, timestamp column 1; action = proxy verdict (7),
//!   DNS action (6), firewall verdict (14); rule = firewall rule id (13).

use std::borrow::Cow;
use std::net::IpAddr;

use crate::model::{Event, Role};
use crate::stages::parse::fields::{present, CsvFields};
use crate::stages::parse::{Line, LogFormat, ParseError};

const NAME: &str = "umbrella";
/// Columns read (1-based 1..=15).
const COLUMNS: usize = 15;

/// Format `umbrella`.
pub(crate) struct Umbrella;

/// `YYYY-MM-DD hh:mm:ss`.
fn is_timestamp(b: &[u8]) -> bool {
    b.len() >= 19
        && b.iter().take(19).enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b' ',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        })
}

fn is_ip(text: &str) -> bool {
    text.parse::<IpAddr>().is_ok()
}

fn is_ip_or_empty(text: &str) -> bool {
    text.is_empty() || is_ip(text)
}

impl LogFormat for Umbrella {
    fn name(&self) -> &'static str {
        NAME
    }

    fn detect(&self, line: &Line<'_>) -> bool {
        let b = line.body.as_bytes();
        let timestamp_first = match b.first() {
            Some(b'"') => b.len() > 21 && is_timestamp(&b[1..]) && &b[20..22] == b"\",",
            Some(_) => b.len() > 20 && is_timestamp(b) && b[19] == b',',
            None => false,
        };
        // Other CSV exports start with a timestamp too (Forcepoint cloud): the address columns
        // must fit one of the three Umbrella shapes.
        timestamp_first && {
            let (col, count) = columns(line.body);
            shape(&col, count).is_some()
        }
    }

    fn parse<'a>(&self, line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        let mut event = Event {
            format: NAME,
            vendor: Some(Cow::Borrowed("Cisco")),
            product: Some(Cow::Borrowed("Umbrella")),
            ..Event::default()
        };
        let (col, count) = columns(line.body);
        event.timestamp = present(col[1], &[]).map(Cow::Borrowed);
        let mut push = |role, text: &'a str| {
            if !text.is_empty() {
                event.addresses.push((role, Cow::Borrowed(text)));
            }
        };
        let action;
        let mut rule = None;
        match shape(&col, count) {
            Some(Shape::Dns) => {
                push(Role::Source, col[4]);
                if is_ip(col[5]) {
                    push(Role::Nat, col[5]);
                }
                action = col[6];
            }
            Some(Shape::Firewall) => {
                push(Role::Source, col[8]);
                push(Role::Destination, col[10]);
                if is_ip(col[15]) {
                    push(Role::Nat, col[15]);
                }
                action = col[14];
                rule = present(col[13], &[]);
            }
            Some(Shape::Proxy) => {
                push(Role::Source, col[3]);
                push(Role::Nat, col[4]);
                push(Role::Destination, col[5]);
                action = col[7];
            }
            None if count >= 5 && is_ip_or_empty(col[3]) && is_ip_or_empty(col[4]) => {
                return Err(ParseError::malformed(
                    NAME,
                    "proxy log: column 5 (destination IP) is not an address",
                ));
            }
            None => {
                return Err(ParseError::malformed(
                    NAME,
                    format!(
                        "{count} columns: not a proxy (IPs in 3-5), DNS (IPs in 4-5) or firewall \
                         (IPs in 8 and 10) log"
                    ),
                ))
            }
        }
        event.action = present(action, &[]).map(Cow::Borrowed);
        event.rule = rule.map(Cow::Borrowed);
        Ok(event)
    }
}

/// Which Umbrella export a row is, by where its addresses are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Dns,
    Firewall,
    Proxy,
}

/// 1-based columns (`col[n]`), missing ones empty, and how many there were.
fn columns(body: &str) -> ([&str; COLUMNS + 1], usize) {
    let mut col = [""; COLUMNS + 1];
    let mut count = 0;
    for (slot, field) in col[1..].iter_mut().zip(CsvFields::new(body, b',')) {
        *slot = field.trim();
        count += 1;
    }
    (col, count)
}

fn shape(col: &[&str; COLUMNS + 1], count: usize) -> Option<Shape> {
    if count >= 6
        && (col[6].eq_ignore_ascii_case("allowed") || col[6].eq_ignore_ascii_case("blocked"))
        && is_ip_or_empty(col[4])
    {
        Some(Shape::Dns)
    } else if count >= 10 && !is_ip_or_empty(col[5]) && is_ip(col[8]) && is_ip(col[10]) {
        Some(Shape::Firewall)
    } else if count >= 5
        && is_ip_or_empty(col[3])
        && is_ip_or_empty(col[4])
        && is_ip_or_empty(col[5])
    {
        Some(Shape::Proxy)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_without_the_address_columns_is_not_detected_and_malformed_when_forced() {
        let line = Line::new(r#""2024-03-01 12:00:06","alice","not-an-ip","also-not","x""#);
        assert!(!Umbrella.detect(&line));
        assert_eq!(Umbrella.parse(&line).unwrap_err().kind(), "malformed");
    }
}
