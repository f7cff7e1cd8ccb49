//! The operator's controls of issue 17 (README "Start position", "Allow-list"), against the
//! binary as a child process and the real broker: where a new consumer group starts reading,
//! and allow-listed addresses that are never looked up nor published.
//!
//! Nothing here waits on the clock: every wait is for a metric, a record or a request, with a
//! generous deadline whose expiry fails the test saying what did not come.
#![allow(clippy::disallowed_methods)] // plain test threads may sleep; no runtime is blocked

mod common;
mod mock_api;

use std::collections::BTreeSet;
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
    // "latest" is resolved with ListOffsets, which this tansu build answers with the last
    // batch's base offset + 1 (see `produce_last_alone`): the last history record goes in a
    // batch of its own, so that answer is the real end of the partition, as Kafka's would be.
    produce_last_alone(&topics.input, 0, &events).await;

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

/// InternetDB's "nothing indexed" answer (providers.md §InternetDB): every address it is asked.
async fn internetdb_mock() -> (String, mock_api::SeenLog) {
    mock_api::mock(
        &mock_api::INTERNETDB,
        mock_api::json_answer(
            404,
            serde_json::json!({"detail": "No information available"}),
        ),
    )
    .await
}

/// The addresses a provider mock was asked about.
fn asked(seen: &mock_api::SeenLog) -> BTreeSet<String> {
    seen.lock()
        .unwrap()
        .iter()
        .filter_map(|s| s.ip.map(|ip| ip.to_string()))
        .collect()
}

