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
mod blocklist;
mod prefix;
#[cfg(test)]
mod tests;

pub(crate) use blocklist::Blocklist;

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use arc_swap::{ArcSwap, Guard};
use ipnet::IpNet;

/// One configured feed file.
#[derive(Debug, Clone)]
pub struct FeedSpec {
    /// Feed name, reported in every `FeedMatch` (for example `"spamhaus_drop"`).
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
    /// Loads every feed (see `FeedSet::load`) and records each file's modification time and
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

/// What identifies a version of a feed file without reading it (the allow-list file too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fingerprint {
    modified: Option<SystemTime>,
    len: u64,
    #[cfg(unix)]
    file_id: (u64, u64),
}

impl Fingerprint {
    pub(crate) fn of(meta: &std::fs::Metadata) -> Fingerprint {
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
