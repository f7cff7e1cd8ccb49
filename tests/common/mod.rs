//! Helpers for the integration tests: the real broker that `scripts/broker.sh` starts, unique
//! topics per test, a producer and a reader, the daemon binary as a child process, and the
//! record schema. What the benches need too (`unique`, `brokers`) is in
//! `threatsift::test_support`, re-exported here.
#![allow(dead_code)]
#![allow(clippy::disallowed_methods)] // plain test threads may sleep; no runtime is blocked

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

pub use threatsift::test_support::{brokers, unique};

/// Topics of one test.
pub struct Topics {
    /// Input topic.
    pub input: String,
    /// Output topic.
    pub output: String,
    /// DLQ topic.
    pub dlq: String,
    /// Consumer group of the daemon.
    pub group: String,
}

/// Creates fresh input (with `partitions`), output and DLQ topics.
pub async fn create_topics(partitions: i32) -> Topics {
    let topics = Topics {
        input: unique("in"),
        output: unique("out"),
        dlq: unique("dlq"),
        group: unique("group"),
    };
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .expect("admin client");
    let new = [
        NewTopic::new(&topics.input, partitions, TopicReplication::Fixed(1)),
        NewTopic::new(&topics.output, 2, TopicReplication::Fixed(1)),
        NewTopic::new(&topics.dlq, 1, TopicReplication::Fixed(1)),
    ];
    let results = admin
        .create_topics(
            &new,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create topics");
    for result in results {
        result.expect("topic created");
    }
    register_output_topic(&topics.output);
    topics
}

/// Like [`produce`] to one partition, but the last payload goes in a batch of its own, sent
/// after the others are delivered (the earlier ones are still batched as real producers batch).
///
/// Only for tests whose reader stops at the high watermark that ListOffsets reports
/// (`threatsift report --topic`, which reads each partition up to its end as it was when
/// reading started, as Kafka clients do). This tansu build answers ListOffsets (v7, timestamp
/// -1 = latest) with the partition's *last batch's base offset + 1* instead of the log end
/// offset. Measured: one batch of 4 records at offsets 0-3, `fetch_watermarks` answers (0, 1)
/// where Kafka answers (0, 4); a second batch of 3 at offsets 4-6, (0, 5) where Kafka answers
/// (0, 7). The same broker's Fetch response carries the right high watermark (7). A reader
/// stopping at the ListOffsets answer therefore stops inside the last batch. When the last
/// batch holds one record its base offset + 1 is the log end offset, so the answer is right.
pub async fn produce_last_alone(topic: &str, partition: i32, payloads: &[Vec<u8>]) {
    let Some((last, rest)) = payloads.split_last() else {
        return;
    };
    produce(topic, Some(partition), rest).await;
    produce(topic, Some(partition), std::slice::from_ref(last)).await;
}

/// Produces payloads in order, each to `partition` when given, batched the way real producers
/// batch (librdkafka's defaults), so consumers resume from offsets inside multi-record batches.
pub async fn produce(topic: &str, partition: Option<i32>, payloads: &[Vec<u8>]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("message.max.bytes", "4000000")
        .create()
        .expect("producer");
    let sends = payloads.iter().map(|payload| {
        let mut record = FutureRecord::<(), [u8]>::to(topic).payload(&payload[..]);
        if let Some(p) = partition {
            record = record.partition(p);
        }
        producer.send(record, Timeout::After(Duration::from_secs(30)))
    });
    for result in futures::future::join_all(sends).await {
        result.map_err(|(e, _)| e).expect("produce");
    }
}

/// A message read back.
#[derive(Debug, Clone)]
pub struct ReadMessage {
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub partition: i32,
    pub offset: i64,
    /// The record's Kafka timestamp (ms since the epoch), when it has one.
    pub timestamp_ms: Option<i64>,
}

impl ReadMessage {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).expect("message is JSON")
    }
}

