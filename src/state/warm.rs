//! Warm start: the newest state per address read from the changelog, bounded, and its
//! restoration into the dedup window, the providers' answer caches and the remote queues.
//! Pure apart from the caches it fills.
//!
//! * In: state records (or tombstones) in the order they were read ([`WarmState::offer`]).
//! * The latest record of an address in the topic wins, as compaction would keep it: an
//!   address's states all lie in one partition, written in order by its one owner at a time
//!   (so no clock is compared: owners' clocks may differ after a rebalance). At most
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

use serde::Deserialize;

use crate::remote::{RemoteJob, RemoteStage, Tracked};
use crate::stages::dedup::DedupCache;
use crate::stages::published::PublishedIndex;

#[cfg(test)]
use crate::state::record::StateRecord;
use crate::state::record::{decode, parse_time, MAX_STATE_BYTES, STATE_SCHEMA};

/// A state held until the restore: as read (its JSON is several times smaller than the
/// decoded record), with what newest-wins and the bound need.
#[derive(Debug)]
struct Held {
    last_seen: SystemTime,
    payload: Vec<u8>,
}

/// The fields of a state record read while reading the topic (the rest is decoded at the
/// restore).
#[derive(Deserialize)]
struct Header {
    schema: String,
    ip: IpAddr,
    last_seen: String,
}

/// The states read so far, newest per address, with the read's figures.
#[derive(Debug)]
pub(crate) struct WarmState {
    states: HashMap<IpAddr, Held>,
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
    /// s12: the index of published records, to put each restored address's published record
    /// back (withdrawals and the blocklist then survive a restart).
    published: Option<PublishedIndex>,
}

/// What a restore put back.
#[derive(Debug, Default)]
pub(crate) struct Restored {
    /// States that could not be read (counted with the read's `invalid`).
    pub(crate) invalid: u64,
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
            published: None,
        }
    }

    /// Restores into `index` too: the record of each restored address whose state says it
    /// was published (its record at the published revision, not withdrawn).
    pub(crate) fn feeding(mut self, index: PublishedIndex) -> Self {
        self.published = Some(index);
        self
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
        let header = (payload.len() <= MAX_STATE_BYTES)
            .then(|| serde_json::from_slice::<Header>(payload).ok())
            .flatten()
            .filter(|h| h.schema == STATE_SCHEMA);
        let Some(header) = header else {
            self.invalid += 1;
            return;
        };
        let Ok(last_seen) = parse_time(&header.last_seen) else {
            self.invalid += 1;
            return;
        };
        let held = Held {
            last_seen,
            payload: payload.to_vec(),
        };
        match self.states.get_mut(&header.ip) {
            Some(current) => *current = held,
            None => {
                self.states.insert(header.ip, held);
                // Memory stays within twice the bound while reading.
                if self.states.len() >= self.max_entries.saturating_mul(2) {
                    self.bound();
                }
            }
        }
    }

    /// Takes `state` as the latest read of its address.
    #[cfg(test)]
    pub(crate) fn add(&mut self, state: StateRecord) {
        let output = state.encode().unwrap();
        self.offer(output.key.as_deref(), Some(&output.payload));
        self.records -= 1;
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
    pub(crate) fn get(&self, ip: &IpAddr) -> Option<StateRecord> {
        self.states
            .get(ip)
            .and_then(|held| decode(&held.payload).ok())
    }

    /// Keeps the `max_entries` most recently seen addresses.
    fn bound(&mut self) {
        if self.states.len() <= self.max_entries {
            return;
        }
        let mut by_last_seen: Vec<(SystemTime, IpAddr)> = self
            .states
            .iter()
            .map(|(ip, held)| (held.last_seen, *ip))
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
        for (ip, held) in self.states {
            let Some((state, sighting)) = decode(&held.payload)
                .ok()
                .and_then(|state| Some((state.sighting().ok()?, state)))
                .map(|(sighting, state)| (state, sighting))
            else {
                restored.invalid += 1;
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
            // The state holds the current record; at the published revision it is the record
            // the output topic holds (later answers that raised nothing may have added intel).
            if let Some(index) = &self.published {
                let published = state.published.revision;
                if published > 0 && state.record.revision == published && !state.record.revoked {
                    if let Ok(payload) = serde_json::to_vec(&state.record) {
                        index.record_delivered(&payload, now);
                    }
                }
            }
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
