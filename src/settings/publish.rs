//! `[publish]`: the lowest verdict that is published.

use serde::{Deserialize, Serialize};

use super::SettingsError;
use crate::model::Verdict;

/// `[publish]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PublishSettings {
    /// Lowest verdict published: `unknown`, `suspicious` or `malicious`.
    pub min_verdict: Verdict,
    /// After each withdrawal, also a tombstone (null payload, same key) for compacted output
    /// topics (ef-withdraw).
    #[serde(default)]
    pub tombstones: bool,
}

impl PublishSettings {
    /// A verdict the scorer produces: `clean` never is (absence of evidence is `unknown`), so as
    /// a floor it would silently mean `suspicious`.
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        if self.min_verdict == Verdict::Clean {
            return Err(SettingsError::invalid(
                "publish.min_verdict",
                "`clean` is never produced (absence of evidence is `unknown`); use `unknown` \
                 to publish every record, or `suspicious`/`malicious`",
            ));
        }
        Ok(())
    }
}
