//! `[publish]`: the lowest verdict that is published.

use serde::{Deserialize, Serialize};

use super::SettingsError;
use crate::model::Verdict;

/// `[publish]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PublishSettings {
    /// Lowest verdict published: `unknown`, `clean`, `suspicious` or `malicious`.
    pub min_verdict: Verdict,
}

impl PublishSettings {
    /// Nothing to check beyond the type: every verdict is a valid floor.
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        Ok(())
    }
}
