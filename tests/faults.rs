//! Faults of issue 14 on the real broker: inputs built to cost memory, a fatal producer error,
//! a stalled member during a rebalance. `THREATSIFT_TEST_BROKERS` names the broker.
#![allow(clippy::disallowed_methods)] // plain test threads may sleep; no runtime is blocked

mod common;
mod mock_api;

use std::io::Write;
use std::time::{Duration, Instant};

use common::*;

/// Polls `probe` until it answers `Some`, failing the test with `what` at the deadline.
fn wait_for<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// The daemon's peak resident set, from /proc (Linux), in bytes.
fn peak_rss(daemon: &Daemon) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.child.id()))
        .expect("/proc status of the daemon");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc status");
    kb * 1024
}

/// The measured flood of issue 14 (4,694,304 DLQ entries and 7.6 GB before the cap): one 1 MB
/// message of `a` lines and one 16 KB gzip that inflates to 8 MiB of `b` lines. Each may make
/// at most 100 entries and a summary, memory stays bounded, and the event after them is
/// published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_flood_makes_bounded_dlq_entries_and_the_next_event_is_published() {
    let topics = create_topics(1).await;
    let dir = tempfile::tempdir().unwrap();
    let blocklist = write_blocklist(dir.path(), &["203.0.113.0/24"]);
    let (config, port) = write_config(dir.path(), &topics, &blocklist, "");

    let lines_a = b"a\n".repeat(500_000);
    let bomb = gzip(&b"b\n".repeat(4 * 1024 * 1024));
    assert!(bomb.len() <= 16 * 1024, "the gzip is {} bytes", bomb.len());
    let sizes = [lines_a.len(), bomb.len()];
    produce(
        &topics.input,
        Some(0),
        &[lines_a, bomb, ecs_event("203.0.113.77", "10.0.0.1")],
    )
    .await;

    let mut daemon = Daemon::start(&config, port, dir.path());
    daemon.wait_ready(Duration::from_secs(60));
    // Committed past the marker: every output of the three messages was delivered.
    wait_for(
        "the commit past the marker event",
        Duration::from_secs(120),
        || (committed_offsets(&topics.group, &topics.input).get(&0) >= Some(&3)).then_some(()),
    );
    let records = read_records(&topics.output);
    let ips: Vec<&str> = records
        .iter()
        .map(|r| r.json["ip"].as_str().unwrap())
        .collect();
    assert_eq!(
        ips,
        ["203.0.113.77"],
        "the event after the flood is published"
    );

    let entries: Vec<serde_json::Value> = read_all(&topics.dlq)
        .iter()
        .map(ReadMessage::json)
        .collect();
    for (offset, size) in sizes.into_iter().enumerate() {
        let of_message: Vec<&serde_json::Value> =
            entries.iter().filter(|e| e["offset"] == offset).collect();
        assert_eq!(
            of_message.len(),
            101,
            "offset {offset}: 100 entries and one summary"
        );
        let summary = of_message.iter().find(|e| e["reason"] == "too_many_errors");
        let summary = summary.unwrap_or_else(|| panic!("offset {offset}: no summary entry"));
        // The summary carries the message whole (replayable), or says it holds only its
        // first dlq.max_payload_bytes.
        assert_eq!(summary["payload_bytes"], size, "offset {offset}");
        assert_eq!(
            summary["payload_truncated"],
            size > 65536,
            "offset {offset}"
        );
    }
    assert_eq!(entries.len(), 202, "nothing else in the DLQ");
    let rss = peak_rss(&daemon);
    assert!(rss <= 256 * 1024 * 1024, "peak RSS {rss} bytes");

    daemon.signal("TERM");
    assert!(daemon.wait_exit(Duration::from_secs(30)).success());
}

