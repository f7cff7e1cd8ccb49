//! Topics: whether the topics the daemon writes to exist, from one metadata answer. Pure.

use rdkafka::metadata::Metadata;
use rdkafka::types::RDKafkaRespErr;

/// What a metadata answer says of one topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TopicState {
    /// Known, with no error.
    Ready,
    /// Known, with a passing error (a leader election).
    NotReady,
    /// Unknown to the cluster.
    Missing,
}

/// The state of `name` in `metadata`. Only "unknown topic" is final.
pub(crate) fn topic_state(metadata: &Metadata, name: &str) -> TopicState {
    match metadata.topics().iter().find(|t| t.name() == name) {
        None => TopicState::Missing,
        Some(t) => match t.error() {
            None => TopicState::Ready,
            Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) => TopicState::Missing,
            Some(_) => TopicState::NotReady,
        },
    }
}

/// `Err(topic)` naming the first of `required` that does not exist; `Ok(true)` when all are
/// ready, `Ok(false)` when one is still settling.
pub(crate) fn required_topics<'a>(
    metadata: &Metadata,
    required: impl IntoIterator<Item = &'a String>,
) -> Result<bool, &'a str> {
    let mut ready = true;
    for topic in required {
        match topic_state(metadata, topic) {
            TopicState::Ready => {}
            TopicState::NotReady => ready = false,
            TopicState::Missing => return Err(topic),
        }
    }
    Ok(ready)
}
