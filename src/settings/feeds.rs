//! `[[feeds]]`: local blocklist files, each with a name and a score weight.

use serde::{Deserialize, Serialize};

use super::{require_non_empty, SettingsError};

/// `[[feeds]]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FeedSettings {
    /// Name shown in records.
    pub name: String,
    /// File with one IP or CIDR per line.
    pub path: String,
    /// Score contribution of a listing, 0–100; 70 when not set (a listing alone makes the
    /// verdict malicious at the default `scoring.malicious_at`).
    #[serde(default = "default_weight")]
    pub weight: u8,
    /// TLP of this feed's listings (its terms): a record citing it is marked at least this
    /// strictly. Unset: `publish.tlp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tlp: Option<crate::model::Tlp>,
}

/// `weight` of a feed entry that does not set it.
pub(crate) const DEFAULT_WEIGHT: u8 = 70;

fn default_weight() -> u8 {
    DEFAULT_WEIGHT
}

impl FeedSettings {
    /// Entry `i` of `[[feeds]]`: a name and a path, a weight of 0–100, and a name that none of
    /// the `earlier` entries uses.
    pub(crate) fn validate(&self, i: usize, earlier: &[FeedSettings]) -> Result<(), SettingsError> {
        require_non_empty(&format!("feeds[{i}].name"), &self.name)?;
        require_non_empty(&format!("feeds[{i}].path"), &self.path)?;
        if self.weight > 100 {
            return Err(SettingsError::invalid(
                format!("feeds[{i}].weight"),
                "must be 0–100",
            ));
        }
        if earlier.iter().any(|other| other.name == self.name) {
            return Err(SettingsError::invalid(
                format!("feeds[{i}].name"),
                format!("`{}` is used by an earlier feed", self.name),
            ));
        }
        Ok(())
    }
}
