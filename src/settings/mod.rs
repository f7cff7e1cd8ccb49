//! Configuration: built-in `config/default.toml` → the `--config` file → environment
//! `THREATSIFT__SECTION__KEY`. Every key lives in `config/default.toml` (embedded in the binary),
//! unknown keys are errors (a provider table takes only the keys its default table has), relative
//! paths in the `--config` file are taken from that file's directory, and
//! [`Settings::validate`] checks the cross-field rules. Errors name
//! the key so `main` can exit 2 with a message an operator can act on.
//!
//! One file per section: each section type checks its own keys (`validate`), and
//! [`Settings::validate`] runs them in a fixed order, so the first problem reported is stable.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat};
use serde::{Deserialize, Serialize};

use crate::model::Role;

mod allowlist;
mod blocklist;
mod dedup;
mod dlq;
mod feeds;
mod filter;
mod intel;
mod kafka;
mod parse;
mod passthrough;
mod paths;
mod pipeline;
mod providers;
mod publish;
mod report;
mod scoring;
mod secret;
mod server;
mod shutdown;
#[cfg(test)]
mod tests;

pub(crate) use allowlist::AllowlistSettings;
pub(crate) use blocklist::{BlocklistSettings, PublishedSettings};
pub(crate) use dedup::DedupSettings;
pub(crate) use dlq::DlqSettings;
pub(crate) use feeds::FeedSettings;
pub(crate) use filter::FilterSettings;
pub(crate) use intel::IntelSettings;
pub(crate) use kafka::KafkaSettings;
pub(crate) use parse::ParseSettings;
pub(crate) use passthrough::Passthrough;
pub(crate) use pipeline::PipelineSettings;
pub(crate) use providers::ProvidersSettings;
pub use providers::{Allowance, ProviderSettings};
pub(crate) use publish::PublishSettings;
pub(crate) use report::{NarrativeSettings, ReportSettings};
pub(crate) use scoring::ScoringSettings;
pub use secret::Secret;
pub(crate) use server::ServerSettings;
pub(crate) use shutdown::ShutdownSettings;

