//! `[dedup]`: how long and how many addresses the dedup window remembers.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::SettingsError;

/// `[dedup]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DedupSettings {
    /// How long an address is remembered after its first sighting.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// Most addresses remembered at once.
    pub max_entries: u64,
}

impl DedupSettings {
    /// Both limits above 0.
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        if self.max_entries == 0 {
            return Err(SettingsError::invalid("dedup.max_entries", "must be > 0"));
        }
        if self.ttl.is_zero() {
            return Err(SettingsError::invalid("dedup.ttl", "must be > 0"));
        }
        Ok(())
    }
}
