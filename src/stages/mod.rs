//! The stages between the consumer and the producer, pure and synchronous, in data-path order.
//! Each has a `//!` contract; [`process::Processor`] chains them for one message and
//! `topology` runs it on a task.
//!
//! ```text
//! RawEvent ─▶ frame ─▶ parse ─▶ extract ─▶ filter ─▶ dedup ─▶ local intel ─▶ score ─▶ record
//!          ─▶ [Output] + [LookupRequest]
//! ```

pub mod dedup;
pub mod extract;
pub mod filter;
pub mod frame;
pub mod local;
pub mod parse;
pub mod process;
pub mod record;
pub mod score;
