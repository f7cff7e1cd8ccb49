//! TODO: contract (in, out, roles, quirks).

use crate::model::Event;
use crate::pipeline::parse::{Line, LogFormat, ParseError};

/// Format `checkpoint`.
pub struct CheckPoint;

impl LogFormat for CheckPoint {
    fn name(&self) -> &'static str {
        "checkpoint"
    }

    fn detect(&self, _line: &Line<'_>) -> bool {
        false
    }

    fn parse<'a>(&self, _line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        Err(ParseError::malformed(self.name(), "not implemented yet"))
    }
}
