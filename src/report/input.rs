//! Report input: threat records from a JSON Lines file or from the output topic.
//!
//! * File: one record per line; blank lines are skipped; a line that is not a threat record is
//!   reported (line number and why) and skipped, so one bad line does not lose the report.
//! * Topic: every partition is read from the beginning (or from `now - since`, by message
//!   time) up to its high watermark as it was when reading started, then reading stops. No
//!   consumer group offsets are committed. With `since`, the broker's offset for that time only
//!   says where to start; a message older than `now - since` is left out all the same (message
//!   times need not grow with offsets, and some brokers, this project's test broker among them,
//!   answer a time lookup with the partition's start). Records are folded to the latest revision
//!   per address as they are read (a topic holds many revisions of each), so memory follows the
//!   addresses, not the messages.

use std::io::BufRead;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::model::{ThreatRecord, THREAT_SCHEMA};
use crate::settings::Settings;

/// Why records could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Kafka configuration or connection failed.
    #[error("{0}")]
    Kafka(String),
}

impl InputError {
    /// Short label.
    pub fn kind(&self) -> &'static str {
        match self {
            InputError::Io { .. } => "io",
            InputError::Kafka(_) => "kafka",
        }
    }
}

/// Records read, and the lines or messages skipped (with why).
#[derive(Debug, Default)]
pub struct Records {
    /// The threat records.
    pub records: Vec<ThreatRecord>,
    /// One entry per skipped line or message: where, and why.
    pub skipped: Vec<String>,
}

/// Parses one record, checking its schema tag.
pub(crate) fn parse_record(bytes: &[u8]) -> Result<ThreatRecord, String> {
    let record: ThreatRecord =
        serde_json::from_slice(bytes).map_err(|e| format!("not a threat record: {e}"))?;
    if record.schema != THREAT_SCHEMA {
        return Err(format!(
            "schema {:?}, expected {THREAT_SCHEMA:?}",
            record.schema
        ));
    }
    Ok(record)
}

/// Reads a JSON Lines stream of records.
pub fn read_lines(input: impl BufRead, name: &str) -> Result<Records, InputError> {
    let mut out = Records::default();
    for (index, line) in input.split(b'\n').enumerate() {
        let line = line.map_err(|source| InputError::Io {
            path: name.to_owned(),
            source,
        })?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match parse_record(&line) {
            Ok(record) => out.records.push(record),
            Err(why) => out.skipped.push(format!("{name}:{}: {why}", index + 1)),
        }
    }
    Ok(out)
}

/// Reads `topic` up to its current end, from `since` ago (by message time) or the beginning.
pub fn read_topic(
    settings: &Settings,
    topic: &str,
    since: Option<Duration>,
) -> Result<Records, InputError> {
    let kafka = |e: rdkafka::error::KafkaError| InputError::Kafka(format!("topic {topic}: {e}"));
    let mut config =
        crate::kafka::base_client_config(settings).map_err(|e| InputError::Kafka(e.to_string()))?;
    config
        .set("group.id", format!("{}-report", settings.kafka.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest");
    crate::kafka::apply_passthrough(&mut config, settings);
    let consumer: BaseConsumer = config.create().map_err(kafka)?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(kafka)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(InputError::Kafka(format!(
            "topic {topic} does not exist or has no partitions"
        )));
    }
    // Where each partition ends now: reading stops there.
    let mut ends = Vec::new();
    for &partition in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, timeout)
            .map_err(kafka)?;
        if high > low {
            ends.push((partition, low, high));
        }
    }
    let mut out = Records::default();
    if ends.is_empty() {
        return Ok(out);
    }
    // Message time (ms since the epoch) from which records count.
    let from = since.map(|since| {
        SystemTime::now()
            .checked_sub(since)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    });
    let mut folding = Folding::default();
    let mut assignment = TopicPartitionList::new();
    for &(partition, _, _) in &ends {
        let start = match from {
            Some(from) => Offset::Offset(from),
            None => Offset::Beginning,
        };
        assignment
            .add_partition_offset(topic, partition, start)
            .map_err(kafka)?;
    }
    if since.is_some() {
        // The offsets above are times; turn them into offsets (end of partition if none).
        assignment = consumer
            .offsets_for_times(assignment, timeout)
            .map_err(kafka)?;
        for element in assignment.elements() {
            if let Err(e) = element.error() {
                return Err(InputError::Kafka(format!(
                    "topic {topic} partition {}: cannot find the offset for --since: {e}",
                    element.partition()
                )));
            }
            // No message at or after that time: nothing to read there.
            if matches!(element.offset(), Offset::End | Offset::Invalid) {
                ends.retain(|&(p, _, _)| p != element.partition());
            }
        }
    }
    consumer.assign(&assignment).map_err(kafka)?;
    let mut remaining: Vec<(i32, i64)> = ends.iter().map(|&(p, _, high)| (p, high)).collect();
    // Gives up only when nothing arrives for a whole minute, however long the topic.
    let mut deadline = Instant::now() + Duration::from_secs(60);
    let mut last_error: Option<String> = None;
    while !remaining.is_empty() {
        if Instant::now() > deadline {
            return Err(InputError::Kafka(format!(
                "topic {topic}: no progress for 60 s while reading partitions {:?}{}",
                remaining.iter().map(|(p, _)| p).collect::<Vec<_>>(),
                last_error
                    .as_deref()
                    .map(|e| format!(" (last error: {e})"))
                    .unwrap_or_default()
            )));
        }
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            // A transaction's control record at the end is never delivered: the position
            // tells that the partition is read to its end all the same.
            if let Ok(positions) = consumer.position() {
                remaining.retain(|&(partition, high)| {
                    let at = positions
                        .find_partition(topic, partition)
                        .and_then(|p| p.offset().to_raw());
                    at.is_none_or(|at| at < high)
                });
            }
            continue;
        };
        // Transient errors (a broker restarting) are retried until the no-progress deadline.
        let message = match message {
            Ok(message) => message,
            Err(e) => {
                last_error = Some(e.to_string());
                continue;
            }
        };
        deadline = Instant::now() + Duration::from_secs(60);
        let (partition, offset) = (message.partition(), message.offset());
        let Some(slot) = remaining.iter().position(|&(p, _)| p == partition) else {
            continue;
        };
        if offset >= remaining[slot].1 {
            remaining.swap_remove(slot);
            continue;
        }
        let before_window =
            from.is_some_and(|from| message.timestamp().to_millis().is_some_and(|at| at < from));
        match message.payload().map(parse_record) {
            // Older than `since`: left out, neither a record nor a skipped line.
            _ if before_window => {}
            Some(Ok(record)) => folding.push(record),
            Some(Err(why)) => out
                .skipped
                .push(format!("{topic}/{partition}@{offset}: {why}")),
            None => out
                .skipped
                .push(format!("{topic}/{partition}@{offset}: empty message")),
        }
        if offset + 1 >= remaining[slot].1 {
            remaining.swap_remove(slot);
        }
    }
    out.records = folding.finish();
    Ok(out)
}

