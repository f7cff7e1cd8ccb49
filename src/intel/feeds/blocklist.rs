//! One feed file's text parsed into prefix tables: the line formats (plain CIDR or address,
//! Spamhaus DROP text and NDJSON, IPsum), canonical prefixes, and counted unparseable lines.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::prefix::PrefixTable;

/// How many unparseable lines [`Blocklist::first_skipped`] keeps.
const SKIPPED_SAMPLES: usize = 5;
/// How many characters of an unparseable line are kept in a sample.
pub(super) const SAMPLE_CHARS: usize = 120;
/// A parsed feed: its prefixes, plus how many lines were skipped as unparseable and the first
/// few of those for a warning.
pub struct Blocklist {
    pub(super) name: Arc<str>,
    v4: PrefixTable<u32>,
    v6: PrefixTable<u128>,
    skipped_lines: usize,
    first_skipped: Vec<(usize, String)>,
}

impl Blocklist {
    /// Parses a feed's text. Never fails: unparseable lines are counted and sampled.
    pub fn parse(name: &str, text: &str) -> Blocklist {
        let mut list = Blocklist {
            name: Arc::from(name),
            v4: PrefixTable::default(),
            v6: PrefixTable::default(),
            skipped_lines: 0,
            first_skipped: Vec::new(),
        };
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
            match parse_line(line) {
                Line::Ignored => {}
                Line::Entry(IpNet::V4(net)) => {
                    list.v4.insert(u32::from(net.network()), net.prefix_len());
                }
                Line::Entry(IpNet::V6(net)) => {
                    list.v6.insert(u128::from(net.network()), net.prefix_len());
                }
                Line::Junk => {
                    list.skipped_lines += 1;
                    if list.first_skipped.len() < SKIPPED_SAMPLES {
                        let sample = line.chars().take(SAMPLE_CHARS).collect();
                        list.first_skipped.push((index + 1, sample));
                    }
                }
            }
        }
        list.v4.shrink_to_fit();
        list.v6.shrink_to_fit();
        list
    }

    /// Feed name, as configured.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of distinct prefixes (IPv4 and IPv6).
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// True when the feed has no prefixes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of non-comment lines that could not be parsed.
    pub fn skipped_lines(&self) -> usize {
        self.skipped_lines
    }

    /// The first few unparseable lines as `(1-based line number, trimmed text)`; the text is
    /// cut at 120 characters.
    pub fn first_skipped(&self) -> &[(usize, String)] {
        &self.first_skipped
    }

    /// Longest matching prefix in this feed. IPv4-mapped IPv6 addresses are looked up as IPv4.
    pub fn longest_match(&self, ip: IpAddr) -> Option<IpNet> {
        self.match_canonical(ip.to_canonical())
    }

    pub(super) fn match_canonical(&self, ip: IpAddr) -> Option<IpNet> {
        match ip {
            IpAddr::V4(v4) => {
                let (bits, len) = self.v4.longest(u32::from(v4))?;
                Ipv4Net::new(Ipv4Addr::from(bits), len).ok().map(IpNet::V4)
            }
            IpAddr::V6(v6) => {
                let (bits, len) = self.v6.longest(u128::from(v6))?;
                Ipv6Net::new(Ipv6Addr::from(bits), len).ok().map(IpNet::V6)
            }
        }
    }
}

impl fmt::Debug for Blocklist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blocklist")
            .field("name", &self.name)
            .field("v4_prefixes", &self.v4.len())
            .field("v6_prefixes", &self.v6.len())
            .field("skipped_lines", &self.skipped_lines)
            .finish_non_exhaustive()
    }
}
/// What one trimmed line holds.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// Blank, comment, or a JSON object without `cidr`.
    Ignored,
    /// A prefix, host bits cleared, IPv4-mapped IPv6 turned into IPv4.
    Entry(IpNet),
    /// Something that should have been an entry but does not parse.
    Junk,
}

fn parse_line(line: &str) -> Line {
    if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
        return Line::Ignored;
    }
    if line.starts_with('{') {
        return match json_cidr(line) {
            JsonCidr::Absent => Line::Ignored,
            JsonCidr::Value(value) => parse_value(value),
            JsonCidr::Malformed => Line::Junk,
        };
    }
    let value = line
        .split(|c: char| c.is_whitespace() || c == ';' || c == '#')
        .next()
        .unwrap_or(line);
    parse_value(value)
}

/// The `cidr` member of a one-line JSON object.
enum JsonCidr<'a> {
    Absent,
    Value(&'a str),
    Malformed,
}

/// Finds `"cidr": "<value>"` with a plain string scan (values never need unescaping).
fn json_cidr(line: &str) -> JsonCidr<'_> {
    const KEY: &str = "\"cidr\"";
    let mut rest = line;
    while let Some(pos) = rest.find(KEY) {
        rest = &rest[pos + KEY.len()..];
        // A key is followed by a colon; the string "cidr" used as a value is not.
        let Some(after_colon) = rest.trim_start().strip_prefix(':') else {
            continue;
        };
        return match after_colon.trim_start().strip_prefix('"') {
            Some(quoted) => match quoted.split_once('"') {
                Some((value, _)) => JsonCidr::Value(value.trim()),
                None => JsonCidr::Malformed,
            },
            None => JsonCidr::Malformed,
        };
    }
    JsonCidr::Absent
}

fn parse_value(value: &str) -> Line {
    let net = match value.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => match value.parse::<IpAddr>() {
            Ok(addr) => IpNet::from(addr),
            Err(_) => return Line::Junk,
        },
    };
    let net = canonical_net(net);
    if net.prefix_len() == 0 {
        return Line::Junk;
    }
    Line::Entry(net)
}

/// Clears host bits and turns an IPv4-mapped IPv6 CIDR (prefix >= 96) into its IPv4 CIDR.
fn canonical_net(net: IpNet) -> IpNet {
    match net.trunc() {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.network().to_ipv4_mapped() {
            Some(v4) => Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(IpNet::V6(v6), IpNet::V4),
            None => IpNet::V6(v6),
        },
        other => other,
    }
}
