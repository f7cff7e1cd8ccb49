//! Scaled mode (`[scale] mode = "scaled"`, design §10) with the daemon binary on the real
//! broker: one daemon runs both halves over `<output>.sightings`; both hops' offsets are
//! committed; single and scaled mode make the same records of the demo events; a start whose
//! sightings or state topic is missing or unequal exits naming it. (Three daemons sharing the
//! work: tests/ of t16-tests.)
#![allow(clippy::disallowed_methods)] // plain test threads may sleep; no runtime is blocked

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use common::*;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;

/// The blocklist: 2001:db8:bad::/48 is listed (every `listed_v6` address).
const BLOCKLIST: [&str; 1] = ["2001:db8:bad::/48"];

const SCALED: &str = "[scale]\nmode = \"scaled\"\n";

/// Creates `<output>.sightings` with `sightings` partitions and `<output>.state` with `state`
/// partitions (compacted), as an operator would before a scaled start.
async fn create_scale_topics(output: &str, sightings: i32, state: Option<i32>) {
    create_scale_topics_with(output, sightings, state, "compact").await
}

/// Like [`create_scale_topics`], with the state topic's `cleanup.policy`.
async fn create_scale_topics_with(
    output: &str,
    sightings: i32,
    state: Option<i32>,
    cleanup_policy: &str,
) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .expect("admin client");
    let sightings_topic = format!("{output}.sightings");
    let state_topic = format!("{output}.state");
    let mut new = vec![NewTopic::new(
        &sightings_topic,
        sightings,
        TopicReplication::Fixed(1),
    )];
    if let Some(state) = state {
        new.push(
            NewTopic::new(&state_topic, state, TopicReplication::Fixed(1))
                .set("cleanup.policy", cleanup_policy),
        );
    }
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&new, &options).await.expect("create") {
        result.expect("scale topic created");
    }
}

/// The offset after the last message of each partition of `topic` that holds any.
fn ends(messages: &[ReadMessage]) -> BTreeMap<i32, i64> {
    let mut ends = BTreeMap::new();
    for m in messages {
        let end = ends.entry(m.partition).or_insert(0);
        *end = (*end).max(m.offset + 1);
    }
    ends
}

