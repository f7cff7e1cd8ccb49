//! The daemon binary against the real broker (tansu, `scripts/broker.sh`), on the delivery
//! promises beyond the happy path: a slow output stops the stages before it through the bounded
//! channels (`backpressure_seconds_total`) and loses nothing; a second member joining the group
//! mid-stream rebalances it (`rebalances_total`) and loses nothing; every documented field of a
//! DLQ entry, `line` and `dead_lettered_at` among them.
#![allow(clippy::disallowed_methods)] // plain test threads may sleep; no runtime is blocked

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;

/// The blocklist: 203.0.113.0/25 and 2001:db8:bad::/48 are listed.
const BLOCKLIST: [&str; 2] = ["203.0.113.0/25 ; SBL000001", "2001:db8:bad::/48"];

/// Adds `lines` to the `[kafka]` table of the configuration at `path`.
fn add_to_kafka_table(path: &Path, lines: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains("[kafka]\n"));
    std::fs::write(
        path,
        text.replacen("[kafka]\n", &format!("[kafka]\n{lines}\n"), 1),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_output_backs_up_through_the_channels_and_nothing_is_lost() {
    const EVENTS: u32 = 30;
    let topics = create_topics(1).await;
    let dir = tempfile::tempdir().unwrap();
    let blocklist = write_blocklist(dir.path(), &BLOCKLIST);
    // One message per batch, two batches per channel, one message awaiting delivery: at most a
    // handful of messages fit between the consumer and the broker. Every delivery waits out a
    // 200 ms linger, so the sink is far slower than the worker and the consumer before it.
    let pipeline = "[pipeline]\nchannel_capacity = 1\nmax_in_flight = 1\n\
                    batch_max_messages = 1\nworkers = 1\n";
    let (config, port) = write_config(dir.path(), &topics, &blocklist, pipeline);
    add_to_kafka_table(&config, "librdkafka = [\"linger.ms=200\"]");
    let events: Vec<Vec<u8>> = (0..EVENTS)
        .map(|i| ecs_event(&listed_v6(i), "10.0.0.1"))
        .collect();
    produce(&topics.input, None, &events).await;

    let mut daemon = Daemon::start(&config, port, dir.path());
    daemon.wait_ready(Duration::from_secs(60));
    wait_metric(
        &daemon,
        "threatsift_messages_completed_total",
        Duration::from_secs(120),
        |v| v >= f64::from(EVENTS),
    );
    // Both stages before the sink waited on a full channel, and said so.
    for stage in ["consume", "process"] {
        let waited = daemon
            .metric(&format!(
                "threatsift_backpressure_seconds_total{{stage=\"{stage}\"}}"
            ))
            .unwrap_or(0.0);
        assert!(
            waited > 0.0,
            "no backpressure counted for {stage}\n{}",
            daemon.log_text()
        );
    }
    daemon.signal("TERM");
    let status = daemon.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status}\n{}", daemon.log_text());

    // Nothing lost: after the drained exit (nothing more can arrive) every event has its one
    // record, and every offset is committed.
    let records = read_all(&topics.output);
    let expected: BTreeSet<String> = (0..EVENTS).map(listed_v6).collect();
    assert_eq!(record_ips(&records), expected);
    assert_eq!(records.len(), expected.len(), "one record per event");
    assert_valid_records(&records);
    assert_eq!(
        committed_offsets(&topics.group, &topics.input),
        [(0, i64::from(EVENTS))].into()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_joining_mid_stream_rebalances_the_group_and_nothing_is_lost() {
    const FIRST: u32 = 2000;
    let topics = create_topics(4).await;
    let dir = tempfile::tempdir().unwrap();
    let blocklist = write_blocklist(dir.path(), &BLOCKLIST);
    let (config_a, port_a) = write_config(dir.path(), &topics, &blocklist, "");
    let (config_b, port_b) = write_config(dir.path(), &topics, &blocklist, "");
    let event = |i| ecs_event(&listed_v6(i), "10.0.0.1");
    let first: Vec<Vec<u8>> = (0..FIRST).map(event).collect();
    produce(&topics.input, None, &first).await;

    let mut a = Daemon::start(&config_a, port_a, dir.path());
    a.wait_ready(Duration::from_secs(60));
    let assigned = "threatsift_rebalances_total{kind=\"assign\"}";
    let assigns_before = a.metric(assigned).unwrap_or(0.0);
    assert!(assigns_before >= 1.0, "the first member was assigned");
    wait_metric(
        &a,
        "threatsift_messages_completed_total",
        Duration::from_secs(60),
        |v| v >= 1.0,
    );
    // Input keeps arriving while a second member joins the group: the first gives its
    // partitions up and both are assigned, mid-stream.
    let feeder = Feeder::start(&topics.input, FIRST, event);
    let mut b = Daemon::start(&config_b, port_b, dir.path());
    b.wait_ready(Duration::from_secs(60));
    wait_metric(
        &a,
        "threatsift_rebalances_total{kind=\"revoke\"}",
        Duration::from_secs(60),
        |v| v >= 1.0,
    );
    wait_metric(&a, assigned, Duration::from_secs(60), |v| {
        v > assigns_before
    });
    assert!(
        b.metric(assigned) >= Some(1.0),
        "the new member was assigned"
    );
    let fed_until = feeder.stop().await;
    let expected: BTreeSet<String> = (0..fed_until).map(listed_v6).collect();
    read_until(&topics.output, Duration::from_secs(120), |m| {
        record_ips(m).is_superset(&expected)
    });
    let completed_by_b = wait_metric(
        &b,
        "threatsift_messages_completed_total",
        Duration::from_secs(60),
        |v| v >= 1.0,
    );
    for daemon in [&a, &b] {
        daemon.signal("TERM");
    }
    for daemon in [&mut a, &mut b] {
        let status = daemon.wait_exit(Duration::from_secs(30));
        assert!(status.success(), "{status}\n{}", daemon.log_text());
    }
    eprintln!("rebalance test: {fed_until} messages, the joining member finished {completed_by_b}");

    // Nothing lost and everything committed: every address has a record (a partition moved
    // mid-stream may repeat some: at least once), and the group's offsets reach the end.
    let records = read_all(&topics.output);
    assert_eq!(record_ips(&records), expected);
    assert_valid_records(&records);
    let committed = committed_offsets(&topics.group, &topics.input);
    assert_eq!(
        committed.values().sum::<i64>(),
        i64::from(fed_until),
        "{committed:?}"
    );
}

/// `text` as RFC 3339, or a panic naming `field`.
fn rfc3339(field: &str, value: &serde_json::Value) -> SystemTime {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{field} is not text: {value}"));
    humantime::parse_rfc3339(text).unwrap_or_else(|e| panic!("{field} {text:?}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_entries_carry_every_documented_field() {
    let topics = create_topics(1).await;
    let dir = tempfile::tempdir().unwrap();
    let blocklist = write_blocklist(dir.path(), &BLOCKLIST);
    let (config, port) = write_config(
        dir.path(),
        &topics,
        &blocklist,
        "[dlq]\nmax_payload_bytes = 100\n",
    );
    // One message of four lines: good, broken JSON, good, broken JSON of 300 bytes (kept
    // truncated to 100). Then a message that is one broken line (no `line`). Broken lines hold
    // no address (i12: one with an address is read by the IP scanner).
    let long_broken = format!(r#"{{"source":{{"port":51549,"pad":"{}""#, "x".repeat(250));
    let message = [
        String::from_utf8(ecs_event("203.0.113.1", "10.0.0.1")).unwrap(),
        r#"{"source":{"port":51542"#.to_owned(),
        "srcip=203.0.113.3 dstip=10.0.0.3 action=deny".to_owned(),
        long_broken.clone(),
    ]
    .join("\n");
    let single = br#"{"source":{"port":51544"#.to_vec();
    produce(
        &topics.input,
        Some(0),
        &[message.clone().into_bytes(), single.clone()],
    )
    .await;

    let mut daemon = Daemon::start(&config, port, dir.path());
    daemon.wait_ready(Duration::from_secs(60));
    wait_metric(
        &daemon,
        "threatsift_messages_completed_total",
        Duration::from_secs(60),
        |v| v >= 2.0,
    );
    daemon.signal("TERM");
    let status = daemon.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status}\n{}", daemon.log_text());

    // After the drained exit the topics are final.
    let records = read_all(&topics.output);
    assert_eq!(
        record_ips(&records),
        BTreeSet::from(["203.0.113.1".to_owned(), "203.0.113.3".to_owned()]),
        "the good lines around the bad ones were read"
    );
    assert_valid_records(&records);
    let inputs = read_all(&topics.input);
    let input_time = |offset: i64| -> i64 {
        inputs
            .iter()
            .find(|m| m.offset == offset)
            .and_then(|m| m.timestamp_ms)
            .expect("input timestamp")
    };
    let mut dlq = read_all(&topics.dlq);
    dlq.sort_by_key(|m| {
        let entry = m.json();
        (entry["offset"].as_i64(), entry["line"].as_i64())
    });
    assert_eq!(dlq.len(), 3, "one entry per bad line");

    // (offset, line, payload kept, original bytes)
    let expected: [(i64, Option<i64>, &[u8], usize); 3] = [
        (0, Some(1), br#"{"source":{"port":51542"#, 23),
        (
            0,
            Some(3),
            &long_broken.as_bytes()[..100],
            long_broken.len(),
        ),
        (1, None, &single, single.len()),
    ];
    for (message, (offset, line, kept, bytes)) in dlq.iter().zip(expected) {
        let entry = message.json();
        let fields: BTreeSet<&str> = entry.as_object().unwrap().keys().map(|k| &**k).collect();
        assert_eq!(
            fields,
            BTreeSet::from([
                "schema",
                "reason",
                "error",
                "topic",
                "partition",
                "offset",
                "line",
                "message_time",
                "dead_lettered_at",
                "payload_encoding",
                "payload",
                "payload_bytes",
                "payload_truncated",
            ]),
            "every documented field, and no other: {entry}"
        );
        assert_eq!(entry["schema"], "threatsift.dlq/1");
        assert_eq!(entry["reason"], "invalid_json", "{entry}");
        assert!(!entry["error"].as_str().unwrap().is_empty(), "{entry}");
        assert_eq!(entry["topic"], topics.input.as_str());
        assert_eq!(entry["partition"], 0);
        assert_eq!(entry["offset"], offset);
        assert_eq!(entry["line"].as_i64(), line, "{entry}");
        // The input message's Kafka timestamp, to the millisecond.
        let message_time = rfc3339("message_time", &entry["message_time"]);
        let sent = input_time(offset);
        assert_eq!(
            message_time,
            UNIX_EPOCH + Duration::from_millis(sent as u64),
            "{entry}"
        );
        // Made (whole seconds) after the message was produced and before the entry was.
        let dead_lettered_at = rfc3339("dead_lettered_at", &entry["dead_lettered_at"]);
        let produced_second = UNIX_EPOCH + Duration::from_secs(sent as u64 / 1000);
        let entry_sent = UNIX_EPOCH + Duration::from_millis(message.timestamp_ms.unwrap() as u64);
        assert!(
            produced_second <= dead_lettered_at && dead_lettered_at <= entry_sent,
            "dead_lettered_at {dead_lettered_at:?} outside [{produced_second:?}, {entry_sent:?}]"
        );
        assert_eq!(entry["payload_encoding"], "utf8");
        assert_eq!(entry["payload"].as_str().unwrap().as_bytes(), kept);
        assert_eq!(entry["payload_bytes"], bytes);
        assert_eq!(entry["payload_truncated"], kept.len() < bytes, "{entry}");
    }
}

// ---- i12-fallback: a line its format rejects but that holds addresses is read by the IP
// scanner and counted in parse_fallbacks_total, not dead-lettered; one without an address
// still is.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_line_holding_addresses_becomes_records_and_is_counted_not_dead_lettered() {
    let topics = create_topics(1).await;
    let dir = tempfile::tempdir().unwrap();
    let blocklist = write_blocklist(dir.path(), &BLOCKLIST);
    let (config, port) = write_config(dir.path(), &topics, &blocklist, "");
    // A PAN-OS TRAFFIC record cut short after its addresses, the same cut short before them,
    // then (a message of its own) a good event.
    let message = [
        "1,2024/03/01 12:00:12,012345678901,TRAFFIC,end,2816,2024/03/01 12:00:12,203.0.113.51,203.0.113.61",
        "1,2024/03/01 12:00:13,012345678901,TRAFFIC,end,2816,2024/03/01 12:00:13",
    ]
    .join("\n");
    produce(
        &topics.input,
        Some(0),
        &[message.into_bytes(), ecs_event("203.0.113.52", "10.0.0.1")],
    )
    .await;

    let mut daemon = Daemon::start(&config, port, dir.path());
    daemon.wait_ready(Duration::from_secs(60));
    wait_metric(
        &daemon,
        "threatsift_messages_completed_total",
        Duration::from_secs(60),
        |v| v >= 2.0,
    );
    let fallbacks =
        daemon.metric(r#"threatsift_parse_fallbacks_total{format="paloalto",reason="malformed"}"#);
    let malformed = daemon.metric(r#"threatsift_parse_errors_total{kind="malformed"}"#);
    daemon.signal("TERM");
    let status = daemon.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status}\n{}", daemon.log_text());
    assert_eq!(
        fallbacks,
        Some(1.0),
        "the cut-short line with addresses is counted as a fallback"
    );
    assert_eq!(
        malformed,
        Some(1.0),
        "only the line without an address is a parse error"
    );

    // After the drained exit the topics are final.
    let records = read_all(&topics.output);
    assert_valid_records(&records);
    assert_eq!(
        record_ips(&records),
        BTreeSet::from([
            "203.0.113.51".to_owned(),
            "203.0.113.61".to_owned(),
            "203.0.113.52".to_owned()
        ]),
    );
    for record in records.iter().map(ReadMessage::json) {
        let want = if record["ip"] == "203.0.113.52" {
            "ecs_json"
        } else {
            "ip_scan"
        };
        assert_eq!(record["observed"]["format"], want, "{record}");
    }
    let dlq = read_all(&topics.dlq);
    assert_eq!(dlq.len(), 1, "one entry: the line without an address");
    let entry = dlq[0].json();
    assert_eq!(entry["reason"], "malformed", "{entry}");
    assert_eq!(entry["line"], 1, "{entry}");
    assert!(
        entry["error"].as_str().unwrap().contains("paloalto"),
        "the entry names the format that rejected the line: {entry}"
    );
}
