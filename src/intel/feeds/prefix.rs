//! The longest-prefix-match table behind each feed: one hash set per prefix length, with a
//! fast integer hasher.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hash, Hasher};

/// Address bits of one family.
pub(super) trait AddrBits: Copy + Eq + Hash {
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
pub(super) struct PrefixTable<T> {
    /// Sorted by prefix length, longest first.
    by_len: Vec<(u8, HashSet<T, BuildHasherDefault<PrefixHasher>>)>,
}

impl<T> Default for PrefixTable<T> {
    fn default() -> Self {
        PrefixTable { by_len: Vec::new() }
    }
}

impl<T: AddrBits> PrefixTable<T> {
    pub(super) fn insert(&mut self, network: T, len: u8) {
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

    pub(super) fn longest(&self, addr: T) -> Option<(T, u8)> {
        self.by_len.iter().find_map(|(len, set)| {
            let network = addr.masked(*len);
            set.contains(&network).then_some((network, *len))
        })
    }

    pub(super) fn len(&self) -> usize {
        self.by_len.iter().map(|(_, set)| set.len()).sum()
    }

    pub(super) fn shrink_to_fit(&mut self) {
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
