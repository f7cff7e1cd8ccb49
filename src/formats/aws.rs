//! TODO: contract (in, out, roles, quirks).

use crate::model::Event;
use crate::pipeline::parse::{Line, LogFormat, ParseError};

/// Format `aws_vpc_flow`.
pub struct VpcFlow;

impl LogFormat for VpcFlow {
    fn name(&self) -> &'static str {
        "aws_vpc_flow"
    }

    fn detect(&self, _line: &Line<'_>) -> bool {
        false
    }

    fn parse<'a>(&self, _line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        Err(ParseError::malformed(self.name(), "not implemented yet"))
    }
}
