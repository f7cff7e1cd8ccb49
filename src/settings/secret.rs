//! `Secret`: a configured credential (SASL password, API key) that is never printed.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

use super::SettingsError;

/// A secret string: never printed, serialised as a redaction marker.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that must hand it to a client library.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when no value is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The inline value, or else the trimmed contents of `file` (when a path is configured).
    pub fn resolve(&self, file: &str, key: &str) -> Result<Secret, SettingsError> {
        if !self.is_empty() || file.is_empty() {
            return Ok(self.clone());
        }
        std::fs::read_to_string(file)
            .map(|text| Secret(text.trim().to_owned()))
            .map_err(|source| SettingsError::SecretFile {
                key: key.to_owned(),
                file: file.to_owned(),
                source,
            })
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_empty() {
            "\"\""
        } else {
            "\"<redacted>\""
        })
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(if self.is_empty() { "" } else { "<redacted>" })
    }
}
