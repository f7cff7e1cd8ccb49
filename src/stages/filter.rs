//! Which addresses are never enriched.
//!
//! # Contract
//!
//! * **In:** one [`IpAddr`] per call, as extracted from an event. IPv4-mapped IPv6 addresses
//!   (`::ffff:a.b.c.d`) are treated as the IPv4 address they carry, both for the special-purpose
//!   ranges and for the operator's ignore list.
//! * **Out:** [`IpFilter::check`] returns `Ok(())` when the address may be enriched, or
//!   `Err(reason)` with a [`FilterReason`] whose [`FilterReason::label`] is a bounded,
//!   snake_case metric label. [`special_purpose_reason`] answers the IANA question alone.
//! * **Dropped:** every address that the IANA IPv4 and IPv6 Special-Purpose Address Registries
//!   mark as not globally reachable (the registries' globally reachable exceptions, such as
//!   `192.0.0.9/32` or `2001:3::/32`, stay public), multicast, IPv4 `240.0.0.0/4`, the
//!   deprecated 6to4 relay anycast `192.88.99.0/24`, IPv6 outside the allocated global unicast
//!   block `2000::/3`, and the operator's ignored CIDRs ([`FilterReason::Ignored`], checked last).
//!   With `allow_documentation_ranges` the documentation prefixes are enriched instead of
//!   dropped.
//!
//! Checks are plain integer comparisons on the address bits: no allocation, no locking, no
//! logging and no metrics. The caller counts and logs using the returned reason.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Why an address is not enriched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FilterReason {
    /// `0.0.0.0/32` or `::/128`.
    Unspecified,
    /// `0.0.0.0/8` other than `0.0.0.0` itself ("this network").
    ThisNetwork,
    /// RFC 1918 private space: `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`.
    Private,
    /// Shared address space for carrier-grade NAT: `100.64.0.0/10`.
    SharedAddress,
    /// `127.0.0.0/8` or `::1/128`.
    Loopback,
    /// `169.254.0.0/16` or `fe80::/10`.
    LinkLocal,
    /// IETF protocol assignments: `192.0.0.0/24` and `2001::/23`, minus their globally reachable
    /// exceptions.
    ProtocolAssignment,
    /// Documentation prefixes: `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`,
    /// `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// Benchmarking: `198.18.0.0/15` and `2001:2::/48`.
    Benchmarking,
    /// Multicast: `224.0.0.0/4` and `ff00::/8`.
    Multicast,
    /// Limited broadcast: `255.255.255.255/32`.
    Broadcast,
    /// Reserved or unallocated: `240.0.0.0/4`, the deprecated 6to4 relay anycast
    /// `192.88.99.0/24`, SRv6 SIDs `5f00::/16`, and IPv6 outside `2000::/3` that has no more
    /// specific reason.
    Reserved,
    /// IPv6 unique local addresses: `fc00::/7`.
    UniqueLocal,
    /// Local-use IPv4/IPv6 translation: `64:ff9b:1::/48`.
    Translation,
    /// Discard-only and dummy IPv6 prefixes: `100::/64` and `100:0:0:1::/64`.
    Discard,
    /// Teredo: `2001::/32`.
    Teredo,
    /// 6to4: `2002::/16`.
    SixToFour,
    /// Inside one of the operator's ignored CIDRs.
    Ignored,
}

impl FilterReason {
    /// All variants, for pre-registering metric children.
    pub const ALL: [FilterReason; 18] = [
        FilterReason::Unspecified,
        FilterReason::ThisNetwork,
        FilterReason::Private,
        FilterReason::SharedAddress,
        FilterReason::Loopback,
        FilterReason::LinkLocal,
        FilterReason::ProtocolAssignment,
        FilterReason::Documentation,
        FilterReason::Benchmarking,
        FilterReason::Multicast,
        FilterReason::Broadcast,
        FilterReason::Reserved,
        FilterReason::UniqueLocal,
        FilterReason::Translation,
        FilterReason::Discard,
        FilterReason::Teredo,
        FilterReason::SixToFour,
        FilterReason::Ignored,
    ];

