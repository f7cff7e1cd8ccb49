//! TODO: contract (in, out, roles, quirks).

use crate::model::Event;
use crate::pipeline::parse::{Line, LogFormat, ParseError};

/// Format `fortigate`.
pub struct Fortigate;

impl LogFormat for Fortigate {
    fn name(&self) -> &'static str {
        "fortigate"
    }

    fn detect(&self, _line: &Line<'_>) -> bool {
        false
    }

    fn parse<'a>(&self, _line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        Err(ParseError::malformed(self.name(), "not implemented yet"))
    }
}
