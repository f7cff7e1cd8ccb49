//! The commands: each loads what it needs, runs, and says how it went as the exit code (0
//! success, 2 usage or configuration error naming the key, 1 runtime failure). `main.rs` only
//! parses the command line and calls one of these.

mod check_config;
pub(crate) mod demo;
pub(crate) mod enrich;
pub(crate) mod parse;
mod report;
mod run;

pub use check_config::check_config_command;
pub use demo::demo_command;
pub use enrich::enrich_command;
pub use parse::parse_command;
pub use report::{report_command, ReportArgs};
pub use run::run_command;

use std::path::Path;
use std::process::ExitCode;

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

/// A usage or configuration error: printed, exit 2.
fn config_error(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("threatsift: {error}");
    ExitCode::from(2)
}

/// A runtime failure: printed, exit 1.
fn fail(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("threatsift: {error}");
    ExitCode::from(1)
}
