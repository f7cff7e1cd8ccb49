//! TODO: contract (in, out, roles, quirks).

use crate::model::Event;
use crate::pipeline::parse::{Line, LogFormat, ParseError};

/// Format `squid`.
pub struct SquidNative;

impl LogFormat for SquidNative {
    fn name(&self) -> &'static str {
        "squid"
    }

    fn detect(&self, _line: &Line<'_>) -> bool {
        false
    }

    fn parse<'a>(&self, _line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        Err(ParseError::malformed(self.name(), "not implemented yet"))
    }
}

/// Format `squid_combined`.
pub struct SquidCombined;

impl LogFormat for SquidCombined {
    fn name(&self) -> &'static str {
        "squid_combined"
    }

    fn detect(&self, _line: &Line<'_>) -> bool {
        false
    }

    fn parse<'a>(&self, _line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        Err(ParseError::malformed(self.name(), "not implemented yet"))
    }
}
