//! Fault injection on librdkafka's in-process mock cluster, for the faults the real broker
//! (tansu) cannot be made to show: the pipeline (`topology::run`, the same code as the daemon)
//! survives a broker outage in the middle of the stream and loses nothing; a record the broker
//! refuses becomes a `publish_failed` DLQ entry; an unwritable DLQ holds back the offset commit
//! until its entry is delivered.
#![allow(clippy::disallowed_methods)] // plain test threads may sleep; no runtime is blocked

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::{MockCluster, MockCoordinator};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaApiKey;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use threatsift::test_support::pipeline::spawn_pipeline;
use threatsift::Metrics;
use threatsift::Settings;

/// Every message in `topic` (all `partitions`) as (partition, offset, key, payload). Panics
/// when the end of every partition is not reached within 30 s.
fn read_messages(
    brokers: &str,
    topic: &str,
    partitions: i32,
) -> Vec<(i32, i64, Option<String>, Vec<u8>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", common::unique("reader"))
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut messages = Vec::new();
    let mut at_end = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while (at_end.len() as i32) < partitions {
        assert!(
            Instant::now() < deadline,
            "{topic}: only partitions {at_end:?} read to their end within 30 s"
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                messages.push((
                    m.partition(),
                    m.offset(),
                    m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    m.payload().unwrap_or_default().to_vec(),
                ));
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            _ => {}
        }
    }
    messages
}

/// The `ip` of every record in `topic`, read off the blocking pool; each record is validated
/// against the schema.
async fn read_record_ips(brokers: String, topic: &'static str, partitions: i32) -> Vec<String> {
    tokio::task::spawn_blocking(move || {
        let validator = common::record_validator();
        read_messages(&brokers, topic, partitions)
            .into_iter()
            .map(|(_, _, _, payload)| {
                let record: serde_json::Value = serde_json::from_slice(&payload).unwrap();
                common::assert_valid_record(&validator, &record);
                record["ip"].as_str().unwrap().to_owned()
            })
            .collect()
    })
    .await
    .unwrap()
}

/// A one-broker mock cluster with the daemon's topics, and settings pointing the pipeline at it.
/// `extra` is TOML added to the `[kafka]` table; `tail` is TOML appended after it.
fn cluster_and_settings(
    partitions: i32,
    dir: &std::path::Path,
    extra_kafka: &str,
    tail: &str,
) -> (
    MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    Settings,
) {
    let cluster = MockCluster::new(1).unwrap();
    let settings = create_topics_and_settings(&cluster, partitions, dir, extra_kafka, tail);
    (cluster, settings)
}

/// Creates the daemon's topics on `cluster` (the DLQ with one partition) and returns settings
/// pointing the pipeline at them.
fn create_topics_and_settings(
    cluster: &MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    partitions: i32,
    dir: &std::path::Path,
    extra_kafka: &str,
    tail: &str,
) -> Settings {
    for topic in ["firewall", "threats", "threatsift-dlq"] {
        let count = if topic == "threatsift-dlq" {
            1
        } else {
            partitions
        };
        cluster.create_topic(topic, count, 1).unwrap();
    }
    let blocklist = common::write_blocklist(dir, &["203.0.113.0/24"]);
    Settings::from_toml_overrides(&format!(
        r#"
        [kafka]
        brokers = "{brokers}"
        input_topics = ["firewall"]
        statistics_interval = "0s"
        start_from = "earliest"
        {extra_kafka}
        [filter]
        allow_documentation_ranges = true
        [server]
        listen = "127.0.0.1:0"
        [[feeds]]
        name = "t"
        path = "{blocklist}"
        weight = 80
        {tail}
        "#,
        brokers = cluster.bootstrap_servers(),
        blocklist = blocklist.display(),
    ))
    .unwrap()
}

