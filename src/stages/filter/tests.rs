//! Tests of the address filter: a table of addresses and the reference classifier, labels, the
//! documentation switch and the ignore list.

use super::FilterReason::{self, *};
use super::*;
use std::collections::HashSet;
use std::str::FromStr;

fn ip(s: &str) -> IpAddr {
    IpAddr::from_str(s).unwrap_or_else(|e| panic!("bad test address {s}: {e}"))
}

fn net(s: &str) -> IpNet {
    IpNet::from_str(s).unwrap_or_else(|e| panic!("bad test cidr {s}: {e}"))
}

/// Hand-written expectations: inside, edges and just outside every range.
const CASES: &[(&str, Option<FilterReason>)] = &[
    // 0.0.0.0/8
    ("0.0.0.0", Some(Unspecified)),
    ("0.0.0.1", Some(ThisNetwork)),
    ("0.255.255.255", Some(ThisNetwork)),
    ("1.0.0.0", None),
    // 10.0.0.0/8
    ("9.255.255.255", None),
    ("10.0.0.0", Some(Private)),
    ("10.255.255.255", Some(Private)),
    ("11.0.0.0", None),
    // 100.64.0.0/10
    ("100.63.255.255", None),
    ("100.64.0.0", Some(SharedAddress)),
    ("100.127.255.255", Some(SharedAddress)),
    ("100.128.0.0", None),
    // 127.0.0.0/8
    ("126.255.255.255", None),
    ("127.0.0.1", Some(Loopback)),
    ("127.255.255.255", Some(Loopback)),
    ("128.0.0.0", None),
    // 169.254.0.0/16
    ("169.253.255.255", None),
    ("169.254.0.0", Some(LinkLocal)),
    ("169.254.255.255", Some(LinkLocal)),
    ("169.255.0.0", None),
    // 172.16.0.0/12
    ("172.15.255.255", None),
    ("172.16.0.0", Some(Private)),
    ("172.31.255.255", Some(Private)),
    ("172.32.0.0", None),
    // 192.0.0.0/24 and its exceptions
    ("191.255.255.255", None),
    ("192.0.0.0", Some(ProtocolAssignment)),
    ("192.0.0.8", Some(ProtocolAssignment)),
    ("192.0.0.9", None),
    ("192.0.0.10", None),
    ("192.0.0.11", Some(ProtocolAssignment)),
    ("192.0.0.170", Some(ProtocolAssignment)),
    ("192.0.0.171", Some(ProtocolAssignment)),
    ("192.0.0.255", Some(ProtocolAssignment)),
    ("192.0.1.0", None),
    // 192.0.2.0/24
    ("192.0.1.255", None),
    ("192.0.2.0", Some(Documentation)),
    ("192.0.2.255", Some(Documentation)),
    ("192.0.3.0", None),
    // globally reachable IPv4 special-purpose blocks
    ("192.31.196.1", None),
    ("192.52.193.1", None),
    ("192.175.48.1", None),
    // 192.88.99.0/24
    ("192.88.98.255", None),
    ("192.88.99.0", Some(Reserved)),
    ("192.88.99.255", Some(Reserved)),
    ("192.88.100.0", None),
    // 192.168.0.0/16
    ("192.167.255.255", None),
    ("192.168.0.0", Some(Private)),
    ("192.168.255.255", Some(Private)),
    ("192.169.0.0", None),
    // 198.18.0.0/15
    ("198.17.255.255", None),
    ("198.18.0.0", Some(Benchmarking)),
    ("198.19.255.255", Some(Benchmarking)),
    ("198.20.0.0", None),
    // 198.51.100.0/24
    ("198.51.99.255", None),
    ("198.51.100.0", Some(Documentation)),
    ("198.51.100.255", Some(Documentation)),
    ("198.51.101.0", None),
    // 203.0.113.0/24
    ("203.0.112.255", None),
    ("203.0.113.0", Some(Documentation)),
    ("203.0.113.255", Some(Documentation)),
    ("203.0.114.0", None),
    // 224.0.0.0/4, 240.0.0.0/4, broadcast
    ("223.255.255.255", None),
    ("224.0.0.0", Some(Multicast)),
    ("239.255.255.255", Some(Multicast)),
    ("240.0.0.0", Some(Reserved)),
    ("255.255.255.254", Some(Reserved)),
    ("255.255.255.255", Some(Broadcast)),
    ("8.8.8.8", None),
    // IPv6 loopback / unspecified
    ("::", Some(Unspecified)),
    ("::1", Some(Loopback)),
    ("::2", Some(Reserved)),
    // IPv4-mapped: classified by the embedded address
    ("::ffff:8.8.8.8", None),
    ("::ffff:10.1.2.3", Some(Private)),
    ("::ffff:127.0.0.1", Some(Loopback)),
    ("::ffff:0.0.0.0", Some(Unspecified)),
    ("::ffff:255.255.255.255", Some(Broadcast)),
    ("::ffff:192.0.0.9", None),
    ("::fffe:ffff:ffff", Some(Reserved)),
    ("::1:0:0:0", Some(Reserved)),
    // IPv4-compatible (deprecated) is outside 2000::/3
    ("::8.8.8.8", Some(Reserved)),
    // 64:ff9b::/96 public, 64:ff9b:1::/48 translation
    ("64:ff9a:ffff:ffff:ffff:ffff:ffff:ffff", Some(Reserved)),
    ("64:ff9b::", None),
    ("64:ff9b::808:808", None),
    ("64:ff9b::ffff:ffff", None),
    ("64:ff9b::1:0:0", Some(Reserved)),
    ("64:ff9b:0:ffff:ffff:ffff:ffff:ffff", Some(Reserved)),
    ("64:ff9b:1::", Some(Translation)),
    ("64:ff9b:1:ffff:ffff:ffff:ffff:ffff", Some(Translation)),
    ("64:ff9b:2::", Some(Reserved)),
    // 100::/64 and 100:0:0:1::/64
    ("ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(Reserved)),
    ("100::", Some(Discard)),
    ("100::ffff:ffff:ffff:ffff", Some(Discard)),
    ("100:0:0:1::", Some(Discard)),
    ("100:0:0:1:ffff:ffff:ffff:ffff", Some(Discard)),
    ("100:0:0:2::", Some(Reserved)),
    // 2001::/23 and its exceptions
    ("2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
    ("2001::", Some(Teredo)),
    ("2001:0:ffff:ffff:ffff:ffff:ffff:ffff", Some(Teredo)),
    ("2001:1::", Some(ProtocolAssignment)),
    ("2001:1::1", None),
    ("2001:1::2", None),
    ("2001:1::3", None),
    ("2001:1::4", Some(ProtocolAssignment)),
    ("2001:1:0:1::1", Some(ProtocolAssignment)),
    (
        "2001:1:ffff:ffff:ffff:ffff:ffff:ffff",
        Some(ProtocolAssignment),
    ),
    ("2001:2::", Some(Benchmarking)),
    ("2001:2:0:ffff:ffff:ffff:ffff:ffff", Some(Benchmarking)),
    ("2001:2:1::", Some(ProtocolAssignment)),
    (
        "2001:2:ffff:ffff:ffff:ffff:ffff:ffff",
        Some(ProtocolAssignment),
    ),
    ("2001:3::", None),
    ("2001:3:ffff:ffff:ffff:ffff:ffff:ffff", None),
    ("2001:4::", Some(ProtocolAssignment)),
    (
        "2001:4:111:ffff:ffff:ffff:ffff:ffff",
        Some(ProtocolAssignment),
    ),
    ("2001:4:112::", None),
    ("2001:4:112:ffff:ffff:ffff:ffff:ffff", None),
    ("2001:4:113::", Some(ProtocolAssignment)),
    ("2001:10::", Some(ProtocolAssignment)),
    (
        "2001:1f:ffff:ffff:ffff:ffff:ffff:ffff",
        Some(ProtocolAssignment),
    ),
    ("2001:20::", None),
    ("2001:2f:ffff:ffff:ffff:ffff:ffff:ffff", None),
    ("2001:30::", None),
    ("2001:3f:ffff:ffff:ffff:ffff:ffff:ffff", None),
    ("2001:40::", Some(ProtocolAssignment)),
    (
        "2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff",
        Some(ProtocolAssignment),
    ),
    ("2001:200::", None),
    // 2001:db8::/32
    ("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", None),
    ("2001:db8::", Some(Documentation)),
    (
        "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
        Some(Documentation),
    ),
    ("2001:db9::", None),
    // 2002::/16
    ("2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
    ("2002::", Some(SixToFour)),
    ("2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(SixToFour)),
    ("2003::", None),
    // 2620:4f:8000::/48 (AS112 direct delegation) is public
    ("2620:4f:8000::1", None),
    ("2606:4700:4700::1111", None),
    // 3fff::/20
    ("3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
    ("3fff::", Some(Documentation)),
    (
        "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff",
        Some(Documentation),
    ),
    ("3fff:1000::", None),
    // 5f00::/16
    ("5eff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(Reserved)),
    ("5f00::", Some(Reserved)),
    ("5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(Reserved)),
    ("5f01::", Some(Reserved)),
    // edges of 2000::/3
    ("1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(Reserved)),
    ("3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
    ("4000::", Some(Reserved)),
    // fc00::/7
    ("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(Reserved)),
    ("fc00::", Some(UniqueLocal)),
    ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(UniqueLocal)),
    ("fe00::", Some(Reserved)),
    // fe80::/10
    ("fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(Reserved)),
    ("fe80::", Some(LinkLocal)),
    ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(LinkLocal)),
    ("fec0::", Some(Reserved)),
    // ff00::/8
    ("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(Reserved)),
    ("ff00::", Some(Multicast)),
    ("ff02::1", Some(Multicast)),
    ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(Multicast)),
];

#[test]
fn table_of_addresses() {
    for &(addr, want) in CASES {
        assert_eq!(special_purpose_reason(ip(addr)), want, "{addr}");
    }
}

/// Slow reference: the registry as a first-match-wins list of CIDRs.
const REFERENCE: &[(&str, Option<FilterReason>)] = &[
    ("255.255.255.255/32", Some(Broadcast)),
    ("0.0.0.0/32", Some(Unspecified)),
    ("192.0.0.9/32", None),
    ("192.0.0.10/32", None),
    ("0.0.0.0/8", Some(ThisNetwork)),
    ("10.0.0.0/8", Some(Private)),
    ("100.64.0.0/10", Some(SharedAddress)),
    ("127.0.0.0/8", Some(Loopback)),
    ("169.254.0.0/16", Some(LinkLocal)),
    ("172.16.0.0/12", Some(Private)),
    ("192.0.0.0/24", Some(ProtocolAssignment)),
    ("192.0.2.0/24", Some(Documentation)),
    ("192.31.196.0/24", None),
    ("192.52.193.0/24", None),
    ("192.88.99.0/24", Some(Reserved)),
    ("192.168.0.0/16", Some(Private)),
    ("192.175.48.0/24", None),
    ("198.18.0.0/15", Some(Benchmarking)),
    ("198.51.100.0/24", Some(Documentation)),
    ("203.0.113.0/24", Some(Documentation)),
    ("224.0.0.0/4", Some(Multicast)),
    ("240.0.0.0/4", Some(Reserved)),
    ("::/128", Some(Unspecified)),
    ("::1/128", Some(Loopback)),
    ("64:ff9b::/96", None),
    ("64:ff9b:1::/48", Some(Translation)),
    ("100::/64", Some(Discard)),
    ("100:0:0:1::/64", Some(Discard)),
    ("2001:1::1/128", None),
    ("2001:1::2/128", None),
    ("2001:1::3/128", None),
    ("2001:3::/32", None),
    ("2001:4:112::/48", None),
    ("2001:20::/28", None),
    ("2001:30::/28", None),
    ("2001::/32", Some(Teredo)),
    ("2001:2::/48", Some(Benchmarking)),
    ("2001::/23", Some(ProtocolAssignment)),
    ("2001:db8::/32", Some(Documentation)),
    ("2002::/16", Some(SixToFour)),
    ("2620:4f:8000::/48", None),
    ("3fff::/20", Some(Documentation)),
    ("5f00::/16", Some(Reserved)),
    ("2000::/3", None),
    ("fc00::/7", Some(UniqueLocal)),
    ("fe80::/10", Some(LinkLocal)),
    ("ff00::/8", Some(Multicast)),
    ("::/0", Some(Reserved)),
];

fn reference_table() -> Vec<(IpNet, Option<FilterReason>)> {
    REFERENCE.iter().map(|&(c, want)| (net(c), want)).collect()
}

fn reference(table: &[(IpNet, Option<FilterReason>)], addr: IpAddr) -> Option<FilterReason> {
    let addr = addr.to_canonical();
    table
        .iter()
        .find(|(cidr, _)| cidr.contains(&addr))
        .and_then(|&(_, want)| want)
}

/// Neighbours of every reference range: first, last, one before, one after, middle.
fn edges(cidr: IpNet) -> Vec<IpAddr> {
    match cidr {
        IpNet::V4(n) => {
            let (lo, hi) = (u32::from(n.network()), u32::from(n.broadcast()));
            [
                lo.wrapping_sub(1),
                lo,
                lo + (hi - lo) / 2,
                hi,
                hi.wrapping_add(1),
            ]
            .into_iter()
            .map(|b| IpAddr::V4(Ipv4Addr::from(b)))
            .collect()
        }
        IpNet::V6(n) => {
            let (lo, hi) = (u128::from(n.network()), u128::from(n.broadcast()));
            [
                lo.wrapping_sub(1),
                lo,
                lo + (hi - lo) / 2,
                hi,
                hi.wrapping_add(1),
            ]
            .into_iter()
            .map(|b| IpAddr::V6(Ipv6Addr::from(b)))
            .collect()
        }
    }
}

#[test]
fn every_reference_edge_matches_reference() {
    let table = reference_table();
    for &(cidr, _) in &table {
        for addr in edges(cidr) {
            assert_eq!(
                special_purpose_reason(addr),
                reference(&table, addr),
                "{addr} near {cidr}"
            );
            if let IpAddr::V4(v4) = addr {
                let mapped = IpAddr::V6(v4.to_ipv6_mapped());
                assert_eq!(
                    special_purpose_reason(mapped),
                    reference(&table, addr),
                    "{mapped}"
                );
            }
        }
    }
}

/// xorshift64*: deterministic pseudo-random bits without extra dependencies.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn random_addresses_match_reference() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let table = reference_table();
    let specials: Vec<IpNet> = table.iter().map(|&(c, _)| c).collect();
    for i in 0..200_000u32 {
        let r = rng.next();
        let v4 = Ipv4Addr::from(r as u32);
        assert_eq!(
            special_purpose_reason(IpAddr::V4(v4)),
            reference(&table, IpAddr::V4(v4))
        );
        let mapped = IpAddr::V6(v4.to_ipv6_mapped());
        assert_eq!(
            special_purpose_reason(mapped),
            reference(&table, IpAddr::V4(v4)),
            "{mapped}"
        );
        // IPv6: half uniform, half inside a random special range with random host bits.
        let bits = (u128::from(rng.next()) << 64) | u128::from(rng.next());
        let v6 = if i % 2 == 0 {
            bits
        } else {
            match specials[(r % specials.len() as u64) as usize] {
                IpNet::V6(n) => {
                    let mask = u128::from(n.netmask());
                    u128::from(n.network()) | (bits & !mask)
                }
                IpNet::V4(_) => bits,
            }
        };
        let v6 = IpAddr::V6(Ipv6Addr::from(v6));
        assert_eq!(special_purpose_reason(v6), reference(&table, v6), "{v6}");
    }
}

#[test]
fn never_returns_ignored() {
    for &(addr, _) in CASES {
        assert_ne!(special_purpose_reason(ip(addr)), Some(Ignored));
    }
}

#[test]
fn labels_are_unique_snake_case_and_all_is_complete() {
    let labels: HashSet<&str> = FilterReason::ALL.iter().map(|r| r.label()).collect();
    assert_eq!(labels.len(), FilterReason::ALL.len());
    for label in labels {
        assert!(
            label.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{label}"
        );
    }
    assert_eq!(Private.label(), "private");
    assert_eq!(SixToFour.label(), "six_to_four");
    assert_eq!(ProtocolAssignment.label(), "protocol_assignment");
}

#[test]
fn filter_drops_special_and_keeps_public() {
    let filter = IpFilter::new(false, Vec::new());
    for &(addr, want) in CASES {
        // NAT64 addresses are judged by their IPv4 (see the test below).
        if nat64_embedded(ip(addr)) != ip(addr) {
            continue;
        }
        assert_eq!(filter.check(ip(addr)), want.map_or(Ok(()), Err), "{addr}");
    }
}

#[test]
fn documentation_switch() {
    let strict = IpFilter::new(false, Vec::new());
    let demo = IpFilter::new(true, Vec::new());
    for addr in [
        "192.0.2.1",
        "198.51.100.7",
        "203.0.113.255",
        "2001:db8::1",
        "3fff::1",
        "3fff:fff::1",
        "::ffff:203.0.113.9",
    ] {
        assert_eq!(strict.check(ip(addr)), Err(Documentation), "{addr}");
        assert_eq!(demo.check(ip(addr)), Ok(()), "{addr}");
    }
    // The switch only affects documentation ranges.
    for (addr, want) in [
        ("10.0.0.1", Err(Private)),
        ("192.0.0.1", Err(ProtocolAssignment)),
        ("198.18.0.1", Err(Benchmarking)),
        ("2001:10::1", Err(ProtocolAssignment)),
        ("2001:db7::1", Ok(())),
        ("3fff:1000::1", Ok(())),
    ] {
        assert_eq!(demo.check(ip(addr)), want, "{addr}");
    }
}

#[test]
fn ignore_cidrs() {
    let filter = IpFilter::new(
        false,
        vec![
            net("8.8.8.0/24"),
            net("1.1.1.1/32"),
            net("1.1.1.1/32"),
            net("9.9.9.9/16"), // host bits are cleared: 9.9.0.0/16
            net("2606:4700::/32"),
            net("::ffff:4.4.4.0/120"), // IPv4-mapped CIDR ignores 4.4.4.0/24
            net("10.0.0.0/8"),         // special-purpose reason wins
        ],
    );
    for addr in [
        "8.8.8.0",
        "8.8.8.255",
        "1.1.1.1",
        "9.9.0.0",
        "9.9.255.255",
        "2606:4700::1",
        "2606:4700:ffff::1",
        "4.4.4.4",
        "::ffff:8.8.8.8",
        "::ffff:4.4.4.4",
    ] {
        assert_eq!(filter.check(ip(addr)), Err(Ignored), "{addr}");
    }
    for addr in [
        "8.8.7.255",
        "8.8.9.0",
        "1.1.1.0",
        "1.1.1.2",
        "9.10.0.0",
        "2606:4701::1",
        "4.4.5.4",
        "::ffff:8.8.9.8",
    ] {
        assert_eq!(filter.check(ip(addr)), Ok(()), "{addr}");
    }
    assert_eq!(filter.check(ip("10.1.2.3")), Err(Private));
    assert_eq!(filter.check(ip("192.0.2.1")), Err(Documentation));
}

#[test]
fn ignore_does_not_override_documentation_switch_order() {
    // With the switch on, an ignored documentation range reports Ignored.
    let filter = IpFilter::new(true, vec![net("192.0.2.0/25")]);
    assert_eq!(filter.check(ip("192.0.2.1")), Err(Ignored));
    assert_eq!(filter.check(ip("192.0.2.200")), Ok(()));
}

#[test]
fn ignore_everything() {
    let filter = IpFilter::new(false, vec![net("0.0.0.0/0"), net("::/0")]);
    assert_eq!(filter.check(ip("8.8.8.8")), Err(Ignored));
    assert_eq!(filter.check(ip("2606:4700::1")), Err(Ignored));
    assert_eq!(filter.check(ip("127.0.0.1")), Err(Loopback));
}

#[test]
fn ignore_list_only_adds_drops() {
    // Property: the ignore list never lets through an address the plain filter drops,
    // and every address it changes becomes Ignored.
    let plain = IpFilter::new(false, Vec::new());
    let ignoring = IpFilter::new(
        false,
        vec![net("64.0.0.0/2"), net("2400::/6"), net("10.0.0.0/7")],
    );
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    for _ in 0..100_000 {
        let r = rng.next();
        for addr in [
            IpAddr::V4(Ipv4Addr::from(r as u32)),
            IpAddr::V6(Ipv6Addr::from(
                (u128::from(r) << 64) | u128::from(rng.next()),
            )),
        ] {
            let (a, b) = (plain.check(addr), ignoring.check(addr));
            if a.is_err() {
                assert_eq!(a, b, "{addr}");
            } else if b.is_err() {
                assert_eq!(b, Err(Ignored), "{addr}");
            }
        }
    }
}

// i14: NAT64 addresses are judged by the IPv4 address they carry.
#[test]
fn nat64_addresses_are_filtered_as_their_embedded_ipv4() {
    let filter = IpFilter::new(false, vec![net("198.18.0.0/15"), net("5.6.7.0/24")]);
    // Private, loopback and documentation addresses behind a NAT64 gateway are not enriched.
    assert_eq!(filter.check(ip("64:ff9b::10.0.0.1")), Err(Private));
    assert_eq!(filter.check(ip("64:ff9b::7f00:1")), Err(Loopback));
    assert_eq!(filter.check(ip("64:ff9b::203.0.113.9")), Err(Documentation));
    // The ignore list applies to the embedded address too.
    assert_eq!(filter.check(ip("64:ff9b::5.6.7.8")), Err(Ignored));
    // A public IPv4 behind it is enriched; the rest of 64:ff9b::/32 keeps its own reasons.
    assert_eq!(filter.check(ip("64:ff9b::8.8.8.8")), Ok(()));
    assert_eq!(filter.check(ip("64:ff9b:1::1")), Err(Translation));
}

// --- g-allow: the allow-list, checked last ---

/// A filter over an allow-list file holding `text` (the file lives as long as the directory).
fn with_allowlist(filter: IpFilter, text: &str) -> (IpFilter, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("allowlist.txt");
    std::fs::write(&path, text).unwrap();
    let file = AllowlistFile::load(&path).unwrap();
    (filter.with_allowlist(std::sync::Arc::new(file)), dir)
}

/// 2026-11-23T10:00:00Z.
fn ten_o_clock() -> SystemTime {
    SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_428_000)
}

#[test]
fn allowlisted_addresses_are_dropped_after_special_purpose_and_ignored_ranges() {
    let (filter, _dir) = with_allowlist(
        IpFilter::new(true, vec![net("198.51.100.0/25")]),
        "198.51.100.0/24 | partner | netops\n10.0.0.0/8 | own | netops\n\
         8.8.8.0/24 | resolver | netops\n",
    );
    let now = ten_o_clock();
    assert_eq!(filter.check_at(ip("8.8.8.8"), now), Err(Allowlisted));
    // A NAT64 address is judged by the IPv4 address it carries, like the other checks.
    assert_eq!(
        filter.check_at(ip("64:ff9b::8.8.8.8"), now),
        Err(Allowlisted)
    );
    assert_eq!(filter.check_at(ip("198.51.100.200"), now), Err(Allowlisted));
    // The more specific reason wins: the allow-list is the last check.
    assert_eq!(filter.check_at(ip("198.51.100.1"), now), Err(Ignored));
    assert_eq!(filter.check_at(ip("10.1.2.3"), now), Err(Private));
    assert_eq!(filter.check_at(ip("8.8.4.4"), now), Ok(()));
    assert_eq!(Allowlisted.label(), "allowlisted");
}

#[test]
fn an_expired_allowlist_entry_lets_the_address_through() {
    let (filter, _dir) = with_allowlist(
        IpFilter::new(false, Vec::new()),
        "8.8.8.8 | test window | secops | 2026-11-23T10:00:00Z\n",
    );
    let now = ten_o_clock();
    assert_eq!(
        filter.check_at(ip("8.8.8.8"), now - std::time::Duration::from_secs(1)),
        Err(Allowlisted)
    );
    assert_eq!(filter.check_at(ip("8.8.8.8"), now), Ok(()));
}

#[test]
fn an_unreadable_allowlist_names_its_key() {
    let settings = crate::settings::Settings::from_toml_overrides(
        "[allowlist]\npath = \"/nonexistent/threatsift-allowlist.txt\"\n",
    )
    .expect("the settings themselves are fine");
    let err = IpFilter::from_settings(&settings).unwrap_err().to_string();
    assert!(
        err.contains("`allowlist.path`") && err.contains("threatsift-allowlist.txt"),
        "{err}"
    );
}
