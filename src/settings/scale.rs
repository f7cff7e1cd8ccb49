//! `[scale]`: one daemon with the in-process path, or several sharing the addresses through
//! the sightings topic (design §10).

use serde::{Deserialize, Serialize};

use super::SettingsError;

/// How the work is split between daemons.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleMode {
    /// Every daemon does everything for the input partitions it holds (today's path).
    #[default]
    Single,
    /// Ingest on the input partitions, ownership of addresses by sightings partition.
    Scaled,
}

/// `[scale]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleSettings {
    /// `single` (default) or `scaled`.
    pub mode: ScaleMode,
    /// Single mode: write and warm-start from the state topic (scaled mode always does).
    pub changelog: bool,
}

impl ScaleSettings {
    /// Nothing to cross-check yet: the mode's values are closed by the type.
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        Ok(())
    }

    /// True in scaled mode.
    pub fn scaled(&self) -> bool {
        self.mode == ScaleMode::Scaled
    }
}

#[cfg(test)]
mod tests {
    use crate::settings::{ScaleMode, Settings};

    #[test]
    fn the_mode_is_single_unless_scaled_is_asked_for_and_nothing_else_is_taken() {
        let default = Settings::from_toml_overrides("").unwrap();
        assert_eq!(default.scale.mode, ScaleMode::Single);
        assert!(!default.scale.changelog);
        let scaled = Settings::from_toml_overrides("[scale]\nmode = \"scaled\"\n").unwrap();
        assert!(scaled.scale.scaled());
        assert_eq!(scaled.sightings_topic(), "threats.sightings");
        assert_eq!(scaled.state_topic(), "threats.state");
        assert_eq!(scaled.owners_group(), "threatsift.owners");
        let error = Settings::from_toml_overrides("[scale]\nmode = \"multi\"\n").unwrap_err();
        assert!(error.to_string().contains("multi"), "{error}");
    }
}
