//! Why an address is not enriched: the filter stage's verdicts, which telemetry counts.

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
    /// Cleared by an unexpired entry of the allow-list (`[allowlist] path`).
    Allowlisted,
}

impl FilterReason {
    /// All variants, for pre-registering metric children.
    pub const ALL: [FilterReason; 19] = [
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
        FilterReason::Allowlisted,
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
            FilterReason::Allowlisted => "allowlisted",
        }
    }
}
