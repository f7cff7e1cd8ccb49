//! Which addresses are never enriched.
//!
//! # Contract
//!
//! * **In:** one [`IpAddr`] per call, as extracted from an event. IPv4-mapped IPv6 addresses
//!   (`::ffff:a.b.c.d`) are treated as the IPv4 address they carry, both for the special-purpose
//!   ranges and for the operator's ignore list. So are NAT64 addresses of the well-known prefix
//!   `64:ff9b::/96` (RFC 6052) in [`IpFilter::check`]: `64:ff9b::10.0.0.1` is the private
//!   `10.0.0.1` seen through a NAT64 gateway. ([`special_purpose_reason`] answers the IANA
//!   registry's question, where the prefix itself is globally reachable.)
//! * **Out:** [`IpFilter::check`] returns `Ok(())` when the address may be enriched, or
//!   `Err(reason)` with a [`FilterReason`] whose [`FilterReason::label`] is a bounded,
//!   snake_case metric label. [`special_purpose_reason`] answers the IANA question alone.
//! * **Dropped:** every address that the IANA IPv4 and IPv6 Special-Purpose Address Registries
//!   mark as not globally reachable (the registries' globally reachable exceptions, such as
//!   `192.0.0.9/32` or `2001:3::/32`, stay public), multicast, IPv4 `240.0.0.0/4`, the
//!   deprecated 6to4 relay anycast `192.88.99.0/24`, IPv6 outside the allocated global unicast
//!   block `2000::/3`, the operator's ignored CIDRs ([`FilterReason::Ignored`]), and, checked
//!   last, the unexpired entries of the allow-list file ([`FilterReason::Allowlisted`], see
//!   [`allowlist`]). With `allow_documentation_ranges` the documentation prefixes are enriched
//!   instead of dropped.
//!
//! Checks are plain integer comparisons on the address bits: no allocation, no locking (the
//! allow-list is read through an atomic pointer), no logging and no metrics. The caller counts
//! and logs using the returned reason.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::SystemTime;

use ipnet::IpNet;

pub use crate::model::FilterReason;
use crate::settings::{Settings, SettingsError};

pub(crate) mod allowlist;

pub use allowlist::{AllowEntry, Allowlist, AllowlistError, AllowlistFile, Reloaded, SkippedLine};

/// Returns the special-purpose reason for an address that is not globally reachable, per the
/// IANA IPv4 and IPv6 Special-Purpose Address Registries, or `None` for a public address.
///
/// The registries' globally reachable exceptions are public: `192.0.0.9/32`, `192.0.0.10/32`,
/// `192.31.196.0/24`, `192.52.193.0/24`, `192.175.48.0/24`, `64:ff9b::/96`, `2001:1::1/128`,
/// `2001:1::2/128`, `2001:1::3/128`, `2001:3::/32`, `2001:4:112::/48`, `2001:20::/28`,
/// `2001:30::/28` and `2620:4f:8000::/48`. IPv4-mapped IPv6 addresses are classified by the
/// IPv4 address they carry. Never returns [`FilterReason::Ignored`].
pub(crate) fn special_purpose_reason(ip: IpAddr) -> Option<FilterReason> {
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
    /// The allow-list file, when one is configured.
    allowlist: Option<Arc<AllowlistFile>>,
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
            allowlist: None,
        }
    }

    /// The filter of `[filter]` and `[allowlist]`: reads the allow-list file (blocking I/O),
    /// an error naming `allowlist.path` when it cannot be read.
    pub fn from_settings(settings: &Settings) -> Result<Self, SettingsError> {
        let filter = IpFilter::new(
            settings.filter.allow_documentation_ranges,
            settings.ignore_cidrs()?,
        );
        let Some(path) = settings.allowlist.file() else {
            return Ok(filter);
        };
        let file = AllowlistFile::load(path).map_err(|e| SettingsError::Unusable {
            key: "allowlist.path".to_owned(),
            source: Box::new(e),
        })?;
        Ok(filter.with_allowlist(Arc::new(file)))
    }

    /// Also drops the addresses the allow-list clears (reloads of `file` apply at once).
    pub fn with_allowlist(mut self, file: Arc<AllowlistFile>) -> Self {
        self.allowlist = Some(file);
        self
    }

    /// The allow-list file, when one is configured (for its reloads).
    pub fn allowlist(&self) -> Option<&Arc<AllowlistFile>> {
        self.allowlist.as_ref()
    }

    /// `Ok(())` when the address may be enriched, `Err(reason)` when it must be dropped;
    /// allow-list expiries are judged by the system clock (see [`check_at`](Self::check_at)).
    pub fn check(&self, ip: IpAddr) -> Result<(), FilterReason> {
        self.check_at(ip, SystemTime::now())
    }

    /// [`check`](Self::check) with the time allow-list expiries are judged at.
    ///
    /// Special-purpose ranges are checked first; ignored CIDRs (`FilterReason::Ignored`)
    /// after; the allow-list (`FilterReason::Allowlisted`) last.
    pub fn check_at(&self, ip: IpAddr, now: SystemTime) -> Result<(), FilterReason> {
        let ip = nat64_embedded(ip.to_canonical());
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
            return Err(FilterReason::Ignored);
        }
        match &self.allowlist {
            Some(file) if file.current().matching(ip, now).is_some() => {
                Err(FilterReason::Allowlisted)
            }
            _ => Ok(()),
        }
    }
}

/// The IPv4 address a NAT64 address of the well-known prefix `64:ff9b::/96` carries (RFC 6052
/// §2.1: the last 32 bits); any other address as it is.
fn nat64_embedded(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) if matches!(v6.segments(), [0x64, 0xff9b, 0, 0, 0, 0, _, _]) => {
            IpAddr::V4(Ipv4Addr::from((u128::from(v6) & 0xffff_ffff) as u32))
        }
        other => other,
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
mod tests;
