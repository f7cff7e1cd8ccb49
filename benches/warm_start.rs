//! Warm-start time of the state changelog (issue 16): how long a daemon takes to read back the
//! state of N addresses from `<output_topic>.state` and restore them, on the real broker.
//!
//! The states: N distinct public addresses, each a published record with a VirusTotal and an
//! AbuseIPDB answer and a feed match, one in ten with OTX still `pending`; built with the
//! crate's own state encoder (`test_support::state::StateWriter`), keyed by the address,
//! produced with the daemon's partitioner (`murmur2_random`) into a fresh compacted topic of 6
//! partitions. Timed: the daemon's warm start of every partition (`state::warm_start`, then
//! `state::restore` into a dedup window and the remote stage built as the daemon builds them).
//! Only counts are asserted, never times.
//!
//! Needs the broker of `scripts/broker.sh` (`THREATSIFT_TEST_BROKERS`). `cargo bench --bench
//! warm_start` restores 100,000 addresses (`THREATSIFT_WARM_EVENTS` overrides); in test mode
//! (`cargo test --bench warm_start`) 2,000.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, SystemTime};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::ClientConfig;
use threatsift::test_support::remote::new_metrics;
use threatsift::test_support::state::{read_state, restore_state, StateWriter, STATE_PROVIDERS};
use threatsift::test_support::{brokers, unique};
use threatsift::Settings;

// The one schema check of threat records (its other helpers are not used here).
#[path = "../tests/common/mod.rs"]
mod common;

const PARTITIONS: i32 = 6;

/// Address `i`: distinct public addresses in 45.0.0.0/8 (nothing is ever sent to them: the
/// providers point at a closed local port and no lookup is made).
fn address(i: u64) -> IpAddr {
    let n = u32::try_from(i).expect("fewer than 2^24 addresses");
    IpAddr::V4(Ipv4Addr::new(
        45,
        (1 + n / 65_536) as u8,
        (n / 256 % 256) as u8,
        (n % 256) as u8,
    ))
}

/// The `i` of [`address`]`(i)`.
fn index_of(ip: IpAddr) -> u64 {
    let IpAddr::V4(v4) = ip else {
        panic!("{ip} is not one of the states")
    };
    let [a, b, c, d] = v4.octets();
    assert_eq!(a, 45, "{ip} is not one of the states");
    (u64::from(b) - 1) * 65_536 + u64::from(c) * 256 + u64::from(d)
}

/// Creates `<output>.state`: compacted, 6 partitions.
async fn create_state_topic(brokers: &str, output: &str) -> String {
    let name = format!("{output}.state");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let topic = NewTopic::new(&name, PARTITIONS, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact");
    for result in admin
        .create_topics(
            [&topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("create the state topic")
    {
        result.expect("state topic created");
    }
    name
}

/// Produces the states of addresses `0..n`, keyed by address, on their murmur2 partition (the
/// daemon's producer's `partitioner`); returns how many landed on each partition and the
/// payloads' total bytes.
async fn produce_states(brokers: &str, topic: &str, n: u64, now: SystemTime) -> (Vec<u64>, u64) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "200000")
        .create()
        .expect("producer");
    let writer = StateWriter::new(n, now);
    let validator = common::record_validator();
    let mut per_partition = vec![0u64; PARTITIONS as usize];
    let mut bytes = 0u64;
    // In chunks: the send futures borrow their payloads.
    for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
        let states: Vec<(Vec<u8>, Vec<u8>)> =
            chunk.iter().map(|&i| writer.state(address(i), i)).collect();
        bytes += states.iter().map(|(_, p)| p.len() as u64).sum::<u64>();
        // Each state as the daemon writes it: keyed by its address, its record a valid one.
        for (key, payload) in &states {
            let state: serde_json::Value = serde_json::from_slice(payload).expect("state JSON");
            assert_eq!(state["schema"], "threatsift.state/1");
            assert_eq!(
                Some(key.as_slice()),
                state["ip"].as_str().map(str::as_bytes)
            );
            common::assert_valid_record(&validator, &state["record"]);
        }
        let sends = states.iter().map(|(key, payload)| {
            producer.send(
                FutureRecord::to(topic).key(key).payload(payload),
                Timeout::After(Duration::from_secs(120)),
            )
        });
        for delivered in futures::future::join_all(sends).await {
            let delivery = delivered.map_err(|(e, _)| e).expect("produce a state");
            per_partition[delivery.partition as usize] += 1;
        }
    }
    (per_partition, bytes)
}

