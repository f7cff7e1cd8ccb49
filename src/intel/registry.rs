//! The provider registry: every intelligence provider described once, by itself, in its own
//! file (`providers/<name>.rs`, `mmdb.rs`, `talos.rs`) and listed in [`PROVIDERS`].
//!
//! A [`ProviderSpec`] says what the rest of the daemon needs to know: the provider's name (its
//! `[providers.<name>]` section, its `intel` key and its metric label), its display name for
//! reports, whether it takes a key, how to build it, the `[scoring]` weights it reads with their
//! defaults, and the rule that turns its facts into reasons. Settings validation, the set of
//! built providers, scoring and the reports all read this list; nothing else names a provider.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::{LocalProvider, Provider};
use crate::settings::{ProviderSettings, Settings, SettingsError};

/// Every provider, in the order their reasons appear in a record.
pub(crate) static PROVIDERS: &[ProviderSpec] = &[
    super::providers::virustotal::SPEC,
    super::providers::abuseipdb::SPEC,
    super::providers::rdap::SPEC,
    super::providers::internetdb::SPEC,
    super::providers::greynoise::SPEC,
    super::providers::otx::SPEC,
    super::mmdb::SPEC,
    super::talos::SPEC,
];

/// One provider, described by itself.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProviderSpec {
    /// Stable name: the `[providers.<name>]` section, the `intel` key, the metric label.
    pub name: &'static str,
    /// How reports name it.
    pub display_name: &'static str,
    /// Whether it takes an API key.
    pub key: KeyUse,
    /// How it is built and asked.
    pub build: Build,
    /// Checks of its settings beyond the common ones, when it is enabled (an error names the
    /// key).
    pub check: fn(&ProviderSettings) -> Result<(), SettingsError>,
    /// When it cannot be used whatever `enabled` says, the reason its entry shows as
    /// `disabled` (Talos without a list file).
    pub unavailable: fn(&ProviderSettings) -> Option<&'static str>,
    /// The `[scoring]` keys it reads, with their defaults.
    pub weights: &'static [Weight],
    /// Turns the facts of an `ok` answer into reasons; `None` for providers whose facts are
    /// context, not evidence (RDAP, InternetDB, mmdb).
    pub score: Option<ScoreRule>,
}

/// Whether a provider takes an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyUse {
    /// It refuses to work without one: enabling it requires `api_key` or `api_key_file`.
    Required,
    /// It works with or without one.
    Optional,
    /// It takes none.
    None,
}

/// How a provider is built from its settings (reads keys and local files).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Build {
    /// Asked over the network, in the background queues, within its budget.
    Remote(fn(&ProviderSettings) -> Result<Arc<dyn Provider>, SettingsError>),
    /// Asked synchronously from local data while the record is built.
    Local(fn(&ProviderSettings) -> Result<Arc<dyn LocalProvider>, SettingsError>),
}

/// One `[scoring]` key a provider reads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Weight {
    /// The key under `[scoring]`.
    pub key: &'static str,
    /// Its value when the configuration does not set it.
    pub default: i32,
    /// The weight of a benign fact (GreyNoise RIOT, an AbuseIPDB whitelisting, an OTX
    /// validation): it may be negative (-100–100) and then subtracts from the score. Evidence
    /// of harm is 0–100.
    pub negative: bool,
}

/// The configured value of every provider weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Weights(HashMap<&'static str, i32>);

impl Weights {
    /// Every registered weight: the `[scoring]` value, else the provider's default.
    pub(crate) fn configured(scoring: &crate::settings::ScoringSettings) -> Self {
        let values = PROVIDERS
            .iter()
            .flat_map(|spec| spec.weights)
            .map(|w| {
                (
                    w.key,
                    scoring.weights.get(w.key).copied().unwrap_or(w.default),
                )
            })
            .collect();
        Weights(values)
    }

    /// The value of evidence weight `key`, 0–100 (0 for a key no provider declares: a bug the
    /// registry tests catch).
    pub(crate) fn get(&self, key: &str) -> u32 {
        self.0
            .get(key)
            .and_then(|&v| u32::try_from(v).ok())
            .unwrap_or(0)
    }

    /// The value of benign weight `key`, -100–100 (see [`Weight::negative`]).
    pub(crate) fn signed(&self, key: &str) -> i32 {
        self.0.get(key).copied().unwrap_or(0)
    }
}

/// A provider's scoring rule: facts of an `ok` answer → `add(points, detail)` per reason;
/// points are negative only for a benign fact's weight.
pub(crate) type ScoreRule = fn(&Map<String, Value>, &Weights, &mut dyn FnMut(i32, String));

/// Evidence points as a reason's signed weight.
pub(crate) fn points(evidence: u32) -> i32 {
    i32::try_from(evidence).unwrap_or(i32::MAX)
}

/// `count × per`, at most `max`, without overflow.
pub(crate) fn capped(count: u64, per: u32, max: u32) -> u32 {
    let points = count.saturating_mul(u64::from(per)).min(u64::from(max));
    u32::try_from(points).unwrap_or(max)
}

/// No checks beyond the common ones.
pub(crate) fn no_check(_: &ProviderSettings) -> Result<(), SettingsError> {
    Ok(())
}

