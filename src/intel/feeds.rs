//! Local blocklist feeds with longest-prefix match, reloaded when their files change.
//!
//! # Contract
//!
//! * **In:** a list of [`FeedSpec`]s (name + file path). Each file is a blocklist in one of the
//!   common text formats, one entry per line:
//!   * plain CIDR or bare address per line, `#` comments (FireHOL netsets, most lists);
//!   * `203.0.113.0/24 ; SBL000001` (Spamhaus DROP/EDROP text);
//!   * `203.0.113.45<TAB>7` (IPsum: address, then a count);
//!   * `{"cidr":"203.0.113.0/24","sblid":"SBL000001","rir":"apnic"}` (Spamhaus DROP NDJSON).
//!
//!   A UTF-8 BOM, `\r` and surrounding whitespace are stripped; invalid UTF-8 is replaced, not
//!   fatal. The value is cut at the first whitespace, `;` or `#`, then parsed as a CIDR or a
//!   bare IPv4/IPv6 address (a host route). Host bits are cleared, and IPv4-mapped IPv6
//!   (`::ffff:a.b.c.d/n`, `n >= 96`) becomes the IPv4 CIDR.
//! * **Out:** [`FeedSet::lookup`] returns, per feed that lists an address, its longest matching
//!   prefix as a [`FeedMatch`], in configured order. [`LocalFeeds`] holds the current
//!   [`FeedSet`] behind an atomic pointer; readers never block and
//!   [`LocalFeeds::reload_if_changed`] swaps in a new set only when every file loads.
//! * **Dropped:** blank lines, comment lines (`#` or `;`), JSON objects without a `cidr` key
//!   (such as Spamhaus' trailing `{"type":"metadata",...}` line) and duplicate prefixes are
//!   skipped silently. Unparseable lines, and `/0` prefixes (which would match every address
//!   and always indicate a broken feed), are skipped and counted
//!   ([`Blocklist::skipped_lines`], with the first few in [`Blocklist::first_skipped`]) so the
//!   caller can warn. A feed with no entries at all is an error ([`FeedError::EmptyFeed`]).
//!
//! No logging and no metrics here: the caller logs the returned errors and skipped-line samples.
//! Loading and reloading do blocking file I/O; lookups are allocation-free when nothing matches.

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use arc_swap::{ArcSwap, Guard};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// How many unparseable lines [`Blocklist::first_skipped`] keeps.
const SKIPPED_SAMPLES: usize = 5;
/// How many characters of an unparseable line are kept in a sample.
const SAMPLE_CHARS: usize = 120;

/// One configured feed file.
#[derive(Debug, Clone)]
pub struct FeedSpec {
    /// Feed name, reported in every [`FeedMatch`] (for example `"spamhaus_drop"`).
    pub name: String,
    /// Path of the feed file.
    pub path: PathBuf,
}

/// Why a feed could not be loaded. The message always names the feed and its path.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The file could not be opened, inspected or read (missing, permissions, a directory).
    #[error("feed {name:?}: cannot read {}: {error}", path.display())]
    ReadFailed {
        /// Feed name.
        name: String,
        /// Path of the feed file.
        path: PathBuf,
        /// The I/O error (its text is part of this error's message).
        error: io::Error,
    },
    /// The file was read but yielded no entries: probably the wrong file, or an error page.
    #[error(
        "feed {name:?}: {} has no usable entries ({skipped_lines} unparseable lines)",
        path.display()
    )]
    EmptyFeed {
        /// Feed name.
        name: String,
        /// Path of the feed file.
        path: PathBuf,
        /// Non-comment lines that could not be parsed.
        skipped_lines: usize,
    },
}

impl FeedError {
    /// Short bounded label for metrics: `"read_failed"` or `"empty_feed"`.
    pub fn kind(&self) -> &'static str {
        match self {
            FeedError::ReadFailed { .. } => "read_failed",
            FeedError::EmptyFeed { .. } => "empty_feed",
        }
    }

    /// Path of the feed file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            FeedError::ReadFailed { path, .. } | FeedError::EmptyFeed { path, .. } => path,
        }
    }
}

