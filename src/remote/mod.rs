//! Remote intelligence, policy only: the per-provider queues and their order, revisions, and the
//! provider slot (budget, breaker, answer cache) in front of every remote provider. The async
//! dispatchers that drive it live in `topology`.

pub(crate) mod breaker;
pub(crate) mod budget;
mod queue;
mod revision;
pub(crate) mod slot;
mod stage;

pub use crate::stages::process::Priority;
pub use revision::{apply_outcome, NoRevisions, RemoteJob, RevisionRules, RevisionSink, Tracked};

pub use stage::RemoteStage;
pub(crate) use stage::LOOKUPS_IN_FLIGHT;

#[cfg(test)]
mod tests;