/// A record without the field that differs between any two runs.
fn comparable(record: &serde_json::Value) -> serde_json::Value {
    let mut record = record.clone();
    record.as_object_mut().unwrap().remove("generated_at");
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_scaled_daemon_turns_events_into_records_through_the_sightings_topic_and_commits_both_hops(
) {
    const ADDRESSES: u32 = 12;
    const PARTITIONS: i32 = 3;
    let topics = create_topics(2).await;
    create_scale_topics(&topics.output, PARTITIONS, Some(PARTITIONS)).await;
    let dir = tempfile::tempdir().unwrap();
    let blocklist = write_blocklist(dir.path(), &BLOCKLIST);
    let (config, port) = write_config(dir.path(), &topics, &blocklist, SCALED);
    // Each address three times, in one message each (repeats within a batch may fold).
    let events: Vec<Vec<u8>> = (0..3 * ADDRESSES)
        .map(|i| ecs_event(&listed_v6(i % ADDRESSES), "10.0.0.1"))
        .collect();
    produce(&topics.input, None, &events).await;
    // Something on the sightings topic that is not a sighting: dead-lettered, not a stop.
    let sightings_topic = format!("{}.sightings", topics.output);
    produce(&sightings_topic, Some(0), &[b"not a sighting".to_vec()]).await;

    let mut daemon = Daemon::start(&config, port, dir.path());
    daemon.wait_ready(Duration::from_secs(60));
    let expected: BTreeSet<String> = (0..ADDRESSES).map(listed_v6).collect();
    read_records_until(&topics.output, Duration::from_secs(120), |m| {
        record_ips(m) == expected
    });
    // Hop 1: every input offset is committed once its sightings are delivered.
    let input_end = ends(&read_all(&topics.input));
    wait_committed(&topics.group, &topics.input, Duration::from_secs(60), |c| {
        *c == input_end
    });
    // Hop 2: every sightings offset is committed once its records are delivered.
    let sightings = read_all(&sightings_topic);
    let owners = format!("{}.owners", topics.group);
    let sightings_end = ends(&sightings);
    wait_committed(&owners, &sightings_topic, Duration::from_secs(60), |c| {
        *c == sightings_end
    });
    let owned = wait_metric(
        &daemon,
        "threatsift_owned_partitions",
        Duration::from_secs(30),
        |v| v == f64::from(PARTITIONS),
    );
    assert_eq!(
        owned,
        f64::from(PARTITIONS),
        "the lone daemon owns every partition"
    );
    let made = daemon
        .metric("threatsift_sightings_published_total")
        .unwrap_or(0.0);
    assert_eq!(
        made,
        (sightings.len() - 1) as f64,
        "sightings_published_total"
    );
    daemon.signal("TERM");
    let status = daemon.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status}\n{}", daemon.log_text());

    // The sightings: keyed by the address, on murmur2's partition of it, each standing for at
    // least one event; together for every event (folded repeats carry a count).
    let dlq = read_all(&topics.dlq);
    assert_eq!(
        dlq.len(),
        1,
        "one DLQ entry, for the message that is not a sighting"
    );
    let entry = dlq[0].json();
    assert_eq!(entry["reason"], "malformed", "{entry}");
    assert_eq!(entry["topic"], sightings_topic.as_str(), "{entry}");
    assert_eq!(
        (entry["partition"].as_i64(), entry["offset"].as_i64()),
        (Some(0), Some(0))
    );
    assert!(
        entry["error"].as_str().unwrap().contains("sighting"),
        "{entry}"
    );
    let mut counted = 0;
    for m in sightings.iter().filter(|m| m.payload != b"not a sighting") {
        let sighting = m.json();
        assert_eq!(sighting["schema"], "threatsift.sighting/1", "{sighting}");
        let key = m.key.as_deref().expect("a sighting has a key");
        assert_eq!(sighting["ip"].as_str(), Some(key), "keyed by its address");
        assert_eq!(
            m.partition,
            threatsift::test_support::partition_of(key.as_bytes(), PARTITIONS),
            "{key} is not on its murmur2 partition"
        );
        counted += sighting["count"].as_u64().expect("count");
    }
    assert_eq!(
        counted,
        u64::from(3 * ADDRESSES),
        "every event's sighting, once"
    );
    // After the drained exit nothing more can arrive: exactly one record per address.
    let records = read_records(&topics.output);
    assert_eq!(records.len(), expected.len(), "one record per address");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_and_scaled_mode_make_the_same_records_of_the_demo_events() {
    // One input partition: the first event of each address is the same for both daemons.
    let single = create_topics(1).await;
    let other = create_topics(1).await;
    let scaled = Topics {
        input: single.input.clone(),
        output: other.output.clone(),
        dlq: other.dlq.clone(),
        group: other.group.clone(),
    };
    create_scale_topics(&scaled.output, 3, Some(3)).await;
    let dir = tempfile::tempdir().unwrap();
    let blocklist = dir.path().join("sample-blocklist.txt");
    std::fs::write(&blocklist, threatsift::SAMPLE_BLOCKLIST).unwrap();
    let events: Vec<Vec<u8>> = threatsift::SAMPLE_EVENTS
        .lines()
        .map(|line| line.as_bytes().to_vec())
        .collect();
    produce(&single.input, None, &events).await;
    let input_end = ends(&read_all(&single.input));
    assert_eq!(input_end.values().sum::<i64>(), events.len() as i64);

    let run = |topics: &Topics, extra: &str, dir: &Path| {
        let (config, port) = write_config(dir, topics, &blocklist, extra);
        let mut daemon = Daemon::start(&config, port, dir);
        daemon.wait_ready(Duration::from_secs(60));
        daemon
    };
    let mut single_daemon = run(&single, "", dir.path());
    let mut scaled_daemon = run(&scaled, SCALED, dir.path());
    // Every event is finished (its offset committed) by both; in scaled mode also every
    // sighting. Then both stop, drained: nothing more can arrive.
    for topics in [&single, &scaled] {
        wait_committed(
            &topics.group,
            &topics.input,
            Duration::from_secs(120),
            |c| *c == input_end,
        );
    }
    let sightings_topic = format!("{}.sightings", scaled.output);
    let sightings_end = ends(&read_all(&sightings_topic));
    assert!(!sightings_end.is_empty(), "scaled mode made no sightings");
    wait_committed(
        &format!("{}.owners", scaled.group),
        &sightings_topic,
        Duration::from_secs(120),
        |c| *c == sightings_end,
    );
    for daemon in [&mut single_daemon, &mut scaled_daemon] {
        daemon.signal("TERM");
        let status = daemon.wait_exit(Duration::from_secs(30));
        assert!(status.success(), "{status}\n{}", daemon.log_text());
    }

    let records = |topic: &str| -> BTreeMap<String, serde_json::Value> {
        let records = read_records(topic);
        let by_ip: BTreeMap<String, serde_json::Value> = records
            .iter()
            .map(|r| {
                (
                    r.json["ip"].as_str().unwrap().to_owned(),
                    comparable(&r.json),
                )
            })
            .collect();
        assert_eq!(
            by_ip.len(),
            records.len(),
            "one record per address in {topic}"
        );
        by_ip
    };
    let from_single = records(&single.output);
    let from_scaled = records(&scaled.output);
    assert!(
        from_single.len() >= 5,
        "the demo makes records: {from_single:?}"
    );
    assert_eq!(
        from_single.keys().collect::<Vec<_>>(),
        from_scaled.keys().collect::<Vec<_>>(),
        "the same addresses"
    );
    for (ip, record) in &from_single {
        assert_eq!(record, &from_scaled[ip], "the record of {ip}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scaled_start_without_fitting_sightings_and_state_topics_exits_naming_the_topic() {
    let dir = tempfile::tempdir().unwrap();
    let blocklist = write_blocklist(dir.path(), &BLOCKLIST);
    let start = |topics: &Topics| {
        let (config, port) = write_config(dir.path(), topics, &blocklist, SCALED);
        let mut daemon = Daemon::start(&config, port, dir.path());
        let status = daemon.wait_exit(Duration::from_secs(60));
        (status, daemon.log_text())
    };
    // No sightings topic at all.
    let missing = create_topics(1).await;
    let (status, log) = start(&missing);
    assert_eq!(status.code(), Some(1), "{log}");
    let sightings = format!("{}.sightings", missing.output);
    assert!(
        log.contains(&format!("topic `{sightings}` does not exist")),
        "the missing sightings topic is not named:\n{log}"
    );
    // Sightings with 3 partitions, state with 2.
    let unequal = create_topics(1).await;
    create_scale_topics(&unequal.output, 3, Some(2)).await;
    let (status, log) = start(&unequal);
    assert_eq!(status.code(), Some(2), "{log}");
    let state = format!("{}.state", unequal.output);
    assert!(
        log.contains(&format!("topic `{state}`: has 2 partitions")) && log.contains("has 3"),
        "the unequal state topic is not named:\n{log}"
    );
    // A state topic that deletes old records instead of compacting them (tansu answers
    // DescribeConfigs with the policy a topic was created with).
    let deleting = create_topics(1).await;
    create_scale_topics_with(&deleting.output, 2, Some(2), "delete").await;
    let (status, log) = start(&deleting);
    assert_eq!(status.code(), Some(2), "{log}");
    let state = format!("{}.state", deleting.output);
    assert!(
        log.contains(&format!("topic `{state}`: cleanup.policy is `delete`")),
        "the state topic's policy is not named:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_scaled_daemons_split_the_sightings_partitions_and_publish_each_address_once() {
    const ADDRESSES: u32 = 40;
    const PARTITIONS: i32 = 4;
    let topics = create_topics(2).await;
    create_scale_topics(&topics.output, PARTITIONS, Some(PARTITIONS)).await;
    let dir = tempfile::tempdir().unwrap();
    let blocklist = write_blocklist(dir.path(), &BLOCKLIST);
    let start = || {
        let (config, port) = write_config(dir.path(), &topics, &blocklist, SCALED);
        let mut daemon = Daemon::start(&config, port, dir.path());
        daemon.wait_ready(Duration::from_secs(60));
        daemon
    };
    let mut first = start();
    let mut second = start();
    // The owner group settles with two partitions each (the range assignor splits 4 evenly).
    for daemon in [&first, &second] {
        wait_metric(
            daemon,
            "threatsift_owned_partitions",
            Duration::from_secs(120),
            |v| v == 2.0,
        );
    }
    // Each address on both input partitions, three times.
    let events: Vec<Vec<u8>> = (0..3 * ADDRESSES)
        .map(|i| ecs_event(&listed_v6(i % ADDRESSES), "10.0.0.1"))
        .collect();
    produce(&topics.input, Some(0), &events).await;
    produce(&topics.input, Some(1), &events).await;
    let input_end = ends(&read_all(&topics.input));
    wait_committed(
        &topics.group,
        &topics.input,
        Duration::from_secs(120),
        |c| *c == input_end,
    );
    let sightings_topic = format!("{}.sightings", topics.output);
    let sightings_end = ends(&read_all(&sightings_topic));
    wait_committed(
        &format!("{}.owners", topics.group),
        &sightings_topic,
        Duration::from_secs(120),
        |c| *c == sightings_end,
    );
    let owned: Vec<f64> = [&first, &second]
        .iter()
        .map(|d| d.metric("threatsift_owned_partitions").unwrap_or(0.0))
        .collect();
    assert_eq!(
        owned,
        [2.0, 2.0],
        "no rebalance while the events were processed"
    );
    for daemon in [&mut first, &mut second] {
        daemon.signal("TERM");
        let status = daemon.wait_exit(Duration::from_secs(30));
        assert!(status.success(), "{status}\n{}", daemon.log_text());
    }
    // Both daemons saw every address on their input partition; each address's sightings went
    // to one owner, which published its one record.
    let records = read_records(&topics.output);
    let expected: BTreeSet<String> = (0..ADDRESSES).map(listed_v6).collect();
    assert_eq!(record_ips(&read_all(&topics.output)), expected);
    assert_eq!(records.len(), expected.len(), "one record per address");
}
