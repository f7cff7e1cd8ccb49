//! The subcommands other than the daemon's own loop.

pub mod demo;
pub mod enrich;
pub mod parse;
