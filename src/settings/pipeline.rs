//! `[pipeline]`: the channel capacity between stages and the delivery window.

use serde::{Deserialize, Serialize};

use super::SettingsError;

/// `[pipeline]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSettings {
    /// Capacity of each bounded channel between stages, in messages.
    pub channel_capacity: usize,
    /// Messages whose outputs may await delivery reports at once.
    pub max_in_flight: usize,
}

impl PipelineSettings {
    /// Both sizes above 0.
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        if self.channel_capacity == 0 {
            return Err(SettingsError::invalid(
                "pipeline.channel_capacity",
                "must be > 0",
            ));
        }
        if self.max_in_flight == 0 {
            return Err(SettingsError::invalid(
                "pipeline.max_in_flight",
                "must be > 0",
            ));
        }
        Ok(())
    }
}
