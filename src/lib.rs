//! threatsift: firewall and proxy events from Kafka in, scored threat records out.
//!
//! # Architecture
//!
//! ```text
//! consumer ──raw──▶ process (frame → parse → extract → filter → dedup → local intel → score
//!    ▲                        → record) ──out──▶ sink
//!    └──── offsets stored only when every output of a message is delivered ◀──┤
//!                 remote dispatchers ◀── lookups, queued once delivered ◀─────┘
//!   (per provider: bounded priority queue → budget → breaker → answer cache → HTTP)
//!      └──▶ revised record (same key, next revision) when an answer raises the score
//! ```
//!
//! * [`topology`] is the running system and the only tokio code: it builds the stages, creates
//!   the bounded channels, spawns every task and runs the shutdown steps.
//! * [`stages`] are plain synchronous code in data-path order, each with a `//!` contract.
//! * [`remote`] is policy only (queues, revisions, the provider slot); its dispatchers run in
//!   `topology`. Its queues are bounded and give up the lowest-priority address (answered
//!   `skipped`) when full. Offsets do not wait for remote answers: a crash loses queued
//!   lookups, never a first record.
//! * Channels are bounded: a slow producer fills the sink's in-flight window, which fills the
//!   `out` channel, which stops the processor, which stops the consumer. Memory stays flat.
//! * Offsets: [`kafka::offsets::OffsetTracker`] stores, per partition, the highest offset below
//!   which every message is finished (all records and DLQ entries delivered, or nothing to send).
#![warn(missing_docs)]
#![deny(unreachable_pub)]

pub mod cli;
pub mod intel;
pub mod kafka;
pub mod model;
pub mod remote;
pub mod report;
pub mod settings;
pub mod stages;
pub mod telemetry;
pub mod test_support;
pub mod topology;