/// Writes `text` as the allow-list at `path` the way an operator's tool should: a new file
/// renamed over the old one, so a reload never reads half of it.
fn replace_allowlist(path: &std::path::Path, text: &str) {
    let next = path.with_extension("next");
    std::fs::write(&next, text).unwrap();
    std::fs::rename(&next, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowlisted_addresses_are_never_looked_up_nor_published_and_a_reload_adds_more() {
    let topics = create_topics(1).await;
    let dir = tempfile::tempdir().unwrap();
    let blocklist = write_blocklist(dir.path(), &BLOCKLIST);
    let allowlist = dir.path().join("allowlist.txt");
    // .5 and .6 cleared; .7's entry expired long ago, so .7 is a threat like any other.
    std::fs::write(
        &allowlist,
        "# cidr | reason | owner | expires\n\
         203.0.113.4/31 | partner VPN egress | netops@example.com |\n\
         203.0.113.6 | authorised scan | secops\n\
         203.0.113.7 | old pentest | secops | 2020-01-31\n",
    )
    .unwrap();
    let (url, seen) = internetdb_mock().await;
    let extra = format!(
        "[allowlist]\npath = \"{}\"\n[intel]\nfeeds_reload_interval = \"1s\"\n\
         [providers.internetdb]\nenabled = true\nbase_url = \"{url}\"\n",
        allowlist.display()
    );
    let (config, port) = write_config(dir.path(), &topics, &blocklist, &extra);
    let mut daemon = Daemon::start(&config, port, dir.path());
    daemon.wait_ready(DEADLINE);
    // Three entries, one of them expired.
    wait_metric(&daemon, "threatsift_allowlist_entries", DEADLINE, |v| {
        v == 2.0
    });

    // The marker (.100) comes last in the one partition: once its record and its lookup are
    // in, everything before it was filtered or published.
    let events: Vec<Vec<u8>> = ["203.0.113.5", "203.0.113.6", "203.0.113.7", "203.0.113.100"]
        .iter()
        .map(|ip| ecs_event(ip, "10.0.0.5"))
        .collect();
    produce(&topics.input, Some(0), &events).await;
    let records = read_records_until(&topics.output, DEADLINE, |m| {
        holds_ips(m, &["203.0.113.100"])
    });
    wait_for(&daemon, "the marker's lookup at the mock", DEADLINE, || {
        asked(&seen).contains("203.0.113.100").then_some(())
    });
    let published: BTreeSet<String> = records
        .iter()
        .filter_map(|r| r.json["ip"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        published,
        BTreeSet::from(["203.0.113.7".to_owned(), "203.0.113.100".to_owned()]),
        "allow-listed .5 and .6 never published; .7's expired entry no longer clears it"
    );
    let looked_up = asked(&seen);
    assert!(
        !looked_up.contains("203.0.113.5") && !looked_up.contains("203.0.113.6"),
        "allow-listed addresses were sent to the provider: {looked_up:?}"
    );
    assert_eq!(
        daemon.metric("threatsift_ips_filtered_total{reason=\"allowlisted\"}"),
        Some(2.0)
    );

    // A reload clears .50 from then on.
    replace_allowlist(
        &allowlist,
        "203.0.113.4/31 | partner VPN egress | netops@example.com |\n\
         203.0.113.6 | authorised scan | secops\n\
         203.0.113.50 | new partner | netops\n\
         not an entry\n",
    );
    wait_metric(
        &daemon,
        "threatsift_allowlist_reloads_total{result=\"ok\"}",
        DEADLINE,
        |v| v >= 1.0,
    );
    assert_eq!(daemon.metric("threatsift_allowlist_entries"), Some(3.0));
    let events: Vec<Vec<u8>> = ["203.0.113.50", "203.0.113.101"]
        .iter()
        .map(|ip| ecs_event(ip, "10.0.0.5"))
        .collect();
    produce(&topics.input, Some(0), &events).await;
    let records = read_records_until(&topics.output, DEADLINE, |m| {
        holds_ips(m, &["203.0.113.101"])
    });
    wait_for(
        &daemon,
        "the second marker's lookup at the mock",
        DEADLINE,
        || asked(&seen).contains("203.0.113.101").then_some(()),
    );
    assert!(
        records.iter().all(|r| r.json["ip"] != "203.0.113.50"),
        "an address allow-listed by the reload was published"
    );
    assert!(!asked(&seen).contains("203.0.113.50"));
    assert_eq!(
        daemon.metric("threatsift_ips_filtered_total{reason=\"allowlisted\"}"),
        Some(3.0)
    );
    // The bad line is reported with its number.
    let log = strip_ansi(&daemon.log_text());
    let skipped = log
        .lines()
        .find(|l| l.contains("allow-list line skipped"))
        .unwrap_or_else(|| panic!("no skipped line reported\n{log}"));
    assert!(
        skipped.contains("line=4") && skipped.contains("not an entry"),
        "{skipped}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_allowlist_at_start_up_exits_2_naming_the_key() {
    let topics = create_topics(1).await;
    let dir = tempfile::tempdir().unwrap();
    let blocklist = write_blocklist(dir.path(), &BLOCKLIST);
    let missing = dir.path().join("no-such-allowlist.txt");
    let extra = format!("[allowlist]\npath = \"{}\"\n", missing.display());
    let (config, port) = write_config(dir.path(), &topics, &blocklist, &extra);
    let mut daemon = Daemon::start(&config, port, dir.path());
    let status = daemon.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(2), "{}", daemon.log_text());
    let log = daemon.log_text();
    assert!(
        log.contains("allowlist.path") && log.contains("no-such-allowlist.txt"),
        "{log}"
    );
}

/// A VirusTotal v3 IP object (providers.md §VirusTotal) with 14 engines flagging `address`.
fn vt_flagged(address: &str) -> serde_json::Value {
    serde_json::json!({"data": {"id": address, "type": "ip_address", "attributes": {
        "as_owner": "Example Hosting Ltd", "asn": 64500, "country": "NL",
        "network": "203.0.113.0/24", "regional_internet_registry": "RIPE NCC",
        "reputation": -20,
        "last_analysis_stats": {"harmless": 40, "malicious": 14, "suspicious": 0,
                                "undetected": 40, "timeout": 0},
        "last_analysis_results": {}
    }}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_allowlisted_while_its_lookup_waits_is_not_asked_nor_revised() {
    let topics = create_topics(1).await;
    let dir = tempfile::tempdir().unwrap();
    let blocklist = write_blocklist(dir.path(), &BLOCKLIST);
    let allowlist = dir.path().join("allowlist.txt");
    std::fs::write(&allowlist, "192.0.2.250 | placeholder | test\n").unwrap();
    // VirusTotal's answers wait for the gate: four lookups are held at the mock (the
    // dispatcher's limit in flight), the fifth waits in the queue.
    let gate = mock_api::Gate::new();
    let held = gate.clone();
    let (url, seen) = mock_api::mock_by_address(&mock_api::VIRUSTOTAL, move |ip| {
        mock_api::held(
            mock_api::json_answer(200, vt_flagged(&ip.to_string())),
            &held,
        )
    })
    .await;
    let extra = format!(
        "[allowlist]\npath = \"{}\"\n[intel]\nfeeds_reload_interval = \"1s\"\n\
         [providers.virustotal]\nenabled = true\nbase_url = \"{url}/api/v3\"\n\
         api_key = \"k3y-allowlist-test\"\nper_minute = 60\ntimeout = \"600s\"\n",
        allowlist.display()
    );
    let (config, port) = write_config(dir.path(), &topics, &blocklist, &extra);
    let mut daemon = Daemon::start(&config, port, dir.path());
    daemon.wait_ready(DEADLINE);
    let addresses: Vec<String> = (21..=25).map(|i| format!("203.0.113.{i}")).collect();
    let events: Vec<Vec<u8>> = addresses
        .iter()
        .map(|ip| ecs_event(ip, "10.0.0.5"))
        .collect();
    produce(&topics.input, Some(0), &events).await;
    let in_flight = wait_for(&daemon, "four lookups held at the mock", DEADLINE, || {
        let asked = asked(&seen);
        (asked.len() == 4).then_some(asked)
    });
    let queued = addresses
        .iter()
        .find(|ip| !in_flight.contains(*ip))
        .unwrap()
        .clone();
    let answered_late = in_flight.last().unwrap().clone();
    replace_allowlist(
        &allowlist,
        &format!(
            "192.0.2.250 | placeholder | test\n{queued} | cleared while queued | secops\n\
             {answered_late} | cleared while asked | secops\n"
        ),
    );
    wait_metric(
        &daemon,
        "threatsift_allowlist_reloads_total{result=\"ok\"}",
        DEADLINE,
        |v| v >= 1.0,
    );
    gate.open();
    // Every address done with: its revision (if any) was delivered before it stopped waiting.
    wait_metric(&daemon, "threatsift_remote_queue_depth", DEADLINE, |v| {
        v == 0.0
    });
    assert!(
        !asked(&seen).contains(&queued),
        "{queued} was asked after the allow-list cleared it"
    );
    wait_metric(
        &daemon,
        "threatsift_withdrawals_total{reason=\"allowlisted\"}",
        DEADLINE,
        |v| v >= 2.0,
    );
    let records = read_records(&topics.output);
    let revised: BTreeSet<String> = records
        .iter()
        .filter(|r| r.json["revision"].as_u64() > Some(1) && r.json["revoked"] != true)
        .filter_map(|r| r.json["ip"].as_str().map(str::to_owned))
        .collect();
    // Both had a published first record: the reload that cleared them withdraws it.
    let withdrawn: BTreeSet<String> = records
        .iter()
        .filter(|r| r.json["revoked"] == true && r.json["revocation_reason"] == "allowlisted")
        .filter_map(|r| r.json["ip"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        withdrawn,
        BTreeSet::from([queued.clone(), answered_late.clone()]),
        "the allow-list reload withdraws what was published for the cleared addresses"
    );
    let expected: BTreeSet<String> = in_flight
        .iter()
        .filter(|ip| **ip != answered_late)
        .cloned()
        .collect();
    assert_eq!(
        revised, expected,
        "revisions for the three not allow-listed, none for {answered_late} or {queued}"
    );
    assert_eq!(
        daemon.metric(
            "threatsift_enrich_skipped_total{provider=\"virustotal\",reason=\"allowlisted\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_greynoise_riot_answer_lowers_a_published_record_with_a_negative_reason() {
    let topics = create_topics(1).await;
    let dir = tempfile::tempdir().unwrap();
    let blocklist = write_blocklist(dir.path(), &BLOCKLIST);
    // GreyNoise's answer for a common business service (providers.md §GreyNoise, 200 riot).
    let (url, seen) = mock_api::mock_by_address(&mock_api::GREYNOISE, |ip| {
        mock_api::json_answer(
            200,
            serde_json::json!({"ip": ip.to_string(), "noise": false, "riot": true,
                "classification": "benign", "name": "Example CDN",
                "link": format!("https://viz.greynoise.io/riot/{ip}"),
                "last_seen": "2026-11-22", "message": "Success"}),
        )
    })
    .await;
    let extra = format!(
        "[scoring]\ngreynoise_riot = -30\n\
         [providers.greynoise]\nenabled = true\nbase_url = \"{url}/v3/community\"\n"
    );
    let (config, port) = write_config(dir.path(), &topics, &blocklist, &extra);
    let mut daemon = Daemon::start(&config, port, dir.path());
    daemon.wait_ready(DEADLINE);
    produce(
        &topics.input,
        Some(0),
        &[ecs_event("203.0.113.30", "10.0.0.5")],
    )
    .await;
    // The feed's record (70, malicious) first, then the lowered one.
    read_records_until(&topics.output, DEADLINE, |m| m.len() >= 2);
    // The address done with: whatever it was to publish is delivered by then.
    wait_metric(&daemon, "threatsift_remote_queue_depth", DEADLINE, |v| {
        v == 0.0
    });
    let records = read_records(&topics.output);
    assert_eq!(asked(&seen), BTreeSet::from(["203.0.113.30".to_owned()]));
    let summary: Vec<(u64, u64, &str)> = records
        .iter()
        .map(|r| {
            (
                r.json["revision"].as_u64().unwrap(),
                r.json["score"].as_u64().unwrap(),
                r.json["verdict"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(summary, [(1, 70, "malicious"), (2, 40, "suspicious")]);
    let reasons = &records[1].json["reasons"];
    assert!(
        reasons
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["source"] == "greynoise"
                && r["weight"] == -30
                && r["detail"] == "GreyNoise RIOT: a common business service (Example CDN)"),
        "{reasons}"
    );
}