/// A `/proc/self/status` figure in MiB (`VmHWM`, `VmRSS`).
fn status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Resets `VmHWM` to the current RSS (Linux `clear_refs` 5), so the peak measured is the warm
/// start's, not the producing's. False when the kernel refused.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn settings(brokers: &str, output: &str, addresses: u64) -> Settings {
    let mut toml = format!(
        "[kafka]\nbrokers = \"{brokers}\"\ngroup_id = \"{group}\"\noutput_topic = \"{output}\"\n\
         [scale]\nchangelog = true\n\
         [intel]\n# Room for every restored answer.\nprovider_cache_entries = {cache}\n",
        group = unique("warm-bench"),
        cache = addresses.max(100_000),
    );
    for provider in STATE_PROVIDERS {
        // A closed local port: the warm start asks no provider (nothing is requeued here).
        toml.push_str(&format!(
            "[providers.{provider}]\nenabled = true\nbase_url = \"http://127.0.0.1:9\"\n\
             api_key = \"warm-bench-unused\"\n"
        ));
    }
    Settings::from_toml_overrides(&toml).expect("bench settings")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let brokers = brokers();
    let full = std::env::args().any(|a| a == "--bench");
    let n: u64 = std::env::var("THREATSIFT_WARM_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(if full { 100_000 } else { 2_000 });
    let output = unique("warm-out");
    let topic = create_state_topic(&brokers, &output).await;
    let (per_partition, bytes) = produce_states(&brokers, &topic, n, SystemTime::now()).await;
    assert_eq!(per_partition.iter().sum::<u64>(), n, "every state produced");
    assert!(
        per_partition.iter().all(|&c| c > 0),
        "murmur2 spread the addresses over all {PARTITIONS} partitions: {per_partition:?}"
    );
    let settings = settings(&brokers, &output, n);
    let (_registry, metrics) = new_metrics();

    // The peak of each half alone: the read holds the states as read (and the client's fetch
    // buffers), the restore the dedup entries, the answer caches and the requeued jobs.
    let reset = reset_peak_rss();
    let rss_before = status_mib("VmRSS:");
    let read = read_state(&settings).await;
    let (read_peak, records, read_time) = (status_mib("VmHWM:"), read.records, read.elapsed);
    let reset = reset_peak_rss() && reset;
    let rss_read = status_mib("VmRSS:");
    let started = restore_state(read, &settings, &metrics).await;
    let (restore_peak, rss_after) = (status_mib("VmHWM:"), status_mib("VmRSS:"));

    // Correctness: every state read, every address back in the window with both answers
    // cached, the tenth with OTX pending queued again.
    assert_eq!(
        metrics.warm_start_records.get(),
        records,
        "the metric counts the records"
    );
    let requeued = started.requeue.len() as u64;
    assert_eq!(records, n, "state records read");
    assert_eq!(
        metrics.warm_start_lookups_requeued.get(),
        requeued,
        "the metric counts the requeued jobs"
    );
    assert_eq!(
        requeued,
        n.div_ceil(10),
        "addresses with OTX pending requeued"
    );
    for job in &started.requeue {
        let index = index_of(job.ip);
        assert!(index < n, "{} is not one of the states", job.ip);
        assert_eq!(index % 10, 0, "{} had nothing pending", job.ip);
    }
    let remote = started.remote.as_ref().expect("a remote stage");
    let now = SystemTime::now();
    let (mut restored, mut answers) = (0u64, 0u64);
    for i in 0..n {
        let ip = address(i);
        if !started.dedup.observe(ip, now).first {
            restored += 1;
        }
        for slot in remote.slots() {
            if slot.cached(ip).await.is_some() {
                answers += 1;
            }
        }
    }
    assert_eq!(restored, n, "addresses back in the dedup window");
    assert_eq!(answers, 2 * n, "VirusTotal and AbuseIPDB answers cached");

    let (read_s, restore_s) = (read_time.as_secs_f64(), started.elapsed.as_secs_f64());
    let seconds = read_s + restore_s;
    let mib = |m: Option<f64>| m.map_or("?".to_owned(), |m| format!("{m:.0}"));
    let growth = |peak: Option<f64>, base: Option<f64>| mib(peak.zip(base).map(|(p, b)| p - b));
    println!(
        "warm_start/{n} addresses (state topic of {PARTITIONS} partitions, {per_partition:?} \
         records each, {} bytes a state on average; 2 answers + 1 feed match each, OTX pending in \
         1 of 10)",
        bytes / n.max(1)
    );
    println!(
        "  records read {records}, addresses restored {restored}, answers cached {answers}, \
         lookups requeued {requeued}"
    );
    println!(
        "  {seconds:.2} s (read {read_s:.2} s, restore {restore_s:.2} s; warm_start_seconds \
         {:.2}), {:.0} records/s",
        metrics.warm_start_seconds.get(),
        records as f64 / seconds
    );
    if reset {
        println!(
            "  peak RSS growth: read {} MiB, restore {} MiB over the RSS before it (RSS {} MiB \
             before, {} after the read, {} after the restore)",
            growth(read_peak, rss_before),
            growth(restore_peak, rss_read),
            mib(rss_before),
            mib(rss_read),
            mib(rss_after),
        );
    } else {
        println!(
            "  peak RSS {} MiB, RSS {} MiB before (the kernel refused to reset VmHWM: the peak \
             may be the producing's)",
            mib(restore_peak),
            mib(rss_before)
        );
    }
    println!("  the broker and this bench share the machine's 2 cores");
}
