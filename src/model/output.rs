//! What one input message produces: the messages to publish and the remote jobs to queue once
//! they are delivered.

use std::time::Instant;

use crate::model::Origin;
use crate::model::Verdict;

/// Where an output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// A threat record, to the output topic.
    Record(Verdict),
    /// A DLQ entry, to the DLQ topic, with its reason label.
    Dlq(&'static str),
}

/// One message to produce.
#[derive(Debug, Clone)]
pub struct Output {
    /// Record or DLQ entry.
    pub kind: OutputKind,
    /// Message key (the IP for records; the input key for DLQ entries).
    pub key: Option<Vec<u8>>,
    /// Serialized JSON.
    pub payload: Vec<u8>,
}

/// Everything one input message produced; the offset is finished when all are delivered.
#[derive(Debug)]
pub struct Processed {
    /// The input message.
    pub origin: Origin,
    /// When the consumer received it.
    pub received: Instant,
    /// What to produce (possibly nothing).
    pub outputs: Vec<Output>,
    /// Addresses for the remote providers, queued once `outputs` are delivered.
    pub remote: Vec<crate::remote::RemoteJob>,
}
