//! `[intel]`: feed reloading and the remote providers' queues, caches and waiting limit.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::SettingsError;

/// `[intel]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IntelSettings {
    /// How often feed files (and the mmdb and Talos files) are checked for changes.
    #[serde(with = "humantime_serde")]
    pub feeds_reload_interval: Duration,
    /// Addresses each remote provider's queue holds; past it the lowest priority is skipped.
    pub remote_queue_capacity: usize,
    /// Answers each remote provider's cache keeps (`ok` and `not_found`).
    pub provider_cache_entries: u64,
    /// Longest the remote queue waits for a provider's budget, hold or open circuit before the
    /// waiting addresses are reported `skipped`/`unavailable`.
    #[serde(with = "humantime_serde")]
    pub remote_max_wait: Duration,
}

impl IntelSettings {
    /// Reload interval, queue capacity and cache size above 0.
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        if self.feeds_reload_interval.is_zero() {
            return Err(SettingsError::invalid(
                "intel.feeds_reload_interval",
                "must be > 0",
            ));
        }
        if self.remote_queue_capacity == 0 {
            return Err(SettingsError::invalid(
                "intel.remote_queue_capacity",
                "must be > 0",
            ));
        }
        if self.provider_cache_entries == 0 {
            return Err(SettingsError::invalid(
                "intel.provider_cache_entries",
                "must be > 0",
            ));
        }
        Ok(())
    }
}
