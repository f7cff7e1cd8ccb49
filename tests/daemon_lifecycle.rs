//! The daemon's lifecycle promises (README "Delivery promise", "Metrics and health", "Local
//! intel", "Reports"), each against the binary as a child process and the real broker: how
//! SIGINT/SIGTERM end a run and with which exit code, a missing output or DLQ topic at start-up,
//! `/readyz`, feed reloads, no address in the metrics, a disabled Talos list left unread, and
//! the narrative of a scheduled report never given raw log text.
//!
//! Nothing here waits on the clock: every wait is for a metric, a log line, a record or the
//! process's exit, with a generous deadline whose expiry fails the test saying what did not
//! come.
#![allow(clippy::disallowed_methods)] // plain test threads may sleep; no runtime is blocked

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

/// The blocklist: 203.0.113.0/25 and 2001:db8:bad::/48.
const BLOCKLIST: [&str; 2] = ["203.0.113.0/25", "2001:db8:bad::/48"];

/// Generous: the machine is shared and slow; expiry means the awaited thing never came.
const DEADLINE: Duration = Duration::from_secs(90);

/// Like `Daemon::start`, with extra environment (settings the config file already has a
/// table for: `THREATSIFT__SECTION__KEY`).
fn start_with_env(config: &Path, port: u16, dir: &Path, envs: &[(&str, &str)]) -> Daemon {
    let log = dir.join(format!("daemon-{}.log", unique("log")));
    let stderr = std::fs::File::create(&log).expect("log file");
    let mut command = Command::new(env!("CARGO_BIN_EXE_threatsift"));
    command
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .env_remove("THREATSIFT_CONFIG")
        .stdout(Stdio::null())
        .stderr(stderr);
    for (key, value) in envs {
        command.env(key, value);
    }
    let child = command.spawn().expect("start daemon");
    Daemon { child, log, port }
}

/// The sum of the group's committed offsets on `topic` (the messages it will not read again).
fn committed_total(group: &str, topic: &str) -> i64 {
    committed_offsets(group, topic).values().sum()
}

fn listed_events(count: u32) -> Vec<Vec<u8>> {
    (1..=count)
        .map(|i| ecs_event(&format!("203.0.113.{i}"), "10.0.0.1"))
        .collect()
}

/// librdkafka holds produced records this long before sending them (at most, the drain
/// flushes them): deliveries cannot finish within a short drain deadline.
const HOLD_DELIVERIES: (&str, &str) = ("THREATSIFT__KAFKA__LIBRDKAFKA", "linger.ms=120000");