/// Issue 14 item 3: a fatal producer error (here ClusterAuthorizationFailed on the idempotent
/// producer's InitProducerId, from librdkafka's mock cluster) is not retried forever: it is
/// counted, the sink stops with the message unfinished (its offset is not stored), and the run
/// ends as failed, which `threatsift run` turns into exit 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_producer_error_stops_the_daemon_as_failed_with_nothing_marked_delivered() {
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use rdkafka::types::RDKafkaApiKey;
    use rdkafka::types::RDKafkaRespErr;

    let dir = tempfile::tempdir().unwrap();
    let cluster = MockCluster::new(1).unwrap();
    for topic in ["firewall", "threats", "threatsift-dlq"] {
        cluster.create_topic(topic, 1, 1).unwrap();
    }
    let input: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .create()
        .unwrap();
    let event = ecs_event("203.0.113.5", "10.0.0.1");
    input
        .send(
            FutureRecord::<(), [u8]>::to("firewall").payload(&event[..]),
            rdkafka::util::Timeout::After(Duration::from_secs(30)),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    // The daemon's producer asks for a producer id first; refusing it is fatal.
    cluster.request_errors(
        RDKafkaApiKey::InitProducerId,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED; 4],
    );
    let blocklist = write_blocklist(dir.path(), &["203.0.113.0/24"]);
    let settings = threatsift::Settings::from_toml_overrides(&format!(
        "[kafka]\nbrokers = \"{}\"\ninput_topics = [\"firewall\"]\nstatistics_interval = \"0s\"\n\
         start_from = \"earliest\"\n\
         [filter]\nallow_documentation_ranges = true\n[server]\nlisten = \"127.0.0.1:0\"\n\
         [shutdown]\ndrain_timeout = \"20s\"\n\
         [[feeds]]\nname = \"t\"\npath = \"{}\"\nweight = 80\n",
        cluster.bootstrap_servers(),
        blocklist.display()
    ))
    .unwrap();
    let (metrics, _shutdown, run) = threatsift::test_support::pipeline::spawn_pipeline(settings);
    // Nobody asks it to stop: the fatal error alone ends the run.
    let summary = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the run did not end on the fatal producer error")
        .unwrap()
        .unwrap();
    assert!(summary.stage_failed && !summary.drained, "{summary:?}");
    let fatal = metrics
        .kafka_errors
        .get_metric_with_label_values(&["fatal"])
        .map_or(0, |c| c.get());
    assert!(fatal >= 1, "the fatal error is counted");
    assert_eq!(
        metrics.messages_completed.get(),
        0,
        "nothing counts as delivered"
    );
    drop(cluster);
}

/// Issue 14 item 5: a daemon stalled on backpressure (one message in flight, tiny channels, a
/// producer that holds every record for two minutes) still takes part in a rebalance: a second
/// member of its group is given partitions well within the time the stall lasts. Before the
/// fix the consumer was not polled while it waited, so the group waited on it for up to
/// `max.poll.interval.ms` (10 min).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_daemon_still_lets_a_second_member_join_its_group() {
    use rdkafka::consumer::{BaseConsumer, Consumer};

    let topics = create_topics(2).await;
    let dir = tempfile::tempdir().unwrap();
    let blocklist = write_blocklist(dir.path(), &["203.0.113.0/24"]);
    let (config, port) = write_config(
        dir.path(),
        &topics,
        &blocklist,
        "[pipeline]\nchannel_capacity = 1\nmax_in_flight = 1\nbatch_max_messages = 1\nworkers = 1\n",
    );
    // The slow sink: no record is sent before linger.ms passes (flushed at shutdown).
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replacen(
        "[kafka]\n",
        "[kafka]\nlibrdkafka = [\"linger.ms=120000\"]\n",
        1,
    );
    std::fs::write(&config, text).unwrap();
    let events: Vec<Vec<u8>> = (0..40)
        .map(|i| ecs_event(&format!("203.0.113.{i}"), "10.0.0.1"))
        .collect();
    produce(&topics.input, Some(0), &events[..20]).await;
    produce(&topics.input, Some(1), &events[20..]).await;

    let mut daemon = Daemon::start(&config, port, dir.path());
    daemon.wait_ready(Duration::from_secs(60));
    // Stalled: the sink holds its one message, the channels behind it are full.
    wait_for(
        "the daemon filling its pipeline",
        Duration::from_secs(60),
        || {
            (daemon
                .metric("threatsift_events_consumed_total")
                .unwrap_or(0.0)
                >= 4.0)
                .then_some(())
        },
    );

    let second: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", &topics.group)
        .set("session.timeout.ms", "6000")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    second.subscribe(&[&topics.input]).unwrap();
    // Several session timeouts, far less than the stall (120 s) or max.poll.interval.ms.
    let deadline = Instant::now() + Duration::from_secs(40);
    let assigned = loop {
        let _ = second.poll(Duration::from_millis(200));
        let assigned = second.assignment().map(|a| a.count()).unwrap_or(0);
        if assigned > 0 {
            break assigned;
        }
        assert!(
            Instant::now() < deadline,
            "the second member got no partition within 40 s: the stalled daemon held up the \
             rebalance\n{}",
            daemon.log_text()
        );
    };
    assert_eq!(assigned, 1, "one of the two partitions each");
    drop(second);

    daemon.signal("TERM");
    daemon.wait_exit(Duration::from_secs(60));
}

