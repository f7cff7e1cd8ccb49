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

// s1-scaled: the topics of scaled mode.
/// What is wrong with the topics of scaled mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScaleTopicProblem {
    /// The topic does not exist.
    Missing,
    /// The two topics' partition counts differ.
    Unequal {
        /// Partitions of the sightings topic.
        sightings: usize,
        /// Partitions of the state topic.
        state: usize,
    },
}

/// The partition count the sightings and state topics share, or the first topic that is
/// missing or unequal. `Ok(None)` while one is still settling (a leader election).
pub(crate) fn scale_topics(
    metadata: &Metadata,
    sightings: &str,
    state: &str,
) -> Result<Option<usize>, (String, ScaleTopicProblem)> {
    let mut counts = [0usize; 2];
    for (i, name) in [sightings, state].into_iter().enumerate() {
        match topic_state(metadata, name) {
            TopicState::Missing => return Err((name.to_owned(), ScaleTopicProblem::Missing)),
            TopicState::NotReady => return Ok(None),
            TopicState::Ready => {}
        }
        counts[i] = metadata
            .topics()
            .iter()
            .find(|t| t.name() == name)
            .map_or(0, |t| t.partitions().len());
    }
    if counts[0] != counts[1] {
        return Err((
            state.to_owned(),
            ScaleTopicProblem::Unequal {
                sightings: counts[0],
                state: counts[1],
            },
        ));
    }
    Ok(Some(counts[0]))
}

/// Whether a `cleanup.policy` value keeps the latest record per key (`compact`, alone or with
/// `delete`).
pub(crate) fn is_compacted(cleanup_policy: &str) -> bool {
    cleanup_policy
        .split(',')
        .any(|policy| policy.trim().eq_ignore_ascii_case("compact"))
}

#[cfg(test)]
mod scale_tests {
    use super::*;

    #[test]
    fn compaction_is_read_from_the_cleanup_policy() {
        assert!(is_compacted("compact"));
        assert!(is_compacted("compact,delete"));
        assert!(is_compacted("delete, compact"));
        assert!(!is_compacted("delete"));
        assert!(!is_compacted(""));
    }
}
