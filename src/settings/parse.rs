//! `[parse]`: size limits, extra JSON address fields and per-topic formats for the parser.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{require_non_empty, SettingsError};
use crate::model::Role;

/// `[parse]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ParseSettings {
    /// A line longer than this goes to the DLQ as `too_large`.
    pub max_line_bytes: usize,
    /// A gzip payload decompressing to more than this goes to the DLQ as `invalid_gzip`.
    pub max_decompressed_bytes: usize,
    /// Extra JSON field paths holding addresses, with their role.
    pub json_ip_fields: Vec<JsonIpField>,
    /// Topic → format name: lines from that topic skip format detection.
    pub topic_formats: BTreeMap<String, String>,
}

/// One configured JSON address field.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JsonIpField {
    /// Dotted path, e.g. `data.attacker.addr`.
    pub path: String,
    /// `source`, `destination`, `client`, `nat`, `forwarded` or `unknown`.
    pub role: String,
}

impl ParseSettings {
    /// Consistent size limits, known topic formats and JSON fields with a path and a known role.
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        if self.max_decompressed_bytes < self.max_line_bytes {
            return Err(SettingsError::invalid(
                "parse.max_decompressed_bytes",
                "must be at least parse.max_line_bytes",
            ));
        }
        if self.max_line_bytes == 0 {
            return Err(SettingsError::invalid(
                "parse.max_line_bytes",
                "must be > 0",
            ));
        }
        for (i, field) in self.json_ip_fields.iter().enumerate() {
            require_non_empty(&format!("parse.json_ip_fields[{i}].path"), &field.path)?;
            if Role::from_label(&field.role).is_none() {
                return Err(SettingsError::invalid(
                    format!("parse.json_ip_fields[{i}].role"),
                    "expected source, destination, client, nat, forwarded or unknown",
                ));
            }
        }
        Ok(())
    }
}
