//! `[scale]`: one daemon alone (`single`) or several owning addresses by partition (`scaled`),
//! and whether a single daemon keeps its per-address state in the changelog topic.

use serde::{Deserialize, Serialize};

/// `[scale] mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleMode {
    /// One daemon: the in-process path.
    #[default]
    Single,
    /// Several daemons, each owning the addresses of its sightings partitions.
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
    /// True when the state changelog is written and read at start-up.
    pub fn changelog_on(&self) -> bool {
        self.changelog || self.mode == ScaleMode::Scaled
    }
}

/// The state topic of `output_topic` (a fixed derived name).
pub(crate) fn state_topic(output_topic: &str) -> String {
    format!("{output_topic}.state")
}

#[cfg(test)]
mod tests {
    use crate::settings::Settings;

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
        let err = Settings::from_toml_overrides("[scale]\nmode = \"sharded\"\n").unwrap_err();
        assert!(err.to_string().contains("sharded"), "{err}");
        assert_eq!(super::state_topic("threats"), "threats.state");
    }
}
