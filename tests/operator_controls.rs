//! The operator's controls of issue 17 (README "Start position", "Allow-list"), against the
//! binary as a child process and the real broker: where a new consumer group starts reading,
//! and allow-listed addresses that are never looked up nor published.
//!
//! Nothing here waits on the clock: every wait is for a metric, a record or a request, with a
//! generous deadline whose expiry fails the test saying what did not come.
#![allow(clippy::disallowed_methods)] // plain test threads may sleep; no runtime is blocked

mod common;

use std::time::{Duration, Instant};

use common::*;

/// The blocklist: every address these tests send is listed, so each would be published.
const BLOCKLIST: [&str; 1] = ["203.0.113.0/24"];

/// Generous: the machine is shared and slow; expiry means the awaited thing never came.
const DEADLINE: Duration = Duration::from_secs(90);

/// The configuration `write_config` makes, without its `start_from = "earliest"` line, so the
/// daemon runs with the default start position.
fn with_default_start(config: &std::path::Path) {
    let text = std::fs::read_to_string(config).unwrap();
    assert!(text.contains("start_from = \"earliest\"\n"));
    std::fs::write(config, text.replace("start_from = \"earliest\"\n", "")).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_group_reads_from_the_end_by_default() {
    let topics = create_topics(1).await;
    let dir = tempfile::tempdir().unwrap();
    let blocklist = write_blocklist(dir.path(), &BLOCKLIST);
    let (config, port) = write_config(dir.path(), &topics, &blocklist, "");
    with_default_start(&config);
    let history: Vec<String> = (1..=10).map(|i| format!("203.0.113.{i}")).collect();
    let events: Vec<Vec<u8>> = history.iter().map(|ip| ecs_event(ip, "10.0.0.5")).collect();
    produce(&topics.input, Some(0), &events).await;

    let mut daemon = Daemon::start(&config, port, dir.path());
    daemon.wait_ready(DEADLINE);
    wait_metric(
        &daemon,
        "threatsift_rebalances_total{kind=\"assign\"}",
        DEADLINE,
        |v| v >= 1.0,
    );
    // The end offset is resolved when the first fetch starts, a moment after the assignment:
    // a marker produced in between is behind the start and never read. So markers keep coming,
    // each a new address, until one's record arrives; each is produced after the history.
    let deadline = Instant::now() + DEADLINE;
    let mut markers: Vec<String> = Vec::new();
    let records = loop {
        let marker = format!("203.0.113.{}", 200 + markers.len());
        produce(&topics.input, Some(0), &[ecs_event(&marker, "10.0.0.5")]).await;
        markers.push(marker);
        let read = read_records(&topics.output);
        if read
            .iter()
            .any(|r| markers.iter().any(|m| r.json["ip"] == m.as_str()))
        {
            break read;
        }
        assert!(
            Instant::now() < deadline,
            "no marker's record within {DEADLINE:?}\n{}",
            daemon.log_text()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    // The history precedes every marker in the one partition: had it been read, its records
    // would be out before the marker's.
    let ips: Vec<&str> = records
        .iter()
        .filter_map(|r| r.json["ip"].as_str())
        .collect();
    assert!(
        ips.iter().all(|ip| markers.iter().any(|m| m == ip)),
        "only markers' records, none of the history {history:?}: {ips:?}"
    );
}
