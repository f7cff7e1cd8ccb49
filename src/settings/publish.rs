//! `[publish]`: the lowest verdict that is published, the shape records are published in and
//! the TLP marking of the daemon's own observations.

use serde::{Deserialize, Serialize};

use super::SettingsError;
use crate::model::{Tlp, Verdict};
use crate::publish::Format;

/// `[publish]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PublishSettings {
    /// Lowest verdict published: `unknown`, `suspicious` or `malicious`.
    pub min_verdict: Verdict,
    /// Shape of the published records: `threatsift` (default), `ecs`, `ocsf` or `stix`.
    #[serde(default)]
    pub format: Format,
    /// TLP of the daemon's own observations, and the least marking a record has; providers'
    /// and feeds' own `tlp` can only make a record's marking stricter.
    #[serde(default)]
    pub tlp: Tlp,
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
