//! Unit tests of `process`.
use super::*;
use crate::intel::feeds::LocalFeeds;
use crate::model::{IpObservation, ProviderStatus, Role};
use crate::stages::record::peer_of;

fn processor(overrides: &str) -> (Processor, Arc<Metrics>) {
    let settings = crate::settings::Settings::from_toml_overrides(overrides).unwrap();
    let metrics = Arc::new(Metrics::new(&prometheus::Registry::new()).unwrap());
    let feeds = Arc::new(LocalFeeds::load(Vec::new()).unwrap());
    let processor = Processor::from_settings(
        &settings,
        feeds,
        &ConfiguredProviders::build(&settings).unwrap(),
        metrics.clone(),
    )
    .unwrap();
    (processor, metrics)
}

fn message(topic: &str, offset: i64, line: &str) -> RawEvent {
    RawEvent {
        payload: bytes::Bytes::copy_from_slice(line.as_bytes()),
        key: None,
        origin: Origin {
            topic: topic.into(),
            partition: 0,
            offset,
        },
        timestamp_ms: None,
    }
}

fn records(processed: &Processed) -> Vec<serde_json::Value> {
    processed
        .outputs
        .iter()
        .filter(|o| matches!(o.kind, OutputKind::Record(_)))
        .map(|o| crate::model::schema_check::valid_record_payload(&o.payload))
        .collect()
}

#[test]
fn topic_hint_overrides_detection_and_names_the_format() {
    let (processor, metrics) = processor(
        "[filter]\nallow_documentation_ranges = true\n[publish]\nmin_verdict = \"unknown\"\n\
         [parse.topic_formats]\n\"raw-text\" = \"ip_scan\"\n",
    );
    let line = "src=203.0.113.7 dst=198.51.100.2";
    let detected = processor.process_message(&message("fw", 0, line), Instant::now());
    let hinted = processor.process_message(
        &message("raw-text", 0, "seen 203.0.113.8 and 198.51.100.3"),
        Instant::now(),
    );
    let detected = records(&detected);
    let hinted = records(&hinted);
    assert_eq!(detected.len(), 2);
    assert_eq!(detected[0]["observed"]["format"], "kv");
    assert_eq!(detected[0]["roles"], serde_json::json!(["source"]));
    assert_eq!(hinted.len(), 2);
    assert_eq!(hinted[0]["observed"]["format"], "ip_scan");
    assert_eq!(hinted[0]["roles"], serde_json::json!(["unknown"]));
    let parsed = |format: &str| metrics.events_parsed.with_label_values(&[format]).get();
    assert_eq!((parsed("kv"), parsed("ip_scan")), (1, 1));
}

