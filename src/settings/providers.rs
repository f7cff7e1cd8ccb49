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
    /// Requests allowed per minute: a number, `"unlimited"`, or `"none"` (no lookups).
    #[serde(default, skip_serializing_if = "Allowance::is_unlimited")]
    pub per_minute: Allowance,
    /// Requests allowed per day (00:00 UTC to 00:00 UTC): a number, `"unlimited"`, or
    /// `"none"` (no lookups).
    #[serde(default, skip_serializing_if = "Allowance::is_unlimited")]
    pub per_day: Allowance,
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

/// `per_minute` / `per_day`: how many requests a provider may be sent in the period.
///
/// Written as a positive integer, `"unlimited"`, or `"none"` (no request at all: every lookup
/// is `skipped`). A bare `0` is refused for this release: it used to mean unlimited and now
/// means none, so a configuration that says `0` is ambiguous (README, "Spend").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Allowance {
    /// No limit of this kind.
    #[default]
    Unlimited,
    /// At most this many requests per period; 0 only from `"none"`.
    Requests(u32),
}

impl Allowance {
    /// No limit of this kind.
    pub fn is_unlimited(&self) -> bool {
        *self == Allowance::Unlimited
    }

    /// No request may be made at all.
    pub fn is_none(&self) -> bool {
        *self == Allowance::Requests(0)
    }

    /// The budget's own figure: the count, or 0 for no limit (see `remote::budget`).
    pub fn budget_limit(&self) -> u32 {
        match self {
            Allowance::Unlimited => 0,
            Allowance::Requests(n) => *n,
        }
    }

    fn parse(text: &str) -> Result<Allowance, String> {
        match text.trim() {
            "unlimited" => Ok(Allowance::Unlimited),
            "none" => Ok(Allowance::Requests(0)),
            "0" => Err(ZERO_IS_AMBIGUOUS.to_owned()),
            number => match number.parse::<u32>() {
                Ok(n) => Ok(Allowance::Requests(n)),
                Err(_) => Err(format!(
                    "expected a number of requests, \"unlimited\" or \"none\", got `{text}`"
                )),
            },
        }
    }
}

/// Why a bare 0 is refused.
const ZERO_IS_AMBIGUOUS: &str = "0 is ambiguous: it used to mean unlimited and now means no \
     lookups at all; write \"unlimited\" for no limit, or \"none\" to make no requests";

impl std::fmt::Display for Allowance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Allowance::Unlimited => f.write_str("unlimited"),
            Allowance::Requests(0) => f.write_str("none"),
            Allowance::Requests(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for Allowance {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Allowance::Requests(n) if *n > 0 => serializer.serialize_u32(*n),
            other => serializer.serialize_str(&other.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for Allowance {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // From a file a number or a word; from the environment always text.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(i64),
            Text(String),
        }
        let text = match Raw::deserialize(deserializer)? {
            Raw::Number(n) => n.to_string(),
            Raw::Text(text) => text,
        };
        Allowance::parse(&text).map_err(serde::de::Error::custom)
    }
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
