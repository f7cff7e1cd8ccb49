//! `[report]`: scheduled reports and the optional model narrative (`[report.narrative]`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{require_non_empty, Secret, SettingsError};

/// `[report]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSettings {
    /// Every `interval` the daemon writes the report of the records it published in that
    /// interval to `directory`; `0s` turns scheduled reports off.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Where scheduled reports are written.
    pub directory: String,
    /// `md`, `json` or `html`.
    pub format: String,
    /// `[report.narrative]`.
    pub narrative: NarrativeSettings,
}

/// `[report.narrative]`: an OpenAI-compatible chat completions endpoint, off by default.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NarrativeSettings {
    /// Whether reports ask the model for a narrative.
    pub enabled: bool,
    /// API root; `/chat/completions` is appended.
    pub base_url: String,
    /// Model name.
    pub model: String,
    /// API key (secret); better set through the environment or `api_key_file`.
    pub api_key: Secret,
    /// File holding the API key, used when `api_key` is empty.
    pub api_key_file: String,
    /// The whole call, connection to last byte; past it the report goes out without prose.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Threats (highest scores first) described to the model.
    pub max_threats: usize,
}

impl ReportSettings {
    /// `report.format`, `report.directory`, then `[report.narrative]`.
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        if !matches!(self.format.as_str(), "md" | "json" | "html") {
            return Err(SettingsError::invalid(
                "report.format",
                "expected md, json or html",
            ));
        }
        if !self.interval.is_zero() && self.directory.is_empty() {
            return Err(SettingsError::invalid(
                "report.directory",
                "scheduled reports (report.interval > 0) need a directory",
            ));
        }
        self.narrative.validate()
    }
}

impl NarrativeSettings {
    /// When enabled: a base URL, a model and a timeout above 0.
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        if self.enabled {
            require_non_empty("report.narrative.base_url", &self.base_url)?;
            require_non_empty("report.narrative.model", &self.model)?;
            if self.timeout.is_zero() {
                return Err(SettingsError::invalid(
                    "report.narrative.timeout",
                    "must be more than 0s",
                ));
            }
        }
        Ok(())
    }
}
