//! TODO: contract (in, out, roles, quirks).

use crate::model::Event;
use crate::pipeline::parse::json::JsonRef;
use crate::pipeline::parse::{JsonFormat, Line, LogFormat, ParseError};

/// Format `zscaler_kv`.
pub struct ZscalerKv;

impl LogFormat for ZscalerKv {
    fn name(&self) -> &'static str {
        "zscaler_kv"
    }

    fn detect(&self, _line: &Line<'_>) -> bool {
        false
    }

    fn parse<'a>(&self, _line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        Err(ParseError::malformed(self.name(), "not implemented yet"))
    }
}

/// Format `zscaler`.
pub struct ZscalerJson;

impl JsonFormat for ZscalerJson {
    fn name(&self) -> &'static str {
        "zscaler"
    }

    fn detect(&self, _doc: JsonRef<'_, '_>) -> bool {
        false
    }

    fn parse<'a>(&self, _doc: JsonRef<'_, 'a>) -> Result<Event<'a>, ParseError> {
        Err(ParseError::malformed(self.name(), "not implemented yet"))
    }
}
