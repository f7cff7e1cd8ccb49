//! The types that cross stages: the raw message and its origin, the parsed event and its roles,
//! the threat record and the DLQ entry, and what one message produces.

mod event;
mod filter_reason;
mod output;
mod record;
#[cfg(test)]
pub(crate) mod schema_check;

pub use event::*;
pub use filter_reason::FilterReason;
pub use output::*;
pub use record::*;
