//! `[dlq]`: how much of the original payload a dead-letter queue entry keeps.

use serde::{Deserialize, Serialize};

use super::SettingsError;

/// `[dlq]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DlqSettings {
    /// Original bytes kept in a DLQ entry; longer payloads are truncated and flagged.
    pub max_payload_bytes: usize,
}

impl DlqSettings {
    /// Nothing to check beyond the type: any size, 0 included, is accepted.
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        Ok(())
    }
}
