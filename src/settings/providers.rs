//! `[providers.*]`: the remote and local intelligence providers, one table each.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Secret, SettingsError, DEFAULT_TOML};

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

/// One provider. Which of these keys a provider's table accepts is what its table in
/// `config/default.toml` lists ([`check_keys`]); the others keep their empty defaults and are
/// left out of `check-config`'s output.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// Whether lookups are made.
    pub enabled: bool,
    /// API root (HTTP providers).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub base_url: String,
    /// API key (secret); better set through the environment or `api_key_file`.
    #[serde(default, skip_serializing_if = "Secret::is_empty")]
    pub api_key: Secret,
    /// File holding the API key, used when `api_key` is empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_key_file: String,
    /// Local database or list file (mmdb, talos).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Per-request timeout.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Duration::is_zero"
    )]
    pub timeout: Duration,
    /// Requests allowed per minute.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub per_minute: u32,
    /// Requests allowed per day (0 = no daily budget).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub per_day: u32,
    /// How long an answer is kept.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Duration::is_zero"
    )]
    pub ttl: Duration,
    /// How long a "not found" answer is kept.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Duration::is_zero"
    )]
    pub not_found_ttl: Duration,
    /// TLP of this provider's evidence (its redistribution terms): a record whose reasons
    /// cite it is marked at least this strictly. Unset: `publish.tlp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tlp: Option<crate::model::Tlp>,
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

/// Each `[providers.<name>]` table of the merged layers holds only the keys that provider uses:
/// those its table in `config/default.toml` lists (no `path` on VirusTotal, no `api_key` on
/// mmdb). A table the defaults do not have is an unknown provider, which the registry reports.
pub(crate) fn check_keys(merged: &config::Config) -> Result<(), SettingsError> {
    let defaults: toml::Table = toml::from_str(DEFAULT_TOML)
        .map_err(|e| SettingsError::invalid("config/default.toml", e.to_string()))?;
    let Some(default_tables) = defaults.get("providers").and_then(toml::Value::as_table) else {
        return Ok(());
    };
    let Ok(tables) = merged.get_table("providers") else {
        return Ok(());
    };
    for (name, table) in tables {
        let Some(allowed) = default_tables.get(&name).and_then(toml::Value::as_table) else {
            continue;
        };
        let Ok(table) = table.into_table() else {
            continue;
        };
        let mut keys: Vec<&String> = table.keys().collect();
        keys.sort();
        if let Some(key) = keys
            .into_iter()
            .find(|key| !allowed.contains_key(key.as_str()))
        {
            let takes: Vec<&str> = allowed.keys().map(String::as_str).collect();
            return Err(SettingsError::invalid(
                format!("providers.{name}.{key}"),
                format!(
                    "{name} does not use this key (it takes: {})",
                    takes.join(", ")
                ),
            ));
        }
    }
    Ok(())
}