/// Produces one firewall event from `source` to an internal host.
async fn produce_event(producer: &FutureProducer, source: &str) {
    let payload = common::ecs_event(source, "10.0.0.1");
    producer
        .send(
            FutureRecord::<(), [u8]>::to("firewall").payload(&payload[..]),
            Timeout::After(Duration::from_secs(30)),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
}

/// Waits until `target` messages are finished; panics when `limit` passes first.
async fn wait_for_completed(metrics: &Metrics, target: u64, limit: Duration) {
    let deadline = Instant::now() + limit;
    while metrics.messages_completed.get() < target {
        assert!(
            Instant::now() < deadline,
            "only {} of {target} messages finished within {limit:?}",
            metrics.messages_completed.get()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `done` holds; panics naming `what` when `limit` passes first.
async fn wait_until(what: &str, limit: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A labelled counter's value (0 when the child does not exist).
fn counter(vec: &prometheus::IntCounterVec, label: &str) -> u64 {
    vec.get_metric_with_label_values(&[label])
        .map_or(0, |c| c.get())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_mid_stream_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Two brokers: broker 1 leads input and output and coordinates the group, broker 2 leads
    // the DLQ alone; taking broker 1 down takes input, output and the coordinator away
    // mid-stream while the DLQ stays writable.
    let cluster = MockCluster::new(2).unwrap();
    let settings =
        create_topics_and_settings(&cluster, 2, dir.path(), "auto_commit_interval = \"1s\"", "");
    for topic in ["firewall", "threats"] {
        for partition in 0..2 {
            cluster.partition_leader(topic, partition, Some(1)).unwrap();
        }
    }
    cluster
        .partition_leader("threatsift-dlq", 0, Some(2))
        .unwrap();
    cluster
        .coordinator(MockCoordinator::Group("threatsift".into()), 1)
        .unwrap();
    let brokers = cluster.bootstrap_servers();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let produce = |range: std::ops::Range<u32>| {
        let producer = producer.clone();
        async move {
            for i in range {
                produce_event(&producer, &format!("203.0.113.{i}")).await;
            }
        }
    };
    produce(0..100).await;

    let (metrics, shutdown, run) = spawn_pipeline(settings);
    wait_for_completed(&metrics, 1, Duration::from_secs(30)).await;

    // The broker goes away while input is still arriving, then comes back once the pipeline
    // has noticed.
    cluster.broker_down(1).unwrap();
    let more_input = tokio::spawn(produce(100..200));
    wait_until("the outage was noticed", Duration::from_secs(60), || {
        counter(&metrics.kafka_errors, "all_brokers_down")
            + counter(&metrics.kafka_errors, "transport")
            > 0
    })
    .await;
    cluster.broker_up(1).unwrap();
    more_input.await.unwrap();

    wait_for_completed(&metrics, 200, Duration::from_secs(60)).await;
    shutdown.cancel();
    let summary = run.await.unwrap().unwrap();
    assert!(summary.drained);
    assert_eq!(metrics.messages_completed.get(), 200);

    let expected: BTreeSet<String> = (0..200u32).map(|i| format!("203.0.113.{i}")).collect();
    let seen: BTreeSet<String> = read_record_ips(brokers.clone(), "threats", 2)
        .await
        .into_iter()
        .collect();
    assert_eq!(seen, expected);
    drop(cluster);
}

/// Produces `payload` to `partition` of the input topic.
async fn produce_to(producer: &FutureProducer, partition: i32, payload: &[u8]) {
    producer
        .send(
            FutureRecord::<(), [u8]>::to("firewall")
                .partition(partition)
                .payload(payload),
            Timeout::After(Duration::from_secs(30)),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
}

/// The offsets the pipeline's group (`threatsift`) committed on the input topic, per partition
/// (a partition with no commit is left out).
fn committed(brokers: &str, partitions: i32) -> std::collections::BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "threatsift")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition("firewall", p);
    }
    consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap()
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(next) => Some((e.partition(), next)),
            _ => None,
        })
        .collect()
}

/// Polls the committed offsets until `done` holds; panics after `limit`.
async fn wait_committed(
    brokers: &str,
    partitions: i32,
    limit: Duration,
    done: impl Fn(&std::collections::BTreeMap<i32, i64>) -> bool,
) -> std::collections::BTreeMap<i32, i64> {
    let deadline = Instant::now() + limit;
    loop {
        let brokers = brokers.to_owned();
        let offsets = tokio::task::spawn_blocking(move || committed(&brokers, partitions))
            .await
            .unwrap();
        if done(&offsets) {
            return offsets;
        }
        assert!(
            Instant::now() < deadline,
            "committed offsets never met the condition within {limit:?} (last {offsets:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_the_broker_refuses_becomes_a_publish_failed_dlq_entry() {
    let dir = tempfile::tempdir().unwrap();
    // The entry keeps at most 200 bytes of the refused record (~1.5 kB).
    let (cluster, settings) =
        cluster_and_settings(1, dir.path(), "", "[dlq]\nmax_payload_bytes = 200");
    let brokers = cluster.bootstrap_servers();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    // The input message carries its own timestamp, which the DLQ entry must carry on.
    let payload = common::ecs_event("203.0.113.9", "10.0.0.1");
    producer
        .send(
            FutureRecord::<(), [u8]>::to("firewall")
                .payload(&payload[..])
                .timestamp(1_795_426_200_123), // 2026-11-23T09:30:00.123Z
            Timeout::After(Duration::from_secs(30)),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    // The broker refuses the pipeline's first produce request (the record) with
    // MESSAGE_TOO_LARGE, as Kafka does for a record over the topic's `max.message.bytes`.
    // A broker-side refusal cannot be had from tansu, the broker of the other tests: it stores
    // any size whatever the topic's `max.message.bytes` (measured: a 5,000-byte record into a
    // topic created with max.message.bytes=1000).
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE],
    );

    let (metrics, shutdown, run) = spawn_pipeline(settings);
    wait_for_completed(&metrics, 1, Duration::from_secs(30)).await;
    shutdown.cancel();
    assert!(run.await.unwrap().unwrap().drained);
    assert_eq!(metrics.messages_completed.get(), 1);
    assert_eq!(
        counter(&metrics.dlq_messages, "publish_failed"),
        1,
        "the refused record went to the DLQ"
    );
    assert_eq!(counter(&metrics.records_published, "malicious"), 0);
    assert_eq!(counter(&metrics.produce_errors, "output_lost"), 0);

    let (output, dlq) = {
        let brokers = brokers.clone();
        tokio::task::spawn_blocking(move || {
            (
                read_messages(&brokers, "threats", 1),
                read_messages(&brokers, "threatsift-dlq", 1),
            )
        })
        .await
        .unwrap()
    };
    assert!(output.is_empty(), "the refused record is not in the output");
    assert_eq!(dlq.len(), 1, "one entry for the one refused record");
    let (_, _, key, payload) = &dlq[0];
    assert_eq!(key.as_deref(), Some("203.0.113.9"), "keyed like the record");
    let entry: serde_json::Value = serde_json::from_slice(payload).unwrap();
    assert_eq!(entry["schema"], "threatsift.dlq/1");
    assert_eq!(entry["reason"], "publish_failed");
    let error = entry["error"].as_str().unwrap();
    assert!(
        error.contains("refused by the broker") && error.contains("too large"),
        "{error}"
    );
    // The origin is the input message the record came from.
    assert_eq!(
        (&entry["topic"], &entry["partition"], &entry["offset"]),
        (&"firewall".into(), &0.into(), &0.into())
    );
    assert!(entry["line"].is_null(), "{entry}");
    // The input message's timestamp, carried to the producer with the record.
    assert_eq!(entry["message_time"], "2026-11-23T09:30:00.123Z", "{entry}");
    assert!(entry["dead_lettered_at"].is_string(), "{entry}");
    // The payload is the refused record, cut to 200 bytes, and says so.
    assert_eq!(entry["payload_encoding"], "utf8");
    let kept = entry["payload"].as_str().unwrap();
    assert_eq!(kept.len(), 200);
    assert!(
        kept.starts_with(r#"{"schema":"threatsift.threat/1","ip":"203.0.113.9""#),
        "{kept}"
    );
    assert_eq!(entry["payload_truncated"], true);
    assert!(entry["payload_bytes"].as_u64().unwrap() > 1000, "{entry}");
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_dlq_holds_back_the_commit_until_its_entry_is_delivered() {
    let dir = tempfile::tempdir().unwrap();
    // Two brokers: broker 1 leads input and output and coordinates the group, broker 2 leads
    // the DLQ alone; taking broker 1 down takes input, output and the coordinator away
    // mid-stream while the DLQ stays writable.
    let cluster = MockCluster::new(2).unwrap();
    let settings =
        create_topics_and_settings(&cluster, 2, dir.path(), "auto_commit_interval = \"1s\"", "");
    for topic in ["firewall", "threats"] {
        for partition in 0..2 {
            cluster.partition_leader(topic, partition, Some(1)).unwrap();
        }
    }
    cluster
        .partition_leader("threatsift-dlq", 0, Some(2))
        .unwrap();
    cluster
        .coordinator(MockCoordinator::Group("threatsift".into()), 1)
        .unwrap();
    let brokers = cluster.bootstrap_servers();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let event = |ip: &str| common::ecs_event(ip, "10.0.0.1");
    let (metrics, shutdown, run) = spawn_pipeline(settings);
    produce_to(&producer, 0, &event("203.0.113.1")).await;
    produce_to(&producer, 1, &event("203.0.113.2")).await;
    wait_for_completed(&metrics, 2, Duration::from_secs(30)).await;

    // The DLQ's broker goes down: nothing can be written to the DLQ for now.
    cluster.broker_down(2).unwrap();
    // Partition 0: a poison message at offset 1 (parsed, its entry undeliverable), then two
    // good ones, each in a poll of its own so they finish on their own.
    // Broken JSON without an address (i12: one with an address is read by the IP scanner).
    produce_to(&producer, 0, br#"{"source":{"port":51543"#).await;
    wait_until(
        "the poison message was parsed",
        Duration::from_secs(30),
        || counter(&metrics.parse_errors, "invalid_json") == 1,
    )
    .await;
    produce_to(&producer, 0, &event("203.0.113.4")).await;
    produce_to(&producer, 0, &event("203.0.113.5")).await;
    wait_for_completed(&metrics, 4, Duration::from_secs(30)).await;
    // An end marker on partition 1: once a commit carries it, the commit also carries
    // everything partition 0 had stored before it (one commit covers every partition).
    produce_to(&producer, 1, &event("203.0.113.6")).await;
    let held = wait_committed(&brokers, 2, Duration::from_secs(60), |c| {
        c.get(&1) == Some(&2)
    })
    .await;
    assert_eq!(
        held.get(&0),
        Some(&1),
        "partition 0 is committed up to the poison message and not past it"
    );
    assert_eq!(counter(&metrics.dlq_messages, "invalid_json"), 0);
    assert_eq!(metrics.messages_completed.get(), 5, "all but the poison");

    // The DLQ comes back: the entry is delivered, and only then the offset moves past it.
    cluster.broker_up(2).unwrap();
    wait_for_completed(&metrics, 6, Duration::from_secs(60)).await;
    wait_committed(&brokers, 2, Duration::from_secs(60), |c| {
        c.get(&0) == Some(&4)
    })
    .await;
    shutdown.cancel();
    assert!(run.await.unwrap().unwrap().drained);
    let dlq = {
        let brokers = brokers.clone();
        tokio::task::spawn_blocking(move || read_messages(&brokers, "threatsift-dlq", 1))
            .await
            .unwrap()
    };
    let entries: Vec<serde_json::Value> = dlq
        .iter()
        .map(|(_, _, _, payload)| serde_json::from_slice(payload).unwrap())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        (
            &entries[0]["reason"],
            &entries[0]["partition"],
            &entries[0]["offset"]
        ),
        (&"invalid_json".into(), &0.into(), &1.into())
    );
    assert_eq!(counter(&metrics.dlq_messages, "invalid_json"), 1);
    drop(cluster);
}
