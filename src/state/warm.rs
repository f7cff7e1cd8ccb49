//! Warm start: the newest state per address read from the changelog, bounded, and its
//! restoration into the dedup window, the providers' answer caches and the remote queues.
//! Pure apart from the caches it fills.
//!
//! * In: state records (or tombstones) in the order they were read ([`WarmState::offer`]).
//! * Newest wins per address (`written_ms`; on a tie, the later read). At most
//!   `dedup.max_entries` addresses are kept, those seen most recently (`last_seen`); the rest
//!   are counted in `dropped`. Unreadable records are counted in `invalid` and skipped.
//! * Restore ([`WarmState::restore`]) at `now`: `ok`/`not_found` answers go back into the
//!   providers' caches until their expiry (their lifetime may outlast the dedup window). An
//!   address whose window (`dedup.ttl` from its first sighting) has passed gets no dedup entry
//!   (`expired`); the others get theirs back (first/last seen, count, published revision,
//!   retry time), and one with a provider still `pending` becomes a [`RemoteJob`] to queue
//!   again with those providers only.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::remote::{RemoteJob, RemoteStage, Tracked};
use crate::stages::dedup::DedupCache;
use crate::state::record::{decode, parse_time, StateRecord};

/// The states read so far, newest per address, with the read's figures.
#[derive(Debug)]
pub(crate) struct WarmState {
    states: HashMap<IpAddr, StateRecord>,
    max_entries: usize,
    ttl: Duration,
    /// Records read (states and tombstones).
    pub records: u64,
    /// Records that were not state records (skipped).
    pub invalid: u64,
    /// Addresses left out to stay within `dedup.max_entries`.
    pub dropped: u64,
    /// Time the read took (set by the reader).
    pub elapsed: Duration,
}

/// What a restore put back.
#[derive(Debug, Default)]
pub(crate) struct Restored {
    /// Addresses put back in the dedup window.
    pub addresses: u64,
    /// Addresses whose window had passed.
    pub expired: u64,
    /// Answers put back in the providers' caches.
    pub answers: u64,
    /// Addresses to queue again for the providers still `pending`.
    pub jobs: Vec<RemoteJob>,
}

impl WarmState {
    /// Empty; keeps at most `max_entries` addresses, each restorable for `ttl` from its first
    /// sighting.
    pub(crate) fn new(max_entries: u64, ttl: Duration) -> Self {
        WarmState {
            states: HashMap::new(),
            max_entries: usize::try_from(max_entries).unwrap_or(usize::MAX).max(1),
            ttl,
            records: 0,
            invalid: 0,
            dropped: 0,
            elapsed: Duration::ZERO,
        }
    }

    /// One record of the state topic: its key and payload (`None`: a tombstone, which forgets
    /// the address).
    pub(crate) fn offer(&mut self, key: Option<&[u8]>, payload: Option<&[u8]>) {
        self.records += 1;
        let Some(payload) = payload else {
            if let Some(ip) = key
                .and_then(|k| std::str::from_utf8(k).ok())
                .and_then(|k| k.parse::<IpAddr>().ok())
            {
                self.states.remove(&ip);
            }
            return;
        };
        match decode(payload) {
            Ok(state) => self.add(state),
            Err(_) => self.invalid += 1,
        }
    }

    /// Keeps `state` unless a newer one of its address is held.
    pub(crate) fn add(&mut self, state: StateRecord) {
        match self.states.get_mut(&state.ip) {
            Some(held) if held.written_ms > state.written_ms => {}
            Some(held) => *held = state,
            None => {
                self.states.insert(state.ip, state);
                // Memory stays within twice the bound while reading.
                if self.states.len() >= self.max_entries.saturating_mul(2) {
                    self.bound();
                }
            }
        }
    }

    /// Addresses held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.states.len()
    }

    /// True when no address is held.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// The state held for `ip`.
    #[cfg(test)]
    pub(crate) fn get(&self, ip: &IpAddr) -> Option<&StateRecord> {
        self.states.get(ip)
    }

    /// Keeps the `max_entries` most recently seen addresses.
    fn bound(&mut self) {
        if self.states.len() <= self.max_entries {
            return;
        }
        let mut by_last_seen: Vec<(SystemTime, IpAddr)> = self
            .states
            .values()
            .map(|s| {
                (
                    parse_time(&s.last_seen).unwrap_or(SystemTime::UNIX_EPOCH),
                    s.ip,
                )
            })
            .collect();
        // Most recent first; the tail past the bound goes.
        by_last_seen.sort_unstable_by(|a, b| b.cmp(a));
        for (_, ip) in by_last_seen.drain(self.max_entries..) {
            self.states.remove(&ip);
            self.dropped += 1;
        }
    }

    /// Puts the states back at `now`: dedup entries, answers (into `remote`'s slots) and the
    /// jobs still pending. Consumes the state.
    pub(crate) async fn restore(
        mut self,
        dedup: &DedupCache,
        remote: Option<&Arc<RemoteStage>>,
        now: SystemTime,
    ) -> Restored {
        self.bound();
        let mut restored = Restored::default();
        for (ip, state) in self.states {
            let Ok(sighting) = state.sighting() else {
                continue;
            };
            // Answers live by their own lifetime, which may outlast the dedup window.
            if let Some(stage) = remote {
                for (provider, lookup, until) in state.answers() {
                    if let Some(slot) = stage.slots().iter().find(|s| s.name() == provider) {
                        if until > now {
                            slot.restore_answer(ip, lookup, until).await;
                            restored.answers += 1;
                        }
                    }
                }
            }
            if sighting.first_seen + self.ttl <= now {
                // Its next sighting is a first one again, which looks it up (from the
                // restored answers) and queues whatever is missing.
                restored.expired += 1;
                continue;
            }
            let window = dedup.restore(ip, &sighting);
            restored.addresses += 1;
            let Some(stage) = remote else {
                continue;
            };
            let pending = state
                .pending()
                .any(|p| stage.slots().iter().any(|s| s.name() == p));
            if !pending {
                continue;
            }
            let mut tracked = Tracked::new(
                state.record.clone(),
                state.feed_matches(),
                state.evidence.threat.clone(),
                state.evidence.reporter.clone(),
                window,
                state.origin(),
            );
            tracked.answers = state.answers.clone();
            restored.jobs.push(RemoteJob {
                ip,
                priority: state.priority(),
                tracked: Arc::new(tokio::sync::Mutex::new(tracked)),
            });
        }
        restored
    }
}

#[cfg(test)]
#[path = "warm_tests.rs"]
mod tests;
