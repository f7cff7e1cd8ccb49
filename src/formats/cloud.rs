//! TODO: contract (in, out, roles, quirks).

use crate::model::Event;
use crate::pipeline::parse::json::JsonRef;
use crate::pipeline::parse::{JsonFormat, ParseError};

/// Format `gcp_firewall`.
pub struct GcpFirewall;

impl JsonFormat for GcpFirewall {
    fn name(&self) -> &'static str {
        "gcp_firewall"
    }

    fn detect(&self, _doc: JsonRef<'_, '_>) -> bool {
        false
    }

    fn parse<'a>(&self, _doc: JsonRef<'_, 'a>) -> Result<Event<'a>, ParseError> {
        Err(ParseError::malformed(self.name(), "not implemented yet"))
    }
}

/// Format `azure_firewall`.
pub struct AzureFirewall;

impl JsonFormat for AzureFirewall {
    fn name(&self) -> &'static str {
        "azure_firewall"
    }

    fn detect(&self, _doc: JsonRef<'_, '_>) -> bool {
        false
    }

    fn parse<'a>(&self, _doc: JsonRef<'_, 'a>) -> Result<Event<'a>, ParseError> {
        Err(ParseError::malformed(self.name(), "not implemented yet"))
    }
}
