//! The allow-list: addresses an analyst cleared, with why, who, and until when.
//!
//! # File format
//!
//! One entry per line, fields separated by `|`, surrounding whitespace trimmed:
//!
//! ```text
//! # cidr or address   | reason                     | owner              | expires (optional)
//! 203.0.113.0/28      | corporate VPN egress       | netops@example.com |
//! 198.51.100.7        | authorised pentest PT-2291 | secops             | 2027-01-31
//! 2001:db8:feed::/48  | partner SFTP               | it-partners        | 2027-06-30T18:00:00Z
//! ```
//!
//! * The address is a CIDR or a bare address (a host route); host bits are cleared, and an
//!   IPv4-mapped IPv6 CIDR (`::ffff:a.b.c.d/n`, `n >= 96`) is the IPv4 CIDR. `/0` is refused:
//!   it would clear every address.
//! * `reason` and `owner` are required and non-empty (an entry nobody can explain or answer for
//!   is how allow-lists rot).
//! * `expires` is optional: an RFC 3339 UTC time (`2027-06-30T18:00:00Z`), or a date
//!   (`2027-01-31`), which holds through that whole day (UTC): the entry stops matching at
//!   the next day's 00:00 UTC. An expired entry stays in the file but no longer matches.
//! * Blank lines and lines starting with `#` are skipped. A UTF-8 BOM and `\r` are stripped;
//!   invalid UTF-8 is replaced. Any other line that does not parse is skipped and reported
//!   with its line number and why ([`Allowlist::skipped`]), like a feed's.
//!
//! Matching is a scan of the entries as `(network, mask)` integer pairs: no allocation, no
//! locking. Allow-lists are hand-kept and short (hundreds of entries, not a feed's millions).
//!
//! No logging and no metrics here: the caller reports skipped lines and reloads.

use std::fs::File;
use std::io::{self, Read};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use arc_swap::{ArcSwap, Guard};
use ipnet::IpNet;

use crate::intel::feeds::Fingerprint;

/// How many skipped lines are kept for the report.
const SKIPPED_SAMPLES: usize = 10;
/// How many characters of a skipped line are kept.
const SAMPLE_CHARS: usize = 120;

/// One allow-list entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowEntry {
    /// The cleared network (canonical: host bits cleared, IPv4-mapped made IPv4).
    pub net: IpNet,
    /// Why it is cleared.
    pub reason: String,
    /// Who answers for it.
    pub owner: String,
    /// When it stops matching; `None`: never.
    pub expires: Option<SystemTime>,
    /// Its line in the file (1-based).
    pub line: usize,
}

impl AllowEntry {
    /// Whether the entry still matches at `now`.
    pub fn active_at(&self, now: SystemTime) -> bool {
        self.expires.is_none_or(|until| now < until)
    }

    /// Whether `ip` (canonical) is inside the entry's network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.net.contains(&ip)
    }
}

/// A line that was not an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedLine {
    /// Line number (1-based).
    pub line: usize,
    /// The line, cut to a few dozen characters.
    pub text: String,
    /// Why it was skipped.
    pub why: &'static str,
}

/// A parsed allow-list, immutable once built.
#[derive(Debug, Default)]
pub struct Allowlist {
    entries: Vec<AllowEntry>,
    /// `(network, mask, index into entries)`.
    v4: Vec<(u32, u32, usize)>,
    /// `(network, mask, index into entries)`.
    v6: Vec<(u128, u128, usize)>,
    skipped_count: usize,
    skipped: Vec<SkippedLine>,
}

impl Allowlist {
    /// Parses the file's text. Never fails: lines that are not entries are counted, and the
    /// first few kept with their line numbers.
    pub fn parse(text: &str) -> Allowlist {
        let mut list = Allowlist::default();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match parse_entry(line, index + 1) {
                Ok(entry) => list.push(entry),
                Err(why) => {
                    list.skipped_count += 1;
                    if list.skipped.len() < SKIPPED_SAMPLES {
                        list.skipped.push(SkippedLine {
                            line: index + 1,
                            text: line.chars().take(SAMPLE_CHARS).collect(),
                            why,
                        });
                    }
                }
            }
        }
        list
    }

    fn push(&mut self, entry: AllowEntry) {
        let index = self.entries.len();
        match entry.net {
            IpNet::V4(n) => self
                .v4
                .push((u32::from(n.network()), u32::from(n.netmask()), index)),
            IpNet::V6(n) => self
                .v6
                .push((u128::from(n.network()), u128::from(n.netmask()), index)),
        }
        self.entries.push(entry);
    }

    /// The first entry (in file order) that clears `ip` at `now`; expired entries never do.
    /// `ip` is taken as the address it carries when IPv4-mapped.
    pub fn matching(&self, ip: IpAddr, now: SystemTime) -> Option<&AllowEntry> {
        let active = |&index: &usize| self.entries[index].active_at(now);
        let index = match ip.to_canonical() {
            IpAddr::V4(v4) => {
                let bits = u32::from(v4);
                self.v4
                    .iter()
                    .filter(|&&(net, mask, _)| bits & mask == net)
                    .map(|&(_, _, i)| i)
                    .find(active)
            }
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                self.v6
                    .iter()
                    .filter(|&&(net, mask, _)| bits & mask == net)
                    .map(|&(_, _, i)| i)
                    .find(active)
            }
        };
        index.map(|i| &self.entries[i])
    }

    /// Every entry, expired or not, in file order.
    pub fn entries(&self) -> &[AllowEntry] {
        &self.entries
    }

    /// Entries that still match at `now`.
    pub fn active_count(&self, now: SystemTime) -> usize {
        self.entries.iter().filter(|e| e.active_at(now)).count()
    }

    /// Lines that were not entries.
    pub fn skipped_count(&self) -> usize {
        self.skipped_count
    }

    /// The first few of them, with line numbers and why.
    pub fn skipped(&self) -> &[SkippedLine] {
        &self.skipped
    }

    /// The entries of `self` that match at `now` and whose network no entry of `old` matched
    /// at `now`: what a reload newly cleared (a withdrawal is due for what they cover).
    pub fn newly_active(&self, old: &Allowlist, now: SystemTime) -> Vec<AllowEntry> {
        self.entries
            .iter()
            .filter(|e| e.active_at(now))
            .filter(|e| {
                !old.entries
                    .iter()
                    .any(|o| o.net == e.net && o.active_at(now))
            })
            .cloned()
            .collect()
    }
}

