//! End-to-end throughput on the real broker (design §9, issue "Throughput" §3): in one run, on
//! one topic, a bare rdkafka `StreamConsumer` draining it, then the daemon (`threatsift run`, a
//! child process of the same build) draining it, with the ratio, the daemon's peak RSS and its
//! CPU seconds per million events, and the broker's CPU share during each drain (to tell whether
//! the broker is the bottleneck: broker and daemon share the machine's cores).
//!
//! The events: half ECS JSON, half FortiGate key=value, ~300 bytes, 20,000 distinct public
//! source addresses, 4 partitions, produced with real batching. Rates are measured from the
//! first message (or first completed message) to the last, so group joins are not counted.
//!
//! Needs the broker of `scripts/broker.sh` (`THREATSIFT_TEST_BROKERS`). `cargo bench --bench
//! e2e` drains 1,000,000 events (`THREATSIFT_E2E_EVENTS` overrides); in test mode (`cargo test
//! --all-targets`) 2,000, and it only checks that both drain.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::ClientConfig;
use threatsift::test_support::{brokers, http_get, unique};

const PARTITIONS: i32 = 4;
const DISTINCT_SOURCES: usize = 20_000;

/// Event `i`: even ones ECS JSON, odd ones FortiGate key=value, source one of 20,000 public
/// addresses (45.0.0.0/8; nothing is ever sent to them: every provider is off).
fn event(i: usize) -> String {
    let n = i % DISTINCT_SOURCES;
    let source = format!("45.{}.{}.{}", 1 + n / 65_536, (n / 256) % 256, n % 256);
    let port = 1024 + (i * 7919) % 60_000;
    if i % 2 == 0 {
        format!(
            r#"{{"@timestamp":"2026-11-23T10:00:02.942Z","event":{{"category":["network"],"action":"denied","dataset":"firewall"}},"observer":{{"vendor":"ExampleVendor","product":"EdgeFW"}},"source":{{"ip":"{source}","port":{port}}},"destination":{{"ip":"10.0.10.80","port":443}},"network":{{"transport":"tcp"}},"rule":{{"name":"wan-in"}}}}"#
        )
    } else {
        format!(
            r#"date=2026-11-23 time=10:00:22 devname="fw01" devid="FGT60F0000000001" eventtime=1795428022 tz="+0000" logid="0000000013" type="traffic" subtype="forward" level="notice" vd="root" srcip={source} srcport={port} srcintf="wan1" dstip=10.0.10.80 dstport=80 dstintf="internal" sessionid={i} proto=6 action="deny" policyid=3"#
        )
    }
}

async fn prepare(brokers: &str, events: usize) -> (String, String, String) {
    // Scaled mode's internal topics (`<output>.sightings`, `<output>.state`) are made beside
    // the output topic, with the input's partition count; single mode never touches them.
    let (input, output, dlq) = (unique("e2e-in"), unique("e2e-out"), unique("e2e-dlq"));
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin");
    let (sightings, state) = (format!("{output}.sightings"), format!("{output}.state"));
    let topics = [
        NewTopic::new(&input, PARTITIONS, TopicReplication::Fixed(1)),
        NewTopic::new(&output, PARTITIONS, TopicReplication::Fixed(1)),
        NewTopic::new(&dlq, 1, TopicReplication::Fixed(1)),
        NewTopic::new(&sightings, PARTITIONS, TopicReplication::Fixed(1)),
        NewTopic::new(&state, PARTITIONS, TopicReplication::Fixed(1))
            .set("cleanup.policy", "compact"),
    ];
    for result in admin
        .create_topics(&topics, &AdminOptions::new())
        .await
        .expect("create")
    {
        result.expect("topic created");
    }
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "200000")
        .create()
        .expect("producer");
    // In chunks: the send futures borrow their payloads.
    for chunk in (0..events).collect::<Vec<_>>().chunks(10_000) {
        let lines: Vec<(i32, String)> = chunk
            .iter()
            .map(|&i| ((i % PARTITIONS as usize) as i32, event(i)))
            .collect();
        let sends = lines.iter().map(|(partition, line)| {
            producer.send(
                FutureRecord::<(), str>::to(&input)
                    .payload(line)
                    .partition(*partition),
                Timeout::After(Duration::from_secs(60)),
            )
        });
        for r in futures::future::join_all(sends).await {
            r.map_err(|(e, _)| e).expect("produce");
        }
    }
    (input, output, dlq)
}

