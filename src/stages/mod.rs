//! The stages between the consumer and the producer, pure and synchronous, in data-path order.
//! Each has a `//!` contract; [`process::Processor`] chains them for one message and
//! `topology` runs it on a task.
//!
//! ```text
//! RawEvent ─▶ parse ─▶ extract ─▶ filter ─▶ dedup ─▶ local intel ─▶ score ─▶ [Output] + [RemoteJob]
//! ```

pub mod dedup;
pub mod extract;
pub mod filter;
pub mod parse;
pub mod process;
pub mod score;
