//! TODO: contract (in, out, roles, quirks).

use crate::model::Event;
use crate::pipeline::parse::json::JsonRef;
use crate::pipeline::parse::{JsonFormat, Line, LogFormat, ParseError};

/// Format `zeek_tsv`.
pub struct ZeekTsv;

impl LogFormat for ZeekTsv {
    fn name(&self) -> &'static str {
        "zeek_tsv"
    }

    fn detect(&self, _line: &Line<'_>) -> bool {
        false
    }

    fn parse<'a>(&self, _line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        Err(ParseError::malformed(self.name(), "not implemented yet"))
    }
}

/// Format `zeek`.
pub struct ZeekJson;

impl JsonFormat for ZeekJson {
    fn name(&self) -> &'static str {
        "zeek"
    }

    fn detect(&self, _doc: JsonRef<'_, '_>) -> bool {
        false
    }

    fn parse<'a>(&self, _doc: JsonRef<'_, 'a>) -> Result<Event<'a>, ParseError> {
        Err(ParseError::malformed(self.name(), "not implemented yet"))
    }
}