/// A parsed feed: its prefixes, plus how many lines were skipped as unparseable and the first
/// few of those for a warning.
pub struct Blocklist {
    name: Arc<str>,
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

    fn match_canonical(&self, ip: IpAddr) -> Option<IpNet> {
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

/// One feed hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedMatch {
    /// Name of the feed that lists the address.
    pub feed: Arc<str>,
    /// The feed's longest prefix containing the address.
    pub cidr: IpNet,
    /// True when the prefix is a host route (`/32` or `/128`).
    pub exact: bool,
}

/// All feeds, immutable once built.
#[derive(Debug, Default)]
pub struct FeedSet {
    feeds: Vec<Blocklist>,
}

impl FeedSet {
    /// Reads and parses every feed file, in order.
    ///
    /// Fails on the first file that cannot be read ([`FeedError::ReadFailed`]) or that yields
    /// no entries ([`FeedError::EmptyFeed`]); both name the path.
    pub fn load(specs: &[FeedSpec]) -> Result<FeedSet, FeedError> {
        load_all(specs).map(|(set, _)| set)
    }

    /// One match per feed that lists the address (its longest prefix), in configured order.
    /// Does not allocate when nothing matches.
    pub fn lookup(&self, ip: IpAddr) -> Vec<FeedMatch> {
        let ip = ip.to_canonical();
        let mut matches = Vec::new();
        for feed in &self.feeds {
            if let Some(cidr) = feed.match_canonical(ip) {
                matches.push(FeedMatch {
                    feed: Arc::clone(&feed.name),
                    cidr,
                    exact: cidr.prefix_len() == cidr.max_prefix_len(),
                });
            }
        }
        matches
    }

    /// The feeds, in configured order.
    pub fn feeds(&self) -> impl Iterator<Item = &Blocklist> {
        self.feeds.iter()
    }

    /// Sum of [`Blocklist::len`] over all feeds.
    pub fn total_entries(&self) -> usize {
        self.feeds.iter().map(Blocklist::len).sum()
    }
}

/// Feeds swapped atomically; readers never block.
pub struct LocalFeeds {
    specs: Vec<FeedSpec>,
    current: ArcSwap<FeedSet>,
    /// Fingerprints of the files behind `current`, one per spec. The mutex also serialises
    /// reloads; readers never take it.
    loaded: Mutex<Vec<Fingerprint>>,
}

impl LocalFeeds {
    /// Loads every feed (see [`FeedSet::load`]) and records each file's modification time and
    /// length (and, on Unix, device and inode, so an atomic rename over the file is noticed).
    pub fn load(specs: Vec<FeedSpec>) -> Result<LocalFeeds, FeedError> {
        let (set, fingerprints) = load_all(&specs)?;
        Ok(LocalFeeds {
            specs,
            current: ArcSwap::from_pointee(set),
            loaded: Mutex::new(fingerprints),
        })
    }

    /// The current feed set. Cheap and lock-free; do not hold the guard for long (use
    /// `Arc::clone(&guard)` to keep the set).
    pub fn current(&self) -> Guard<Arc<FeedSet>> {
        self.current.load()
    }

    /// Re-reads all feeds when any file's modification time or length (or, on Unix, inode)
    /// changed. On success swaps the new set in and returns `Ok(true)`; returns `Ok(false)` when
    /// nothing changed; on error keeps serving the old set and returns the error, and the next
    /// call tries again.
    ///
    /// Blocking I/O: run it off the async runtime (`spawn_blocking`). Concurrent calls are
    /// serialised. A rewrite that keeps both the length and the modification time (within the
    /// file system's timestamp resolution) is not noticed.
    pub fn reload_if_changed(&self) -> Result<bool, FeedError> {
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        let mut changed = false;
        for (spec, old) in self.specs.iter().zip(loaded.iter()) {
            let meta = std::fs::metadata(&spec.path).map_err(|e| read_failed(spec, e))?;
            if Fingerprint::of(&meta) != *old {
                changed = true;
                break;
            }
        }
        if !changed {
            return Ok(false);
        }
        let (set, fingerprints) = load_all(&self.specs)?;
        self.current.store(Arc::new(set));
        *loaded = fingerprints;
        Ok(true)
    }
}

impl fmt::Debug for LocalFeeds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalFeeds")
            .field("specs", &self.specs)
            .field("current", &self.current.load())
            .finish_non_exhaustive()
    }
}

