//! The subcommands other than the daemon's own loop.

pub(crate) mod demo;
pub(crate) mod enrich;
pub(crate) mod parse;

use std::path::Path;

use crate::settings::{Settings, SettingsError};

/// Loads the settings (defaults, `config`, environment) and checks them whole: each section
/// by itself, then the forced formats against the format registry and `[providers.*]` and the
/// provider weights against the provider registry.
pub fn load_settings(config: Option<&Path>) -> Result<Settings, SettingsError> {
    let settings = Settings::load(config)?;
    crate::stages::parse::check_topic_formats(&settings.parse.topic_formats)?;
    crate::intel::registry::validate(&settings)?;
    Ok(settings)
}