/// Issue 14 item 7: RDAP follows a registry's redirect only to https (or, over http, to the
/// configured bootstrap host): a redirect to another host over http is refused, and that host
/// is never contacted.
#[tokio::test]
async fn rdap_refuses_a_redirect_to_plain_http_elsewhere() {
    use mock_api::{json_answer, Canned, Mock, Route};
    use threatsift::{Provider, Rdap};

    // The other host: `localhost`, not the bootstrap's 127.0.0.1; nobody may connect to it.
    let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = elsewhere.local_addr().unwrap().port();
    let location: &'static str =
        Box::leak(format!("http://localhost:{port}/ip/203.0.113.7").into_boxed_str());
    let registry = Mock::bind().await;
    let registry_base = format!("{}/registry/", registry.url);
    let registry = registry.serve(&[Route::get("/registry/ip/{ip}")], move |_| Canned {
        status: 302,
        content_type: "text/plain",
        body: String::new(),
        headers: vec![("location", location)],
        delay: Duration::ZERO,
        gate: None,
    });
    let bootstrap = Mock::bind().await;
    let bootstrap_url = format!("{}/rdap/", bootstrap.url);
    let _bootstrap = bootstrap.serve(&[Route::get("/rdap/ipv4.json")], move |_| {
        json_answer(
            200,
            serde_json::json!({"version": "1.0", "publication": "2026-06-01T20:00:00Z",
                "services": [[["203.0.113.0/24"], [registry_base]]]}),
        )
    });
    let provider = Rdap::new(&mock_api::settings(
        &bootstrap_url,
        "",
        Duration::from_secs(30),
    ))
    .unwrap();
    let result = provider.lookup("203.0.113.7".parse().unwrap()).await;
    let error = result.expect_err("the redirect to http://localhost was followed");
    assert_eq!(error.kind(), "invalid_response", "{error}");
    assert!(error.to_string().contains("https"), "{error}");
    assert_eq!(registry.asked(), ["203.0.113.7"]);
    use futures::FutureExt;
    assert!(
        elsewhere.accept().now_or_never().is_none(),
        "the other host was contacted"
    );
}

/// Issue 14 item 5, the other half: partitions paused under backpressure are resumed when the
/// worker has room again. With one message in flight and tiny channels the consumer waits over
/// and over (counted in backpressure_seconds_total{stage="consume"}); every message is still
/// finished and every address published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_paused_under_backpressure_are_resumed_and_every_event_is_published() {
    let topics = create_topics(2).await;
    let dir = tempfile::tempdir().unwrap();
    let blocklist = write_blocklist(dir.path(), &["203.0.113.0/24", "198.51.100.0/24"]);
    let (config, port) = write_config(
        dir.path(),
        &topics,
        &blocklist,
        "[pipeline]\nchannel_capacity = 1\nmax_in_flight = 1\nbatch_max_messages = 1\nworkers = 1\n",
    );
    let ips: Vec<String> = (0..150)
        .map(|i| format!("203.0.113.{i}"))
        .chain((0..150).map(|i| format!("198.51.100.{i}")))
        .collect();
    let events: Vec<Vec<u8>> = ips.iter().map(|ip| ecs_event(ip, "10.0.0.1")).collect();
    produce(&topics.input, Some(0), &events[..150]).await;
    produce(&topics.input, Some(1), &events[150..]).await;

    let mut daemon = Daemon::start(&config, port, dir.path());
    daemon.wait_ready(Duration::from_secs(60));
    wait_for(
        "every input offset committed",
        Duration::from_secs(180),
        || {
            let committed = committed_offsets(&topics.group, &topics.input);
            (committed.get(&0) == Some(&150) && committed.get(&1) == Some(&150)).then_some(())
        },
    );
    let waited = daemon
        .metric("threatsift_backpressure_seconds_total{stage=\"consume\"}")
        .unwrap_or(0.0);
    assert!(
        waited > 0.0,
        "the consumer never waited: nothing was paused"
    );
    let published: std::collections::BTreeSet<String> = read_records(&topics.output)
        .into_iter()
        .map(|r| r.json["ip"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(published, ips.into_iter().collect());

    daemon.signal("TERM");
    assert!(daemon.wait_exit(Duration::from_secs(30)).success());
}
