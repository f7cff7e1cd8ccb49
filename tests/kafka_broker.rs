//! The daemon binary against the real broker started by `scripts/broker.sh` (tansu): records
//! out for known IPs, nothing lost across SIGKILL, poison input to the DLQ, SIGTERM commits,
//! provider answers published as revisions.
#![allow(clippy::disallowed_methods)] // plain test threads may sleep; no runtime is blocked

mod common;
mod mock_api;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;

/// Listed addresses: the blocklist covers 203.0.113.0/25 and 2001:db8:bad::/48.
const BLOCKLIST: [&str; 3] = [
    "# test list",
    "203.0.113.0/25 ; SBL000001",
    "2001:db8:bad::/48",
];

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
    read_until(&topics.output, Duration::from_secs(60), |m| {
        record_ips(m).is_superset(&expected)
    });
    // Every message finished: the counters below are final.
    wait_metric(
        &daemon,
        "threatsift_messages_completed_total",
        Duration::from_secs(60),
        |v| v >= 300.0,
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
    // The end: after a drained exit nothing more can arrive, so this read is all there is.
    let records = read_all(&topics.output);
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_no_record() {
    let topics = create_topics(4).await;
    let dir = tempfile::tempdir().unwrap();
    let blocklist = write_blocklist(dir.path(), &BLOCKLIST);
    let (config, port) = write_config(dir.path(), &topics, &blocklist, "");

    // Produced in real multi-record batches (librdkafka's defaults): the kill lands at an
    // arbitrary offset, so the restarted daemon resumes from a committed offset inside a batch
    // (the broker's exact mid-batch fetch is proven in tests/broker_batches.rs).
    const FIRST: u32 = 20_000;
    let first: Vec<Vec<u8>> = (0..FIRST)
        .map(|i| ecs_event(&listed_v6(i), "10.1.1.1"))
        .collect();
    produce(&topics.input, None, &first).await;
    let mut daemon = Daemon::start(&config, port, dir.path());
    daemon.wait_ready(Duration::from_secs(60));
    // Input keeps arriving until after the kill, so the kill lands mid-stream by construction
    // (the stream has not ended when it lands).
    let feeder = Feeder::start(&topics.input, FIRST, |i| {
        ecs_event(&listed_v6(i), "10.1.1.1")
    });
    // Kill once some work is finished and committed, so the restart resumes from a committed
    // offset while deliveries and offsets are still in flight.
    let completed_at_kill = wait_metric(
        &daemon,
        "threatsift_messages_completed_total",
        Duration::from_secs(60),
        |v| v >= 500.0,
    );
    wait_metric(
        &daemon,
        "threatsift_offsets_committed_total",
        Duration::from_secs(60),
        |v| v >= 1.0,
    );
    daemon.signal("KILL");
    daemon.wait_exit(Duration::from_secs(10));
    drop(daemon);
    let fed_until = feeder.stop().await;
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

    // More input arrives while the daemon is down.
    let second: Vec<Vec<u8>> = (fed_until..fed_until + 2000)
        .map(|i| ecs_event("10.2.2.2", &listed_v6(i)))
        .collect();
    produce(&topics.input, None, &second).await;

    let mut daemon = Daemon::start(&config, port, dir.path());
    daemon.wait_ready(Duration::from_secs(60));
    let expected: BTreeSet<String> = (0..fed_until + 2000).map(listed_v6).collect();
    // Every address must arrive; at the deadline the failure shows what is missing, the
    // daemon's counters and its log.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let (records, seen) = loop {
        let records = read_all(&topics.output);
        let seen = record_ips(&records);
        if seen.is_superset(&expected) {
            break (records, seen);
        }
        if std::time::Instant::now() > deadline {
            let missing: Vec<_> = expected.difference(&seen).take(5).collect();
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
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(seen, expected);
    assert_valid_records(&records);
    eprintln!(
        "sigkill test: killed after {completed_at_kill} of {fed_until} messages; {} records in all for {} IPs ({} repeats)",
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
        // Broken JSON without an address (i12: one with an address is read by the IP scanner).
        br#"{"source":{"port":51543"#.to_vec(),
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
    assert_valid_records(&records);
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
    let completed = wait_metric(
        &daemon,
        "threatsift_messages_completed_total",
        Duration::from_secs(60),
        |v| v >= 8.0,
    );
    assert_eq!(completed, 8.0);

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
    // The new event, then an end marker on each partition: once the markers' records are
    // in, the restarted daemon has read both partitions past anything it could have redone.
    let (new_ip, markers) = (listed_v6(9999), [listed_v6(10_000), listed_v6(10_001)]);
    produce(&topics.input, Some(0), &[ecs_event(&new_ip, "10.0.0.1")]).await;
    for (partition, marker) in markers.iter().enumerate() {
        produce(
            &topics.input,
            Some(partition as i32),
            &[ecs_event(marker, "10.0.0.1")],
        )
        .await;
    }
    wait_metric(
        &daemon,
        "threatsift_messages_completed_total",
        Duration::from_secs(60),
        |v| v >= 3.0,
    );
    let records = read_until(&topics.output, Duration::from_secs(60), |m| {
        let ips = record_ips(m);
        ips.contains(&new_ip) && markers.iter().all(|marker| ips.contains(marker))
    });
    assert_eq!(records.len(), 503, "only the new events made records");
    assert_valid_records(&records);
    assert_eq!(
        daemon.metric("threatsift_messages_completed_total"),
        Some(3.0),
        "the restarted daemon read only the new messages"
    );
    daemon.signal("TERM");
    assert!(daemon.wait_exit(Duration::from_secs(20)).success());
}

/// The addresses named by the finished (`.json`) reports in `directory` so far.
fn reported_ips(directory: &std::path::Path) -> BTreeSet<String> {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return BTreeSet::new();
    };
    let mut ips = BTreeSet::new();
    for path in entries.map(|e| e.unwrap().path()) {
        if path.extension().is_some_and(|e| e == "json") {
            let report: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            for threat in report["threats"].as_array().unwrap() {
                ips.insert(threat["ip"].as_str().unwrap().to_owned());
            }
        }
    }
    ips
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
    // A few more once reports naming all of the first 40 are written: they can only land in
    // a later file.
    let first_ips = record_ips(&records);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !reported_ips(&reports).is_superset(&first_ips) {
        assert!(
            std::time::Instant::now() < deadline,
            "no report named the first 40 addresses within 60 s: {:?}\n{}",
            reported_ips(&reports),
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let later: Vec<Vec<u8>> = (40..45)
        .map(|i| ecs_event(&listed_v6(i), "10.0.0.1"))
        .collect();
    produce(&topics.input, None, &later).await;
    let records_after = read_until(&topics.output, Duration::from_secs(60), |m| m.len() >= 45);
    assert_valid_records(&records_after);
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

/// VirusTotal's IP object for an address 4 engines flag malicious, 1 suspicious, reputation -11:
/// 20 + 2 + 10 = 32 points with the default scoring, enough for `suspicious` alone.
fn vt_flagged(ip: &str) -> serde_json::Value {
    serde_json::json!({"data": {"id": ip, "type": "ip_address", "attributes": {
        "as_owner": "Example Hosting Ltd", "asn": 64500, "country": "NL",
        "network": "198.51.100.0/24", "regional_internet_registry": "RIPE NCC",
        "reputation": -11,
        "last_analysis_stats": {"harmless": 58, "malicious": 4, "suspicious": 1, "undetected": 31, "timeout": 0},
        "last_analysis_results": {
            "ExampleAV": {"category": "malicious", "engine_name": "ExampleAV", "method": "blacklist", "result": "malware"}
        }
    }}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_answers_are_published_as_revisions() {
    const KEY: &str = "k3y-daemon-SECRET-7777";
    let topics = create_topics(1).await;
    let dir = tempfile::tempdir().unwrap();
    let blocklist = write_blocklist(dir.path(), &BLOCKLIST);
    // Both providers' answers are held until the test opens their gates, so the order of
    // events is fixed: every sighting is counted, then VirusTotal answers, then (both
    // addresses asked) AbuseIPDB's 401 comes.
    let (vt_gate, abuse_gate) = (mock_api::Gate::new(), mock_api::Gate::new());
    let vt_held = vt_gate.clone();
    let (vt_url, vt_seen) = mock_api::mock_by_address(&mock_api::VIRUSTOTAL, move |ip| {
        mock_api::held(
            mock_api::json_answer(200, vt_flagged(&ip.to_string())),
            &vt_held,
        )
    })
    .await;
    let (abuse_url, abuse_seen) = mock_api::mock(
        &mock_api::ABUSEIPDB,
        mock_api::held(
            mock_api::json_answer(
                401,
                serde_json::json!({"errors": [{"detail": "Authentication failed. Your API key \
                    is either missing, incorrect, or revoked. Note: The APIv2 key differs from \
                    the APIv1 key.", "status": 401}]}),
            ),
            &abuse_gate,
        ),
    )
    .await;
    // Timeouts far beyond any wait for a gate: a held request is never given up.
    let extra = format!(
        "[providers.virustotal]\nenabled = true\nbase_url = \"{vt_url}/api/v3\"\n\
         api_key = \"{KEY}\"\nper_minute = 60\ntimeout = \"600s\"\n\
         [providers.abuseipdb]\nenabled = true\nbase_url = \"{abuse_url}/api/v2\"\n\
         api_key = \"{KEY}\"\ntimeout = \"600s\"\n"
    );
    let (config, port) = write_config(dir.path(), &topics, &blocklist, &extra);
    // Listed (malicious locally, then VirusTotal adds points) and unlisted (withheld until
    // VirusTotal's answer makes it suspicious); each seen twice.
    let events = vec![
        ecs_event("203.0.113.5", "10.0.0.1"),
        ecs_event("198.51.100.7", "10.0.0.2"),
        ecs_event("203.0.113.5", "10.0.0.3"),
        ecs_event("198.51.100.7", "10.0.0.4"),
    ];
    produce(&topics.input, None, &events).await;
    let mut daemon = Daemon::start(&config, port, dir.path());
    daemon.wait_ready(Duration::from_secs(60));
    // Every sighting counted (both of each address) before any answer.
    wait_metric(
        &daemon,
        "threatsift_messages_completed_total",
        Duration::from_secs(60),
        |v| v >= 4.0,
    );
    vt_gate.open();
    let records = read_until(&topics.output, Duration::from_secs(60), |m| m.len() >= 3);
    wait_metric(
        &daemon,
        "threatsift_record_revisions_total",
        Duration::from_secs(60),
        |v| v >= 2.0,
    );
    // AbuseIPDB was asked about both addresses before its first 401 could mark it down.
    wait_for(
        &daemon,
        "both AbuseIPDB requests at the mock",
        Duration::from_secs(60),
        || (abuse_seen.lock().unwrap().len() == 2).then_some(()),
    );
    abuse_gate.open();
    wait_metric(
        &daemon,
        "threatsift_enrich_requests_total{provider=\"abuseipdb\",status=\"unauthorized\"}",
        Duration::from_secs(60),
        |v| v >= 2.0,
    );
    let validator = record_validator();
    let json: Vec<serde_json::Value> = records.iter().map(|m| m.json()).collect();
    for (message, record) in records.iter().zip(&json) {
        assert_valid_record(&validator, record);
        assert_eq!(message.key.as_deref(), record["ip"].as_str(), "keyed by IP");
    }
    let mut summary: Vec<(String, u64, u64, String, String)> = json
        .iter()
        .map(|r| {
            (
                r["ip"].as_str().unwrap().to_owned(),
                r["revision"].as_u64().unwrap(),
                r["score"].as_u64().unwrap(),
                r["intel"]["virustotal"]["status"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                r["verdict"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    // Revisions of an address leave in order: its first record is never overtaken.
    let listed: Vec<u64> = summary
        .iter()
        .filter(|r| r.0 == "203.0.113.5")
        .map(|r| r.1)
        .collect();
    assert_eq!(listed, [1, 2], "{json:#?}");
    summary.sort();
    assert_eq!(
        summary,
        vec![
            // Withheld at first (no local evidence); published once VirusTotal flagged it:
            // its 32 points and 1 for the second sighting, counted before the answer.
            (
                "198.51.100.7".into(),
                1,
                33,
                "ok".into(),
                "suspicious".into()
            ),
            // The first record, before any answer; then the revision VirusTotal's answer made
            // (the AbuseIPDB 401 published nothing).
            (
                "203.0.113.5".into(),
                1,
                70,
                "pending".into(),
                "malicious".into()
            ),
            (
                "203.0.113.5".into(),
                2,
                100,
                "ok".into(),
                "malicious".into()
            ),
        ],
        "{json:#?}"
    );
    let revised = json.iter().find(|r| r["ip"] == "198.51.100.7").unwrap();
    // AbuseIPDB had not answered when VirusTotal's answer made this revision; its 401, later,
    // is no evidence and publishes nothing (two revisions in all, below).
    assert_eq!(
        revised["intel"]["abuseipdb"]["status"], "pending",
        "{revised:#}"
    );
    assert_eq!(revised["network"]["asn"], 64500);
    assert!(revised["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["source"] != "abuseipdb"));

    // One request per address to each provider.
    let vt_paths: BTreeSet<String> = vt_seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.path_and_query.clone())
        .collect();
    assert_eq!(vt_seen.lock().unwrap().len(), 2, "{vt_paths:?}");
    let abuse_asked: BTreeSet<String> = abuse_seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.ip.unwrap().to_string())
        .collect();
    assert_eq!(
        abuse_asked,
        BTreeSet::from(["198.51.100.7".to_owned(), "203.0.113.5".to_owned()])
    );
    assert_eq!(
        daemon.metric("threatsift_provider_up{provider=\"abuseipdb\"}"),
        Some(0.0)
    );
    assert_eq!(
        daemon.metric("threatsift_provider_up{provider=\"virustotal\"}"),
        Some(1.0)
    );
    assert_eq!(
        daemon.metric("threatsift_record_revisions_total"),
        Some(2.0)
    );

    let (_, metrics) = daemon.http_get("/metrics").unwrap();
    daemon.signal("TERM");
    assert!(
        daemon.wait_exit(Duration::from_secs(20)).success(),
        "{}",
        daemon.log_text()
    );
    // The end: after a drained exit nothing more can arrive.
    assert_eq!(
        read_all(&topics.output).len(),
        records.len(),
        "records kept coming"
    );
    let log = daemon.log_text();
    assert_eq!(
        log.matches("provider refused the credentials").count(),
        1,
        "{log}"
    );
    for text in [log.as_str(), metrics.as_str()].into_iter().chain(
        records
            .iter()
            .map(|m| std::str::from_utf8(&m.payload).unwrap()),
    ) {
        assert!(!text.contains(KEY), "the API key leaked");
    }
    assert_eq!(
        mock_api::header(&vt_seen.lock().unwrap()[0], "x-apikey"),
        Some(KEY),
        "the key was sent to the provider"
    );
}

/// VirusTotal's `enrich_skipped_total` in a `/metrics` text, for one reason or all of them.
fn skipped_in(metrics: &str, reason: Option<&str>) -> f64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("threatsift_enrich_skipped_total")
                && l.contains("provider=\"virustotal\"")
                && reason.is_none_or(|r| l.contains(&format!("reason=\"{r}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_provider_budget_never_holds_up_the_stream() {
    let topics = create_topics(2).await;
    let dir = tempfile::tempdir().unwrap();
    let blocklist = write_blocklist(dir.path(), &BLOCKLIST);
    let (vt_url, vt_seen) = mock_api::mock_by_address(&mock_api::VIRUSTOTAL, |ip| {
        mock_api::json_answer(200, vt_flagged(&ip.to_string()))
    })
    .await;
    // VirusTotal's free tier per minute, and (so the bound on requests holds however long the
    // test takes) a day's budget of 4, a queue of 50: 3,000 new addresses must still all be
    // consumed, published or withheld, and committed, while VirusTotal is asked at most 4 times.
    let extra = format!(
        "[intel]\nremote_queue_capacity = 50\n\
         [providers.virustotal]\nenabled = true\nbase_url = \"{vt_url}/api/v3\"\n\
         api_key = \"k3y-budget\"\nper_minute = 4\nper_day = 4\n"
    );
    let (config, port) = write_config(dir.path(), &topics, &blocklist, &extra);
    let events: Vec<Vec<u8>> = (0..3000u32)
        .map(|i| {
            ecs_event(
                &format!("45.{}.{}.{}", 1 + (i >> 16), (i >> 8) & 0xff, i & 0xff),
                "10.0.0.1",
            )
        })
        .collect();
    produce(&topics.input, None, &events).await;
    let mut daemon = Daemon::start(&config, port, dir.path());
    daemon.wait_ready(Duration::from_secs(60));
    wait_metric(
        &daemon,
        "threatsift_messages_completed_total",
        Duration::from_secs(120),
        |v| v >= 3000.0,
    );
    // Every address was either asked, is waiting (at most the queue, plus the one address the
    // dispatcher took and put back while it waits for budget), or was skipped: wait until the
    // skips account for the rest.
    let least_skipped = (3000 - 50 - 1 - 4) as f64;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, metrics) = daemon.http_get("/metrics").unwrap();
        let skipped = skipped_in(&metrics, None);
        if skipped >= least_skipped {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {skipped} skipped within 60 s of the last message\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, metrics) = daemon.http_get("/metrics").unwrap();
    let skipped_as = |reason: Option<&str>| skipped_in(&metrics, reason);
    // Skipped for any reason: a full queue, or (the dispatcher's next address, with the minute
    // budget spent past `remote_max_wait`) the budget.
    let (skipped, queue_full) = (skipped_as(None), skipped_as(Some("queue_full")));
    let requests = vt_seen.lock().unwrap().len();
    println!(
        "3000 new addresses, VirusTotal at 4/min and 4/day: {requests} requests, {skipped} skipped \
         ({queue_full} as queue_full)"
    );
    assert!(
        queue_full > 0.0,
        "the full queue gave up its lowest addresses"
    );
    assert!(requests <= 4, "{requests} requests on a budget of 4");
    assert!(
        requests >= 1,
        "the most important addresses were still asked"
    );
    assert!(skipped >= least_skipped, "{skipped} skipped");
    daemon.signal("TERM");
    assert!(
        daemon.wait_exit(Duration::from_secs(20)).success(),
        "{}",
        daemon.log_text()
    );
    let by_partition = committed_offsets(&topics.group, &topics.input);
    let committed: i64 = by_partition.values().sum();
    assert_eq!(
        committed,
        3000,
        "every message committed: {by_partition:?}\n{}",
        daemon.log_text()
    );
}
