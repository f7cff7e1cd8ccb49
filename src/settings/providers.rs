//! `[providers.*]`: the remote and local intelligence providers, one table each.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Secret, SettingsError};

/// `[providers.*]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProvidersSettings {
    /// VirusTotal v3.
    pub virustotal: ProviderSettings,
    /// AbuseIPDB v2.
    pub abuseipdb: ProviderSettings,
    /// RDAP via the IANA bootstrap.
    pub rdap: ProviderSettings,
    /// Shodan InternetDB.
    pub internetdb: ProviderSettings,
    /// GreyNoise community.
    pub greynoise: ProviderSettings,
    /// AlienVault OTX.
    pub otx: ProviderSettings,
    /// Local MaxMind/DB-IP databases.
    pub mmdb: ProviderSettings,
    /// Cisco Talos (no public API).
    pub talos: ProviderSettings,
}

impl ProvidersSettings {
    /// `(name, settings)` for every provider, in a fixed order.
    pub fn all(&self) -> [(&'static str, &ProviderSettings); 8] {
        [
            ("virustotal", &self.virustotal),
            ("abuseipdb", &self.abuseipdb),
            ("rdap", &self.rdap),
            ("internetdb", &self.internetdb),
            ("greynoise", &self.greynoise),
            ("otx", &self.otx),
            ("mmdb", &self.mmdb),
            ("talos", &self.talos),
        ]
    }
}

impl ProvidersSettings {
    /// Every provider's settings, in the order of [`ProvidersSettings::all`].
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        for (name, provider) in self.all() {
            provider.validate(name)?;
        }
        Ok(())
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

impl ProviderSettings {
    /// The settings of provider `name`, when enabled: mmdb needs a path; HTTP providers need a
    /// timeout and answer lifetimes above 0, and the keyed ones (VirusTotal, AbuseIPDB) a key.
    pub(crate) fn validate(&self, name: &str) -> Result<(), SettingsError> {
        if !self.enabled {
            return Ok(());
        }
        let key = |field: &str| format!("providers.{name}.{field}");
        match name {
            "mmdb" if self.path.trim().is_empty() => {
                return Err(SettingsError::invalid(
                    key("path"),
                    "required when enabled: one or more GeoLite2/DB-IP .mmdb files, \
                     comma-separated",
                ))
            }
            // Talos without a list file reports `disabled` with the reason; no error.
            "mmdb" | "talos" => {}
            _ => {
                if self.timeout.is_zero() {
                    return Err(SettingsError::invalid(key("timeout"), "must be > 0"));
                }
                if self.ttl.is_zero() || self.not_found_ttl.is_zero() {
                    return Err(SettingsError::invalid(
                        key(if self.ttl.is_zero() {
                            "ttl"
                        } else {
                            "not_found_ttl"
                        }),
                        "must be > 0 (answers must be kept to spend no quota twice)",
                    ));
                }
                let keyed = matches!(name, "virustotal" | "abuseipdb");
                if keyed && self.api_key.is_empty() && self.api_key_file.is_empty() {
                    return Err(SettingsError::invalid(
                        key("api_key"),
                        format!(
                            "required when enabled: set THREATSIFT__PROVIDERS__{}__API_KEY \
                             or providers.{name}.api_key_file",
                            name.to_ascii_uppercase()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}
