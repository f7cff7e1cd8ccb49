//! The daemon binary against the real broker started by `scripts/broker.sh` (tansu): records
//! out for known IPs, nothing lost across SIGKILL, poison input to the DLQ, SIGTERM commits.
#![allow(clippy::disallowed_methods)] // plain test threads may sleep; no runtime is blocked

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;

/// Listed addresses: the blocklist covers 203.0.113.0/25 and 2001:db8:bad::/48.
const BLOCKLIST: [&str; 3] = [
    "# test list",
    "203.0.113.0/25 ; SBL000001",
    "2001:db8:bad::/48",
];

fn listed_v6(i: u32) -> String {
    let ip: std::net::IpAddr = format!("2001:db8:bad::{:x}:{:x}", i >> 16, i & 0xffff)
        .parse()
        .unwrap();
    ip.to_string()
}

fn record_ips(messages: &[ReadMessage]) -> BTreeSet<String> {
    messages
        .iter()
        .map(|m| m.json()["ip"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_ips_in_exactly_the_expected_records_out() {
    let topics = create_topics(3).await;
    let dir = tempfile::tempdir().unwrap();
    let blocklist = write_blocklist(dir.path(), &BLOCKLIST);
    let (config, port) = write_config(dir.path(), &topics, &blocklist, "");

    // 40 listed v4, 40 unlisted v4, 20 listed v6, every one seen 3 times, private peers.
    let mut events = Vec::new();
    let mut expected = BTreeSet::new();
    for round in 0..3 {
        for i in 1..=40u32 {
            events.push(ecs_event(
                &format!("203.0.113.{i}"),
                &format!("10.0.{round}.{i}"),
            ));
            events.push(ecs_event(
                &format!("192.168.1.{i}"),
                &format!("198.51.100.{i}"),
            ));
            expected.insert(format!("203.0.113.{i}"));
        }
        for i in 1..=20u32 {
            events.push(ecs_event(&listed_v6(i), "fd00::1"));
            expected.insert(listed_v6(i));
        }
    }
    produce(&topics.input, None, &events).await;

    let mut daemon = Daemon::start(&config, port, dir.path());
    daemon.wait_ready(Duration::from_secs(60));
    let records = read_until(&topics.output, Duration::from_secs(60), |m| {
        m.len() >= expected.len()
    });
    // Let any extra (wrong) record arrive before judging.
    std::thread::sleep(Duration::from_secs(2));
    let records_after = read_all(&topics.output);
    assert_eq!(records_after.len(), records.len(), "records kept coming");
    assert_eq!(records.len(), expected.len(), "one record per listed IP");
    assert_eq!(record_ips(&records), expected);
    let validator = record_validator();
    for message in &records {
        let record = message.json();
        assert_valid_record(&validator, &record);
        assert_eq!(message.key.as_deref(), record["ip"].as_str(), "keyed by IP");
        assert_eq!(record["verdict"], "malicious");
        assert_eq!(record["observed"]["topic"], topics.input.as_str());
        assert_eq!(
            record["intel"]["feeds"]["matches"][0]["feed"],
            "test-blocklist"
        );
    }
    assert!(
        read_all(&topics.dlq).is_empty(),
        "no DLQ entries for valid input"
    );

    // Metrics: the events that crossed, by the names of design §7.
    assert_eq!(
        daemon.metric("threatsift_messages_completed_total"),
        Some(300.0)
    );
    assert_eq!(daemon.metric("threatsift_dedup_misses_total"), Some(100.0));
    assert_eq!(daemon.metric("threatsift_dedup_hits_total"), Some(200.0));
    let (_, metrics) = daemon.http_get("/metrics").unwrap();
    for name in [
        "threatsift_events_consumed_total",
        "threatsift_events_parsed_total{format=\"ecs_json\"} 300",
        "threatsift_ips_filtered_total{reason=\"private\"} 240",
        "threatsift_ips_filtered_total{reason=\"unique_local\"} 60",
        "threatsift_records_published_total{verdict=\"malicious\"} 60",
        "threatsift_records_withheld_total{verdict=\"unknown\"} 40",
        "threatsift_event_to_record_seconds_bucket",
    ] {
        assert!(metrics.contains(name), "missing {name} in\n{metrics}");
    }
    assert_eq!(daemon.http_get("/healthz").map(|(s, _)| s), Some(200));

    daemon.signal("TERM");
    let status = daemon.wait_exit(Duration::from_secs(20));
    assert!(
        status.success(),
        "SIGTERM exit: {status}\n{}",
        daemon.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_no_record() {
    let topics = create_topics(4).await;
    let dir = tempfile::tempdir().unwrap();
    let blocklist = write_blocklist(dir.path(), &BLOCKLIST);
    let (config, port) = write_config(dir.path(), &topics, &blocklist, "");

    const FIRST: u32 = 20_000;
    let first: Vec<Vec<u8>> = (0..FIRST)
        .map(|i| ecs_event(&listed_v6(i), "10.1.1.1"))
        .collect();
    produce(&topics.input, None, &first).await;
    let mut daemon = Daemon::start(&config, port, dir.path());
    daemon.wait_ready(Duration::from_secs(60));
    // Kill once some work is finished and committed, so the restart resumes from a committed
    // offset while deliveries and offsets are still in flight.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let completed_at_kill = loop {
        let completed = daemon
            .metric("threatsift_messages_completed_total")
            .unwrap_or(0.0);
        let commits = daemon
            .metric("threatsift_offsets_committed_total")
            .unwrap_or(0.0);
        if (completed >= 500.0 && commits >= 1.0) || std::time::Instant::now() > deadline {
            daemon.signal("KILL");
            break completed;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    daemon.wait_exit(Duration::from_secs(10));
    drop(daemon);
    // Nothing committed past unfinished work: every offset below a partition's committed
    // offset produced a record (each input message lists one IP).
    let committed = committed_offsets(&topics.group, &topics.input);
    let mut finished: std::collections::BTreeMap<i32, BTreeSet<i64>> = Default::default();
    for record in read_all(&topics.output).iter().map(ReadMessage::json) {
        let partition = record["observed"]["partition"].as_i64().unwrap() as i32;
        let offset = record["observed"]["offset"].as_i64().unwrap();
        finished.entry(partition).or_default().insert(offset);
    }
    for (partition, next) in &committed {
        let done = finished.get(partition).cloned().unwrap_or_default();
        let unfinished: Vec<i64> = (0..*next).filter(|o| !done.contains(o)).take(5).collect();
        assert!(
            unfinished.is_empty(),
            "partition {partition} committed {next} but offsets {unfinished:?} have no record"
        );
    }
    eprintln!("sigkill test: committed at kill {committed:?}");
    assert!(
        committed.values().any(|o| *o > 0),
        "the kill came after a commit"
    );
    assert!(
        (500.0..f64::from(FIRST)).contains(&completed_at_kill),
        "the kill must land mid-stream (completed {completed_at_kill} of {FIRST})"
    );

    // More input arrives while the daemon is down.
    let second: Vec<Vec<u8>> = (FIRST..FIRST + 2000)
        .map(|i| ecs_event("10.2.2.2", &listed_v6(i)))
        .collect();
    produce(&topics.input, None, &second).await;

    let mut daemon = Daemon::start(&config, port, dir.path());
    daemon.wait_ready(Duration::from_secs(60));
    let expected: BTreeSet<String> = (0..FIRST + 2000).map(listed_v6).collect();
    let records = read_until(&topics.output, Duration::from_secs(120), |m| {
        record_ips(m).len() >= expected.len()
    });
    let seen = record_ips(&records);
    let missing: Vec<_> = expected.difference(&seen).take(5).collect();
    if !missing.is_empty() {
        let metrics = daemon
            .http_get("/metrics")
            .map(|(_, m)| m)
            .unwrap_or_default();
        let interesting: Vec<&str> = metrics
            .lines()
            .filter(|l| !l.starts_with('#') && !l.ends_with(" 0") && !l.contains("_bucket"))
            .collect();
        panic!(
            "records lost across SIGKILL, e.g. {missing:?}\n{}\n--- log ---\n{}",
            interesting.join("\n"),
            daemon.log_text()
        );
    }
    assert_eq!(seen, expected);
    eprintln!(
        "sigkill test: killed after {completed_at_kill} of {FIRST} messages; {} records in all for {} IPs ({} repeats)",
        records.len(),
        expected.len(),
        records.len() - expected.len()
    );
    eprintln!(
        "sigkill test: restarted daemon rejoined {} time(s)",
        daemon.log_text().matches("rejoining").count()
    );
    daemon.signal("TERM");
    assert!(daemon.wait_exit(Duration::from_secs(20)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_go_to_the_dlq_and_the_stream_goes_on() {
    let topics = create_topics(1).await;
    let dir = tempfile::tempdir().unwrap();
    let blocklist = write_blocklist(dir.path(), &BLOCKLIST);
    let (config, port) = write_config(dir.path(), &topics, &blocklist, "");

    let binary: Vec<u8> = (0..=255u8).cycle().take(600).collect();
    let huge = vec![b'A'; 1024 * 1024];
    let payloads: Vec<Vec<u8>> = vec![
        ecs_event("203.0.113.1", "10.0.0.1"),
        b"srcip=203.0.113.2 \xff\xfe dstip=10.0.0.2".to_vec(),
        br#"{"source":{"ip":"203.0.113.3""#.to_vec(),
        Vec::new(),
        huge.clone(),
        binary.clone(),
        ecs_event("203.0.113.4", "10.0.0.4"),
        b"srcip=203.0.113.5 dstip=10.0.0.5 action=deny".to_vec(),
    ];
    produce(&topics.input, Some(0), &payloads).await;

    let mut daemon = Daemon::start(&config, port, dir.path());
    daemon.wait_ready(Duration::from_secs(60));
    let dlq = read_until(&topics.dlq, Duration::from_secs(60), |m| m.len() >= 5);
    let records = read_until(&topics.output, Duration::from_secs(60), |m| m.len() >= 3);
    assert_eq!(
        record_ips(&records),
        BTreeSet::from([
            "203.0.113.1".into(),
            "203.0.113.4".into(),
            "203.0.113.5".into()
        ]),
        "events before and after the poison are processed"
    );
    let mut entries: Vec<serde_json::Value> = dlq.iter().map(ReadMessage::json).collect();
    entries.sort_by_key(|e| e["offset"].as_i64());
    let reasons: Vec<&str> = entries
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "invalid_utf8",
            "invalid_json",
            "empty",
            "too_large",
            "invalid_utf8"
        ]
    );
    let offsets: Vec<i64> = entries
        .iter()
        .map(|e| e["offset"].as_i64().unwrap())
        .collect();
    assert_eq!(
        offsets,
        [1, 2, 3, 4, 5],
        "each entry names its origin offset"
    );
    for entry in &entries {
        assert_eq!(entry["schema"], "threatsift.dlq/1");
        assert_eq!(entry["topic"], topics.input.as_str());
        assert_eq!(entry["partition"], 0);
        assert!(!entry["error"].as_str().unwrap().is_empty());
    }
    // Invalid UTF-8 keeps the original bytes, base64-encoded.
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(entries[4]["payload"].as_str().unwrap())
        .unwrap();
    assert_eq!(entries[4]["payload_encoding"], "base64");
    assert_eq!(decoded, binary);
    // The 1 MiB line is kept truncated, and says so.
    assert_eq!(entries[3]["payload_truncated"], true);
    assert_eq!(entries[3]["payload_bytes"], huge.len());
    assert_eq!(entries[2]["payload"], "");
    assert_eq!(
        daemon.metric("threatsift_messages_completed_total"),
        Some(8.0)
    );

    daemon.signal("TERM");
    assert!(daemon.wait_exit(Duration::from_secs(20)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_commits_so_a_restart_does_not_redo_work() {
    let topics = create_topics(2).await;
    let dir = tempfile::tempdir().unwrap();
    let blocklist = write_blocklist(dir.path(), &BLOCKLIST);
    let (config, port) = write_config(dir.path(), &topics, &blocklist, "");

    let events: Vec<Vec<u8>> = (0..500)
        .map(|i| ecs_event(&listed_v6(i), "10.0.0.1"))
        .collect();
    produce(&topics.input, None, &events).await;
    let mut daemon = Daemon::start(&config, port, dir.path());
    daemon.wait_ready(Duration::from_secs(60));
    let records = read_until(&topics.output, Duration::from_secs(60), |m| m.len() >= 500);
    assert_eq!(records.len(), 500);
    daemon.signal("TERM");
    let status = daemon.wait_exit(Duration::from_secs(20));
    assert!(
        status.success(),
        "exit after SIGTERM: {status}\n{}",
        daemon.log_text()
    );
    drop(daemon);

    let mut daemon = Daemon::start(&config, port, dir.path());
    daemon.wait_ready(Duration::from_secs(60));
    produce(
        &topics.input,
        None,
        &[ecs_event(&listed_v6(9999), "10.0.0.1")],
    )
    .await;
    let records = read_until(&topics.output, Duration::from_secs(30), |m| m.len() >= 501);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        read_all(&topics.output).len(),
        501,
        "only the new event made a record"
    );
    assert!(record_ips(&records).contains(&listed_v6(9999)));
    assert_eq!(
        daemon.metric("threatsift_messages_completed_total"),
        Some(1.0),
        "the restarted daemon read only the new message"
    );
    daemon.signal("TERM");
    assert!(daemon.wait_exit(Duration::from_secs(20)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_reports_name_every_published_address() {
    let topics = create_topics(1).await;
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("reports");
    let blocklist = write_blocklist(dir.path(), &BLOCKLIST);
    let extra = format!(
        "[report]\ninterval = \"1s\"\ndirectory = \"{}\"\nformat = \"json\"\n",
        reports.display()
    );
    let (config, port) = write_config(dir.path(), &topics, &blocklist, &extra);
    let events: Vec<Vec<u8>> = (0..40)
        .map(|i| ecs_event(&listed_v6(i), "10.0.0.1"))
        .collect();
    produce(&topics.input, None, &events).await;
    let mut daemon = Daemon::start(&config, port, dir.path());
    daemon.wait_ready(Duration::from_secs(60));
    let records = read_until(&topics.output, Duration::from_secs(60), |m| m.len() >= 40);
    // A few more after the first interval has passed: they land in a later file.
    std::thread::sleep(Duration::from_millis(1500));
    let later: Vec<Vec<u8>> = (40..45)
        .map(|i| ecs_event(&listed_v6(i), "10.0.0.1"))
        .collect();
    produce(&topics.input, None, &later).await;
    let records_after = read_until(&topics.output, Duration::from_secs(60), |m| m.len() >= 45);
    daemon.signal("TERM");
    assert!(
        daemon.wait_exit(Duration::from_secs(20)).success(),
        "{}",
        daemon.log_text()
    );
    assert_eq!(records.len(), 40);

    let mut reported = std::collections::BTreeSet::new();
    let mut files = 0;
    for entry in std::fs::read_dir(&reports).expect("report directory") {
        let path = entry.unwrap().path();
        assert_eq!(
            path.extension().unwrap(),
            "json",
            "no partial files left: {path:?}"
        );
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(report["schema"], "threatsift.report/1");
        for threat in report["threats"].as_array().unwrap() {
            assert!(
                reported.insert(threat["ip"].as_str().unwrap().to_owned()),
                "{path:?}: an address in two intervals"
            );
        }
        files += 1;
    }
    assert!(
        files >= 2,
        "one report per interval with records, and the last one at shutdown"
    );
    assert_eq!(
        reported,
        record_ips(&records_after),
        "every published address is in a report"
    );
}
