//! One message to produce: a threat record or a DLQ entry.

use crate::model::Verdict;

/// Where an output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// A threat record, to the output topic.
    Record(Verdict),
    /// A DLQ entry, to the DLQ topic, with its reason label.
    Dlq(&'static str),
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
