//! The state changelog (`[scale] changelog = true`, single mode) against the real broker and
//! counting VirusTotal mocks: what a daemon knew of its addresses survives a restart.
//!
//! Every wait is for an event (a request at the mock, a state or record on a topic, a metric)
//! with a generous deadline whose expiry fails the test; no outcome rests on a sleep.
#![allow(clippy::disallowed_methods)] // plain test threads may sleep; no runtime is blocked

mod common;
mod mock_api;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::ClientConfig;
use serde_json::Value;

use common::{
    assert_valid_record, brokers, create_topics, ecs_event, produce, read_all, read_until,
    record_validator, wait_for, write_blocklist, write_config, Daemon, ReadMessage, Topics,
};

const KEY: &str = "vt-state-key-5150";
const WAIT: Duration = Duration::from_secs(120);

/// Creates `<output>.state`, compacted, with the output topic's 2 partitions.
async fn create_state_topic(topics: &Topics) -> String {
    let name = format!("{}.state", topics.output);
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .expect("admin client");
    let topic =
        NewTopic::new(&name, 2, TopicReplication::Fixed(1)).set("cleanup.policy", "compact");
    let results = admin
        .create_topics(
            [&topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create state topic");
    for result in results {
        result.expect("state topic created");
    }
    name
}

/// A VirusTotal v3 answer for an address some engines flag (composed for these tests).
fn vt_flagged(ip: &str) -> Value {
    serde_json::json!({"data": {"id": ip, "type": "ip_address", "attributes": {
        "as_owner": "Example Transit BV", "asn": 64511, "country": "DE",
        "network": "203.0.113.0/24", "regional_internet_registry": "RIPE NCC",
        "reputation": -20,
        "last_analysis_stats": {"harmless": 60, "malicious": 5, "suspicious": 0, "undetected": 29, "timeout": 0},
        "last_analysis_results": {
            "SampleEngine": {"category": "malicious", "engine_name": "SampleEngine", "method": "blacklist", "result": "phishing"}
        }
    }}})
}

/// A VirusTotal v3 answer for an address no engine flags.
fn vt_clean(ip: &str) -> Value {
    serde_json::json!({"data": {"id": ip, "type": "ip_address", "attributes": {
        "as_owner": "Example Access GmbH", "asn": 64512, "country": "AT",
        "reputation": 0,
        "last_analysis_stats": {"harmless": 70, "malicious": 0, "suspicious": 0, "undetected": 24, "timeout": 0},
        "last_analysis_results": {}
    }}})
}

/// `per_minute`: `None` for no limit (`"unlimited"`; 0 means no lookups at all).
fn virustotal_config(url: &str, per_minute: Option<u32>) -> String {
    let per_minute = per_minute.map_or_else(|| "\"unlimited\"".to_owned(), |n| n.to_string());
    format!(
        "[scale]\nchangelog = true\n\
         [providers.virustotal]\nenabled = true\nbase_url = \"{url}/api/v3\"\n\
         api_key = \"{KEY}\"\nper_minute = {per_minute}\ntimeout = \"600s\"\n"
    )
}

/// The requests the mock saw, per address.
fn requests_per_address(seen: &mock_api::SeenLog) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for request in seen.lock().unwrap().iter() {
        let ip = request
            .ip
            .expect("the route captures the address")
            .to_string();
        *counts.entry(ip).or_default() += 1;
    }
    counts
}

/// The newest state per address in `messages` (the topic's order within a partition, and an
/// address always lands on one partition), its embedded record validated against the schema.
fn latest_states(messages: &[ReadMessage]) -> BTreeMap<String, Value> {
    let validator = record_validator();
    let mut latest = BTreeMap::new();
    for message in messages {
        let state = message.json();
        assert_eq!(state["schema"], "threatsift.state/1");
        assert_eq!(
            message.key.as_deref(),
            state["ip"].as_str(),
            "keyed by the address"
        );
        assert_valid_record(&validator, &state["record"]);
        latest.insert(state["ip"].as_str().unwrap().to_owned(), state);
    }
    latest
}

fn vt_status(state: &Value) -> &str {
    state["record"]["intel"]["virustotal"]["status"]
        .as_str()
        .unwrap_or("")
}

/// Produces `payloads` with the message time `time_ms`.
async fn produce_at(topic: &str, time_ms: i64, payloads: &[Vec<u8>]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .expect("producer");
    for payload in payloads {
        producer
            .send(
                FutureRecord::<(), [u8]>::to(topic)
                    .payload(&payload[..])
                    .timestamp(time_ms),
                Timeout::After(Duration::from_secs(30)),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("produce");
    }
}

const LISTED: [&str; 4] = [
    "203.0.113.10",
    "203.0.113.11",
    "203.0.113.12",
    "203.0.113.13",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_queued_at_a_kill_are_made_once_after_the_restart_and_revisions_continue() {
    let topics = create_topics(1).await;
    let state_topic = create_state_topic(&topics).await;
    let dir = tempfile::tempdir().unwrap();
    let blocklist = write_blocklist(dir.path(), &LISTED);
    // The first request is answered; any later one before the kill is held open (it is then
    // in flight at the kill, the one case a second request for an address is allowed).
    let gate = mock_api::Gate::new();
    let held = gate.clone();
    let answered = Arc::new(AtomicUsize::new(0));
    let (vt_url, vt_seen) = mock_api::mock_by_address(&mock_api::VIRUSTOTAL, move |ip| {
        let answer = mock_api::json_answer(200, vt_flagged(&ip.to_string()));
        if answered.fetch_add(1, Ordering::SeqCst) == 0 {
            answer
        } else {
            mock_api::held(answer, &held)
        }
    })
    .await;
    let events: Vec<Vec<u8>> = LISTED
        .iter()
        .enumerate()
        .map(|(i, ip)| ecs_event(ip, &format!("10.0.0.{}", i + 1)))
        .collect();
    produce(&topics.input, None, &events).await;

    // One request a minute: the first address is asked, the other three wait in the queue.
    let (config, port) = write_config(
        dir.path(),
        &topics,
        &blocklist,
        &virustotal_config(&vt_url, Some(1)),
    );
    let mut daemon = Daemon::start(&config, port, dir.path());
    daemon.wait_ready(WAIT);
    let first = wait_for(&daemon, "the first VirusTotal request", WAIT, || {
        vt_seen.lock().unwrap().first().and_then(|s| s.ip)
    })
    .to_string();
    // Every address's first record is out, and the state topic holds every address, the
    // first one with VirusTotal's answer.
    read_until(&topics.output, WAIT, |m| common::holds_ips(m, &LISTED));
    read_until(&state_topic, WAIT, |m| {
        let states = latest_states(m);
        states.len() == LISTED.len() && states.get(&first).is_some_and(|s| vt_status(s) == "ok")
    });
    daemon.signal("KILL");
    daemon.wait_exit(WAIT);
    // Requests after the first were held open: in flight at the kill, made again after it.
    let in_flight_at_kill: Vec<String> = requests_per_address(&vt_seen)
        .into_keys()
        .filter(|ip| *ip != first)
        .collect();
    gate.open();
    let before_restart = read_all(&state_topic).len();

    // No minute budget now: what was pending is asked at once.
    let (config, port) = write_config(
        dir.path(),
        &topics,
        &blocklist,
        &virustotal_config(&vt_url, None),
    );
    let mut daemon = Daemon::start(&config, port, dir.path());
    daemon.wait_ready(WAIT);
    let records = read_until(&topics.output, WAIT, |m| {
        LISTED.iter().all(|ip| {
            m.iter()
                .map(ReadMessage::json)
                .any(|r| r["ip"] == *ip && r["intel"]["virustotal"]["status"] == "ok")
        })
    });
    assert!(
        daemon
            .metric("threatsift_warm_start_records_total")
            .unwrap_or(0.0)
            >= before_restart as f64,
        "the warm start read every state written before the kill"
    );
    assert_eq!(
        daemon.metric("threatsift_warm_start_lookups_requeued_total"),
        Some((LISTED.len() - 1) as f64),
        "every address but the answered one was queued again"
    );
    // Each address: revision 1 (local evidence, pending) before the kill, revision 2 with
    // VirusTotal's answer, numbered on from the restored window, never a second revision 1.
    let mut revisions: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
    for record in records.iter().map(ReadMessage::json) {
        revisions
            .entry(record["ip"].as_str().unwrap().to_owned())
            .or_default()
            .push((
                record["revision"].as_u64().unwrap(),
                record["intel"]["virustotal"]["status"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            ));
    }
    for ip in LISTED {
        assert_eq!(
            revisions[ip],
            [(1, "pending".to_owned()), (2, "ok".to_owned())],
            "{ip}: {revisions:#?}"
        );
    }
    let states = latest_states(&read_until(&state_topic, WAIT, |m| {
        let states = latest_states(m);
        LISTED
            .iter()
            .all(|ip| states.get(*ip).is_some_and(|s| vt_status(s) == "ok"))
    }));
    for ip in LISTED {
        assert_eq!(
            states[ip]["published"]["revision"], 2,
            "{ip}: {:#}",
            states[ip]
        );
        assert_eq!(states[ip]["record"]["revision"], 2);
        assert!(states[ip]["answers"]["virustotal"]["until"].is_string());
    }
    // Asked once per address in all; twice only if its first request was in flight at the
    // kill.
    let counts = requests_per_address(&vt_seen);
    for ip in LISTED {
        let asked = counts.get(ip).copied().unwrap_or(0);
        let in_flight = in_flight_at_kill.iter().any(|held| held == ip);
        assert!(
            asked == 1 || (asked == 2 && in_flight),
            "{ip} asked {asked} times: {counts:?} (in flight at the kill: {in_flight_at_kill:?})"
        );
    }
    assert_eq!(counts.len(), LISTED.len(), "{counts:?}");
    daemon.signal("TERM");
    assert!(daemon.wait_exit(WAIT).success(), "{}", daemon.log_text());
}

const UNLISTED_OK: &str = "198.51.100.20";
const UNLISTED_NOT_FOUND: &str = "198.51.100.21";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withheld_addresses_are_not_asked_again_after_a_restart_within_their_answers_lifetime() {
    let topics = create_topics(1).await;
    let state_topic = create_state_topic(&topics).await;
    let dir = tempfile::tempdir().unwrap();
    let blocklist = write_blocklist(dir.path(), &["192.0.2.99"]);
    let (vt_url, vt_seen) = mock_api::mock_by_address(&mock_api::VIRUSTOTAL, |ip: IpAddr| {
        if ip.to_string() == UNLISTED_NOT_FOUND {
            mock_api::json_answer(
                404,
                serde_json::json!({"error": {"code": "NotFoundError", "message": "Resource not found."}}),
            )
        } else {
            mock_api::json_answer(200, vt_clean(&ip.to_string()))
        }
    })
    .await;
    // A one-hour dedup window and events two hours old: after the restart the addresses are
    // first sightings again (their windows passed), so only the answers' lifetime (VirusTotal's
    // default 24 h / 6 h) keeps them from being asked again.
    let extra = format!(
        "{}[dedup]\nttl = \"1h\"\n",
        virustotal_config(&vt_url, None)
    );
    let (config, port) = write_config(dir.path(), &topics, &blocklist, &extra);
    let two_hours_ago = SystemTime::now() - Duration::from_secs(2 * 3600);
    let events = [
        ecs_event(UNLISTED_OK, "10.0.1.1"),
        ecs_event(UNLISTED_NOT_FOUND, "10.0.1.2"),
    ];
    produce_at(&topics.input, millis(two_hours_ago), &events).await;
    let mut daemon = Daemon::start(&config, port, dir.path());
    daemon.wait_ready(WAIT);
    let states = latest_states(&read_until(&state_topic, WAIT, |m| {
        let states = latest_states(m);
        states
            .get(UNLISTED_OK)
            .is_some_and(|s| vt_status(s) == "ok")
            && states
                .get(UNLISTED_NOT_FOUND)
                .is_some_and(|s| vt_status(s) == "not_found")
    }));
    for ip in [UNLISTED_OK, UNLISTED_NOT_FOUND] {
        assert_eq!(
            states[ip]["verdict"], "unknown",
            "withheld: {:#}",
            states[ip]
        );
        assert_eq!(states[ip]["published"]["revision"], 0);
    }
    daemon.signal("TERM");
    assert!(daemon.wait_exit(WAIT).success(), "{}", daemon.log_text());
    assert_eq!(
        requests_per_address(&vt_seen),
        BTreeMap::from([
            (UNLISTED_OK.to_owned(), 1),
            (UNLISTED_NOT_FOUND.to_owned(), 1)
        ])
    );

    let (config, port) = write_config(dir.path(), &topics, &blocklist, &extra);
    let mut daemon = Daemon::start(&config, port, dir.path());
    daemon.wait_ready(WAIT);
    produce(&topics.input, None, &events).await;
    // Both seen again and looked up: each lookup is either a cache hit or a request.
    wait_for(
        &daemon,
        "both addresses looked up after the restart",
        WAIT,
        || {
            let hits = daemon
                .metric("threatsift_enrich_cache_hits_total{provider=\"virustotal\"}")
                .unwrap_or(0.0) as usize;
            (hits + vt_seen.lock().unwrap().len() >= 2 + 2).then_some(())
        },
    );
    assert_eq!(
        requests_per_address(&vt_seen),
        BTreeMap::from([
            (UNLISTED_OK.to_owned(), 1),
            (UNLISTED_NOT_FOUND.to_owned(), 1)
        ]),
        "asked again after the restart"
    );
    assert_eq!(
        daemon.metric("threatsift_enrich_cache_hits_total{provider=\"virustotal\"}"),
        Some(2.0),
        "both answered from the restored cache"
    );
    assert!(
        read_all(&topics.output).is_empty(),
        "withheld records were published"
    );
    daemon.signal("TERM");
    assert!(daemon.wait_exit(WAIT).success(), "{}", daemon.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_state_topic_stops_the_start_naming_it() {
    let topics = create_topics(1).await;
    let dir = tempfile::tempdir().unwrap();
    let blocklist = write_blocklist(dir.path(), &LISTED);
    let (config, port) = write_config(
        dir.path(),
        &topics,
        &blocklist,
        "[scale]\nchangelog = true\n",
    );
    let mut daemon = Daemon::start(&config, port, dir.path());
    let status = daemon.wait_exit(WAIT);
    assert_eq!(status.code(), Some(1), "{}", daemon.log_text());
    let log = daemon.log_text();
    assert!(
        log.contains(&format!("`{}.state` does not exist", topics.output)),
        "{log}"
    );
}

fn millis(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}
