//! Vendor and generic log formats, and the order in which they are tried.
//!
//! Detection is ordered cheap-and-specific first (reference: `log-formats.md` §1): a format's
//! `detect` looks at prefixes, the syslog tag or a few keys, never at the whole line twice.
//! Formats that read a stream's header directive (`uses_stream_fields`: Zeek TSV, Windows
//! Firewall, W3C, AWS VPC) are tried after every format that does not, whatever their place in
//! this list, so that most lines never pay for the per-stream lookup. The generic `key=value` reader and the IP scanner are the
//! registry's fallbacks, not entries here.

pub(crate) mod aws;
pub(crate) mod barracuda;
pub(crate) mod cef;
pub(crate) mod checkpoint;
pub(crate) mod cisco;
pub(crate) mod clavister;
pub(crate) mod clf;
pub(crate) mod cloud;
pub(crate) mod f5;
pub(crate) mod forcepoint;
pub(crate) mod fortinet;
pub(crate) mod haproxy;
pub(crate) mod json;
pub(crate) mod juniper;
pub(crate) mod kv;
pub(crate) mod leef;
pub(crate) mod meraki;
pub(crate) mod netfilter;
pub(crate) mod netskope;
pub(crate) mod ocsf;
pub(crate) mod paloalto;
pub(crate) mod pfsense;
pub(crate) mod phrases;
pub(crate) mod skyhigh;
pub(crate) mod sonicwall;
pub(crate) mod sophos;
pub(crate) mod squid;
pub(crate) mod stormshield;
pub(crate) mod suricata;
pub(crate) mod umbrella;
pub(crate) mod w3c;
pub(crate) mod watchguard;
pub(crate) mod wsa;
pub(crate) mod zeek;
pub(crate) mod zscaler;

use crate::stages::parse::{JsonFormat, LogFormat};

/// Text formats in detection order.
pub(crate) fn text_formats() -> Vec<Box<dyn LogFormat>> {
    vec![
        Box::new(cef::Cef),
        Box::new(leef::Leef),
        Box::new(cisco::CiscoAsa::default()),
        Box::new(juniper::JuniperSrx),
        Box::new(pfsense::Filterlog),
        Box::new(netfilter::Netfilter),
        Box::new(fortinet::Fortigate),
        Box::new(sonicwall::SonicWall),
        Box::new(sophos::SophosXg),
        Box::new(sophos::SophosUtm),
        Box::new(checkpoint::CheckPoint),
        Box::new(watchguard::WatchGuard),
        Box::new(paloalto::PanOs),
        Box::new(wsa::CiscoWsa),
        Box::new(squid::SquidNative),
        Box::new(squid::SquidCombined),
        Box::new(zeek::ZeekTsv),
        Box::new(w3c::WindowsFirewall),
        Box::new(w3c::W3c),
        Box::new(aws::VpcFlow),
        Box::new(umbrella::Umbrella),
        Box::new(forcepoint::Forcepoint),
        Box::new(zscaler::ZscalerKv),
        Box::new(f5::F5BigIp),
        Box::new(meraki::Meraki),
        Box::new(stormshield::Stormshield),
        Box::new(clavister::Clavister),
        Box::new(barracuda::BarracudaActivity),
        Box::new(forcepoint::ForcepointNgfw),
        Box::new(skyhigh::SkyhighSwg),
        Box::new(haproxy::Haproxy),
        Box::new(clf::Clf),
    ]
}

/// JSON formats in detection order; ECS and generic JSON come after all of them.
pub(crate) fn json_formats() -> Vec<Box<dyn JsonFormat>> {
    vec![
        Box::new(suricata::SuricataEve),
        Box::new(zeek::ZeekJson),
        Box::new(ocsf::Ocsf),
        Box::new(cloud::GcpFirewall),
        Box::new(cloud::AzureFirewall),
        Box::new(zscaler::ZscalerJson),
        Box::new(barracuda::Barracuda),
        Box::new(netskope::Netskope),
    ]
}