/// A long drain deadline, and the session timeout that start-up requires to outlast it. Not
/// longer: this tansu build takes half the session timeout to complete a group join.
const LONG_DRAIN: [(&str, &str); 2] = [
    ("THREATSIFT__SHUTDOWN__DRAIN_TIMEOUT", "25s"),
    ("THREATSIFT__KAFKA__SESSION_TIMEOUT", "30s"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_drains_commits_and_exits_0_like_sigterm() {
    let topics = create_topics(2).await;
    let dir = tempfile::tempdir().unwrap();
    let blocklist = write_blocklist(dir.path(), &BLOCKLIST);
    let (config, port) = write_config(dir.path(), &topics, &blocklist, "");
    produce(&topics.input, None, &listed_events(30)).await;

    let mut daemon = Daemon::start(&config, port, dir.path());
    daemon.wait_ready(DEADLINE);
    wait_metric(
        &daemon,
        "threatsift_messages_completed_total",
        DEADLINE,
        |v| v >= 30.0,
    );
    daemon.signal("INT");
    let status = daemon.wait_exit(DEADLINE);
    assert_eq!(
        status.code(),
        Some(0),
        "SIGINT drains and exits 0 ({status})\n{}",
        daemon.log_text()
    );
    assert_eq!(
        committed_total(&topics.group, &topics.input),
        30,
        "every message's offset was committed before the exit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passed_drain_deadline_exits_1_and_the_unfinished_are_read_again() {
    let topics = create_topics(1).await;
    let dir = tempfile::tempdir().unwrap();
    let blocklist = write_blocklist(dir.path(), &BLOCKLIST);
    let (config, port) = write_config(dir.path(), &topics, &blocklist, "");
    produce(&topics.input, None, &listed_events(20)).await;

    let mut daemon = start_with_env(
        &config,
        port,
        dir.path(),
        &[
            HOLD_DELIVERIES,
            ("THREATSIFT__SHUTDOWN__DRAIN_TIMEOUT", "1s"),
        ],
    );
    daemon.wait_ready(DEADLINE);
    // Every message is consumed and its record handed to the producer, which holds it.
    wait_metric(&daemon, "threatsift_events_consumed_total", DEADLINE, |v| {
        v >= 20.0
    });
    daemon.signal("TERM");
    let status = daemon.wait_exit(DEADLINE);
    let log = daemon.log_text();
    assert_eq!(status.code(), Some(1), "deadline passed: exit 1\n{log}");
    assert!(
        log.contains("drain deadline passed with"),
        "stderr says why:\n{log}"
    );
    let committed = committed_total(&topics.group, &topics.input);
    assert!(
        committed < 20,
        "unfinished messages are not committed (committed {committed})"
    );
    drop(daemon);

    // The next start reads the unfinished messages again and finishes them.
    let mut daemon = Daemon::start(&config, port, dir.path());
    daemon.wait_ready(DEADLINE);
    let redone = 20 - committed;
    wait_metric(
        &daemon,
        "threatsift_messages_completed_total",
        DEADLINE,
        |v| v >= redone as f64,
    );
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(DEADLINE).code(), Some(0));
    assert_eq!(committed_total(&topics.group, &topics.input), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_during_the_drain_exits_130_at_once() {
    let topics = create_topics(1).await;
    let dir = tempfile::tempdir().unwrap();
    let blocklist = write_blocklist(dir.path(), &BLOCKLIST);
    let (config, port) = write_config(dir.path(), &topics, &blocklist, "");
    produce(&topics.input, None, &listed_events(10)).await;

    // Deliveries are held: the drain cannot end before its deadline, which is far beyond the
    // moment the second signal is sent (its expiry would show as exit 1, failing the test).
    let mut daemon = start_with_env(
        &config,
        port,
        dir.path(),
        &[HOLD_DELIVERIES, LONG_DRAIN[0], LONG_DRAIN[1]],
    );
    daemon.wait_ready(DEADLINE);
    wait_metric(&daemon, "threatsift_events_consumed_total", DEADLINE, |v| {
        v >= 10.0
    });
    daemon.signal("TERM");
    wait_for(&daemon, "the drain to start", DEADLINE, || {
        daemon
            .log_text()
            .contains("shutdown requested")
            .then_some(())
    });
    daemon.signal("INT");
    let status = daemon.wait_exit(DEADLINE);
    assert_eq!(
        status.code(),
        Some(130),
        "a second signal exits at once with 130 ({status})\n{}",
        daemon.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_output_or_dlq_topic_stops_start_up_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let blocklist = write_blocklist(dir.path(), &BLOCKLIST);
    for missing in ["output", "dlq"] {
        let mut topics = create_topics(1).await;
        let name = unique(&format!("missing-{missing}"));
        match missing {
            "output" => topics.output = name.clone(),
            _ => topics.dlq = name.clone(),
        }
        let (config, port) = write_config(dir.path(), &topics, &blocklist, "");
        let mut daemon = Daemon::start(&config, port, dir.path());
        let status = daemon.wait_exit(DEADLINE);
        let log = daemon.log_text();
        assert_eq!(status.code(), Some(1), "{missing}: {status}\n{log}");
        assert!(
            log.contains(&format!("topic `{name}` does not exist")),
            "{missing}: the error names the topic:\n{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_naming_what_is_missing_until_ready_then_200() {
    let dir = tempfile::tempdir().unwrap();
    let blocklist = write_blocklist(dir.path(), &BLOCKLIST);

    // No broker at all: the process is alive, not ready, and says both halves are missing.
    let topics = create_topics(1).await;
    let (config, port) = write_config(dir.path(), &topics, &blocklist, "");
    let nowhere = format!("127.0.0.1:{}", free_port());
    let mut daemon = start_with_env(
        &config,
        port,
        dir.path(),
        &[("THREATSIFT__KAFKA__BROKERS", nowhere.as_str())],
    );
    let (status, body) = wait_for(&daemon, "an answer from /readyz", DEADLINE, || {
        daemon.http_get("/readyz")
    });
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("consumer not assigned and producer not connected"),
        "{body}"
    );
    assert_eq!(daemon.http_get("/healthz").map(|(s, _)| s), Some(200));
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(DEADLINE).code(), Some(0));

    // A broker, but the input topic does not exist yet: the consumer has nothing assigned.
    let mut topics = create_topics(1).await;
    topics.input = unique("in-later");
    let (config, port) = write_config(dir.path(), &topics, &blocklist, "");
    let mut daemon = Daemon::start(&config, port, dir.path());
    let (status, body) = wait_for(
        &daemon,
        "/readyz naming only the consumer",
        DEADLINE,
        || {
            daemon
                .http_get("/readyz")
                .filter(|(_, body)| !body.contains("producer not connected"))
        },
    );
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("consumer has no partitions assigned"),
        "{body}"
    );
    create_topic(&topics.input, 1).await;
    daemon.wait_ready(DEADLINE);
    assert_eq!(
        daemon.http_get("/readyz"),
        Some((200, "ready\n".to_owned()))
    );
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(DEADLINE).code(), Some(0));
}

async fn create_topic(name: &str, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .expect("admin client");
    let created = admin
        .create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create topic");
    for result in created {
        result.expect("topic created");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_feed_is_reloaded_and_flags_new_sightings() {
    let topics = create_topics(1).await;
    let dir = tempfile::tempdir().unwrap();
    let blocklist = write_blocklist(dir.path(), &BLOCKLIST);
    let extra = "[intel]\nfeeds_reload_interval = \"1s\"\n";
    let (config, port) = write_config(dir.path(), &topics, &blocklist, extra);
    let mut daemon = Daemon::start(&config, port, dir.path());
    daemon.wait_ready(DEADLINE);

    // Not listed yet: withheld.
    produce(
        &topics.input,
        None,
        &[ecs_event("198.51.100.7", "10.0.0.1")],
    )
    .await;
    wait_metric(
        &daemon,
        "threatsift_records_withheld_total{verdict=\"unknown\"}",
        DEADLINE,
        |v| v >= 1.0,
    );
    assert_eq!(
        daemon.metric("threatsift_feed_reloads_total"),
        None,
        "no reload before the file changed"
    );

    // The new list replaces the old one at once (rename), never half written.
    let mut lines = BLOCKLIST.to_vec();
    lines.push("198.51.100.0/24");
    let staged = dir.path().join("blocklist.next");
    std::fs::write(&staged, lines.join("\n")).unwrap();
    std::fs::rename(&staged, &blocklist).unwrap();
    wait_metric(
        &daemon,
        "threatsift_feed_reloads_total{result=\"ok\"}",
        DEADLINE,
        |v| v >= 1.0,
    );
    assert_eq!(
        daemon.metric("threatsift_feed_entries{feed=\"test-blocklist\"}"),
        Some(3.0)
    );

    // A new address of the new range is flagged; the one seen before the reload is still in
    // the dedup window, so its repeat makes no record of its own: the reload's re-evaluation
    // flagged it already (tests/withdraw.rs). The last event is the end marker.
    produce(
        &topics.input,
        None,
        &[
            ecs_event("198.51.100.8", "10.0.0.1"),
            ecs_event("198.51.100.7", "10.0.0.1"),
            ecs_event("198.51.100.9", "10.0.0.1"),
        ],
    )
    .await;
    read_records_until(&topics.output, DEADLINE, |m| {
        holds_ips(m, &["198.51.100.9", "198.51.100.7"])
    });
    // Every delivery of the four messages reported: the topic holds all it ever will.
    wait_metric(
        &daemon,
        "threatsift_messages_completed_total",
        DEADLINE,
        |v| v >= 4.0,
    );
    let records: Vec<serde_json::Value> = read_records(&topics.output)
        .into_iter()
        .map(|r| r.json)
        .collect();
    let mut ips: Vec<&str> = records.iter().map(|r| r["ip"].as_str().unwrap()).collect();
    ips.sort_unstable();
    assert_eq!(ips, ["198.51.100.7", "198.51.100.8", "198.51.100.9"]);
    for record in &records {
        assert_eq!(record["verdict"], "malicious", "{record}");
        assert_eq!(
            record["intel"]["feeds"]["matches"][0]["feed"],
            "test-blocklist"
        );
    }

    // A reload that fails keeps the list loaded before: counted as an error, and the next
    // new address of the range is flagged all the same.
    std::fs::remove_file(&blocklist).unwrap();
    wait_metric(
        &daemon,
        "threatsift_feed_reloads_total{result=\"error\"}",
        DEADLINE,
        |v| v >= 1.0,
    );
    produce(
        &topics.input,
        None,
        &[ecs_event("198.51.100.10", "10.0.0.1")],
    )
    .await;
    let after = read_records_until(&topics.output, DEADLINE, |m| {
        holds_ips(m, &["198.51.100.10"])
    });
    let flagged = &after
        .iter()
        .find(|r| r.json["ip"] == "198.51.100.10")
        .unwrap()
        .json;
    assert_eq!(flagged["verdict"], "malicious", "{flagged}");
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(DEADLINE).code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_address_is_ever_in_the_metrics_and_a_disabled_talos_list_is_not_read() {
    let topics = create_topics(2).await;
    let dir = tempfile::tempdir().unwrap();
    let blocklist = write_blocklist(dir.path(), &BLOCKLIST);
    // If this path were read, start-up would stop naming it (README: Providers, talos).
    let extra = "[providers.talos]\nenabled = false\npath = \"/nonexistent/talos-list.txt\"\n";
    let (config, port) = write_config(dir.path(), &topics, &blocklist, extra);
    let listed = [
        "203.0.113.5",
        "203.0.113.77",
        "2001:db8:bad::5",
        "2001:db8:bad:1::9",
    ];
    let others = [
        "198.51.100.23",
        "2001:db8:feed::42",
        "192.168.7.7",
        "fd00::77",
    ];
    let mut events: Vec<Vec<u8>> = listed
        .iter()
        .zip(others.iter())
        .map(|(a, b)| ecs_event(a, b))
        .collect();
    // A poison line and a key=value line with a NAT address: other counters, other labels.
    events.push(b"{\"source\": {\"ip\": \"203.0.113.99\"".to_vec());
    events.push(b"srcip=198.51.100.61 dstip=203.0.113.61 nat_srcip=198.51.100.62".to_vec());
    produce(&topics.input, None, &events).await;

    let mut daemon = Daemon::start(&config, port, dir.path());
    daemon.wait_ready(DEADLINE);
    wait_metric(
        &daemon,
        "threatsift_messages_completed_total",
        DEADLINE,
        |v| v >= events.len() as f64,
    );
    let records = read_records_until(&topics.output, DEADLINE, |m| holds_ips(m, &listed));
    for record in &records {
        assert_eq!(
            record.json["intel"]["talos"],
            serde_json::json!({"status": "disabled", "detail": "not enabled in the configuration"})
        );
    }
    let (_, metrics) = daemon.http_get("/metrics").expect("metrics");
    assert!(
        metrics.contains("threatsift_records_published_total"),
        "the scrape covers the run:\n{metrics}"
    );
    let seen = [
        &listed[..],
        &others[..],
        &[
            "203.0.113.99",
            "198.51.100.61",
            "203.0.113.61",
            "198.51.100.62",
        ],
    ]
    .concat();
    for ip in seen {
        assert!(!metrics.contains(ip), "{ip} is in the metrics:\n{metrics}");
    }
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(DEADLINE).code(), Some(0));
}

/// Request bodies a stub chat completions endpoint received.
type Bodies = Arc<Mutex<Vec<String>>>;

/// An OpenAI-compatible `/v1/chat/completions` on 127.0.0.1 that keeps every request body and
/// answers with a short completion.
async fn stub_model() -> (String, Bodies) {
    use axum::extract::State;
    use axum::routing::post;
    let bodies: Bodies = Arc::default();
    let app = axum::Router::new()
        .route(
            "/v1/chat/completions",
            post(|State(bodies): State<Bodies>, body: String| async move {
                bodies.lock().unwrap().push(body);
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    serde_json::json!({
                        "id": "chatcmpl-1", "object": "chat.completion", "model": "stub-model",
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": "One address stands out."}}]
                    })
                    .to_string(),
                )
            }),
        )
        .with_state(bodies.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, bodies)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduled_report_narrative_is_never_given_raw_log_text() {
    let topics = create_topics(1).await;
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("reports");
    let blocklist = write_blocklist(dir.path(), &BLOCKLIST);
    let (url, bodies) = stub_model().await;
    // One interval for the whole run: its report is written at shutdown.
    let extra = format!(
        "[report]\ninterval = \"1h\"\ndirectory = \"{}\"\nformat = \"md\"\n\
         [report.narrative]\nenabled = true\nbase_url = \"{url}\"\nmodel = \"stub-model\"\n\
         api_key = \"sk-stub\"\ntimeout = \"20s\"\n",
        reports.display()
    );
    let (config, port) = write_config(dir.path(), &topics, &blocklist, &extra);
    // Text only the raw lines hold: fields no parser turns into a record's facts.
    let marker = unique("RAWLOGMARKER");
    let raw: Vec<Vec<u8>> = (1..=3)
        .map(|i| {
            serde_json::json!({
                "@timestamp": "2026-11-23T10:00:00Z",
                "message": format!("denied connection {marker}-message-{i}"),
                "user": {"name": format!("{marker}-user")},
                "url": {"original": format!("https://example.com/{marker}/path")},
                "event": {"action": "deny"},
                "observer": {"vendor": "ExampleVendor", "product": "EdgeFW"},
                "source": {"ip": format!("203.0.113.{i}"), "port": 51544},
                "destination": {"ip": "10.0.0.1", "port": 443},
            })
            .to_string()
            .into_bytes()
        })
        .collect();
    produce(&topics.input, None, &raw).await;

    // Room for the narrative call at shutdown on a loaded machine.
    let mut daemon = start_with_env(&config, port, dir.path(), &[LONG_DRAIN[0], LONG_DRAIN[1]]);
    daemon.wait_ready(DEADLINE);
    read_records_until(&topics.output, DEADLINE, |m| {
        holds_ips(m, &["203.0.113.1", "203.0.113.2", "203.0.113.3"])
    });
    daemon.signal("TERM");
    assert_eq!(
        daemon.wait_exit(DEADLINE).code(),
        Some(0),
        "{}",
        daemon.log_text()
    );

    let bodies = bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1, "one report, one narrative request");
    let body = &bodies[0];
    assert!(
        body.contains("203.0.113.2"),
        "the model is given the report's facts: {body}"
    );
    assert!(
        !body.contains(&marker),
        "raw log text reached the model: {body}"
    );
    for line in &raw {
        let line = String::from_utf8_lossy(line);
        assert!(
            !body.contains(line.as_ref()),
            "a raw line reached the model"
        );
    }
    let written: Vec<String> = std::fs::read_dir(&reports)
        .expect("report directory")
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(written.len(), 1);
    assert!(
        written[0].contains("written by a language model")
            && written[0].contains("One address stands out"),
        "{}",
        written[0]
    );
}
