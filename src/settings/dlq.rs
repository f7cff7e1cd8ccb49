//! `[dlq]`: how much of the original payload a dead-letter queue entry keeps.

use serde::{Deserialize, Serialize};

use super::SettingsError;

/// `[dlq]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DlqSettings {
    /// Original bytes kept in a DLQ entry; longer payloads are truncated and flagged.
    pub max_payload_bytes: usize,
    /// DLQ entries one input message may make; past it, one summary entry counts the rest and
    /// carries the whole message.
    pub max_entries_per_message: usize,
}

impl DlqSettings {
    /// Any payload size, 0 included, is accepted; a message may make at least one entry.
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        if self.max_entries_per_message == 0 {
            return Err(SettingsError::invalid(
                "dlq.max_entries_per_message",
                "must be > 0",
            ));
        }
        Ok(())
    }
}
