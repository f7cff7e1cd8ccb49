//! `[allowlist]`: the file of addresses an analyst cleared (never looked up, never published).

use std::path::Path;

use serde::{Deserialize, Serialize};

/// `[allowlist]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AllowlistSettings {
    /// The allow-list file (format: `stages::filter::allowlist`); empty: none. Re-read on
    /// `intel.feeds_reload_interval` when it changes.
    pub path: String,
}

impl AllowlistSettings {
    /// The configured file, when there is one.
    pub fn file(&self) -> Option<&Path> {
        let path = self.path.trim();
        (!path.is_empty()).then(|| Path::new(path))
    }
}
