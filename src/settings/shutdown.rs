//! `[shutdown]`: how long draining, flushing and committing may take after a signal.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{KafkaSettings, SettingsError};

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

/// `kafka.session_timeout` above `shutdown.drain_timeout`: the group keeps this member's
/// partitions for the whole drain, so the final commit is never refused as coming from a member
/// the group already replaced (which would deliver the drained records twice).
pub(crate) fn check_session_outlasts_drain(
    kafka: &KafkaSettings,
    shutdown: &ShutdownSettings,
) -> Result<(), SettingsError> {
    if kafka.session_timeout <= shutdown.drain_timeout {
        return Err(SettingsError::invalid(
            "kafka.session_timeout",
            format!(
                "must be longer than shutdown.drain_timeout ({}), so the group keeps the \
                 partitions until the drain has committed",
                humantime::format_duration(shutdown.drain_timeout)
            ),
        ));
    }
    Ok(())
}
