//! `[providers.*]`: the remote and local intelligence providers, one table each.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Secret;

/// `[providers.<name>]`: one table per provider, by name. Which names exist, and what an
/// enabled provider needs, is the providers' own description (`intel::registry`), checked there.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(transparent)]
pub struct ProvidersSettings(BTreeMap<String, ProviderSettings>);

impl ProvidersSettings {
    /// The settings of provider `name`, when the configuration has its table.
    pub fn get(&self, name: &str) -> Option<&ProviderSettings> {
        self.0.get(name)
    }

    /// The settings of provider `name`, to change (tests).
    pub fn get_mut(&mut self, name: &str) -> Option<&mut ProviderSettings> {
        self.0.get_mut(name)
    }

    /// Every table, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ProviderSettings)> {
        self.0
            .iter()
            .map(|(name, settings)| (name.as_str(), settings))
    }
}

/// One provider.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// Whether lookups are made.
    pub enabled: bool,
    /// API root (HTTP providers).
    pub base_url: String,
    /// API key (secret); better set through the environment or `api_key_file`.
    pub api_key: Secret,
    /// File holding the API key, used when `api_key` is empty.
    pub api_key_file: String,
    /// Local database or list file (mmdb, talos).
    pub path: String,
    /// Per-request timeout.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Requests allowed per minute.
    pub per_minute: u32,
    /// Requests allowed per day (0 = no daily budget).
    pub per_day: u32,
    /// How long an answer is kept.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// How long a "not found" answer is kept.
    #[serde(with = "humantime_serde")]
    pub not_found_ttl: Duration,
}