/// The defaults, embedded so the binary runs from any directory.
pub(crate) const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// Prefix of environment overrides (`THREATSIFT__KAFKA__BROKERS`).
pub(crate) const ENV_PREFIX: &str = "THREATSIFT";

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The layers could not be read or did not match the schema.
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    /// A value is present but not acceptable.
    #[error("configuration key `{key}`: {problem}")]
    Invalid {
        /// Dotted key path.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A value names something that could not be used (a file that does not load), with why.
    #[error("configuration key `{key}`: {source}")]
    Unusable {
        /// Dotted key path.
        key: String,
        /// Why it could not be used.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A secret's `*_file` could not be read.
    #[error("configuration key `{key}`: cannot read secret file {file}: {source}")]
    SecretFile {
        /// Dotted key path.
        key: String,
        /// The configured file.
        file: String,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
}

impl SettingsError {
    pub(crate) fn invalid(key: impl Into<String>, problem: impl Into<String>) -> Self {
        SettingsError::Invalid {
            key: key.into(),
            problem: problem.into(),
        }
    }

    /// Short bounded label.
    pub fn kind(&self) -> &'static str {
        match self {
            SettingsError::Load(_) => "load",
            // An unreadable secret file is an unacceptable value, as it always was.
            SettingsError::Invalid { .. }
            | SettingsError::Unusable { .. }
            | SettingsError::SecretFile { .. } => "invalid",
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Brokers, topics, security and client tuning.
    pub kafka: KafkaSettings,
    /// Stage channel sizes and the delivery window.
    pub pipeline: PipelineSettings,
    /// Parser options.
    pub parse: ParseSettings,
    /// Which addresses are never enriched.
    pub filter: FilterSettings,
    /// Addresses an analyst cleared, from a reloadable file.
    #[serde(default)]
    pub allowlist: AllowlistSettings,
    /// The dedup window.
    pub dedup: DedupSettings,
    /// Local blocklist feeds.
    pub feeds: Vec<FeedSettings>,
    /// Local intelligence housekeeping.
    pub intel: IntelSettings,
    /// What is published.
    pub publish: PublishSettings,
    /// Dead-letter queue entries.
    pub dlq: DlqSettings,
    /// Metrics and health endpoint.
    pub server: ServerSettings,
    /// Shutdown deadline.
    pub shutdown: ShutdownSettings,
    /// Remote and local intelligence providers.
    pub providers: ProvidersSettings,
    /// How evidence becomes a score, a verdict and a severity.
    pub scoring: ScoringSettings,
    /// `[report]`: scheduled reports and the optional model narrative.
    pub report: ReportSettings,
    /// `[blocklist]`: the firewall blocklist endpoint (ef-withdraw).
    pub blocklist: BlocklistSettings,
    /// `[published]`: the index of published records (ef-withdraw).
    pub published: PublishedSettings,
}

impl Settings {
    /// Loads the layers and validates the result.
    pub fn load(config_file: Option<&Path>) -> Result<Settings, SettingsError> {
        Self::load_with_env(config_file, Environment::with_prefix(ENV_PREFIX))
    }

    /// Loads the defaults with `overrides` (TOML) on top, without reading the environment; for
    /// the demo and tests.
    pub fn from_toml_overrides(overrides: &str) -> Result<Settings, SettingsError> {
        Self::finish(
            Config::builder()
                .add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml))
                .add_source(File::from_str(overrides, FileFormat::Toml)),
        )
    }

    fn load_with_env(
        config_file: Option<&Path>,
        env: Environment,
    ) -> Result<Settings, SettingsError> {
        let mut builder =
            Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
        if let Some(path) = config_file {
            if !path.is_file() {
                return Err(SettingsError::invalid(
                    "--config",
                    format!("{} is not a readable file", path.display()),
                ));
            }
            builder = match paths::file_with_resolved_paths(path) {
                Some(text) => builder.add_source(File::from_str(&text, FileFormat::Toml)),
                // Not TOML: the config crate reads it again and says where it is wrong.
                None => builder.add_source(File::from(path).format(FileFormat::Toml)),
            };
        }
        let env = env.prefix_separator("__").separator("__");
        Self::finish(builder.add_source(env))
    }

    /// Merges the layers, checks that each provider table holds only its own keys, deserializes
    /// and validates.
    fn finish(
        builder: config::ConfigBuilder<config::builder::DefaultState>,
    ) -> Result<Settings, SettingsError> {
        let merged = builder.build()?;
        providers::check_keys(&merged)?;
        let settings: Settings = merged.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks the rules that the types cannot express: each section's own, in a fixed order.
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.report.validate()?;
        self.kafka.validate()?;
        self.pipeline.validate()?;
        self.parse.validate()?;
        self.filter.validate()?;
        self.dedup.validate()?;
        for (i, feed) in self.feeds.iter().enumerate() {
            feed.validate(i, &self.feeds[..i])?;
        }
        self.intel.validate()?;
        self.publish.validate()?;
        self.dlq.validate()?;
        self.server.validate()?;
        self.shutdown.validate()?;
        self.scoring.validate()?;
        shutdown::check_session_outlasts_drain(&self.kafka, &self.shutdown)?;
        self.blocklist.validate()?;
        self.published.validate()?;
        Ok(())
    }

    /// `filter.ignore_cidrs`, parsed.
    pub fn ignore_cidrs(&self) -> Result<Vec<ipnet::IpNet>, SettingsError> {
        self.filter.parsed_cidrs()
    }

    /// `server.listen`, parsed.
    pub fn listen_addr(&self) -> Result<SocketAddr, SettingsError> {
        self.server.listen_addr()
    }

    /// `parse.json_ip_fields`, with roles parsed (validated already).
    pub fn json_ip_fields(&self) -> Vec<(String, Role)> {
        self.parse
            .json_ip_fields
            .iter()
            .filter_map(|f| Role::from_label(&f.role).map(|role| (f.path.clone(), role)))
            .collect()
    }

    /// The effective settings as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render settings: {e}\n"))
    }

    /// `kafka.librdkafka` as pairs.
    pub fn librdkafka_overrides(&self) -> BTreeMap<String, String> {
        self.kafka
            .librdkafka
            .0
            .iter()
            .filter_map(|entry| entry.split_once('='))
            .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
            .collect()
    }

    /// Feed files as the intel module wants them.
    pub fn feed_paths(&self) -> Vec<(String, PathBuf)> {
        self.feeds
            .iter()
            .map(|f| (f.name.clone(), PathBuf::from(&f.path)))
            .collect()
    }
}

fn require_non_empty(key: &str, value: &str) -> Result<(), SettingsError> {
    if value.trim().is_empty() {
        Err(SettingsError::invalid(key, "must not be empty"))
    } else {
        Ok(())
    }
}
