//! TODO: contract (in, out, roles, quirks).

use crate::model::Event;
use crate::pipeline::parse::{Line, LogFormat, ParseError};

/// Format `umbrella`.
pub struct Umbrella;

impl LogFormat for Umbrella {
    fn name(&self) -> &'static str {
        "umbrella"
    }

    fn detect(&self, _line: &Line<'_>) -> bool {
        false
    }

    fn parse<'a>(&self, _line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        Err(ParseError::malformed(self.name(), "not implemented yet"))
    }
}
