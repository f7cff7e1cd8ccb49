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
    /// Bytes of output (records, DLQ entries, remote lookups) that may await delivery at once;
    /// one message alone may pass it, so no message is ever stuck.
    pub max_in_flight_bytes: usize,
    /// Remote lookups one message may queue; addresses past it are looked up on their next
    /// sighting.
    pub max_lookups_per_message: usize,
    /// Most messages taken from the consumer as one batch (what one poll has ready).
    pub batch_max_messages: usize,
    /// Most payload bytes in one batch.
    pub batch_max_bytes: usize,
    /// Threads that parse, extract, filter, dedup and score; each owns a share of the
    /// partitions. 0 = one per core.
    pub workers: usize,
}

impl PipelineSettings {
    /// The processing threads: `workers`, or one per core.
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        }
    }

    /// Capacity of each channel between stages, in batches: `channel_capacity` messages' worth.
    pub fn channel_batches(&self) -> usize {
        (self.channel_capacity / self.batch_max_messages).max(2)
    }

    /// Every size above 0.
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
        if self.max_in_flight_bytes == 0 {
            return Err(SettingsError::invalid(
                "pipeline.max_in_flight_bytes",
                "must be > 0",
            ));
        }
        if self.batch_max_messages == 0 {
            return Err(SettingsError::invalid(
                "pipeline.batch_max_messages",
                "must be > 0",
            ));
        }
        if self.batch_max_bytes == 0 {
            return Err(SettingsError::invalid(
                "pipeline.batch_max_bytes",
                "must be > 0",
            ));
        }
        Ok(())
    }
}