/// Reads every message currently in `topic` (all partitions), from the beginning. Panics,
/// naming the topic and the partitions whose end was never reached, when reading to the end
/// takes longer than 30 s: a partial read is never returned as if it were all.
pub fn read_all(topic: &str) -> Vec<ReadMessage> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", unique("reader"))
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .create()
        .expect("reader");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let partitions: Vec<i32> = metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| p.id())
        .collect();
    assert!(!partitions.is_empty(), "topic {topic} has no partitions");
    let mut assignment = TopicPartitionList::new();
    for p in &partitions {
        assignment
            .add_partition_offset(topic, *p, Offset::Beginning)
            .expect("assign");
    }
    consumer.assign(&assignment).expect("assign");
    let mut out = Vec::new();
    let mut at_end = std::collections::HashSet::new();
    let limit = Duration::from_secs(30);
    let deadline = Instant::now() + limit;
    while at_end.len() < partitions.len() {
        if Instant::now() > deadline {
            let missing: Vec<&i32> = partitions.iter().filter(|p| !at_end.contains(*p)).collect();
            panic!(
                "read_all({topic}): partitions {missing:?} not read to their end within \
                 {limit:?} ({} messages read)",
                out.len()
            );
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                out.push(ReadMessage {
                    key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    payload: m.payload().unwrap_or_default().to_vec(),
                    partition: m.partition(),
                    offset: m.offset(),
                    timestamp_ms: m.timestamp().to_millis(),
                });
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    // d-siem: an output topic published in another format is validated against its schema.
    validate_formatted_output(topic, &out);
    if is_output_topic(topic) {
        // Whatever a test reads from an output topic is a threat record: validated here.
        valid_records(out.clone());
    }
    out
}

/// Polls `read_all(topic)` until `done` holds; returns that read. Panics at the timeout,
/// naming the topic and showing what the last read held (the condition is what was missing).
pub fn read_until(
    topic: &str,
    timeout: Duration,
    done: impl Fn(&[ReadMessage]) -> bool,
) -> Vec<ReadMessage> {
    let deadline = Instant::now() + timeout;
    loop {
        let messages = read_all(topic);
        if done(&messages) {
            return messages;
        }
        if Instant::now() > deadline {
            let sample: Vec<String> = messages
                .iter()
                .take(5)
                .map(|m| {
                    String::from_utf8_lossy(&m.payload)
                        .chars()
                        .take(200)
                        .collect()
                })
                .collect();
            panic!(
                "read_until({topic}): the condition did not hold within {timeout:?}; the last \
                 read had {} messages, the first of them: {sample:#?}",
                messages.len()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A blocklist file in a temporary directory.
pub fn write_blocklist(dir: &Path, lines: &[&str]) -> PathBuf {
    let path = dir.join("blocklist.txt");
    std::fs::write(&path, lines.join("\n")).expect("write blocklist");
    path
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Writes a daemon configuration for `topics`; returns its path and the metrics port.
pub fn write_config(dir: &Path, topics: &Topics, blocklist: &Path, extra: &str) -> (PathBuf, u16) {
    let port = free_port();
    let text = format!(
        r#"
[kafka]
brokers = "{brokers}"
group_id = "{group}"
input_topics = ["{input}"]
output_topic = "{output}"
dlq_topic = "{dlq}"
session_timeout = "6s"
auto_commit_interval = "1s"
statistics_interval = "1s"
# Events are produced before the daemon joins; a new group must read them (g-allow).
start_from = "earliest"

[filter]
allow_documentation_ranges = true
[server]
listen = "127.0.0.1:{port}"
[shutdown]
# Shorter than session_timeout (checked at start-up).
drain_timeout = "5s"
[[feeds]]
name = "test-blocklist"
path = "{blocklist}"
weight = 70
{extra}
"#,
        brokers = brokers(),
        group = topics.group,
        input = topics.input,
        output = topics.output,
        dlq = topics.dlq,
        blocklist = blocklist.display(),
    );
    let path = dir.join(format!("config-{port}.toml"));
    std::fs::write(&path, text).expect("write config");
    (path, port)
}

/// Runs the binary with `args` and the extra `envs` (no stdin, `RUST_LOG=warn`, no
/// `THREATSIFT_CONFIG`) to its end.
pub fn threatsift(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_threatsift"));
    command
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("THREATSIFT_CONFIG");
    for (k, v) in envs {
        command.env(k, v);
    }
    command
        .stdin(Stdio::null())
        .output()
        .expect("run threatsift")
}

/// The daemon as a child process; its stderr is kept in a file for failure messages.
pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
    pub port: u16,
}

impl Daemon {
    pub fn start(config: &Path, port: u16, dir: &Path) -> Daemon {
        let log = dir.join(format!("daemon-{}.log", unique("log")));
        let stderr = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_threatsift"))
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .env_remove("THREATSIFT_CONFIG")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start daemon");
        Daemon { child, log, port }
    }

    /// `GET path` on the metrics listener; `None` while it is not up.
    pub fn http_get(&self, path: &str) -> Option<(u16, String)> {
        threatsift::test_support::http_get(self.port, path)
    }

    /// Waits for `/readyz` to answer 200.
    pub fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("daemon exited early ({status}):\n{}", self.log_text());
            }
            if matches!(self.http_get("/readyz"), Some((200, _))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("daemon not ready within {timeout:?}:\n{}", self.log_text());
    }

    /// A metric's value from `/metrics` (first sample whose line starts with `name`).
    pub fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = self.http_get("/metrics")?;
        body.lines()
            .find(|l| l.starts_with(name) && !l.starts_with('#'))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the process to exit; panics after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "daemon did not exit within {timeout:?}:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The record schema, compiled.
pub fn record_validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schema/threat-record.schema.json"
    ))
    .expect("schema file");
    let schema: serde_json::Value = serde_json::from_str(&text).expect("schema JSON");
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("schema compiles")
}

/// Panics with every schema error when `record` does not validate.
pub fn assert_valid_record(validator: &jsonschema::Validator, record: &serde_json::Value) {
    let errors: Vec<String> = validator
        .iter_errors(record)
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "record fails the schema: {errors:?}\n{record}"
    );
}

/// One ECS firewall event from `source` to `destination`.
pub fn ecs_event(source: &str, destination: &str) -> Vec<u8> {
    serde_json::json!({
        "@timestamp": "2026-11-23T10:00:00Z",
        "event": {"action": "deny"},
        "observer": {"vendor": "ExampleVendor", "product": "EdgeFW", "ip": ["192.0.2.1"]},
        "source": {"ip": source, "port": 51544},
        "destination": {"ip": destination, "port": 443},
    })
    .to_string()
    .into_bytes()
}

/// The committed offsets (next offset to read) of `group` on `topic`, per partition. A
/// partition the group never committed is left out: Kafka (and tansu) answer OffsetFetch for
/// it with -1, which librdkafka reports as `Offset::Invalid` (raw -1001), and a consumer with
/// nothing to read there (an empty partition) legitimately commits nothing. Reading that as an
/// offset made sums over partitions come out 1,001 short (3,000 records that all landed in one
/// of two partitions summed to 3000 + (-1001) = 1999).
pub fn committed_offsets(group: &str, topic: &str) -> std::collections::BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("offsets reader");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut tpl = TopicPartitionList::new();
    for p in metadata.topics()[0].partitions() {
        tpl.add_partition(topic, p.id());
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    committed
        .elements()
        .iter()
        .filter_map(|e| {
            if let Err(error) = e.error() {
                panic!("committed offset of {topic}/{}: {error}", e.partition());
            }
            match e.offset() {
                Offset::Offset(next) => Some((e.partition(), next)),
                Offset::Invalid => None,
                other => panic!(
                    "committed offset of {topic}/{}: unexpected {other:?}",
                    e.partition()
                ),
            }
        })
        .collect()
}

// --- records, validated (t15-providers)
// Every threat record a test sees comes through these helpers: read back from a topic or
// printed by a command, each is checked against schema/threat-record.schema.json before the
// test gets it, so no test can look at a record without validating it.

/// A threat record read back from a topic: valid against the schema and keyed by its `ip`.
#[derive(Debug, Clone)]
pub struct Record {
    pub message: ReadMessage,
    pub json: serde_json::Value,
}

/// `record`, after checking it against the record schema (panics with every schema error).
pub fn valid_record(record: serde_json::Value) -> serde_json::Value {
    static VALIDATOR: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    assert_valid_record(VALIDATOR.get_or_init(record_validator), &record);
    record
}

/// The records in `messages`, each validated and checked to be keyed by its address.
pub fn valid_records(messages: Vec<ReadMessage>) -> Vec<Record> {
    messages
        .into_iter()
        .map(|message| {
            let json = valid_record(message.json());
            assert_eq!(
                message.key.as_deref(),
                json["ip"].as_str(),
                "a record not keyed by its address: {json}"
            );
            Record { message, json }
        })
        .collect()
}

/// Every record in `topic` ([`read_all`]), validated.
pub fn read_records(topic: &str) -> Vec<Record> {
    valid_records(read_all(topic))
}

/// The records of [`read_until`] on `topic`, validated.
pub fn read_records_until(
    topic: &str,
    timeout: Duration,
    done: impl Fn(&[ReadMessage]) -> bool,
) -> Vec<Record> {
    valid_records(read_until(topic, timeout, done))
}

/// The JSON lines of a command's output (`demo`, `enrich`), each record validated. A line that
/// is `enrich`'s answer for an address it could not enrich (`{"input", "error"}`) is returned
/// as it is; any other JSON line must be a valid record.
pub fn output_records(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("output line is not JSON ({e}): {line}"));
            let mut keys: Vec<&str> = value
                .as_object()
                .map(|o| o.keys().map(String::as_str).collect())
                .unwrap_or_default();
            keys.sort_unstable();
            if keys == ["error", "input"] {
                value
            } else {
                valid_record(value)
            }
        })
        .collect()
}

