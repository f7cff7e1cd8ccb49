//! `threatsift check-config`: validates the whole configuration and prints the effective
//! settings, secrets redacted.

use std::path::Path;
use std::process::ExitCode;

use super::{config_error, load_settings};

/// Prints the effective settings (exit 0), or the first problem, naming the key (exit 2).
pub fn check_config_command(config: Option<&Path>) -> ExitCode {
    match load_settings(config) {
        Ok(settings) => {
            print!("{}", settings.to_redacted_toml());
            ExitCode::SUCCESS
        }
        Err(e) => config_error(&e),
    }
}
