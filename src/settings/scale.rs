//! `[scale]`: one daemon alone (`single`, the in-process path) or several owning addresses by
//! partition through the sightings topic (`scaled`, design §10), and whether a single daemon
//! keeps its per-address state in the changelog topic.

use serde::{Deserialize, Serialize};

use super::SettingsError;

/// `[scale] mode`: how the work is split between daemons.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleMode {
    /// One daemon: every daemon does everything for the input partitions it holds.
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
    #[serde(default)]
    pub mode: ScaleMode,
    /// Single mode: write each address's state to `<output_topic>.state` and warm-start from
    /// it (scaled mode always does).
    #[serde(default)]
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

    /// True when the state changelog is written and read (at start-up in single mode, on
    /// assignment in scaled mode).
    pub fn changelog_on(&self) -> bool {
        self.changelog || self.scaled()
    }
}

/// The state topic of `output_topic` (a fixed derived name).
pub(crate) fn state_topic(output_topic: &str) -> String {
    format!("{output_topic}.state")
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

    #[test]
    fn the_changelog_is_off_by_default_on_when_asked_and_always_in_scaled_mode() {
        let on = |overrides: &str| {
            Settings::from_toml_overrides(overrides)
                .unwrap()
                .scale
                .changelog_on()
        };
        assert!(!on(""));
        assert!(on("[scale]\nchangelog = true\n"));
        assert!(on("[scale]\nmode = \"scaled\"\n"));
        assert_eq!(super::state_topic("threats"), "threats.state");
    }
}
