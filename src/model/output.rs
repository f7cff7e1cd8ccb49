//! One message to produce: a threat record or a DLQ entry.

use crate::model::Verdict;

/// Where an output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// A threat record, to the output topic.
    Record(Verdict),
    /// A DLQ entry, to the DLQ topic, with its reason label.
    Dlq(&'static str),
    /// A tombstone: a null payload under a record's key, to the output topic, after a
    /// withdrawal when `publish.tombstones` is on (compaction then deletes the key).
    Tombstone,
    /// A sighting (scaled mode), to `<output_topic>.sightings`, keyed by the address.
    Sighting,
    /// An address's state (`threatsift.state/1`), to `<output_topic>.state` (s2-state).
    State,
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
