//! Memory per remembered address in the dedup window (design §9: ≤ 300 bytes per IP).
//! Fills a `DedupCache` and reports the growth of the process's resident memory per entry.
//! `cargo bench --bench dedup_memory` uses 1,000,000 addresses; as a test (`cargo test
//! --all-targets`) it uses 50,000 and only checks that the figure is computed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, SystemTime};

use threatsift::DedupCache;

fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let count: u32 = if full { 1_000_000 } else { 50_000 };
    // One family per process: freed memory stays with the allocator, so a second measurement
    // in the same process would reuse the first one's pages.
    match std::env::var("DEDUP_MEMORY_FAMILY") {
        Ok(family) => measure(&family, count),
        Err(_) => {
            let exe = std::env::current_exe().expect("own path");
            for family in ["ipv4", "ipv6"] {
                let status = std::process::Command::new(&exe)
                    .args(std::env::args().skip(1))
                    .env("DEDUP_MEMORY_FAMILY", family)
                    .status()
                    .expect("run measurement");
                assert!(status.success());
            }
        }
    }
}

fn measure(family: &str, count: u32) {
    let cache = DedupCache::new(Duration::from_secs(3600), u64::from(count) * 2);
    let before = resident_bytes().unwrap_or(0);
    let now = SystemTime::now();
    for i in 0..count {
        let ip = if family == "ipv4" {
            IpAddr::V4(Ipv4Addr::from(0x0100_0000 + i))
        } else {
            IpAddr::V6(Ipv6Addr::from((0x2001_0db8_u128 << 96) | u128::from(i)))
        };
        cache.observe(ip, now);
    }
    let entries = cache.entry_count();
    let after = resident_bytes().unwrap_or(0);
    let per_entry = after.saturating_sub(before) as f64 / entries.max(1) as f64;
    println!(
        "dedup_memory/{family}: {entries} entries, {per_entry:.0} bytes per entry (resident memory growth)"
    );
    assert_eq!(entries, u64::from(count));
}