    /// Bounded metric label, snake_case (`"private"`, `"shared_address"`, ...).
    pub fn label(self) -> &'static str {
        match self {
            FilterReason::Unspecified => "unspecified",
            FilterReason::ThisNetwork => "this_network",
            FilterReason::Private => "private",
            FilterReason::SharedAddress => "shared_address",
            FilterReason::Loopback => "loopback",
            FilterReason::LinkLocal => "link_local",
            FilterReason::ProtocolAssignment => "protocol_assignment",
            FilterReason::Documentation => "documentation",
            FilterReason::Benchmarking => "benchmarking",
            FilterReason::Multicast => "multicast",
            FilterReason::Broadcast => "broadcast",
            FilterReason::Reserved => "reserved",
            FilterReason::UniqueLocal => "unique_local",
            FilterReason::Translation => "translation",
            FilterReason::Discard => "discard",
            FilterReason::Teredo => "teredo",
            FilterReason::SixToFour => "six_to_four",
            FilterReason::Ignored => "ignored",
        }
    }
}

/// Returns the special-purpose reason for an address that is not globally reachable, per the
/// IANA IPv4 and IPv6 Special-Purpose Address Registries, or `None` for a public address.
///
/// The registries' globally reachable exceptions are public: `192.0.0.9/32`, `192.0.0.10/32`,
/// `192.31.196.0/24`, `192.52.193.0/24`, `192.175.48.0/24`, `64:ff9b::/96`, `2001:1::1/128`,
/// `2001:1::2/128`, `2001:1::3/128`, `2001:3::/32`, `2001:4:112::/48`, `2001:20::/28`,
/// `2001:30::/28` and `2620:4f:8000::/48`. IPv4-mapped IPv6 addresses are classified by the
/// IPv4 address they carry. Never returns [`FilterReason::Ignored`].
pub fn special_purpose_reason(ip: IpAddr) -> Option<FilterReason> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => v6_reason(v6),
    }
}

fn v4_reason(ip: Ipv4Addr) -> Option<FilterReason> {
    let [a, b, c, d] = ip.octets();
    let reason = match a {
        0 if ip.is_unspecified() => FilterReason::Unspecified,
        0 => FilterReason::ThisNetwork,
        10 => FilterReason::Private,
        100 if b & 0xc0 == 64 => FilterReason::SharedAddress,
        127 => FilterReason::Loopback,
        169 if b == 254 => FilterReason::LinkLocal,
        172 if b & 0xf0 == 16 => FilterReason::Private,
        192 => match (b, c) {
            // 192.0.0.9 (PCP anycast) and 192.0.0.10 (TURN anycast) are globally reachable.
            (0, 0) if d == 9 || d == 10 => return None,
            (0, 0) => FilterReason::ProtocolAssignment,
            (0, 2) => FilterReason::Documentation,
            (88, 99) => FilterReason::Reserved,
            (168, _) => FilterReason::Private,
            _ => return None,
        },
        198 if b & 0xfe == 18 => FilterReason::Benchmarking,
        198 if b == 51 && c == 100 => FilterReason::Documentation,
        203 if b == 0 && c == 113 => FilterReason::Documentation,
        224..=239 => FilterReason::Multicast,
        255 if ip.is_broadcast() => FilterReason::Broadcast,
        240..=255 => FilterReason::Reserved,
        _ => return None,
    };
    Some(reason)
}

fn v6_reason(ip: Ipv6Addr) -> Option<FilterReason> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_reason(v4);
    }
    let s = ip.segments();
    // 2000::/3: allocated global unicast, public unless listed.
    if s[0] >> 13 == 1 {
        let reason = match s[0] {
            0x2001 => return v6_2001_reason(s),
            0x2002 => FilterReason::SixToFour,
            0x3fff if s[1] < 0x1000 => FilterReason::Documentation,
            _ => return None,
        };
        return Some(reason);
    }
    // Outside 2000::/3. SRv6 SIDs (5f00::/16) fall under the final Reserved arm.
    let reason = match s {
        [0, 0, 0, 0, 0, 0, 0, 0] => FilterReason::Unspecified,
        [0, 0, 0, 0, 0, 0, 0, 1] => FilterReason::Loopback,
        // 64:ff9b::/96, the NAT64 well-known prefix, is globally reachable.
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => return None,
        [0x64, 0xff9b, 1, ..] => FilterReason::Translation,
        [0x100, 0, 0, 0 | 1, ..] => FilterReason::Discard,
        [x, ..] if x & 0xfe00 == 0xfc00 => FilterReason::UniqueLocal,
        [x, ..] if x & 0xffc0 == 0xfe80 => FilterReason::LinkLocal,
        [x, ..] if x & 0xff00 == 0xff00 => FilterReason::Multicast,
        _ => FilterReason::Reserved,
    };
    Some(reason)
}