/// Records folded to the latest revision per address as they come: folded whenever the
/// buffer doubles past what the last fold kept, so it holds at most about twice the addresses
/// (and at least [`Folding::MIN_BUFFER`] records, to fold rarely).
#[derive(Debug, Default)]
struct Folding {
    records: Vec<ThreatRecord>,
    fold_at: usize,
}

impl Folding {
    const MIN_BUFFER: usize = 4096;

    fn push(&mut self, record: ThreatRecord) {
        self.records.push(record);
        if self.records.len() >= self.fold_at.max(Self::MIN_BUFFER) {
            self.records =
                crate::report::build::latest_revisions(std::mem::take(&mut self.records));
            self.fold_at = self.records.len() * 2;
        }
    }

    fn finish(self) -> Vec<ThreatRecord> {
        crate::report::build::latest_revisions(self.records)
    }
}

#[cfg(test)]
mod folding_tests {
    use super::*;

    fn revision(ip: &str, revision: u32) -> ThreatRecord {
        let mut record: ThreatRecord = serde_json::from_value(serde_json::json!({
            "schema": THREAT_SCHEMA, "ip": ip, "ip_version": 4, "verdict": "suspicious",
            "severity": "medium", "score": 40, "reasons": [], "indicator": "IP Observed",
            "first_seen": "2026-11-23T10:00:00Z", "last_seen": "2026-11-23T10:05:00Z",
            "sightings": 1, "roles": ["source"],
            "observed": {"format": "kv", "topic": "fw", "partition": 0, "offset": 0},
            "network": {}, "intel": {}, "revision": 1,
            "generated_at": "2026-11-23T10:05:01Z"
        }))
        .expect("a threat record");
        record.revision = revision;
        record
    }

    #[test]
    fn a_topic_of_many_revisions_is_folded_as_it_is_read() {
        let mut folding = Folding::default();
        let mut most_held = 0;
        for n in 1..=100_000u32 {
            folding.push(revision(&format!("203.0.113.{}", n % 3), n));
            most_held = most_held.max(folding.records.len());
        }
        assert!(
            most_held <= Folding::MIN_BUFFER,
            "{most_held} records held at once"
        );
        let latest: Vec<(String, u32)> = folding
            .finish()
            .into_iter()
            .map(|r| (r.ip, r.revision))
            .collect();
        assert_eq!(
            latest,
            [
                ("203.0.113.0".to_owned(), 99_999),
                ("203.0.113.1".to_owned(), 100_000),
                ("203.0.113.2".to_owned(), 99_998)
            ]
        );
    }
}
