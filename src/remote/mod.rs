//! Remote intelligence, policy only: the per-provider queues and their order, revisions, and the
//! provider slot (budget, breaker, answer cache) in front of every remote provider. The async
//! dispatchers that drive it live in `topology`.

pub mod breaker;
pub mod budget;
pub mod slot;
mod stage;

pub use stage::*;
