//! The stages between the consumer and the producer, pure and synchronous, in data-path order.
//! Each has a `//!` contract; [`process::Processor`] chains them for one message and
//! `topology` runs it on a task.
//!
//! ```text
//! RawEvent ─▶ frame ─▶ parse ─▶ extract ─▶ filter ─▶ dedup ─▶ local intel ─▶ score ─▶ record
//!          ─▶ [Output] + [LookupRequest]
//! ```

pub(crate) mod dedup;
pub(crate) mod event_time;
pub(crate) mod extract;
pub(crate) mod filter;
pub(crate) mod frame;
pub(crate) mod local;
pub(crate) mod parse;
pub(crate) mod process;
pub(crate) mod published;
pub(crate) mod record;
pub(crate) mod score;
pub(crate) mod sighting;
