//! The real broker (`scripts/broker.sh`) with real multi-record batches: a consumer that resumes
//! from a committed offset inside a batch gets exactly the record at that offset. The registry's
//! tansu 0.6.0 answered such a fetch with the next batch, skipping the rest of the containing
//! one; the daemon's at-least-once delivery across restarts depends on this.
#![allow(clippy::disallowed_methods)] // plain test threads may sleep; no runtime is blocked

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

use common::*;

/// Adds up the producer's batch statistics (each emission covers the time since the last):
/// (emissions, batches sent, records in the largest batch).
#[derive(Clone, Default)]
struct BatchStats(Arc<Mutex<(u64, i64, i64)>>);

impl ClientContext for BatchStats {
    fn stats(&self, statistics: Statistics) {
        let mut totals = self.0.lock().unwrap();
        totals.0 += 1;
        for topic in statistics.topics.values() {
            totals.1 += topic.batchcnt.cnt;
            totals.2 = totals.2.max(topic.batchcnt.max);
        }
    }
}

const RECORDS: usize = 100;
const RESUME_AT: i64 = 37;

fn payload(i: usize) -> Vec<u8> {
    format!("record-{i:03}").into_bytes()
}

/// Produces `RECORDS` records to partition 0 of `topic` in one batch (a long linger, every send
/// enqueued before it ends); returns (batches, records in the largest) from the producer's
/// statistics.
async fn produce_one_batch(topic: &str) -> (i64, i64) {
    let stats = BatchStats::default();
    let producer: FutureProducer<BatchStats> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("linger.ms", "1000")
        .set("statistics.interval.ms", "100")
        .create_with_context(stats.clone())
        .expect("producer");
    let sends = (0..RECORDS).map(|i| {
        let payload = payload(i);
        let producer = &producer;
        async move {
            producer
                .send(
                    FutureRecord::<(), [u8]>::to(topic)
                        .partition(0)
                        .payload(&payload[..]),
                    Timeout::After(Duration::from_secs(30)),
                )
                .await
        }
    });
    for (i, result) in futures::future::join_all(sends)
        .await
        .into_iter()
        .enumerate()
    {
        let delivery = result.map_err(|(e, _)| e).expect("produce");
        assert_eq!(
            (delivery.partition, delivery.offset),
            (0, i as i64),
            "offsets follow the sends"
        );
    }
    // Every batch was sent before its delivery reports; two more emissions cover it surely.
    let delivered_at = stats.0.lock().unwrap().0;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (emissions, batches, largest) = *stats.0.lock().unwrap();
        if emissions >= delivered_at + 2 {
            return (batches, largest);
        }
        assert!(Instant::now() < deadline, "no producer statistics");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_resuming_inside_a_batch_gets_exactly_the_next_record() {
    let topics = create_topics(1).await;
    let (batches, largest) = produce_one_batch(&topics.input).await;
    assert_eq!(
        (batches, largest),
        (1, RECORDS as i64),
        "the records went out as one batch"
    );

    // The group has committed offset 37: records 0..=36 are done, 37 is the next to read.
    let committer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", &topics.group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("committer");
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(&topics.input, 0, Offset::Offset(RESUME_AT))
        .unwrap();
    committer
        .commit(&offsets, CommitMode::Sync)
        .expect("commit");
    drop(committer);
    assert_eq!(
        committed_offsets(&topics.group, &topics.input),
        [(0, RESUME_AT)].into()
    );

    // A member of that group starts where the group left off (were the committed offset not
    // used, `earliest` would start it at 0).
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", &topics.group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&topics.input]).expect("subscribe");
    let mut received = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while received.len() < RECORDS - RESUME_AT as usize && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => received.push((m.offset(), m.payload().unwrap_or_default().to_vec())),
            Some(Err(e)) => panic!("consuming: {e}"),
            None => {}
        }
    }
    let first = received.first().expect("a record within 60 s");
    assert_eq!(
        (first.0, String::from_utf8_lossy(&first.1).into_owned()),
        (
            RESUME_AT,
            String::from_utf8(payload(RESUME_AT as usize)).unwrap()
        ),
        "the first record is the one at the committed offset"
    );
    let expected: Vec<(i64, Vec<u8>)> = (RESUME_AT as usize..RECORDS)
        .map(|i| (i as i64, payload(i)))
        .collect();
    assert_eq!(received, expected, "then the rest of the batch, in order");
}
