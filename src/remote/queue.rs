//! Queues: one provider's waiting addresses, highest priority first, oldest first among
//! equals; the lowest is given up when the queue is full.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::remote::RemoteJob;
use crate::stages::process::Priority;

/// Where a job sits in a queue: its priority, then its arrival (older first).
pub(crate) type QueueKey = (Priority, Reverse<u64>);

/// One provider's waiting addresses: highest priority first, oldest first among equals.
#[derive(Debug, Default)]
pub(crate) struct Waiting {
    ordered: BTreeMap<QueueKey, RemoteJob>,
    /// Where each address is in `ordered`.
    pub(crate) keys: HashMap<IpAddr, QueueKey>,
}

impl Waiting {
    pub(crate) fn insert(&mut self, key: QueueKey, job: RemoteJob) {
        self.keys.insert(job.ip, key);
        self.ordered.insert(key, job);
    }

    pub(crate) fn pop_highest(&mut self) -> Option<(QueueKey, RemoteJob)> {
        let (key, job) = self.ordered.pop_last()?;
        self.keys.remove(&job.ip);
        Some((key, job))
    }

    pub(crate) fn pop_lowest(&mut self) -> Option<RemoteJob> {
        let (_, job) = self.ordered.pop_first()?;
        self.keys.remove(&job.ip);
        Some(job)
    }

    /// Moves `ip` up to `order` of sightings, if it waits with a lower one.
    pub(crate) fn raise(&mut self, ip: IpAddr, order: u8) {
        let Some(key) = self.keys.get(&ip).copied() else {
            return;
        };
        if key.0.sightings_order >= order {
            return;
        }
        if let Some(mut job) = self.ordered.remove(&key) {
            job.priority.sightings_order = order;
            let raised = (job.priority, key.1);
            self.insert(raised, job);
        }
    }

    /// Takes out every job whose address `gone` matches (s1-scaled: a revoked partition).
    pub(crate) fn remove_where(&mut self, gone: impl Fn(IpAddr) -> bool) -> Vec<RemoteJob> {
        let keys: Vec<QueueKey> = self
            .keys
            .iter()
            .filter(|(ip, _)| gone(**ip))
            .map(|(_, key)| *key)
            .collect();
        keys.into_iter()
            .filter_map(|key| {
                let job = self.ordered.remove(&key)?;
                self.keys.remove(&job.ip);
                Some(job)
            })
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.ordered.len()
    }
}

#[derive(Debug, Default)]
pub(crate) struct ProviderQueue {
    entries: Mutex<Waiting>,
    pub(crate) ready: Notify,
}

impl ProviderQueue {
    pub(crate) fn entries(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}