/// CPU seconds (user + system) a process has used so far, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Peak resident memory of a process, in MiB, from `/proc/<pid>/status`.
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The broker's pid, when `scripts/broker.sh` started it.
fn broker_pid() -> Option<u32> {
    let dir = std::env::var("THREATSIFT_BROKER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".broker"));
    std::fs::read_to_string(dir.join("broker.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A drain's rate and the broker's CPU share meanwhile.
struct Drain {
    events_per_sec: f64,
    broker_cores: Option<f64>,
}

async fn drain_bare(brokers: &str, topic: &str, events: usize) -> Drain {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("e2e-bare"))
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let broker = broker_pid();
    let mut seen = 0;
    let mut first = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    while seen < events && Instant::now() < deadline {
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), consumer.recv()).await {
            if first.is_none() {
                first = Some((Instant::now(), broker.and_then(cpu_seconds)));
            }
            seen += 1;
        }
    }
    assert_eq!(seen, events, "bare consumer drained the topic");
    rate(events, first, broker)
}

fn rate(events: usize, first: Option<(Instant, Option<f64>)>, broker: Option<u32>) -> Drain {
    let (started, broker_cpu) = first.expect("a first message");
    let elapsed = started.elapsed().as_secs_f64();
    let broker_cores = broker_cpu
        .zip(broker.and_then(cpu_seconds))
        .map(|(before, after)| (after - before) / elapsed);
    Drain {
        events_per_sec: events as f64 / elapsed,
        broker_cores,
    }
}

fn metrics_text(port: u16) -> Option<String> {
    http_get(port, "/metrics").map(|(_, text)| text)
}

fn value_in(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn metric(port: u16, name: &str) -> Option<f64> {
    let (_, text) = http_get(port, "/metrics")?;
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The daemon drains the topic; returns its drain, peak RSS (MiB) and CPU seconds. Runs on a
/// blocking thread (it polls the daemon's /metrics), so a thread sleep is right here.
#[allow(clippy::disallowed_methods)]
fn drain_daemon(
    brokers: &str,
    topics: &(String, String, String),
    events: usize,
    mode: &str,
) -> (Drain, Option<f64>, Option<f64>) {
    let dir = std::env::temp_dir().join(unique("e2e-daemon"));
    std::fs::create_dir_all(&dir).expect("dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let config = dir.join("threatsift.toml");
    std::fs::write(dir.join("feed.txt"), threatsift::SAMPLE_BLOCKLIST).expect("feed");
    std::fs::write(
        &config,
        format!(
            r#"
[kafka]
brokers = "{brokers}"
group_id = "{group}"
input_topics = ["{input}"]
output_topic = "{output}"
dlq_topic = "{dlq}"
session_timeout = "6s"
# The events were produced before the daemon joins.
start_from = "earliest"
{librdkafka}
[scale]
mode = "{mode}"
[server]
listen = "127.0.0.1:{port}"
[shutdown]
# Shorter than the session timeout above (checked at start-up).
drain_timeout = "5s"
[[feeds]]
name = "sample"
path = "{feed}"
weight = 70
"#,
            group = unique("e2e-daemon"),
            mode = mode,
            input = topics.0,
            output = topics.1,
            dlq = topics.2,
            feed = dir.join("feed.txt").display(),
            // More librdkafka settings to try, e.g. THREATSIFT_E2E_LIBRDKAFKA=fetch.min.bytes=1
            librdkafka = std::env::var("THREATSIFT_E2E_LIBRDKAFKA")
                .map(|v| format!("librdkafka = [\"{v}\"]"))
                .unwrap_or_default(),
        ),
    )
    .expect("config");
    let mut child: Child = Command::new(env!("CARGO_BIN_EXE_threatsift"))
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the daemon");
    let pid = child.id();
    let broker = broker_pid();
    // Done when every input message and (scaled mode) every sighting it made is finished:
    // `messages_completed_total` counts both hops' messages, read in one scrape with the
    // sightings count so the two agree.
    let completed = || {
        let text = metrics_text(port).unwrap_or_default();
        let done = value_in(&text, "threatsift_messages_completed_total").unwrap_or(0.0);
        let sightings = value_in(&text, "threatsift_sightings_published_total").unwrap_or(0.0);
        if done >= events as f64 + sightings {
            events as f64
        } else {
            done.min(events as f64 - 1.0)
        }
    };
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut first = None;
    loop {
        let done = completed();
        if first.is_none() && done > 0.0 {
            first = Some((Instant::now(), broker.and_then(cpu_seconds)));
        }
        if done as usize >= events || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let drain = rate(events, first, broker);
    let (rss, cpu) = (peak_rss_mib(pid), cpu_seconds(pid));
    // Where the daemon waited: each stage's time blocked on the next one.
    for stage in ["consume", "process"] {
        let name = format!("threatsift_backpressure_seconds_total{{stage=\"{stage}\"}}");
        if let Some(seconds) = metric(port, &name) {
            println!("  daemon: {stage} waited {seconds:.2} s on the next stage");
        }
    }
    let done = completed() as usize;
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let status = child.wait().expect("daemon exit");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(done, events, "daemon drained the topic");
    assert!(status.success(), "daemon drained and exited 0: {status}");
    (drain, rss, cpu)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let brokers = brokers();
    let full = std::env::args().any(|a| a == "--bench");
    let events = std::env::var("THREATSIFT_E2E_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(if full { 1_000_000 } else { 2_000 });
    // THREATSIFT_E2E_MODE: single (default), scaled, or both (single, then scaled, on the same
    // topic, each with its own group).
    let modes: Vec<&str> = match std::env::var("THREATSIFT_E2E_MODE").as_deref() {
        Ok("scaled") => vec!["scaled"],
        Ok("both") => vec!["single", "scaled"],
        _ => vec!["single"],
    };
    let topics = prepare(&brokers, events).await;
    let bare = drain_bare(&brokers, &topics.0, events).await;
    let cores = |c: Option<f64>| c.map_or("?".to_owned(), |c| format!("{c:.2}"));
    println!(
        "e2e/{events} events (half ECS JSON, half FortiGate kv, {DISTINCT_SOURCES} sources, \
         {PARTITIONS} partitions; broker, bench and daemon share this machine's cores)"
    );
    println!(
        "  bare rdkafka StreamConsumer: {:>9.0} events/s   (broker busy {} cores)",
        bare.events_per_sec,
        cores(bare.broker_cores)
    );
    for mode in modes {
        let (daemon, rss, cpu) = {
            let (brokers, topics) = (brokers.clone(), topics.clone());
            tokio::task::spawn_blocking(move || drain_daemon(&brokers, &topics, events, mode))
                .await
                .expect("daemon")
        };
        println!(
            "  threatsift run ({mode:>6}):     {:>9.0} events/s   (broker busy {} cores)",
            daemon.events_per_sec,
            cores(daemon.broker_cores)
        );
        println!(
            "  ratio daemon / bare: {:.3}; daemon peak RSS {} MiB; daemon CPU {} s per million events",
            daemon.events_per_sec / bare.events_per_sec,
            rss.map_or("?".to_owned(), |r| format!("{r:.0}")),
            cpu.map_or("?".to_owned(), |c| format!(
                "{:.2}",
                c * 1_000_000.0 / events as f64
            )),
        );
    }
}