/// Always available when enabled.
pub(crate) fn always_available(_: &ProviderSettings) -> Option<&'static str> {
    None
}

/// The provider called `name`.
pub(crate) fn spec(name: &str) -> Option<&'static ProviderSpec> {
    PROVIDERS.iter().find(|spec| spec.name == name)
}

/// How reports name the `intel` entry `key`.
pub(crate) fn display_name(key: &str) -> &str {
    spec(key).map_or(key, |spec| spec.display_name)
}

/// Checks `[providers.*]` and the provider weights of `[scoring]` against the registry: every
/// section names a known provider, an enabled provider's settings are usable, every weight is
/// a known key and 0–100. Errors name the key.
pub(crate) fn validate(settings: &Settings) -> Result<(), SettingsError> {
    for (name, provider) in settings.providers.iter() {
        let Some(spec) = spec(name) else {
            let known: Vec<&str> = PROVIDERS.iter().map(|s| s.name).collect();
            return Err(SettingsError::invalid(
                format!("providers.{name}"),
                format!("unknown provider (known: {})", known.join(", ")),
            ));
        };
        if provider.enabled {
            check_enabled(spec, provider)?;
        }
    }
    for (key, value) in &settings.scoring.weights {
        let Some(weight) = PROVIDERS
            .iter()
            .flat_map(|s| s.weights)
            .find(|w| w.key == key)
        else {
            return Err(SettingsError::invalid(
                format!("scoring.{key}"),
                "unknown key",
            ));
        };
        if weight.negative && !(-100..=100).contains(value) {
            return Err(SettingsError::invalid(
                format!("scoring.{key}"),
                "must be -100–100 (a benign fact's weight; negative subtracts)",
            ));
        }
        if !weight.negative && !(0..=100).contains(value) {
            return Err(SettingsError::invalid(
                format!("scoring.{key}"),
                "must be 0–100 (only the weights of benign facts may be negative)",
            ));
        }
    }
    Ok(())
}

fn check_enabled(spec: &ProviderSpec, provider: &ProviderSettings) -> Result<(), SettingsError> {
    let name = spec.name;
    let key = |field: &str| format!("providers.{name}.{field}");
    if matches!(spec.build, Build::Remote(_)) {
        if provider.timeout.is_zero() {
            return Err(SettingsError::invalid(key("timeout"), "must be > 0"));
        }
        if provider.ttl.is_zero() || provider.not_found_ttl.is_zero() {
            return Err(SettingsError::invalid(
                key(if provider.ttl.is_zero() {
                    "ttl"
                } else {
                    "not_found_ttl"
                }),
                "must be > 0 (answers must be kept to spend no quota twice)",
            ));
        }
    }
    if spec.key == KeyUse::Required
        && provider.api_key.is_empty()
        && provider.api_key_file.is_empty()
    {
        return Err(SettingsError::invalid(
            key("api_key"),
            format!(
                "required when enabled: set THREATSIFT__PROVIDERS__{}__API_KEY or \
                 providers.{name}.api_key_file",
                name.to_ascii_uppercase()
            ),
        ));
    }
    (spec.check)(provider)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_weight_keys_are_unique_and_weights_are_scores() {
        let mut names: Vec<&str> = PROVIDERS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PROVIDERS.len());
        let mut keys: Vec<&str> = PROVIDERS
            .iter()
            .flat_map(|s| s.weights)
            .map(|w| w.key)
            .collect();
        let count = keys.len();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), count);
        assert!(PROVIDERS
            .iter()
            .flat_map(|s| s.weights)
            .all(|w| w.default <= 100 && (w.negative || w.default >= 0)));
    }

    #[test]
    fn default_toml_gives_every_provider_a_section_and_the_documented_weights() {
        let settings = Settings::from_toml_overrides("").expect("defaults");
        for spec in PROVIDERS {
            assert!(
                settings.providers.get(spec.name).is_some(),
                "config/default.toml has no [providers.{}] section",
                spec.name
            );
            for weight in spec.weights {
                if let Some(value) = settings.scoring.weights.get(weight.key) {
                    assert_eq!(
                        *value, weight.default,
                        "scoring.{} in config/default.toml differs from the provider's default",
                        weight.key
                    );
                }
            }
        }
        validate(&settings).expect("the defaults are valid");
    }

    #[test]
    fn invalid_provider_settings_name_the_key() {
        let cases = [
            (
                "[providers.virustotal]\nenabled = true\n",
                "providers.virustotal.api_key",
            ),
            (
                "[providers.abuseipdb]\nenabled = true\n",
                "providers.abuseipdb.api_key",
            ),
            ("[providers.mmdb]\nenabled = true\n", "providers.mmdb.path"),
            (
                "[providers.rdap]\nenabled = true\nttl = \"0s\"\n",
                "providers.rdap.ttl",
            ),
            (
                "[scoring]\nvirustotal_max = 101\n",
                "scoring.virustotal_max",
            ),
            (
                "[scoring]\nnobody_reads_this = 1\n",
                "scoring.nobody_reads_this",
            ),
        ];
        for (toml, key) in cases {
            let settings = Settings::from_toml_overrides(toml).expect(toml);
            let err = validate(&settings).unwrap_err();
            assert!(
                err.to_string().contains(&format!("`{key}`")),
                "{toml}: {err}"
            );
        }
    }
}
