//! `[shutdown]`: how long draining, flushing and committing may take after a signal.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::SettingsError;

/// `[shutdown]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownSettings {
    /// Time allowed to drain, flush and commit after SIGTERM/SIGINT.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
}

impl ShutdownSettings {
    /// A drain timeout above 0.
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        if self.drain_timeout.is_zero() {
            return Err(SettingsError::invalid(
                "shutdown.drain_timeout",
                "must be > 0",
            ));
        }
        Ok(())
    }
}