// ---- t15-broker: waits on a daemon's metrics and a group's committed offsets. Each one is a
// wait for an event with a generous deadline whose expiry fails the test, never a sleep.

/// Polls the daemon's metric `name` (see [`Daemon::metric`]; a missing metric reads 0) until
/// `done(value)` holds; returns that value. Panics at the timeout with the last value and the
/// daemon's log.
pub fn wait_metric(
    daemon: &Daemon,
    name: &str,
    timeout: Duration,
    done: impl Fn(f64) -> bool,
) -> f64 {
    let deadline = Instant::now() + timeout;
    loop {
        let value = daemon.metric(name).unwrap_or(0.0);
        if done(value) {
            return value;
        }
        if Instant::now() > deadline {
            panic!(
                "metric {name} never met the condition within {timeout:?} (last value {value})\n\
                 --- daemon log ---\n{}",
                daemon.log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls the committed offsets of `group` on `topic` until `done` holds; returns them. Panics
/// at the timeout with the last answer.
pub fn wait_committed(
    group: &str,
    topic: &str,
    timeout: Duration,
    done: impl Fn(&std::collections::BTreeMap<i32, i64>) -> bool,
) -> std::collections::BTreeMap<i32, i64> {
    let deadline = Instant::now() + timeout;
    loop {
        let committed = committed_offsets(group, topic);
        if done(&committed) {
            return committed;
        }
        if Instant::now() > deadline {
            panic!(
                "committed offsets of {group} on {topic} never met the condition within \
                 {timeout:?} (last {committed:?})"
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Validates every record of `records` against the schema (one compiled validator), and that
/// each is keyed by its address.
pub fn assert_valid_records(records: &[ReadMessage]) {
    let validator = record_validator();
    for message in records {
        let record = message.json();
        assert_valid_record(&validator, &record);
        assert_eq!(message.key.as_deref(), record["ip"].as_str(), "keyed by IP");
    }
}

/// Input that keeps arriving: chunks of 200 events, `event(i)` for i = `from`, `from + 1`, …,
/// produced to `topic` until [`Feeder::stop`]. What happens meanwhile (a kill, a member joining)
/// then lands mid-stream by construction, not by how fast the daemon happens to be.
pub struct Feeder {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<u32>,
}

impl Feeder {
    pub fn start(topic: &str, from: u32, event: fn(u32) -> Vec<u8>) -> Feeder {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, topic) = (stop.clone(), topic.to_owned());
        let task = tokio::spawn(async move {
            let mut next = from;
            while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                let chunk: Vec<Vec<u8>> = (next..next + 200).map(event).collect();
                produce(&topic, None, &chunk).await;
                next += 200;
            }
            next
        });
        Feeder { stop, task }
    }

    /// Stops after the chunk in flight; returns the end of what was produced (exclusive).
    pub async fn stop(self) -> u32 {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.task.await.expect("feeder")
    }
}

// ---- t15-followup: validation by construction, and one wait for anything a daemon shows.

/// The output topics of [`create_topics`]: [`read_all`] (and so [`read_until`]) validates every
/// message it reads from one of them as a threat record, so no test can read a record without
/// validating it. DLQ and input topics are left alone (DLQ entries have their own shape).
static OUTPUT_TOPICS: std::sync::Mutex<std::collections::BTreeSet<String>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// Marks `topic` as an output topic (see [`OUTPUT_TOPICS`]).
pub fn register_output_topic(topic: &str) {
    OUTPUT_TOPICS.lock().unwrap().insert(topic.to_owned());
}

fn is_output_topic(topic: &str) -> bool {
    OUTPUT_TOPICS.lock().unwrap().contains(topic)
}

/// Polls `probe` until it gives `Some`; returns it. Panics at the timeout naming `what` did
/// not come, with the daemon's log.
pub fn wait_for<T>(
    daemon: &Daemon,
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        if Instant::now() > deadline {
            panic!(
                "{what}: not seen within {timeout:?}\n--- daemon log ---\n{}",
                daemon.log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// True when `messages` hold a message whose `ip` is each of `ips` (a `done` condition for
/// [`read_records_until`]).
pub fn holds_ips(messages: &[ReadMessage], ips: &[&str]) -> bool {
    let seen: Vec<serde_json::Value> = messages.iter().map(ReadMessage::json).collect();
    ips.iter().all(|ip| seen.iter().any(|r| r["ip"] == *ip))
}

// ---- i14-chaos: a private broker a test may freeze or kill (the shared one serves every
// other test and helper, so it is never signalled), the clients that talk to it, and the
// daemon's peak memory.

/// The tansu binary `scripts/broker.sh` installs (`THREATSIFT_TANSU` overrides it).
pub fn tansu_binary() -> PathBuf {
    if let Ok(path) = std::env::var("THREATSIFT_TANSU") {
        return PathBuf::from(path);
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/broker.sh");
    let out = Command::new("bash")
        .args([script, "path"])
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/broker.sh path");
    assert!(out.status.success(), "scripts/broker.sh path failed");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// A tansu broker of this test's own on a free port, with in-memory storage, killed when
/// dropped (resumed first if it was frozen).
pub struct PrivateBroker {
    child: Child,
    /// `127.0.0.1:port`, for `bootstrap.servers` and the daemon's `kafka.brokers`.
    pub brokers: String,
    log: PathBuf,
}

impl PrivateBroker {
    /// Starts the broker and waits until it accepts connections (panics after 30 s).
    pub fn start(dir: &Path) -> PrivateBroker {
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let log = dir.join(format!("tansu-{port}.log"));
        let out = std::fs::File::create(&log).expect("broker log");
        let child = Command::new(tansu_binary())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("broker log"))
            .stderr(out)
            .spawn()
            .expect("start tansu");
        let broker = PrivateBroker {
            child,
            brokers: format!("127.0.0.1:{port}"),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "private broker did not listen on {port} within 30 s:\n{}",
                broker.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        broker
    }

    /// Fresh input (with `partitions`), output and DLQ topics on this broker.
    pub async fn create_topics(&self, partitions: i32) -> Topics {
        let topics = Topics {
            input: unique("in"),
            output: unique("out"),
            dlq: unique("dlq"),
            group: unique("group"),
        };
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .create()
            .expect("admin client");
        let new = [
            NewTopic::new(&topics.input, partitions, TopicReplication::Fixed(1)),
            NewTopic::new(&topics.output, 2, TopicReplication::Fixed(1)),
            NewTopic::new(&topics.dlq, 1, TopicReplication::Fixed(1)),
        ];
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        for result in admin.create_topics(&new, &options).await.expect("create") {
            result.expect("topic created");
        }
        topics
    }

    /// SIGSTOP: the broker keeps its sockets open and answers nothing, like a broker stuck
    /// in a long GC pause or a frozen VM.
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    /// SIGCONT after [`PrivateBroker::freeze`].
    pub fn thaw(&self) {
        self.signal("CONT");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} of the private broker");
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Points the daemon configuration at `path` to `brokers` (its `kafka.brokers` line).
pub fn use_brokers(config: &Path, brokers: &str) {
    let text = std::fs::read_to_string(config).expect("read config");
    let start = text.find("brokers = \"").expect("a kafka.brokers line");
    let end = start + text[start..].find('\n').expect("end of the line");
    let text = format!("{}brokers = \"{brokers}\"{}", &text[..start], &text[end..]);
    std::fs::write(config, text).expect("write config");
}

/// [`produce`] to the broker at `brokers`.
pub async fn produce_on(brokers: &str, topic: &str, payloads: &[Vec<u8>]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("message.max.bytes", "4000000")
        .create()
        .expect("producer");
    let sends = payloads.iter().map(|payload| {
        let record = FutureRecord::<(), [u8]>::to(topic).payload(&payload[..]);
        producer.send(record, Timeout::After(Duration::from_secs(60)))
    });
    for result in futures::future::join_all(sends).await {
        result.map_err(|(e, _)| e).expect("produce");
    }
}

/// [`read_all`] from the broker at `brokers`: every message in `topic`, read to each
/// partition's end; panics when that takes longer than `limit`.
pub fn read_all_on(brokers: &str, topic: &str, limit: Duration) -> Vec<ReadMessage> {
    let mut out = Vec::new();
    read_each_on(brokers, topic, limit, |m| out.push(m));
    out
}

/// Hands every message in `topic` at `brokers` to `each`, in order per partition, without
/// keeping them (a long chaos run reads millions); panics when reading to each partition's
/// end takes longer than `limit`. Returns how many there were.
pub fn read_each_on(
    brokers: &str,
    topic: &str,
    limit: Duration,
    mut each: impl FnMut(ReadMessage),
) -> usize {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("reader"))
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .create()
        .expect("reader");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let partitions: Vec<i32> = metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| p.id())
        .collect();
    assert!(!partitions.is_empty(), "topic {topic} has no partitions");
    let mut assignment = TopicPartitionList::new();
    for p in &partitions {
        assignment
            .add_partition_offset(topic, *p, Offset::Beginning)
            .expect("assign");
    }
    consumer.assign(&assignment).expect("assign");
    let mut count = 0;
    let mut at_end = std::collections::HashSet::new();
    let deadline = Instant::now() + limit;
    while at_end.len() < partitions.len() {
        assert!(
            Instant::now() < deadline,
            "read_each_on({brokers}, {topic}): not read to the end within {limit:?} ({count} \
             read)"
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                count += 1;
                each(ReadMessage {
                    key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    payload: m.payload().unwrap_or_default().to_vec(),
                    partition: m.partition(),
                    offset: m.offset(),
                    timestamp_ms: m.timestamp().to_millis(),
                });
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    count
}

/// The committed offsets of `group` on `topic` at the broker `brokers` (see
/// [`committed_offsets`]), summed over the partitions.
pub fn committed_total_on(brokers: &str, group: &str, topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("offsets reader");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut tpl = TopicPartitionList::new();
    for p in metadata.topics()[0].partitions() {
        tpl.add_partition(topic, p.id());
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(next) => Some(next),
            _ => None,
        })
        .sum()
}

/// The daemon started from `binary` (the release build for the long chaos run) rather than
/// the test's own build.
pub fn start_daemon_binary(binary: &Path, config: &Path, port: u16, dir: &Path) -> Daemon {
    let log = dir.join(format!("daemon-{}.log", unique("log")));
    let stderr = std::fs::File::create(&log).expect("log file");
    let child = Command::new(binary)
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .env_remove("THREATSIFT_CONFIG")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start daemon");
    Daemon { child, log, port }
}

/// The peak resident memory of a live process (`VmHWM` of /proc/PID/status), in bytes.
pub fn peak_rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kib * 1024
}

// ---- addresses the daemon tests feed and read back

/// The `i`-th address of 2001:db8:bad::/48, the blocklisted range the daemon tests use.
pub fn listed_v6(i: u32) -> String {
    let ip: std::net::IpAddr = format!("2001:db8:bad::{:x}:{:x}", i >> 16, i & 0xffff)
        .parse()
        .unwrap();
    ip.to_string()
}

/// The `ip` of every record.
pub fn record_ips(messages: &[ReadMessage]) -> std::collections::BTreeSet<String> {
    messages
        .iter()
        .map(|m| m.json()["ip"].as_str().unwrap_or_default().to_owned())
        .collect()
}

// --- published formats, validated (d-siem)
// Records published with `publish.format` = ecs | ocsf | stix are checked against that
// format's schema in schema/ (threatsift records keep going through `valid_record`).

/// The schema file of a published format (`threatsift`, `ecs`, `ocsf`, `stix`).
pub fn format_schema_path(format: &str) -> PathBuf {
    let file = match format {
        "threatsift" => "threat-record.schema.json",
        "ecs" => "ecs-threat-indicator.schema.json",
        "ocsf" => "ocsf-detection-finding.schema.json",
        "stix" => "stix-indicator.schema.json",
        other => panic!("no schema for format {other:?}"),
    };
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schema")
        .join(file)
}

/// `document`, after checking it against `format`'s schema (panics with every error).
pub fn valid_document(format: &str, document: serde_json::Value) -> serde_json::Value {
    if format == "threatsift" {
        return valid_record(document);
    }
    let text = std::fs::read_to_string(format_schema_path(format)).expect("schema file");
    let schema: serde_json::Value = serde_json::from_str(&text).expect("schema JSON");
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&document)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{format} document fails its schema: {errors:?}\n{document}"
    );
    document
}

/// Output topics published in a format other than `threatsift`, with that format: what a
/// test reads from them is validated against the format's schema, not the record schema.
static OUTPUT_FORMATS: std::sync::Mutex<std::collections::BTreeMap<String, String>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// Marks `topic` (an output topic) as published in `format`.
pub fn register_output_format(topic: &str, format: &str) {
    if format == "threatsift" {
        register_output_topic(topic);
        return;
    }
    OUTPUT_TOPICS.lock().unwrap().remove(topic);
    OUTPUT_FORMATS
        .lock()
        .unwrap()
        .insert(topic.to_owned(), format.to_owned());
}

fn validate_formatted_output(topic: &str, messages: &[ReadMessage]) {
    let format = OUTPUT_FORMATS.lock().unwrap().get(topic).cloned();
    if let Some(format) = format {
        for message in messages {
            valid_document(&format, message.json());
        }
    }
}

// t16: scale-out
// Several daemons in one consumer group on topics of their own, in either `[scale] mode`: the
// topic set of scaled mode (sightings and compacted state topics), input produced to chosen
// partitions in real batches, the partitions a daemon holds, and waits over
// every daemon of a group.

/// The topics of a scale-out test: [`Topics`] plus the internal ones of scaled mode, and the
/// owner-side consumer group.
pub struct ScaleTopics {
    pub topics: Topics,
    /// `<output>.sightings`.
    pub sightings: String,
    /// `<output>.state`, created compacted.
    pub state: String,
    /// `<group>.owners`, the group that reads the sightings topic.
    pub owners_group: String,
}

/// Creates input (`input_partitions`), output, DLQ, `<output>.sightings` and `<output>.state`
/// (both `internal_partitions`; state with `cleanup.policy=compact`, which this tansu build
/// accepts at creation: [`topic_config`] reads it back).
pub async fn create_scale_topics(input_partitions: i32, internal_partitions: i32) -> ScaleTopics {
    let topics = Topics {
        input: unique("in"),
        output: unique("out"),
        dlq: unique("dlq"),
        group: unique("group"),
    };
    let sightings = format!("{}.sightings", topics.output);
    let state = format!("{}.state", topics.output);
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .expect("admin client");
    let new = [
        NewTopic::new(&topics.input, input_partitions, TopicReplication::Fixed(1)),
        NewTopic::new(&topics.output, 2, TopicReplication::Fixed(1)),
        NewTopic::new(&topics.dlq, 1, TopicReplication::Fixed(1)),
        NewTopic::new(&sightings, internal_partitions, TopicReplication::Fixed(1)),
        NewTopic::new(&state, internal_partitions, TopicReplication::Fixed(1))
            .set("cleanup.policy", "compact"),
    ];
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&new, &options).await.expect("create") {
        result.expect("topic created");
    }
    register_output_topic(&topics.output);
    let owners_group = format!("{}.owners", topics.group);
    ScaleTopics {
        topics,
        sightings,
        state,
        owners_group,
    }
}

/// The value of the configuration entry `name` of `topic` as the broker describes it (`None`
/// when it has no such entry or no value).
pub async fn topic_config(topic: &str, name: &str) -> Option<String> {
    use rdkafka::admin::{ConfigEntry, ResourceSpecifier};
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .expect("admin client");
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let described = admin
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &options)
        .await
        .expect("describe configs");
    let resource = described
        .into_iter()
        .next()
        .expect("one resource")
        .unwrap_or_else(|e| panic!("describe configs of {topic}: {e}"));
    resource
        .entries
        .iter()
        .find(|e: &&ConfigEntry| e.name == name)
        .and_then(|e| e.value.clone())
}

/// Produces each `(partition, payload)` to that partition of `topic`, in chunks that go out
/// as real multi-record batches (a 20 ms linger); returns once every record is delivered.
pub async fn produce_to_partitions(topic: &str, records: &[(i32, Vec<u8>)]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("message.max.bytes", "4000000")
        .set("linger.ms", "20")
        .set("batch.num.messages", "2000")
        .create()
        .expect("producer");
    for chunk in records.chunks(20_000) {
        let sends = chunk.iter().map(|(partition, payload)| {
            let record = FutureRecord::<(), [u8]>::to(topic)
                .payload(&payload[..])
                .partition(*partition);
            producer.send(record, Timeout::After(Duration::from_secs(60)))
        });
        for result in futures::future::join_all(sends).await {
            result.map_err(|(e, _)| e).expect("produce");
        }
    }
}

/// How many partitions the daemon's consumer holds now, from its log: the partition count of
/// its last `consumer group rebalance` line when that was an assignment, 0 after a
/// revocation, `None` before any. (tansu's DescribeGroups answers members without their
/// assignments, so the coordinator cannot be asked; the daemon's log says what it was given.)
pub fn partitions_held(daemon: &Daemon) -> Option<usize> {
    let log = strip_ansi(&daemon.log_text());
    let last = log
        .lines()
        .rev()
        .find(|l| l.contains("consumer group rebalance"))?;
    if last.contains("kind=\"revoke\"") {
        return Some(0);
    }
    assert!(
        last.contains("kind=\"assign\""),
        "a rebalance line of another kind: {last}"
    );
    let count = last
        .split_whitespace()
        .find_map(|field| field.strip_prefix("partitions="))
        .and_then(|n| n.parse().ok());
    Some(count.unwrap_or_else(|| panic!("no partition count in {last}")))
}

/// `text` without ANSI colour sequences (`ESC [ ... m`).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The sum of every sample of the metric family `name` (all label sets) on `/metrics`;
/// `None` while the listener is not up.
pub fn metric_total(daemon: &Daemon, name: &str) -> Option<f64> {
    let (_, body) = daemon.http_get("/metrics")?;
    Some(
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum(),
    )
}

/// Polls `done` until it holds; panics at the timeout naming `what` did not happen, with the
/// last state `done` reported and the logs of `daemons`.
pub fn wait_group(
    daemons: &[&Daemon],
    what: &str,
    timeout: Duration,
    mut done: impl FnMut() -> Result<(), String>,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match done() {
            Ok(()) => return,
            Err(last) => last,
        };
        if Instant::now() > deadline {
            let logs: Vec<String> = daemons
                .iter()
                .map(|d| {
                    let log = d.log_text();
                    let tail: Vec<&str> = log.lines().rev().take(40).collect();
                    let tail: Vec<&str> = tail.into_iter().rev().collect();
                    format!(
                        "--- daemon on port {} (last 40 lines) ---\n{}",
                        d.port,
                        tail.join("\n")
                    )
                })
                .collect();
            panic!(
                "{what}: not reached within {timeout:?} (last: {last})\n{}",
                logs.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
