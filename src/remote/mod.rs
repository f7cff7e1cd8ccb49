//! Remote intelligence, policy only: the per-provider queues and their order, revisions, and the
//! provider slot (budget, breaker, answer cache) in front of every remote provider. The async
//! dispatchers that drive it live in `topology`.

pub mod breaker;
pub mod budget;
mod queue;
mod revision;
pub mod slot;
mod stage;

pub use crate::stages::local::merge_network;
pub use crate::stages::process::Priority;
pub use queue::QueueKey;
pub use revision::{apply_outcome, NoRevisions, RemoteJob, RevisionRules, RevisionSink, Tracked};
pub use stage::{Eviction, RemoteStage, LOOKUPS_IN_FLIGHT};

#[cfg(test)]
mod tests;
