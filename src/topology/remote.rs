//! The remote dispatchers: one task per enabled provider takes the best waiting address from
//! its queue when a lookup slot and budget are free, and runs the lookup on a task of its own
//! (at most [`LOOKUPS_IN_FLIGHT`] per provider). The policy (queue order, budget, breaker,
//! revisions) is `remote`'s; this is only the glue.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::model::{ProviderIntel, ProviderStatus};
use crate::remote::slot::{Admission, Outcome};
use crate::remote::{RemoteStage, LOOKUPS_IN_FLIGHT};
use crate::telemetry::events::ProviderRequestError;

/// How long lookups already sent may finish after the main pipeline drained.
const REMOTE_GRACE: Duration = Duration::from_secs(5);

/// The remote step's share of what is left of the drain deadline: [`REMOTE_GRACE`], or less
/// when less is left.
pub(crate) fn remote_grace(left: Duration) -> Duration {
    REMOTE_GRACE.min(left)
}

/// At shutdown, after the dispatchers' stop token was cancelled (queued lookups are dropped):
/// the lookups already running get `grace` to finish and publish their revisions; past that
/// they are abandoned with a warning giving the number of addresses still waiting. True when
/// every lookup finished in time.
pub async fn finish_lookups(
    mut lookups: JoinSet<()>,
    grace: Duration,
    stage: Option<&RemoteStage>,
) -> bool {
    let finished = tokio::time::timeout(grace, async {
        while lookups.join_next().await.is_some() {}
    })
    .await
    .is_ok();
    if !finished {
        let waiting = stage.map_or(0, RemoteStage::waiting);
        tracing::warn!(
            waiting,
            "remote lookups still running at shutdown were abandoned"
        );
        lookups.abort_all();
    }
    finished
}

/// Runs one dispatcher per provider until `stop`; lookups in flight then get until the
/// returned set is awaited or aborted.
pub fn spawn_dispatchers(stage: &Arc<RemoteStage>, stop: &CancellationToken) -> JoinSet<()> {
    let mut set = JoinSet::new();
    for index in 0..stage.slots().len() {
        set.spawn(dispatch(stage.clone(), index, stop.clone()));
    }
    set
}

async fn dispatch(stage: Arc<RemoteStage>, index: usize, stop: CancellationToken) {
    let slot = stage.slots()[index].clone();
    let in_flight = Arc::new(Semaphore::new(LOOKUPS_IN_FLIGHT));
    let mut lookups = JoinSet::new();
    loop {
        // Cancellation-safe: acquiring a permit and waiting on Notify hold no state.
        let permit = tokio::select! {
            _ = stop.cancelled() => break,
            permit = in_flight.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let next = stage.next_waiting(index);
        let Some(((priority, seq), job)) = next else {
            drop(permit);
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = stage.queued(index) => continue,
            }
        };
        while lookups.try_join_next().is_some() {}
        // The slot's clock: the reservation is dated on the clock its budget keeps.
        let now = slot.now();
        let mut reserved = None;
        // Cleared by an allow-list reload since it was queued: no request, no budget spent.
        let allowlisted = stage.allowlisted(job.ip);
        if !allowlisted && slot.needs_request(job.ip) {
            match slot.reserve(now) {
                Admission::Go => reserved = Some(now),
                Admission::Wait(wait) if wait <= stage.patience().max_wait => {
                    // Back in line: when budget returns, the best address then goes first.
                    stage.wait_again(index, (priority, seq), job);
                    drop(permit);
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = slot.sleep(wait.max(Duration::from_millis(1))) => continue,
                    }
                }
                // Refused, or a wait past patience: the lookup reports it without a request.
                _ => {}
            }
        }
        let stage = stage.clone();
        let slot = slot.clone();
        lookups.spawn(async move {
            let lookup = async {
                if allowlisted {
                    return stage.allowlisted_outcome(slot.name());
                }
                match reserved {
                    Some(granted_at) => {
                        slot.lookup_reserved(job.ip, stage.patience(), granted_at)
                            .await
                    }
                    None => slot.lookup(job.ip, stage.patience()).await,
                }
            };
            // A bug in a lookup must not leave the address counted as waiting forever.
            let outcome = std::panic::AssertUnwindSafe(lookup)
                .catch_unwind()
                .await
                .unwrap_or_else(|_| {
                    ProviderRequestError {
                        provider: slot.name(),
                        status: "internal_error",
                        error: "the lookup panicked (a bug)",
                    }
                    .emit(stage.metrics());
                    Outcome {
                        intel: ProviderIntel::status(
                            ProviderStatus::Unavailable,
                            "internal error during the lookup (a bug; see the log)",
                        ),
                        network: None,
                        retry_at: Some(slot.now() + Duration::from_secs(60)),
                    }
                });
            stage.finish(&job, slot.name(), outcome).await;
            drop(permit);
        });
    }
    // Lookups already sent finish (their revisions are published) unless the caller aborts.
    while lookups.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_remote_grace_is_5_s_or_what_is_left_of_the_drain_deadline() {
        assert_eq!(
            remote_grace(Duration::from_secs(60)),
            Duration::from_secs(5)
        );
        assert_eq!(remote_grace(Duration::from_secs(2)), Duration::from_secs(2));
        assert_eq!(remote_grace(Duration::ZERO), Duration::ZERO);
    }
}
