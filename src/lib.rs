//! threatsift: firewall and proxy events from Kafka in, scored threat records out.
//!
//! # Architecture
//!
//! ```text
//! consumer ──raw──▶ process (parse → extract → filter → dedup → local intel → score) ──out──▶ sink
//!    ▲                                                                                         │
//!    └──────────── offsets stored only when every output of a message is delivered ◀──────────┘
//!                                                                                              │
//!                      remote stage ◀── jobs, queued once the first record is delivered ◀─────┘
//!   (per provider: bounded priority queue → budget → breaker → answer cache → HTTP)
//!      └──▶ revised record (same key, next revision) when an answer raises the score
//! ```
//!
//! * The remote stage ([`pipeline::remote`], [`intel::remote`]) never blocks the consumer: its
//!   queues are bounded and give up the lowest-priority address (answered `skipped`) when full.
//!   Offsets do not wait for remote answers: a crash loses queued lookups, never a first record.
//! * The stages under [`pipeline`] are plain synchronous code; [`app`] is the only place that
//!   creates channels and spawns tasks.
//! * Channels are bounded: a slow producer fills the sink's in-flight window, which fills the
//!   `out` channel, which stops the processor, which stops the consumer. Memory stays flat.
//! * Offsets: [`kafka::offsets::OffsetTracker`] stores, per partition, the highest offset below
//!   which every message is finished (all records and DLQ entries delivered, or nothing to send).
//! * Shutdown: the consumer stops on the cancellation token and drops its sender; each later
//!   stage ends when its input closes; the producer is flushed and the offsets committed.
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
