//! The daemon binary against the real broker, publishing in each `publish.format`: every
//! record it publishes validates against that format's schema in schema/ (threatsift record,
//! ECS threat indicator, OCSF Detection Finding, STIX 2.1 indicator), is keyed by its address,
//! and carries the record additions (id, event time, confidence, TLP, expiry, the first
//! event's ports, protocol and direction) that the configuration and the event give.
#![allow(clippy::disallowed_methods)] // plain test threads may sleep; no runtime is blocked

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

/// The listed addresses, one per event.
const LISTED: [&str; 2] = ["203.0.113.7", "2001:db8::66"];

/// A Check Point CEF line (the CEF fixture's): 203.0.113.7:51545 to 192.0.2.10:443, TCP (6),
/// inbound (deviceDirection 0), at 1709294401000 ms (2024-03-01T12:00:01.000Z).
const CEF_LINE: &str = "CEF:0|Check Point|VPN-1 & FireWall-1|Check Point|Drop|https|Unknown|\
    act=Drop deviceDirection=0 rt=1709294401000 spt=51545 dpt=443 src=203.0.113.7 \
    dst=192.0.2.10 proto=6 dvc=192.0.2.1 destinationTranslatedAddress=0.0.0.0";

/// Runs the daemon with `publish.format = format` on the two listed events and returns each
/// listed address's published document (key = the address), validated against the format's
/// schema. The feed is marked amber+strict and publish.tlp clear, so records say amber+strict.
async fn published(format: &str) -> Vec<(String, Value)> {
    let topics = create_topics(1).await;
    register_output_format(&topics.output, format);
    let dir = tempfile::tempdir().unwrap();
    let blocklist = write_blocklist(dir.path(), &LISTED);
    // `extra` continues the [[feeds]] table: its first line is the feed's own key.
    let extra =
        format!("tlp = \"amber+strict\"\n[publish]\nformat = \"{format}\"\ntlp = \"clear\"\n");
    let (config, port) = write_config(dir.path(), &topics, &blocklist, &extra);
    let events = vec![
        CEF_LINE.as_bytes().to_vec(),
        ecs_event(LISTED[1], "192.0.2.20"),
    ];
    produce(&topics.input, None, &events).await;
    let mut daemon = Daemon::start(&config, port, dir.path());
    daemon.wait_ready(Duration::from_secs(60));
    let messages = read_until(&topics.output, Duration::from_secs(120), |m| {
        LISTED
            .iter()
            .all(|ip| m.iter().any(|r| r.key.as_deref() == Some(*ip)))
    });
    // Only the listed addresses reach the publish floor (192.0.2.x are unknown, withheld).
    messages
        .into_iter()
        .map(|message| {
            let key = message.key.clone().expect("a keyed message");
            assert!(
                LISTED.contains(&key.as_str()),
                "unexpected record for {key}"
            );
            (key, valid_document(format, message.json()))
        })
        .collect()
}

fn document_of<'a>(documents: &'a [(String, Value)], ip: &str) -> &'a Value {
    &documents
        .iter()
        .find(|(key, _)| key == ip)
        .unwrap_or_else(|| panic!("no document for {ip}"))
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threatsift_records_carry_the_record_additions() {
    let documents = published("threatsift").await;
    let cef = document_of(&documents, LISTED[0]);
    assert_eq!(cef["ip"], LISTED[0]);
    // The CEF event's own time (rt, epoch ms), not the Kafka time.
    assert_eq!(cef["event_time"], "2024-03-01T12:00:01.000Z");
    let observed = &cef["observed"];
    assert_eq!(
        (&observed["src_port"], &observed["dst_port"]),
        (&Value::from(51545), &Value::from(443))
    );
    assert_eq!(
        (&observed["protocol"], &observed["direction"]),
        (&Value::from("tcp"), &Value::from("inbound"))
    );
    // One source with evidence (the feed), no provider: 10 + 30.
    assert_eq!(cef["confidence"], 40);
    assert_eq!(
        cef["tlp"], "amber+strict",
        "the feed's marking beats publish.tlp"
    );
    // last_seen + dedup.ttl (24 h by default): no provider answer ends it sooner.
    let last_seen = humantime::parse_rfc3339(cef["last_seen"].as_str().unwrap()).unwrap();
    let expires = humantime::parse_rfc3339(cef["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(
        expires.duration_since(last_seen).unwrap(),
        Duration::from_secs(86_400)
    );
    let id = cef["id"].as_str().expect("an id");
    assert_eq!(&id[14..15], "5", "a version-5 UUID: {id}");
    // The ECS event: its @timestamp, its ports; no protocol or direction in it.
    let ecs = document_of(&documents, LISTED[1]);
    assert_eq!(ecs["event_time"], "2026-11-23T10:00:00Z");
    assert_eq!(ecs["observed"]["src_port"], 51544);
    assert!(ecs["observed"].get("protocol").is_none(), "{ecs}");
    assert_ne!(ecs["id"], cef["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecs_documents_are_threat_indicators() {
    let documents = published("ecs").await;
    for (ip, doc) in &documents {
        assert_eq!(doc["threat"]["indicator"]["ip"], ip.as_str());
        assert_eq!(doc["threat"]["indicator"]["marking"]["tlp"], "AMBER+STRICT");
        assert_eq!(doc["threat"]["feed"]["name"], "test-blocklist");
    }
    assert_eq!(
        document_of(&documents, LISTED[1])["threat"]["indicator"]["type"],
        "ipv6-addr"
    );
    let cef = document_of(&documents, LISTED[0]);
    assert_eq!(cef["threat"]["indicator"]["type"], "ipv4-addr");
    assert_eq!(
        (&cef["source"]["port"], &cef["network"]["transport"]),
        (&Value::from(51545), &Value::from("tcp"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ocsf_documents_are_detection_findings_with_osint() {
    let documents = published("ocsf").await;
    for (ip, doc) in &documents {
        assert_eq!(doc["class_uid"], 2004);
        assert_eq!(doc["activity_id"], 1, "a first record creates the finding");
        assert_eq!(doc["osint"][0]["value"], ip.as_str());
        assert_eq!(doc["osint"][0]["tlp"], "AMBER STRICT");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stix_documents_are_indicators_with_tlp_markings() {
    let documents = published("stix").await;
    assert_eq!(
        document_of(&documents, LISTED[0])["pattern"],
        "[ipv4-addr:value = '203.0.113.7']"
    );
    assert_eq!(
        document_of(&documents, LISTED[1])["pattern"],
        "[ipv6-addr:value = '2001:db8::66']"
    );
    for (_, doc) in &documents {
        assert_eq!(
            doc["object_marking_refs"],
            serde_json::json!(["marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003"])
        );
        assert_eq!(doc["revoked"], false);
        assert!(
            doc["valid_until"].as_str() > doc["valid_from"].as_str(),
            "{doc}"
        );
    }
}
