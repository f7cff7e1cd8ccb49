//! Fault injection on librdkafka's in-process mock cluster: the pipeline (`app::run`, the same
//! code as the daemon) survives a broker outage in the middle of the stream and loses nothing.
#![allow(clippy::disallowed_methods)] // plain test threads may sleep; no runtime is blocked

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use threatsift::test_support::pipeline::spawn_pipeline;
use threatsift::Metrics;
use threatsift::Settings;

fn read_record_ips(brokers: &str, topic: &str, partitions: i32) -> BTreeSet<String> {
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
    let mut ips = BTreeSet::new();
    let mut at_end = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while at_end < partitions && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let record: serde_json::Value =
                    serde_json::from_slice(m.payload().unwrap_or_default()).unwrap();
                ips.insert(record["ip"].as_str().unwrap().to_owned());
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => at_end += 1,
            _ => {}
        }
    }
    ips
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
    for topic in ["firewall", "threats", "threatsift-dlq"] {
        let count = if topic == "threatsift-dlq" {
            1
        } else {
            partitions
        };
        cluster.create_topic(topic, count, 1).unwrap();
    }
    let blocklist = common::write_blocklist(dir, &["203.0.113.0/24"]);
    let settings = Settings::from_toml_overrides(&format!(
        r#"
        [kafka]
        brokers = "{brokers}"
        input_topics = ["firewall"]
        statistics_interval = "0s"
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
    .unwrap();
    (cluster, settings)
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

/// Waits until `target` messages are finished or `limit` passes; returns the count.
async fn wait_for_completed(metrics: &Metrics, target: u64, limit: Duration) -> u64 {
    let deadline = Instant::now() + limit;
    while metrics.messages_completed.get() < target && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    metrics.messages_completed.get()
}

/// A labelled counter's value (0 when the child does not exist).
fn counter(vec: &prometheus::IntCounterVec, label: &str) -> u64 {
    vec.get_metric_with_label_values(&[label])
        .map_or(0, |c| c.get())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_mid_stream_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, settings) =
        cluster_and_settings(2, dir.path(), "auto_commit_interval = \"1s\"", "");
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
    assert!(
        wait_for_completed(&metrics, 1, Duration::from_secs(30)).await >= 1,
        "pipeline never started"
    );

    // The broker goes away while input is still arriving, then comes back.
    cluster.broker_down(1).unwrap();
    let more_input = tokio::spawn(produce(100..200));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        counter(&metrics.kafka_errors, "all_brokers_down")
            + counter(&metrics.kafka_errors, "transport")
            > 0,
        "the outage was noticed"
    );
    cluster.broker_up(1).unwrap();
    more_input.await.unwrap();

    let completed = wait_for_completed(&metrics, 200, Duration::from_secs(60)).await;
    assert_eq!(completed, 200, "every message finished after the outage");
    shutdown.cancel();
    let summary = run.await.unwrap().unwrap();
    assert!(summary.drained);

    let expected: BTreeSet<String> = (0..200u32).map(|i| format!("203.0.113.{i}")).collect();
    let brokers_for_read = brokers.clone();
    let seen =
        tokio::task::spawn_blocking(move || read_record_ips(&brokers_for_read, "threats", 2))
            .await
            .unwrap();
    assert_eq!(seen, expected);
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_the_broker_refuses_becomes_a_publish_failed_dlq_entry() {
    let dir = tempfile::tempdir().unwrap();
    // A record (~1.5 kB) exceeds the 1,000-byte limit; its DLQ entry (payload cut to 200
    // bytes) does not.
    let (cluster, settings) = cluster_and_settings(
        1,
        dir.path(),
        "librdkafka = [\"message.max.bytes=1000\"]",
        "[dlq]\nmax_payload_bytes = 200",
    );
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .create()
        .unwrap();
    produce_event(&producer, "203.0.113.9").await;

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
    drop(cluster);
}