/// What identifies a version of a feed file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    modified: Option<SystemTime>,
    len: u64,
    #[cfg(unix)]
    file_id: (u64, u64),
}

impl Fingerprint {
    fn of(meta: &std::fs::Metadata) -> Fingerprint {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt;
        Fingerprint {
            modified: meta.modified().ok(),
            len: meta.len(),
            #[cfg(unix)]
            file_id: (meta.dev(), meta.ino()),
        }
    }
}

fn read_failed(spec: &FeedSpec, error: io::Error) -> FeedError {
    FeedError::ReadFailed {
        name: spec.name.clone(),
        path: spec.path.clone(),
        error,
    }
}

fn load_all(specs: &[FeedSpec]) -> Result<(FeedSet, Vec<Fingerprint>), FeedError> {
    let mut feeds = Vec::with_capacity(specs.len());
    let mut fingerprints = Vec::with_capacity(specs.len());
    for spec in specs {
        let (list, fingerprint) = load_one(spec)?;
        feeds.push(list);
        fingerprints.push(fingerprint);
    }
    Ok((FeedSet { feeds }, fingerprints))
}

/// Reads one feed. The fingerprint is taken from the open file before reading, so a write that
/// races with the read changes the file's fingerprint and is picked up by the next reload.
fn load_one(spec: &FeedSpec) -> Result<(Blocklist, Fingerprint), FeedError> {
    let mut file = File::open(&spec.path).map_err(|e| read_failed(spec, e))?;
    let meta = file.metadata().map_err(|e| read_failed(spec, e))?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.read_to_end(&mut bytes)
        .map_err(|e| read_failed(spec, e))?;
    let list = Blocklist::parse(&spec.name, &String::from_utf8_lossy(&bytes));
    if list.is_empty() {
        return Err(FeedError::EmptyFeed {
            name: spec.name.clone(),
            path: spec.path.clone(),
            skipped_lines: list.skipped_lines(),
        });
    }
    Ok((list, Fingerprint::of(&meta)))
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

/// Address bits of one family.
trait AddrBits: Copy + Eq + Hash {
    const WIDTH: u8;
    /// Keeps the first `len` bits (`len <= WIDTH`).
    fn masked(self, len: u8) -> Self;
}

impl AddrBits for u32 {
    const WIDTH: u8 = 32;
    fn masked(self, len: u8) -> u32 {
        u32::MAX
            .checked_shl(u32::from(Self::WIDTH.saturating_sub(len)))
            .map_or(0, |mask| self & mask)
    }
}

impl AddrBits for u128 {
    const WIDTH: u8 = 128;
    fn masked(self, len: u8) -> u128 {
        u128::MAX
            .checked_shl(u32::from(Self::WIDTH.saturating_sub(len)))
            .map_or(0, |mask| self & mask)
    }
}

/// Longest-prefix-match table: one hash set of masked networks per prefix length present,
/// probed from the longest length down. Lookups hash at most one key per present length and
/// never allocate.
struct PrefixTable<T> {
    /// Sorted by prefix length, longest first.
    by_len: Vec<(u8, HashSet<T, BuildHasherDefault<PrefixHasher>>)>,
}

impl<T> Default for PrefixTable<T> {
    fn default() -> Self {
        PrefixTable { by_len: Vec::new() }
    }
}

impl<T: AddrBits> PrefixTable<T> {
    fn insert(&mut self, network: T, len: u8) {
        let network = network.masked(len);
        match self.by_len.binary_search_by(|(l, _)| len.cmp(l)) {
            Ok(i) => {
                self.by_len[i].1.insert(network);
            }
            Err(i) => {
                let mut set = HashSet::default();
                set.insert(network);
                self.by_len.insert(i, (len, set));
            }
        }
    }

    fn longest(&self, addr: T) -> Option<(T, u8)> {
        self.by_len.iter().find_map(|(len, set)| {
            let network = addr.masked(*len);
            set.contains(&network).then_some((network, *len))
        })
    }

    fn len(&self) -> usize {
        self.by_len.iter().map(|(_, set)| set.len()).sum()
    }

    fn shrink_to_fit(&mut self) {
        for (_, set) in &mut self.by_len {
            set.shrink_to_fit();
        }
    }
}

/// Fast hasher for integer keys (folded 64x64->128 multiply). Keys come from the operator's feed
/// files, not from events, so resistance to chosen-key flooding is not needed.
#[derive(Default)]
struct PrefixHasher(u64);

impl PrefixHasher {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;

    fn mix(&mut self, word: u64) {
        let product = u128::from(self.0 ^ word) * u128::from(Self::K);
        self.0 = (product as u64) ^ ((product >> 64) as u64);
    }
}

impl Hasher for PrefixHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.mix(u64::from(byte));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.mix(u64::from(n));
    }

    fn write_u128(&mut self, n: u128) {
        self.mix(n as u64);
        self.mix((n >> 64) as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn ip(s: &str) -> IpAddr {
        IpAddr::from_str(s).unwrap_or_else(|e| panic!("bad test address {s}: {e}"))
    }

    fn net(s: &str) -> IpNet {
        IpNet::from_str(s).unwrap_or_else(|e| panic!("bad test cidr {s}: {e}"))
    }

    fn matched(list: &Blocklist, addr: &str) -> Option<IpNet> {
        list.longest_match(ip(addr))
    }

    #[test]
    fn plain_lines_firehol_netset() {
        let text = "\
#
# firehol_level1
#
# ipv4 hash:net ipset
#
192.0.2.0/24
198.51.100.7
203.0.113.64/26
";
        let list = Blocklist::parse("firehol_level1", text);
        assert_eq!(list.name(), "firehol_level1");
        assert_eq!(list.len(), 3);
        assert!(!list.is_empty());
        assert_eq!(list.skipped_lines(), 0);
        assert!(list.first_skipped().is_empty());
        assert_eq!(matched(&list, "192.0.2.77"), Some(net("192.0.2.0/24")));
        assert_eq!(matched(&list, "198.51.100.7"), Some(net("198.51.100.7/32")));
        assert_eq!(matched(&list, "198.51.100.8"), None);
        assert_eq!(
            matched(&list, "203.0.113.127"),
            Some(net("203.0.113.64/26"))
        );
        assert_eq!(matched(&list, "203.0.113.128"), None);
    }

    #[test]
    fn spamhaus_drop_text() {
        let text = "\
; Spamhaus DROP List 2024/01/01 - (c) 2024 The Spamhaus Project SLU
; Last-Modified: Mon, 01 Jan 2024 00:00:00 GMT
; Expires: Mon, 01 Jan 2024 01:00:00 GMT
192.0.2.0/24 ; SBL000001
198.51.100.0/25;SBL000002
203.0.113.0/24	; SBL000003
";
        let list = Blocklist::parse("spamhaus_drop", text);
        assert_eq!(list.len(), 3);
        assert_eq!(list.skipped_lines(), 0);
        assert_eq!(matched(&list, "198.51.100.1"), Some(net("198.51.100.0/25")));
        assert_eq!(matched(&list, "198.51.100.200"), None);
        assert_eq!(matched(&list, "203.0.113.9"), Some(net("203.0.113.0/24")));
    }

    #[test]
    fn spamhaus_drop_ndjson() {
        let text = concat!(
            r#"{"cidr":"192.0.2.0/24","sblid":"SBL000001","rir":"apnic"}"#,
            "\n",
            r#"{ "sblid": "SBL000002", "cidr" : "198.51.100.0/24", "rir": "ripencc" }"#,
            "\n",
            r#"{"cidr":"2001:db8::/32","sblid":"SBL000003","rir":"arin"}"#,
            "\n",
            r#"{"note":"cidr","cidr":"203.0.113.0/25"}"#,
            "\n",
            r#"{"cidr":"not-an-address","sblid":"SBL000004"}"#,
            "\n",
            r#"{"cidr":12}"#,
            "\n",
            r#"{"type":"metadata","timestamp":1704067200,"size":4,"records":4}"#,
            "\n",
        );
        let list = Blocklist::parse("spamhaus_drop_json", text);
        assert_eq!(list.len(), 4);
        assert_eq!(matched(&list, "192.0.2.1"), Some(net("192.0.2.0/24")));
        assert_eq!(matched(&list, "198.51.100.1"), Some(net("198.51.100.0/24")));
        assert_eq!(matched(&list, "2001:db8:1::1"), Some(net("2001:db8::/32")));
        assert_eq!(matched(&list, "203.0.113.1"), Some(net("203.0.113.0/25")));
        assert_eq!(list.skipped_lines(), 2);
        assert_eq!(list.first_skipped()[0].0, 5);
        assert_eq!(list.first_skipped()[1].0, 6);
    }

    #[test]
    fn ipsum_tab_separated_counts() {
        let text = "\
# IPsum Threat Intelligence Feed
# (https://github.com/stamparm/ipsum)
#
# IP	number of (black)lists
#
203.0.113.45\t7
198.51.100.3\t3
";
        let list = Blocklist::parse("ipsum", text);
        assert_eq!(list.len(), 2);
        assert_eq!(list.skipped_lines(), 0);
        assert_eq!(matched(&list, "203.0.113.45"), Some(net("203.0.113.45/32")));
        assert_eq!(matched(&list, "203.0.113.46"), None);
    }

    #[test]
    fn bom_crlf_whitespace_and_trailing_comments() {
        let text = "\u{feff}192.0.2.1\r\n  198.51.100.0/24   # trailing\r\n\r\n\t203.0.113.9#x\r\n";
        let list = Blocklist::parse("crlf", text);
        assert_eq!(list.len(), 3);
        assert_eq!(list.skipped_lines(), 0);
        assert_eq!(matched(&list, "192.0.2.1"), Some(net("192.0.2.1/32")));
        assert_eq!(matched(&list, "203.0.113.9"), Some(net("203.0.113.9/32")));
    }

    #[test]
    fn host_bits_cleared_duplicates_collapsed() {
        let list = Blocklist::parse("t", "192.0.2.77/24\n192.0.2.0/24\n192.0.2.1/24\n");
        assert_eq!(list.len(), 1);
        assert_eq!(matched(&list, "192.0.2.200"), Some(net("192.0.2.0/24")));
    }

    #[test]
    fn ipv6_entries_and_mapped_addresses() {
        let text = "\
2001:db8::/32
2001:db8:1::/48
2001:db8:1:2::5
::ffff:192.0.2.0/120
::ffff:198.51.100.9
";
        let list = Blocklist::parse("v6", text);
        assert_eq!(list.len(), 5);
        assert_eq!(
            matched(&list, "2001:db8:ffff::1"),
            Some(net("2001:db8::/32"))
        );
        assert_eq!(
            matched(&list, "2001:db8:1:3::1"),
            Some(net("2001:db8:1::/48"))
        );
        assert_eq!(
            matched(&list, "2001:db8:1:2::5"),
            Some(net("2001:db8:1:2::5/128"))
        );
        assert_eq!(matched(&list, "2001:db9::1"), None);
        // Mapped entries became IPv4, and both forms of the address find them.
        assert_eq!(matched(&list, "192.0.2.33"), Some(net("192.0.2.0/24")));
        assert_eq!(
            matched(&list, "::ffff:192.0.2.33"),
            Some(net("192.0.2.0/24"))
        );
        assert_eq!(matched(&list, "198.51.100.9"), Some(net("198.51.100.9/32")));
        // IPv4 entries never match unrelated IPv6.
        assert_eq!(matched(&list, "::c000:221"), None);
    }

    #[test]
    fn junk_lines_counted_with_line_numbers() {
        let text = "\
# header
192.0.2.0/24
not an address
192.0.2.0/33

300.1.2.3
0.0.0.0/0
::/0
198.51.100.0/24
192.0.2.1-192.0.2.9
fe80::1%eth0
";
        let list = Blocklist::parse("junk", text);
        assert_eq!(list.len(), 2);
        assert_eq!(list.skipped_lines(), 7);
        let lines: Vec<usize> = list.first_skipped().iter().map(|(n, _)| *n).collect();
        assert_eq!(lines, vec![3, 4, 6, 7, 8]);
        assert_eq!(list.first_skipped()[0].1, "not an address");
        assert_eq!(list.first_skipped()[2].1, "300.1.2.3");
    }

    #[test]
    fn long_junk_sample_is_truncated() {
        let long = "x".repeat(1000);
        let list = Blocklist::parse("long", &format!("192.0.2.1\n{long}\n"));
        assert_eq!(list.first_skipped()[0].1.len(), SAMPLE_CHARS);
    }

    #[test]
    fn longest_prefix_beats_covering_prefix() {
        let text = "\
198.51.100.0/24
198.51.100.128/25
198.51.100.192/26
198.51.100.200
";
        let list = Blocklist::parse("nested", text);
        assert_eq!(matched(&list, "198.51.100.5"), Some(net("198.51.100.0/24")));
        assert_eq!(
            matched(&list, "198.51.100.130"),
            Some(net("198.51.100.128/25"))
        );
        assert_eq!(
            matched(&list, "198.51.100.199"),
            Some(net("198.51.100.192/26"))
        );
        assert_eq!(
            matched(&list, "198.51.100.200"),
            Some(net("198.51.100.200/32"))
        );
        assert_eq!(
            matched(&list, "198.51.100.201"),
            Some(net("198.51.100.192/26"))
        );
        assert_eq!(matched(&list, "198.51.101.0"), None);
    }

    #[test]
    fn longest_match_agrees_with_linear_scan() {
        let text = "\
192.0.2.0/24
192.0.2.0/25
192.0.2.64/26
192.0.2.65/32
192.0.2.128/28
198.51.100.0/23
2001:db8::/32
2001:db8:8000::/33
2001:db8:8000::1/128
";
        let list = Blocklist::parse("scan", text);
        let nets: Vec<IpNet> = text.lines().map(net).map(|n| n.trunc()).collect();
        let mut probes: Vec<IpAddr> = (0..=255u8)
            .map(|d| IpAddr::V4(Ipv4Addr::new(192, 0, 2, d)))
            .collect();
        probes.extend((0..=255u8).map(|c| IpAddr::V4(Ipv4Addr::new(198, 51, c, 1))));
        for top in [0u16, 1, 0x7fff, 0x8000, 0x8001, 0xffff] {
            probes.push(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, top, 0, 0, 0, 0, 1)));
            probes.push(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb9, top, 0, 0, 0, 0, 1)));
        }
        for addr in probes {
            let expected = nets
                .iter()
                .filter(|n| n.contains(&addr))
                .max_by_key(|n| n.prefix_len())
                .copied();
            assert_eq!(list.longest_match(addr), expected, "{addr}");
        }
    }

    fn write(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    fn spec(name: &str, path: &Path) -> FeedSpec {
        FeedSpec {
            name: name.to_owned(),
            path: path.to_path_buf(),
        }
    }

    #[test]
    fn feed_set_lookup_in_configured_order_with_exact_flag() -> Result<(), FeedError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a.txt");
        let b = dir.path().join("b.json");
        write(&a, "192.0.2.0/24\n192.0.2.10\n");
        write(
            &b,
            "{\"cidr\":\"192.0.2.0/28\",\"sblid\":\"SBL1\"}\n{\"type\":\"metadata\"}\n",
        );
        let set = FeedSet::load(&[spec("zeta", &a), spec("alpha", &b)])?;
        assert_eq!(set.total_entries(), 3);
        let names: Vec<&str> = set.feeds().map(Blocklist::name).collect();
        assert_eq!(names, vec!["zeta", "alpha"]);

        let hits = set.lookup(ip("192.0.2.10"));
        assert_eq!(
            hits,
            vec![
                FeedMatch {
                    feed: Arc::from("zeta"),
                    cidr: net("192.0.2.10/32"),
                    exact: true,
                },
                FeedMatch {
                    feed: Arc::from("alpha"),
                    cidr: net("192.0.2.0/28"),
                    exact: false,
                },
            ]
        );
        let hits = set.lookup(ip("::ffff:192.0.2.100"));
        assert_eq!(hits.len(), 1);
        assert_eq!(&*hits[0].feed, "zeta");
        assert!(!hits[0].exact);

        let miss = set.lookup(ip("198.51.100.1"));
        assert!(miss.is_empty());
        assert_eq!(miss.capacity(), 0, "no allocation on a miss");
        Ok(())
    }

    #[test]
    fn ipv6_host_route_is_exact() -> Result<(), FeedError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("v6.txt");
        write(&a, "2001:db8::1\n2001:db8::/64\n");
        let set = FeedSet::load(&[spec("v6", &a)])?;
        let hits = set.lookup(ip("2001:db8::1"));
        assert_eq!(hits.len(), 1);
        assert!(hits[0].exact);
        assert_eq!(hits[0].cidr, net("2001:db8::1/128"));
        let hits = set.lookup(ip("2001:db8::2"));
        assert!(!hits[0].exact);
        Ok(())
    }

    #[test]
    fn unreadable_path_error_names_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("does-not-exist.txt");
        let err = match FeedSet::load(&[spec("missing", &missing)]) {
            Err(err) => err,
            Ok(_) => panic!("loading a missing file succeeded"),
        };
        assert_eq!(err.kind(), "read_failed");
        assert_eq!(err.path(), missing);
        assert!(
            err.to_string().contains(&missing.display().to_string()),
            "{err}"
        );

        // A directory is not a feed either.
        let err = match FeedSet::load(&[spec("dir", dir.path())]) {
            Err(err) => err,
            Ok(_) => panic!("loading a directory succeeded"),
        };
        assert_eq!(err.kind(), "read_failed");
        assert!(
            err.to_string().contains(&dir.path().display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn empty_feed_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("wrong.html");
        write(&path, "# only a comment\n<html>\n<body>Not Found</body>\n");
        let err = match FeedSet::load(&[spec("wrong", &path)]) {
            Err(err) => err,
            Ok(_) => panic!("loading an empty feed succeeded"),
        };
        assert_eq!(err.kind(), "empty_feed");
        assert!(
            matches!(
                err,
                FeedError::EmptyFeed {
                    skipped_lines: 2,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn invalid_utf8_is_not_fatal() -> Result<(), FeedError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("latin1.txt");
        std::fs::write(
            &path,
            b"# caf\xe9\n192.0.2.0/24 ; \xff\xfe\n\xef\xbb\xbf198.51.100.1\n",
        )
        .expect("write");
        let set = FeedSet::load(&[spec("latin1", &path)])?;
        assert_eq!(set.total_entries(), 2);
        Ok(())
    }

    #[test]
    fn reload_on_change() -> Result<(), FeedError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("feed.txt");
        write(&path, "192.0.2.0/24\n");
        let feeds = LocalFeeds::load(vec![spec("local", &path)])?;
        assert_eq!(feeds.current().lookup(ip("192.0.2.1")).len(), 1);

        // Unchanged.
        assert!(!feeds.reload_if_changed()?);
        assert!(!feeds.reload_if_changed()?);

        // Different content and length.
        let before = Arc::clone(&feeds.current());
        write(&path, "198.51.100.0/24\n203.0.113.7\n");
        assert!(feeds.reload_if_changed()?);
        let now = feeds.current();
        assert!(now.lookup(ip("192.0.2.1")).is_empty());
        assert_eq!(now.lookup(ip("203.0.113.7"))[0].cidr, net("203.0.113.7/32"));
        assert!(now.lookup(ip("203.0.113.7"))[0].exact);
        assert_eq!(now.total_entries(), 2);
        // A reader holding the old set keeps a consistent view.
        assert_eq!(before.lookup(ip("192.0.2.1")).len(), 1);
        drop(now);
        assert!(!feeds.reload_if_changed()?);

        // Deleted: error naming the path, old set still served.
        std::fs::remove_file(&path).expect("remove");
        let err = match feeds.reload_if_changed() {
            Err(err) => err,
            Ok(changed) => panic!("reload of a deleted file returned Ok({changed})"),
        };
        assert_eq!(err.kind(), "read_failed");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        assert_eq!(feeds.current().lookup(ip("203.0.113.7")).len(), 1);
        // Still failing on the next tick, still serving.
        assert!(feeds.reload_if_changed().is_err());
        assert_eq!(feeds.current().total_entries(), 2);

        // Rewritten as an empty feed: error, old set kept.
        write(&path, "# nothing here\n");
        let err = match feeds.reload_if_changed() {
            Err(err) => err,
            Ok(changed) => panic!("reload of an empty feed returned Ok({changed})"),
        };
        assert_eq!(err.kind(), "empty_feed");
        assert_eq!(feeds.current().total_entries(), 2);

        // Restored: picked up again.
        write(&path, "2001:db8::/32\n");
        assert!(feeds.reload_if_changed()?);
        assert_eq!(feeds.current().lookup(ip("2001:db8::1")).len(), 1);
        assert!(feeds.current().lookup(ip("203.0.113.7")).is_empty());
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn reload_notices_atomic_replace_with_same_length() -> Result<(), FeedError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("feed.txt");
        let staging = dir.path().join("feed.txt.tmp");
        write(&path, "192.0.2.1\n");
        let feeds = LocalFeeds::load(vec![spec("local", &path)])?;
        // Same length; the new inode is what changes (mtime may share the same tick).
        write(&staging, "192.0.2.2\n");
        std::fs::rename(&staging, &path).expect("rename");
        assert!(feeds.reload_if_changed()?);
        assert!(feeds.current().lookup(ip("192.0.2.1")).is_empty());
        assert_eq!(feeds.current().lookup(ip("192.0.2.2")).len(), 1);
        Ok(())
    }

    #[test]
    fn load_fails_when_any_feed_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = dir.path().join("good.txt");
        write(&good, "192.0.2.0/24\n");
        let bad = dir.path().join("bad.txt");
        match LocalFeeds::load(vec![spec("good", &good), spec("bad", &bad)]) {
            Err(err) => assert_eq!(err.path(), bad),
            Ok(_) => panic!("load with a missing feed succeeded"),
        }
    }

    #[test]
    fn no_feeds_is_an_empty_set() -> Result<(), FeedError> {
        let feeds = LocalFeeds::load(Vec::new())?;
        assert_eq!(feeds.current().total_entries(), 0);
        assert!(feeds.current().lookup(ip("192.0.2.1")).is_empty());
        assert!(!feeds.reload_if_changed()?);
        Ok(())
    }

    #[test]
    fn masks() {
        assert_eq!(0xffff_ffffu32.masked(0), 0);
        assert_eq!(0xffff_ffffu32.masked(1), 0x8000_0000);
        assert_eq!(0xffff_ffffu32.masked(32), 0xffff_ffff);
        assert_eq!(u128::MAX.masked(0), 0);
        assert_eq!(u128::MAX.masked(128), u128::MAX);
        assert_eq!(u128::MAX.masked(64), u128::MAX << 64);
    }

    #[test]
    fn large_feed_of_host_routes() {
        // 65 536 host routes across 192.0.2.0/24 and 198.51.100.0/24 as IPv6 and IPv4 mixes
        // exercise the hasher with keys that share low bits.
        let mut text = String::new();
        for hi in 0..=255u32 {
            for lo in 0..=255u32 {
                text.push_str(&format!("2001:db8:{hi:x}::{lo:x}\n"));
            }
        }
        text.push_str("192.0.2.0/24\n");
        let list = Blocklist::parse("big", &text);
        assert_eq!(list.len(), 65_537);
        assert_eq!(
            list.longest_match(ip("2001:db8:ff::ff")),
            Some(net("2001:db8:ff::ff/128"))
        );
        assert_eq!(list.longest_match(ip("2001:db8:ff::100")), None);
        assert_eq!(
            list.longest_match(ip("192.0.2.5")),
            Some(net("192.0.2.0/24"))
        );
    }
}
