//! `[filter]`: which addresses are never enriched (documentation ranges, own networks).

use serde::{Deserialize, Serialize};

use super::passthrough::list_or_comma_separated;
use super::SettingsError;

/// `[filter]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSettings {
    /// Treat documentation ranges as public (demo and tests only).
    pub allow_documentation_ranges: bool,
    /// CIDRs never enriched (your own networks); from the environment: comma-separated.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub ignore_cidrs: Vec<String>,
}

impl FilterSettings {
    /// Every `ignore_cidrs` entry parses.
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        self.parsed_cidrs()?;
        Ok(())
    }

    /// `ignore_cidrs`, parsed (a bare address is a one-address network).
    pub(crate) fn parsed_cidrs(&self) -> Result<Vec<ipnet::IpNet>, SettingsError> {
        self.ignore_cidrs
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let text = text.trim();
                text.parse::<ipnet::IpNet>()
                    .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        SettingsError::invalid(
                            format!("filter.ignore_cidrs[{i}]"),
                            format!("`{text}` is not an IP address or CIDR"),
                        )
                    })
            })
            .collect()
    }
}