#[test]
fn a_batch_message_yields_every_event_and_directives_are_counted() {
    let (processor, metrics) = processor(
        "[filter]\nallow_documentation_ranges = true\n[publish]\nmin_verdict = \"unknown\"\n",
    );
    let batch = r#"{"logEvents":[{"message":"src=203.0.113.21 dst=198.51.100.21"},{"message":"src=203.0.113.22"}]}"#;
    let out = processor.process_message(&message("fw", 0, batch), Instant::now());
    let ips: Vec<_> = records(&out)
        .iter()
        .map(|r| r["ip"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ips, ["203.0.113.21", "198.51.100.21", "203.0.113.22"]);
    let out = processor.process_message(&message("fw", 1, "#Version: 1.0"), Instant::now());
    assert!(out.outputs.is_empty());
    assert_eq!(
        metrics
            .events_parsed
            .with_label_values(&["directive"])
            .get(),
        1
    );
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn dlq_reasons(processed: &Processed) -> Vec<&'static str> {
    processed
        .outputs
        .iter()
        .filter_map(|o| match o.kind {
            OutputKind::Dlq(reason) => Some(reason),
            _ => None,
        })
        .collect()
}

#[test]
fn gzip_cloudwatch_batches_are_read_item_by_item() {
    let (processor, _) = processor(
        "[filter]\nallow_documentation_ranges = true\n[publish]\nmin_verdict = \"unknown\"\n\
         [parse]\nmax_line_bytes = 1024\nmax_decompressed_bytes = 4096\n",
    );
    let batch = r#"{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1","message":"2 123456789012 eni-0a1b2c3d4e5f60001 203.0.113.31 198.51.100.31 51544 443 6 9 3920 1709294400 1709294460 ACCEPT OK"},{"id":"2","message":"no address in this one"}]}"#;
    let mut raw = message("fw", 0, "");
    raw.payload = gzip(batch.as_bytes()).into();
    let out = processor.process_message(&raw, Instant::now());
    let ips: Vec<_> = records(&out)
        .iter()
        .map(|r| r["ip"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ips, ["203.0.113.31", "198.51.100.31"]);
    assert_eq!(dlq_reasons(&out), ["unrecognized_format"]);
    let dlq: serde_json::Value = serde_json::from_slice(
        &out.outputs
            .iter()
            .find(|o| matches!(o.kind, OutputKind::Dlq(_)))
            .unwrap()
            .payload,
    )
    .unwrap();
    assert!(dlq.to_string().contains("no address in this one"), "{dlq}");

    let control = r#"{"messageType":"CONTROL_MESSAGE","logEvents":[{"id":"","message":"CWL CONTROL MESSAGE: Checking health of destination Kinesis stream."}]}"#;
    raw.payload = gzip(control.as_bytes()).into();
    let out = processor.process_message(&raw, Instant::now());
    assert!(out.outputs.is_empty());

    // A compression bomb: 1 MiB of zeros in a few bytes.
    raw.payload = gzip(&vec![b'0'; 1 << 20]).into();
    let out = processor.process_message(&raw, Instant::now());
    assert_eq!(dlq_reasons(&out), ["invalid_gzip"]);
    raw.payload = bytes::Bytes::from_static(&[0x1f, 0x8b, 8, 0, 1, 2]);
    let out = processor.process_message(&raw, Instant::now());
    assert_eq!(dlq_reasons(&out), ["invalid_gzip"]);
}

#[test]
fn a_suricata_alert_record_carries_the_vendor_threat() {
    let (processor, _) = processor(
        "[filter]\nallow_documentation_ranges = true\n[publish]\nmin_verdict = \"unknown\"\n",
    );
    let alert = r#"{"timestamp":"2024-03-01T12:00:00.123456+0000","flow_id":1,"event_type":"alert","src_ip":"203.0.113.70","src_port":51544,"dest_ip":"198.51.100.70","dest_port":22,"proto":"TCP","alert":{"action":"allowed","signature_id":2001219,"signature":"ET SCAN Potential SSH Scan","severity":2}}"#;
    let out = records(&processor.process_message(&message("ids", 0, alert), Instant::now()));
    assert_eq!(out.len(), 2);
    let record = &out[0];
    assert_eq!(record["ip"], "203.0.113.70");
    assert_eq!(record["indicator"], "ET SCAN Potential SSH Scan");
    assert_eq!(
        record["reasons"],
        serde_json::json!([{
            "source": "vendor",
            "detail": "Suricata reported threat \"ET SCAN Potential SSH Scan\"",
            "weight": 40
        }])
    );
    assert_eq!(
        (&record["score"], &record["verdict"], &record["severity"]),
        (
            &serde_json::json!(40),
            &serde_json::json!("suspicious"),
            &serde_json::json!("medium")
        )
    );
    // The same flow as plain traffic is no evidence.
    let flow = r#"{"timestamp":"2024-03-01T12:00:00.123456+0000","flow_id":2,"event_type":"flow","src_ip":"203.0.113.71","dest_ip":"198.51.100.71","proto":"TCP"}"#;
    let out = records(&processor.process_message(&message("ids", 1, flow), Instant::now()));
    assert_eq!(out[0]["indicator"], "IP Observed");
    assert_eq!(out[0]["reasons"], serde_json::json!([]));
    assert_eq!(out[0]["score"], 0);
}

/// Which events each vendor format marks as a threat detection, and the name it gives.
#[test]
fn vendor_threat_names_by_format() {
    let (processor, _) = processor("");
    let cases: [(&str, Option<&str>); 10] = [
        (
            r#"{"event_type":"alert","src_ip":"203.0.113.7","dest_ip":"192.0.2.10","alert":{"action":"allowed","signature":"EXAMPLE SSH scan"}}"#,
            Some("EXAMPLE SSH scan"),
        ),
        (
            r#"{"event_type":"http","src_ip":"203.0.113.7","dest_ip":"192.0.2.10","alert":{"signature":"not an alert record"}}"#,
            None,
        ),
        (
            r#"<14>Mar  1 12:00:06 PA-VM-01 1,2024/03/01 12:00:06,012345678901,THREAT,vulnerability,2816,2024/03/01 12:00:06,203.0.113.7,192.0.2.10,,198.51.100.30,inbound-web,,,web-browsing,vsys1,untrust,dmz,ethernet1/1,ethernet1/3,fwd-siem,2024/03/01 12:00:06,33014,1,51546,80,0,8080,0x2000,tcp,reset-both,"/cgi-bin/a,b.cgi",Example Exploit Attempt(91234),any,critical,client-to-server,7301234569,0x2000000000000000,United States,192.0.2.0-192.0.2.255,0,,0,,,0,,,,,,,,0"#,
            Some("Example Exploit Attempt(91234)"),
        ),
        (
            r#"<14>Mar  1 12:00:06 PA-VM-01 1,2024/03/01 12:00:06,012345678901,THREAT,url,2816,2024/03/01 12:00:06,203.0.113.7,192.0.2.10,,198.51.100.30,inbound-web,,,web-browsing,vsys1,untrust,dmz,ethernet1/1,ethernet1/3,fwd-siem,2024/03/01 12:00:06,33014,1,51546,80,0,8080,0x2000,tcp,alert,"www.example.com/",Some Category Page(12345),any,informational,client-to-server,7301234569,0x2000000000000000,United States,192.0.2.0-192.0.2.255,0,,0,,,0,,,,,,,,0"#,
            None,
        ),
        (
            r#"<14>1 2024-03-01T12:00:06Z srx01 RT_IDP - IDP_ATTACK_LOG_EVENT [junos@2636.1.1.1.2.129 source-address="203.0.113.9" destination-address="192.0.2.13" policy-name="Recommended" attack-name="HTTP:INVALID:MSNG-HTTP-VER" action="DROP"]"#,
            Some("HTTP:INVALID:MSNG-HTTP-VER"),
        ),
        (
            "<14>Mar  1 12:00:06 srx01 RT_IDP: RT_IDP_ATTACK_LOG_EVENT: IDP: at 1709294406, SIG Attack log <203.0.113.9/51544->192.0.2.13/80> for TCP protocol and service HTTP application HTTP by rule 1 of rulebase IPS in policy Recommended. attack: repeat=0, action=DROP, threat-severity=HIGH, name=HTTP:INVALID:MSNG-HTTP-VER, NAT <0.0.0.0:0->0.0.0.0:0>, time-elapsed=0",
            Some("HTTP:INVALID:MSNG-HTTP-VER"),
        ),
        (
            r#"<14>1 2024-03-01T12:00:00.000Z srx01 RT_FLOW - RT_FLOW_SESSION_CREATE [junos@2636.1.1.1.2.129 source-address="192.0.2.10" destination-address="198.51.100.20" policy-name="allow-web"]"#,
            None,
        ),
        (
            r#"<185>date=2024-03-01 time=12:00:00 devname="FGT-EDGE" devid="FGT60F0000000000" logid="0419016384" type="utm" subtype="ips" eventtype="signature" level="alert" srcip=203.0.113.50 dstip=192.0.2.10 action="dropped" attack="Nmap.Script.Scanner" msg="web_misc: Nmap.Script.Scanner,""#,
            Some("Nmap.Script.Scanner"),
        ),
        (
            r#"<185>date=2024-03-01 time=12:00:00 devname="FGT-EDGE" devid="FGT60F0000000000" logid="0211008192" type="utm" subtype="virus" eventtype="infected" srcip=203.0.113.51 dstip=192.0.2.10 action="blocked" virus="EICAR_TEST_FILE""#,
            Some("EICAR_TEST_FILE"),
        ),
        (
            "<113>Mar 01 2024 12:00:09 ftd01 : %FTD-1-430001: EventPriority: High, SrcIP: 203.0.113.52, DstIP: 192.0.2.10, SrcPort: 51544, DstPort: 80, Protocol: tcp, SignatureID: 1:58722:1, Message: SERVER-WEBAPP Example exploit attempt, Classification: Attempted Administrator Privilege Gain",
            Some("SERVER-WEBAPP Example exploit attempt"),
        ),
    ];
    for (line, threat) in cases {
        let stream = StreamId {
            topic: "fw",
            partition: 0,
            key: None,
        };
        let parsed = processor.registry.parse_line(line, stream).expect(line);
        assert_eq!(parsed.events.len(), 1, "{line}");
        assert_eq!(parsed.events[0].threat.as_deref(), threat, "{line}");
    }
}

#[test]
fn peer_is_the_other_end() {
    let src: IpAddr = "203.0.113.7".parse().unwrap();
    let dst: IpAddr = "10.0.0.1".parse().unwrap();
    let obs = [
        IpObservation {
            ip: src,
            role: Role::Source,
        },
        IpObservation {
            ip: dst,
            role: Role::Destination,
        },
    ];
    assert_eq!(peer_of(src, &[Role::Source], &obs), Some(dst));
    assert_eq!(peer_of(dst, &[Role::Destination], &obs), Some(src));
    assert_eq!(peer_of(src, &[Role::Unknown], &obs), None);
}

#[test]
fn remote_jobs_for_every_first_sighting_and_retries_once_due() {
    let (processor, _) = processor(
        "[filter]\nallow_documentation_ranges = true\n[providers.rdap]\nenabled = true\n",
    );
    let out = processor.process_message(
        &message("fw", 0, "src=203.0.113.7 dst=198.51.100.2"),
        Instant::now(),
    );
    // No local evidence: both withheld (unknown), both still looked up, rdap pending.
    assert!(records(&out).is_empty());
    let jobs: Vec<String> = out.remote.iter().map(|j| j.ip.to_string()).collect();
    assert_eq!(jobs, ["203.0.113.7", "198.51.100.2"]);
    let first = &out.remote[1];
    assert_eq!(first.record.intel["rdap"].status, ProviderStatus::Pending);
    assert!(!out.remote[1].priority.locally_suspicious);
    assert!(out.remote[1].priority.allowed, "no action: not denied");
    let sighting = first.sighting.clone();

    // Seen again: nothing to retry yet, so no job.
    let again = processor.process_message(&message("fw", 1, "src=198.51.100.2"), Instant::now());
    assert!(again.remote.is_empty() && again.outputs.is_empty());
    // A lookup got no answer and may be retried from now: the next sighting queues it
    // again (once), without publishing a record by itself.
    sighting.retry_from(SystemTime::now());
    let retried = processor.process_message(&message("fw", 2, "src=198.51.100.2"), Instant::now());
    assert_eq!(retried.remote.len(), 1);
    assert!(retried.outputs.is_empty());
    let after = processor.process_message(&message("fw", 3, "src=198.51.100.2"), Instant::now());
    assert!(after.remote.is_empty());
}

#[test]
fn without_remote_providers_no_jobs() {
    let (processor, _) = processor(
        "[filter]\nallow_documentation_ranges = true\n[publish]\nmin_verdict = \"unknown\"\n",
    );
    let out = processor.process_message(
        &message("fw", 0, "src=203.0.113.7 dst=198.51.100.2"),
        Instant::now(),
    );
    assert!(out.remote.is_empty());
    assert_eq!(records(&out)[0]["intel"]["rdap"]["status"], "disabled");
}

#[test]
fn a_flood_of_bad_lines_makes_at_most_the_limit_of_entries_and_one_summary() {
    let (processor, metrics) = processor(
        "[filter]\nallow_documentation_ranges = true\n[publish]\nmin_verdict = \"unknown\"\n\
         [dlq]\nmax_entries_per_message = 100\nmax_payload_bytes = 1000\n",
    );
    // 50,000 lines no format reads, then one that is an event.
    let mut text = "a\n".repeat(50_000);
    text.push_str("src=203.0.113.9 dst=198.51.100.2\n");
    let out = processor.process_message(&message("fw", 7, &text), Instant::now());
    let reasons = dlq_reasons(&out);
    assert_eq!(
        reasons.len(),
        101,
        "100 entries of their own and one summary"
    );
    assert!(reasons[..100].iter().all(|r| *r != "too_many_errors"));
    assert_eq!(reasons[100], "too_many_errors");
    let summary: serde_json::Value = serde_json::from_slice(
        &out.outputs
            .iter()
            .find(|o| o.kind == OutputKind::Dlq("too_many_errors"))
            .unwrap()
            .payload,
    )
    .unwrap();
    assert_eq!(summary["line"], serde_json::Value::Null);
    assert_eq!(summary["payload_truncated"], true);
    assert_eq!(summary["payload_bytes"], text.len());
    assert!(summary["error"].as_str().unwrap().contains("49900 more"));
    // The event after the flood still became its record.
    assert_eq!(records(&out).len(), 2);
    // Every bad line is counted.
    let counted = metrics
        .parse_errors
        .with_label_values(&["unrecognized_format"])
        .get();
    assert_eq!(counted, 50_000);
}

// i14: `max_line_bytes` holds each event of a batch, not the batch envelope.

/// The documentation addresses, `n` of them (at most 768), one per event.
fn doc_address(i: usize) -> String {
    let net = ["192.0.2", "198.51.100", "203.0.113"][i / 256];
    format!("{net}.{}", i % 256)
}

#[test]
fn a_megabyte_cloudwatch_envelope_of_small_events_has_every_event_scored() {
    let (processor, metrics) = processor(
        "[filter]\nallow_documentation_ranges = true\n[publish]\nmin_verdict = \"unknown\"\n",
    );
    // ~1 MB of 100-byte events, far past the default max_line_bytes (64 KiB).
    let events: Vec<String> = (0..10_000)
        .map(|i| {
            format!(
                r#"{{"id":"{i}","timestamp":1709294400000,"message":"action=block src={} dst=198.51.100.1 proto=tcp pad=xxxxxxxx"}}"#,
                doc_address(i % 768)
            )
        })
        .collect();
    let envelope = format!(
        r#"{{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"fw","logEvents":[{}]}}"#,
        events.join(",")
    );
    assert!(envelope.len() > 1_000_000, "{}", envelope.len());
    let out = processor.process_message(&message("cwl", 0, &envelope), Instant::now());
    assert_eq!(dlq_reasons(&out), Vec::<&str>::new());
    assert_eq!(
        metrics.events_parsed.with_label_values(&["kv"]).get(),
        10_000
    );
    let mut ips: Vec<_> = records(&out)
        .iter()
        .map(|r| r["ip"].as_str().unwrap().to_owned())
        .collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 768, "one record per address");
}

#[test]
fn an_event_hubs_records_envelope_holds_each_item_to_max_line_bytes() {
    let (processor, metrics) = processor(
        "[filter]\nallow_documentation_ranges = true\n[publish]\nmin_verdict = \"unknown\"\n\
         [parse]\nmax_line_bytes = 1024\nmax_decompressed_bytes = 1048576\n",
    );
    let mut items: Vec<String> = (0..100)
        .map(|i| {
            format!(
                r#"{{"time":"2024-03-01T12:00:00Z","category":"fw","source":{{"ip":"{}"}},"destination":{{"ip":"198.51.100.1"}}}}"#,
                doc_address(i)
            )
        })
        .collect();
    // One item past the limit: it alone is dead-lettered, as a line would be.
    items[50] = format!(
        r#"{{"source":{{"ip":"203.0.113.250"}},"note":"{}"}}"#,
        "x".repeat(2000)
    );
    let envelope = format!(r#"{{"records":[{}]}}"#, items.join(","));
    let out = processor.process_message(&message("eh", 0, &envelope), Instant::now());
    assert_eq!(dlq_reasons(&out), ["too_large"]);
    let ips: Vec<_> = records(&out)
        .iter()
        .map(|r| r["ip"].as_str().unwrap().to_owned())
        .collect();
    assert!(ips.contains(&"192.0.2.0".to_owned()) && ips.contains(&"192.0.2.99".to_owned()));
    assert!(!ips.contains(&"203.0.113.250".to_owned()), "{ips:?}");
    let format = records(&out)[0]["observed"]["format"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        metrics.events_parsed.with_label_values(&[&format]).get(),
        99
    );
    // A plain line or a single JSON event past the limit is still too large.
    for line in [
        format!("src=203.0.113.251 pad={}", "y".repeat(2000)),
        format!(
            r#"{{"source":{{"ip":"203.0.113.252"}},"note":"{}"}}"#,
            "z".repeat(2000)
        ),
        format!(
            r#"{{"source":{{"ip":"203.0.113.253"}},"broken":"{}"#,
            "z".repeat(2000)
        ),
    ] {
        let out = processor.process_message(&message("eh", 1, &line), Instant::now());
        assert_eq!(dlq_reasons(&out), ["too_large"], "{}", &line[..40]);
        assert!(records(&out).is_empty());
    }
}

// i14: remote lookups one message may queue are bounded.

#[test]
fn one_message_queues_at_most_max_lookups_and_the_rest_on_their_next_sighting() {
    let (processor, _) = processor(
        "[filter]\nallow_documentation_ranges = true\n[providers.rdap]\nenabled = true\n\
         [pipeline]\nmax_lookups_per_message = 10\n",
    );
    let line: Vec<String> = (0..30).map(|i| format!("src={}", doc_address(i))).collect();
    let text = line.join("\n");
    let out = processor.process_message(&message("fw", 0, &text), Instant::now());
    let jobs: Vec<String> = out.remote.iter().map(|j| j.ip.to_string()).collect();
    assert_eq!(jobs, (0..10).map(doc_address).collect::<Vec<_>>());
    // An address left out is looked up when it is seen again; one that was queued is not.
    let again = processor.process_message(
        &message(
            "fw",
            1,
            &format!("src={}\nsrc={}", doc_address(20), doc_address(3)),
        ),
        Instant::now(),
    );
    let jobs: Vec<String> = again.remote.iter().map(|j| j.ip.to_string()).collect();
    assert_eq!(jobs, [doc_address(20)]);
}

// i14: a panic keeps what the message made before it.

/// Remote queues that panic when asked about one address (a stand-in for any bug).
struct PanicsOn(IpAddr);

impl RemoteQueues for PanicsOn {
    fn sighted(&self, _ip: IpAddr, _sightings: u64) {}
    fn known_statuses(&self, ip: IpAddr, _now: SystemTime) -> Vec<(&'static str, ProviderIntel)> {
        assert_ne!(ip, self.0, "a bug met while enriching {ip}");
        Vec::new()
    }
}

#[test]
fn a_panic_mid_message_keeps_the_records_already_built_and_dead_letters_the_message() {
    let (processor, _) = processor(
        "[filter]\nallow_documentation_ranges = true\n[publish]\nmin_verdict = \"unknown\"\n",
    );
    let bad: IpAddr = "203.0.113.2".parse().unwrap();
    let processor = processor.with_remote_queues(Some(Arc::new(PanicsOn(bad))));
    let text = "src=203.0.113.1\nsrc=203.0.113.2\nsrc=203.0.113.3";
    let out = processor.process_batch(&[message("fw", 4, text)], Instant::now());
    let out = &out[0];
    // 203.0.113.1 is marked seen: without its record here it would never be published.
    let ips: Vec<_> = records(out)
        .iter()
        .map(|r| r["ip"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ips, ["203.0.113.1"]);
    assert_eq!(dlq_reasons(out), ["internal_error"]);
    let again = processor.process_message(&message("fw", 5, "src=203.0.113.1"), Instant::now());
    assert!(
        again.outputs.is_empty(),
        "203.0.113.1 is a repeat sighting now"
    );
}

// s1-scaled: the ingest and owner halves of scaled mode.

fn message_on(partition: i32, offset: i64, line: &str) -> RawEvent {
    let mut raw = message("fw", offset, line);
    raw.origin.partition = partition;
    raw.timestamp_ms = Some(1_795_428_000_000 + offset * 1000);
    raw
}

/// The sightings of an ingest batch as the owner consumer would read them back.
fn as_sightings(processed: &[Processed]) -> Vec<RawEvent> {
    processed
        .iter()
        .flat_map(|p| &p.outputs)
        .filter(|o| o.kind == OutputKind::Sighting)
        .enumerate()
        .map(|(offset, o)| RawEvent {
            payload: bytes::Bytes::from(o.payload.clone()),
            key: o.key.clone().map(bytes::Bytes::from),
            origin: Origin {
                topic: "threats.sightings".into(),
                partition: 0,
                offset: offset as i64,
            },
            timestamp_ms: None,
        })
        .collect()
}

fn by_ip(processed: &[Processed]) -> std::collections::BTreeMap<String, serde_json::Value> {
    processed
        .iter()
        .flat_map(records)
        .map(|mut r| {
            r.as_object_mut().unwrap().remove("generated_at");
            (r["ip"].as_str().unwrap().to_owned(), r)
        })
        .collect()
}

const SCALED_TEST: &str = "[filter]\nallow_documentation_ranges = true\n\
                           [publish]\nmin_verdict = \"unknown\"\n";

/// Repeats of 203.0.113.5 on partition 0 (three) and 1 (one); a deny with a threat name; an
/// address seen as source and as destination.
fn scaled_batch() -> Vec<RawEvent> {
    vec![
        message_on(0, 0, "src=203.0.113.5 dst=198.51.100.7 action=deny"),
        message_on(0, 1, "src=203.0.113.5 dst=198.51.100.8 action=allow"),
        message_on(1, 0, "src=198.51.100.7 dst=203.0.113.5"),
        message_on(0, 2, "src=203.0.113.5 dst=10.0.0.1"),
        message_on(
            1,
            1,
            r#"{"@timestamp":"2026-11-23T09:59:58Z","source":{"ip":"203.0.113.9","port":51514},"destination":{"ip":"198.51.100.9","port":22},"network":{"transport":"tcp","direction":"inbound"},"event":{"action":"denied"},"rule":{"name":"ET SCAN"},"threat":{"indicator":{"name":"ET SCAN Nmap"}}}"#,
        ),
    ]
}

#[test]
fn the_ingest_and_owner_halves_make_the_records_the_whole_processor_makes() {
    let (whole, whole_metrics) = processor(SCALED_TEST);
    let (halves, metrics) = processor(SCALED_TEST);
    let batch = scaled_batch();
    let single = whole.process_batch(&batch, Instant::now());
    let ingested = halves.ingest_batch(&batch, Instant::now());
    assert!(
        ingested
            .iter()
            .all(|p| records(p).is_empty() && p.remote.is_empty()),
        "the ingest half makes sightings only"
    );
    let owned = halves.own_batch(&as_sightings(&ingested), Instant::now());
    let (from_single, from_halves) = (by_ip(&single), by_ip(&owned));
    assert_eq!(from_single.len(), 5, "{from_single:#?}");
    // s12: the first event's own time and connection fields cross the sightings topic too.
    let scan = &from_single["203.0.113.9"];
    assert_eq!(scan["event_time"], "2026-11-23T09:59:58Z", "{scan:#}");
    assert_eq!(scan["observed"]["dst_port"], 22, "{scan:#}");
    assert_eq!(from_single, from_halves);
    // Both windows counted every sighting, the folded ones included.
    let seen = |p: &Processor, ip: &str| p.dedup().observe(ip.parse().unwrap(), SystemTime::now());
    for ip in ["203.0.113.5", "198.51.100.7", "203.0.113.9"] {
        assert_eq!(
            seen(&whole, ip).sighting.count(),
            seen(&halves, ip).sighting.count(),
            "{ip}"
        );
    }
    assert_eq!(
        whole_metrics.dedup_hits.get(),
        metrics.dedup_hits.get(),
        "dedup_hits_total"
    );
}

#[test]
fn repeats_within_a_batch_and_partition_fold_into_the_first_messages_sighting() {
    let (processor, metrics) = processor(SCALED_TEST);
    let ingested = processor.ingest_batch(&scaled_batch(), Instant::now());
    let sightings: Vec<(i64, i32, crate::stages::sighting::IpSighting)> = ingested
        .iter()
        .flat_map(|p| {
            p.outputs
                .iter()
                .filter(|o| o.kind == OutputKind::Sighting)
                .map(|o| {
                    let s = crate::stages::sighting::IpSighting::decode(&o.payload).unwrap();
                    assert_eq!(o.key.as_deref(), Some(s.ip.to_string().as_bytes()));
                    (p.origin.offset, p.origin.partition, s)
                })
        })
        .collect();
    let of = |ip: &str, partition: i32| {
        sightings
            .iter()
            .filter(|(_, p, s)| *p == partition && s.ip.to_string() == ip)
            .map(|(offset, _, s)| (*offset, s.count))
            .collect::<Vec<_>>()
    };
    // Partition 0: three messages, one sighting on the first, counting three; its latest is
    // the third message's time.
    assert_eq!(of("203.0.113.5", 0), [(0, 3)]);
    let first = sightings
        .iter()
        .find(|(o, p, s)| (*o, *p) == (0, 0) && s.ip.to_string() == "203.0.113.5")
        .unwrap();
    assert_eq!(first.2.last_seen_ms - first.2.seen_at_ms, 2000);
    assert_eq!(first.2.observed.action.as_deref(), Some("deny"));
    assert!(!first.2.allowed);
    // Partition 1's sighting of the same address is its own.
    assert_eq!(of("203.0.113.5", 1), [(0, 1)]);
    assert_eq!(of("198.51.100.7", 0), [(0, 1)]);
    assert_eq!(of("198.51.100.7", 1), [(0, 1)]);
    assert_eq!(metrics.scale.sightings_folded.get(), 2);
    assert_eq!(
        metrics.scale.sightings_published.get(),
        sightings.len() as u64
    );
}

#[test]
fn a_sightings_message_that_is_not_a_sighting_is_dead_lettered_and_the_rest_are_owned() {
    let (processor, _) = processor(SCALED_TEST);
    let ingested = processor.ingest_batch(&scaled_batch()[..1], Instant::now());
    let mut batch = as_sightings(&ingested);
    let mut bad = batch[0].clone();
    bad.payload = bytes::Bytes::from_static(br#"{"schema":"threatsift.sighting/1","ip":"x"}"#);
    bad.origin.offset = 99;
    batch.insert(0, bad);
    let owned = processor.own_batch(&batch, Instant::now());
    assert_eq!(owned.len(), batch.len());
    assert_eq!(dlq_reasons(&owned[0]), ["malformed"]);
    let entry: serde_json::Value = serde_json::from_slice(&owned[0].outputs[0].payload).unwrap();
    assert!(
        entry["error"]
            .as_str()
            .unwrap()
            .contains("malformed sighting event"),
        "{entry}"
    );
    assert_eq!(entry["offset"], 99);
    assert_eq!(
        owned[1..].iter().map(|p| records(p).len()).sum::<usize>(),
        2
    );
}

// ---- s2-state: the state changelog's first write goes out with the message.

fn states_of(processed: &Processed) -> Vec<crate::state::StateRecord> {
    processed
        .outputs
        .iter()
        .filter(|o| o.kind == OutputKind::State)
        .map(|o| {
            let state = crate::state::decode(&o.payload).unwrap();
            assert_eq!(o.key.as_deref(), Some(state.ip.to_string().as_bytes()));
            state
        })
        .collect()
}

#[test]
fn with_the_changelog_every_record_built_yields_its_state_withheld_ones_too() {
    let (with, _) =
        processor("[filter]\nallow_documentation_ranges = true\n[scale]\nchangelog = true\n");
    let out = with.process_message(
        &message("fw", 7, "src=203.0.113.40 dst=198.51.100.40"),
        Instant::now(),
    );
    assert!(records(&out).is_empty(), "below min_verdict: withheld");
    let states = states_of(&out);
    let ips: Vec<String> = states.iter().map(|s| s.ip.to_string()).collect();
    assert_eq!(ips, ["203.0.113.40", "198.51.100.40"]);
    assert_eq!(states[0].published.revision, 0);
    assert_eq!(states[0].sightings, 1);
    assert_eq!(states[0].origin.offset, 7);
    let repeat = with.process_message(
        &message("fw", 8, "src=203.0.113.40 dst=198.51.100.41"),
        Instant::now(),
    );
    let ips: Vec<String> = states_of(&repeat)
        .iter()
        .map(|s| s.ip.to_string())
        .collect();
    assert_eq!(
        ips,
        ["198.51.100.41"],
        "a repeat sighting writes no state of its own"
    );
    let (without, _) = processor("[filter]\nallow_documentation_ranges = true\n");
    let out = without.process_message(&message("fw", 0, "src=203.0.113.42"), Instant::now());
    assert!(states_of(&out).is_empty(), "no changelog, no state");
}