/// One line as an entry, or why not.
fn parse_entry(line: &str, number: usize) -> Result<AllowEntry, &'static str> {
    let fields: Vec<&str> = line.split('|').map(str::trim).collect();
    let (address, reason, owner, expires) = match fields[..] {
        [a, r, o] => (a, r, o, ""),
        [a, r, o, e] => (a, r, o, e),
        _ => return Err("expected `cidr | reason | owner` and an optional `| expires`"),
    };
    let net = address
        .parse::<IpNet>()
        .or_else(|_| address.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| "not an IP address or CIDR")?;
    let net = canonical(net);
    if net.prefix_len() == 0 {
        return Err("a /0 entry would clear every address");
    }
    if reason.is_empty() {
        return Err("the reason is empty");
    }
    if owner.is_empty() {
        return Err("the owner is empty");
    }
    let expires = if expires.is_empty() {
        None
    } else {
        Some(parse_expiry(expires).ok_or(
            "expires is neither a date (2027-01-31) nor an RFC 3339 UTC time \
             (2027-01-31T18:00:00Z)",
        )?)
    };
    Ok(AllowEntry {
        net,
        reason: reason.to_owned(),
        owner: owner.to_owned(),
        expires,
        line: number,
    })
}

/// A date holds through that day: it ends at the next 00:00 UTC.
fn parse_expiry(text: &str) -> Option<SystemTime> {
    if text.len() == 10 {
        let midnight = humantime::parse_rfc3339(&format!("{text}T00:00:00Z")).ok()?;
        return Some(midnight + Duration::from_secs(86_400));
    }
    humantime::parse_rfc3339(text).ok()
}

/// Host bits cleared; an IPv4-mapped IPv6 CIDR (prefix >= 96) as its IPv4 CIDR.
fn canonical(net: IpNet) -> IpNet {
    match net.trunc() {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.network().to_ipv4_mapped() {
            Some(v4) => {
                ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(IpNet::V6(v6), IpNet::V4)
            }
            None => IpNet::V6(v6),
        },
        other => other,
    }
}

/// The allow-list file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("allow-list: cannot read {}: {error}", path.display())]
pub struct AllowlistError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub error: io::Error,
}

/// What a reload that found a changed file did.
#[derive(Debug)]
pub struct Reloaded {
    /// Entries newly matching (see [`Allowlist::newly_active`]).
    pub added: Vec<AllowEntry>,
}

/// The allow-list file, swapped atomically on reload; readers never block.
#[derive(Debug)]
pub struct AllowlistFile {
    path: PathBuf,
    current: ArcSwap<Allowlist>,
    /// The fingerprint of the file behind `current`; the mutex also serialises reloads.
    loaded: Mutex<Fingerprint>,
}

impl AllowlistFile {
    /// Reads and parses the file (blocking I/O).
    pub fn load(path: &Path) -> Result<AllowlistFile, AllowlistError> {
        let (list, fingerprint) = read(path)?;
        Ok(AllowlistFile {
            path: path.to_path_buf(),
            current: ArcSwap::from_pointee(list),
            loaded: Mutex::new(fingerprint),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current list. Cheap and lock-free; do not hold the guard for long.
    pub fn current(&self) -> Guard<Arc<Allowlist>> {
        self.current.load()
    }

    /// Re-reads the file when its modification time, length or inode changed, and swaps the
    /// new list in: `Ok(Some)` with the entries newly matching at `now`, `Ok(None)` when the
    /// file did not change. On error the old list stays in use and the next call tries again.
    /// Blocking I/O: run it off the async runtime.
    pub fn reload_if_changed(&self, now: SystemTime) -> Result<Option<Reloaded>, AllowlistError> {
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        let meta = std::fs::metadata(&self.path).map_err(|error| AllowlistError {
            path: self.path.clone(),
            error,
        })?;
        if Fingerprint::of(&meta) == *loaded {
            return Ok(None);
        }
        let (list, fingerprint) = read(&self.path)?;
        let added = list.newly_active(&self.current.load(), now);
        self.current.store(Arc::new(list));
        *loaded = fingerprint;
        Ok(Some(Reloaded { added }))
    }
}

/// Reads one version of the file; the fingerprint is taken from the open file before reading,
/// so a write racing the read is picked up by the next reload.
fn read(path: &Path) -> Result<(Allowlist, Fingerprint), AllowlistError> {
    let failed = |error| AllowlistError {
        path: path.to_path_buf(),
        error,
    };
    let mut file = File::open(path).map_err(failed)?;
    let meta = file.metadata().map_err(failed)?;
    if meta.is_dir() {
        return Err(failed(io::Error::other("is a directory")));
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(failed)?;
    Ok((
        Allowlist::parse(&String::from_utf8_lossy(&bytes)),
        Fingerprint::of(&meta),
    ))
}

#[cfg(test)]
#[path = "allowlist_tests.rs"]
mod tests;
