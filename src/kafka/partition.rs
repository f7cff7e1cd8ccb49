//! Partition of a key as Java clients and librdkafka's `murmur2_random` partitioner pick it:
//! `toPositive(murmur2(key)) % partitions` (Kafka's `Utils.murmur2`, seed `0x9747b28c`). Pure.
//!
//! Every producer of the daemon sets `partitioner=murmur2_random`, so an address's sightings,
//! state and records land on the partition this returns; the owner uses it to tell which of its
//! addresses belong to a revoked partition (design §10).

/// Kafka's `Utils.murmur2` of `data`, as a signed 32-bit value (as Java returns it).
pub(crate) fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        // Java's switch falls through from the longest tail down.
        if tail.len() >= 3 {
            h ^= u32::from(tail[2]) << 16;
        }
        if tail.len() >= 2 {
            h ^= u32::from(tail[1]) << 8;
        }
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of `key` among `partitions` (> 0), as the producers pick it.
pub(crate) fn partition_of(key: &[u8], partitions: i32) -> i32 {
    // Java's `toPositive`: the sign bit is masked, not the absolute value taken.
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafkas_java_values() {
        // Kafka's UtilsTest.testMurmur2 and librdkafka's rdmurmur2 unit test.
        let cases: [(&str, i32); 7] = [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
            ("kafka", 0xd067_cf64_u32 as i32),
        ];
        for (key, java) in cases {
            assert_eq!(murmur2(key.as_bytes()), java, "murmur2({key:?})");
        }
    }

    #[test]
    fn a_partition_is_the_positive_hash_modulo_the_count() {
        // "foobar": -790332482 & 0x7fffffff = 1357151166; an absolute value would give
        // 790332482 and other partitions.
        assert_eq!(partition_of(b"foobar", 6), 1_357_151_166 % 6);
        assert_eq!(partition_of(b"foobar", 7), 1_357_151_166 % 7);
        assert_ne!(partition_of(b"foobar", 7), 790_332_482 % 7);
        assert_eq!(partition_of(b"abc", 1), 0);
        for p in 1..=12 {
            let ip = "203.0.113.9";
            assert!((0..p).contains(&partition_of(ip.as_bytes(), p)));
        }
    }
}
