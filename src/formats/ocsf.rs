//! TODO: contract (in, out, roles, quirks).

use crate::model::Event;
use crate::pipeline::parse::json::JsonRef;
use crate::pipeline::parse::{JsonFormat, ParseError};

/// Format `ocsf`.
pub struct Ocsf;

impl JsonFormat for Ocsf {
    fn name(&self) -> &'static str {
        "ocsf"
    }

    fn detect(&self, _doc: JsonRef<'_, '_>) -> bool {
        false
    }

    fn parse<'a>(&self, _doc: JsonRef<'_, 'a>) -> Result<Event<'a>, ParseError> {
        Err(ParseError::malformed(self.name(), "not implemented yet"))
    }
}