/// `2001::/16`: the IETF protocol assignments block `2001::/23` and documentation `2001:db8::/32`.
fn v6_2001_reason(s: [u16; 8]) -> Option<FilterReason> {
    let reason = match s[1] {
        0x0db8 => FilterReason::Documentation,
        // Outside 2001::/23.
        0x0200.. => return None,
        0x0000 => FilterReason::Teredo,
        // 2001:1::1 (PCP), 2001:1::2 (TURN), 2001:1::3 (DNS-SD SRP) anycast are public.
        0x0001 if matches!(s[2..], [0, 0, 0, 0, 0, 1..=3]) => return None,
        0x0002 if s[2] == 0 => FilterReason::Benchmarking,
        // 2001:3::/32 (AMT) is public.
        0x0003 => return None,
        // 2001:4:112::/48 (AS112-v6) is public.
        0x0004 if s[2] == 0x0112 => return None,
        // 2001:20::/28 (ORCHIDv2) and 2001:30::/28 (Drone Remote ID) are public.
        0x0020..=0x003f => return None,
        // The rest of 2001::/23, including deprecated ORCHID 2001:10::/28.
        _ => FilterReason::ProtocolAssignment,
    };
    Some(reason)
}

/// The configured filter: special-purpose ranges plus operator-ignored CIDRs.
#[derive(Debug, Clone)]
pub struct IpFilter {
    allow_documentation: bool,
    /// `(network, mask)` pairs, broadest first.
    ignore_v4: Vec<(u32, u32)>,
    /// `(network, mask)` pairs, broadest first.
    ignore_v6: Vec<(u128, u128)>,
}

impl IpFilter {
    /// Builds the filter.
    ///
    /// `allow_documentation_ranges` treats `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`,
    /// `2001:db8::/32` and `3fff::/20` as public (for demos and tests). `ignore_cidrs` may carry
    /// host bits (they are cleared) and duplicates; an IPv4-mapped IPv6 CIDR (`::ffff:a.b.c.d/n`,
    /// `n >= 96`) ignores the corresponding IPv4 range.
    pub fn new(allow_documentation_ranges: bool, ignore_cidrs: Vec<IpNet>) -> Self {
        let mut nets: Vec<IpNet> = ignore_cidrs.into_iter().map(canonical_net).collect();
        nets.sort_by_key(|net| (net.prefix_len(), *net));
        nets.dedup();
        let mut ignore_v4 = Vec::new();
        let mut ignore_v6 = Vec::new();
        for net in nets {
            match net {
                IpNet::V4(n) => ignore_v4.push((u32::from(n.network()), u32::from(n.netmask()))),
                IpNet::V6(n) => ignore_v6.push((u128::from(n.network()), u128::from(n.netmask()))),
            }
        }
        IpFilter {
            allow_documentation: allow_documentation_ranges,
            ignore_v4,
            ignore_v6,
        }
    }

    /// `Ok(())` when the address may be enriched, `Err(reason)` when it must be dropped.
    ///
    /// Special-purpose ranges are checked first; ignored CIDRs ([`FilterReason::Ignored`]) after.
    pub fn check(&self, ip: IpAddr) -> Result<(), FilterReason> {
        let ip = ip.to_canonical();
        match special_purpose_reason(ip) {
            Some(FilterReason::Documentation) if self.allow_documentation => {}
            Some(reason) => return Err(reason),
            None => {}
        }
        let ignored = match ip {
            IpAddr::V4(v4) => {
                let bits = u32::from(v4);
                self.ignore_v4.iter().any(|&(net, mask)| bits & mask == net)
            }
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                self.ignore_v6.iter().any(|&(net, mask)| bits & mask == net)
            }
        };
        if ignored {
            Err(FilterReason::Ignored)
        } else {
            Ok(())
        }
    }
}

/// Clears host bits and turns an IPv4-mapped IPv6 CIDR (prefix >= 96) into its IPv4 CIDR.
fn canonical_net(net: IpNet) -> IpNet {
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

#[cfg(test)]
mod tests {
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
}
