//! `threatsift report` end to end: records from a JSON Lines file and from the real broker's
//! topic, all three formats, providers that all answered 401, hostile strings, reproducible
//! bytes, and the optional narrative against a local stub of a chat completions endpoint.

#![allow(clippy::disallowed_methods)]

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use common::threatsift;

/// A threat record as the daemon publishes it, checked against the record schema so that no
/// test feeds the report something the daemon could never write.
fn record(ip: &str, score: u32, verdict: &str, severity: &str, status: &str) -> Value {
    let provider = |detail: &str| json!({"status": status, "detail": detail});
    common::valid_record(json!({
        "schema": "threatsift.threat/1", "ip": ip, "ip_version": 4,
        "verdict": verdict, "severity": severity, "score": score,
        "reasons": if score > 0 {
            json!([{"source": "feeds", "detail": "listed by feed blocklist-a", "weight": score}])
        } else { json!([]) },
        "indicator": "Malicious IP Detected",
        "first_seen": "2026-11-23T10:00:00Z", "last_seen": "2026-11-23T10:05:00Z",
        "sightings": 3, "roles": ["source"],
        "observed": {"format": "fortigate", "vendor": "Fortinet", "product": "FortiGate",
                     "action": "accept", "peer_ip": "192.0.2.10", "rule": "wan-in",
                     "topic": "firewall", "partition": 0, "offset": 1},
        "network": {"asn": null, "as_org": null, "country": null, "rir": null, "cidr": null},
        "intel": {
            "virustotal": provider("HTTP 401 WrongCredentialsError"),
            "abuseipdb": provider("HTTP 401"),
            "greynoise": provider("HTTP 401"),
            "otx": provider("HTTP 401"),
            "feeds": {"status": "ok", "matches": []}
        },
        "revision": 1, "generated_at": "2026-11-23T10:05:01Z"
    }))
}

fn write_lines(path: &Path, records: &[Value]) {
    let text: String = records.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(path, text).unwrap();
}

#[test]
fn every_provider_401_gives_data_gaps_and_no_claims_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("records.jsonl");
    write_lines(
        &input,
        &[
            record("203.0.113.7", 75, "malicious", "high", "unauthorized"),
            record("198.51.100.9", 0, "unknown", "info", "unauthorized"),
        ],
    );
    let mut outputs = Vec::new();
    for format in ["md", "json", "html"] {
        let out = threatsift(
            &[
                "report",
                "--input",
                input.to_str().unwrap(),
                "--format",
                format,
                "--date",
                "2026-11-24",
            ],
            &[],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let lower = text.to_lowercase();
        assert!(
            text.contains("VirusTotal: 401 Unauthorized — check the configured API key"),
            "{format}: {text}"
        );
        assert!(text.contains("AbuseIPDB: 401 Unauthorized"), "{format}");
        for claim in ["compromis", "leaked", "stolen", " is clean", " are clean"] {
            assert!(!lower.contains(claim), "{format} claims {claim:?}:\n{text}");
        }
        // Whole words only (the HTML's CSP says 'unsafe-inline').
        let words: Vec<&str> = lower.split(|c: char| !c.is_ascii_alphabetic()).collect();
        assert!(
            !words.contains(&"safe") && !words.contains(&"clean"),
            "{format}:\n{text}"
        );
        assert!(
            text.contains("2026-11-24"),
            "{format}: the explicit date is used"
        );
        outputs.push(text);
    }
    assert!(outputs[0].contains("# Threat Report"));
    assert!(outputs[0].contains("Summary: Found 1 suspicious IP address."));
    assert!(outputs[0].contains("### Threat #1 - 203.0.113.7"));
    assert!(outputs[0].contains("Data Gaps"));
    let report: Value = serde_json::from_str(&outputs[1]).unwrap();
    assert_eq!(report["schema"], "threatsift.report/1");
    assert_eq!(report["data_gaps"].as_array().unwrap().len(), 4);
    assert!(outputs[2].starts_with("<!DOCTYPE html>") || outputs[2].starts_with("<!doctype html>"));

    // Byte for byte the same on a second run, and --output writes the same bytes.
    let file = dir.path().join("report.md");
    let again = threatsift(
        &[
            "report",
            "--input",
            input.to_str().unwrap(),
            "--date",
            "2026-11-24",
            "--output",
            file.to_str().unwrap(),
        ],
        &[],
    );
    assert!(again.status.success());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), outputs[0]);
}

#[test]
fn hostile_strings_are_escaped_and_bad_lines_are_skipped_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("records.jsonl");
    let mut hostile = record("203.0.113.8", 80, "malicious", "high", "disabled");
    hostile["indicator"] =
        json!("<script>alert(1)</script> [click](http://evil.example) \n# owned");
    hostile["observed"]["rule"] = json!("rule|with|pipes `code` \u{1b}[31m");
    hostile["observed"]["vendor"] = json!("x".repeat(10_000));
    std::fs::write(
        &input,
        format!("{hostile}\nnot json at all\n{{\"schema\":\"other/1\"}}\n"),
    )
    .unwrap();
    // A capped value: 299 characters and an ellipsis.
    let capped_vendor = format!("{}…", "x".repeat(299));
    let md = threatsift(&["report", "--input", input.to_str().unwrap()], &[]);
    assert_skipped_two_lines_and_succeeded(&md);
    let md = String::from_utf8(md.stdout).unwrap();
    assert!(
        md.contains("Summary: Found 1 suspicious IP address.\n"),
        "{md}"
    );
    assert!(md.contains("\n### Threat #1 - 203.0.113.8\n"), "{md}");
    // What Markdown would read as syntax where it stands is escaped and the newline folded:
    // one table row, no link, no heading, no raw tag.
    for line in [
        r"| Indicator | \<script>alert(1)\</script> \[click\](http\://evil.example) # owned |",
        r"- Indicator: \<script>alert(1)\</script> \[click\](http\://evil.example) # owned",
        "- Rule: rule\\|with\\|pipes \\`code\\` \\[31m",
        &format!("- Seen in: format fortigate, vendor {capped_vendor}, product FortiGate"),
    ] {
        assert!(
            md.lines().any(|l| l == line),
            "missing line {line:?} in:\n{md}"
        );
    }
    assert!(
        !unescaped(&md, "<script>") && !unescaped(&md, "](http"),
        "{md}"
    );
    assert!(!md.contains('\u{1b}'));
    assert!(!md.lines().any(|l| l.starts_with("# owned")), "{md}");
    assert!(
        md.lines().all(|l| l.chars().count() < 2_000),
        "a value was not capped"
    );
    let html = threatsift(
        &[
            "report",
            "--input",
            input.to_str().unwrap(),
            "--format",
            "html",
        ],
        &[],
    );
    assert_skipped_two_lines_and_succeeded(&html);
    let html = String::from_utf8(html.stdout).unwrap();
    for line in [
        "<tr><th scope=\"row\">Indicator</th><td>&lt;script&gt;alert(1)&lt;/script&gt; [click](http://evil.example) # owned</td></tr>",
        "<tr><th scope=\"row\">Rule</th><td>rule|with|pipes `code` [31m</td></tr>",
        &format!("<tr><th scope=\"row\">Vendor</th><td>{capped_vendor}</td></tr>"),
    ] {
        assert!(html.lines().any(|l| l == line), "missing line {line:?} in:\n{html}");
    }
    assert!(
        !html.contains("<script>alert") && !html.contains('\u{1b}'),
        "{html}"
    );
}

/// Exit 0, and one note on stderr naming the first skipped line (line 2 of the input).
fn assert_skipped_two_lines_and_succeeded(out: &std::process::Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("skipped 2 input line(s)") && stderr.contains("records.jsonl:2:"),
        "{stderr}"
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec!["report"],
        vec!["report", "--input", "x.jsonl", "--format", "pdf"],
        vec!["report", "--input", "x.jsonl", "--date", "24/11/2026"],
        vec!["report", "--input", "/no/such/file.jsonl"],
    ] {
        let out = threatsift(&args, &[]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_reads_the_latest_revision_per_address_from_the_topic() {
    let topics = common::create_topics(1).await;
    let mut old = record("203.0.113.20", 80, "malicious", "high", "disabled");
    old["revision"] = json!(1);
    let mut new = record("203.0.113.20", 35, "suspicious", "low", "disabled");
    new["revision"] = json!(2);
    let other = record("198.51.100.20", 90, "malicious", "critical", "disabled");
    let payloads: Vec<Vec<u8>> = [old, other, new]
        .iter()
        .map(|r| r.to_string().into_bytes())
        .chain([b"not a record".to_vec()])
        .collect();
    // The last record alone: this tansu build reports a wrong high watermark when the last
    // batch holds several records (see `produce_last_alone`); the first three go out batched.
    common::produce_last_alone(&topics.output, 0, &payloads).await;
    let brokers = common::brokers();
    let output = topics.output.clone();
    let out = tokio::task::spawn_blocking(move || {
        threatsift(
            &["report", "--topic", &output, "--format", "json"],
            &[("THREATSIFT__KAFKA__BROKERS", brokers.as_str())],
        )
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("skipped 1"), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let threats: Vec<(String, u64)> = report["threats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["ip"].as_str().unwrap().to_owned(),
                t["score"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        threats,
        [
            ("198.51.100.20".to_owned(), 90),
            ("203.0.113.20".to_owned(), 35)
        ]
    );
}

/// (Authorization header, body) of each request the stub saw.
type Requests = Arc<Mutex<Vec<(String, String)>>>;

/// A stub chat completions endpoint: records what it was sent; answers by `mode`.
async fn stub_model(mode: &'static str) -> (String, Requests) {
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;
    let seen: Requests = Arc::default();
    let app = axum::Router::new()
        .route(
            "/v1/chat/completions",
            post(
                move |State(seen): State<Requests>,
                 headers: HeaderMap,
                 body: String| async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    seen.lock().unwrap().push((auth, body));
                    match mode {
                        "ok" => (
                            StatusCode::OK,
                            json!({"id": "chatcmpl-1", "object": "chat.completion",
                                   "choices": [{"index": 0, "finish_reason": "stop",
                                                "message": {"role": "assistant",
                                                            "content": "Two addresses stand out. <b>Block</b> 203.0.113.7."}}]})
                            .to_string(),
                        ),
                        // Never answers: the client's timeout is the only way out.
                        "silent" => std::future::pending().await,
                        _ => (
                            StatusCode::INTERNAL_SERVER_ERROR,
                            json!({"error": {"message": "server error", "type": "server_error"}}).to_string(),
                        ),
                    }
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn narrative_is_added_labelled_and_a_failing_model_changes_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("records.jsonl");
    write_lines(
        &input,
        &[record("203.0.113.7", 75, "malicious", "high", "disabled")],
    );
    let key = "sk-test-secret-9f8e7d";
    let run = |url: String, timeout: &'static str| {
        let input = input.clone();
        tokio::task::spawn_blocking(move || {
            threatsift(
                &[
                    "report",
                    "--input",
                    input.to_str().unwrap(),
                    "--date",
                    "2026-11-24",
                ],
                &[
                    ("THREATSIFT__REPORT__NARRATIVE__ENABLED", "true"),
                    ("THREATSIFT__REPORT__NARRATIVE__BASE_URL", url.as_str()),
                    ("THREATSIFT__REPORT__NARRATIVE__MODEL", "stub-model"),
                    ("THREATSIFT__REPORT__NARRATIVE__API_KEY", key),
                    ("THREATSIFT__REPORT__NARRATIVE__TIMEOUT", timeout),
                ],
            )
        })
    };
    let plain = threatsift(
        &[
            "report",
            "--input",
            input.to_str().unwrap(),
            "--date",
            "2026-11-24",
        ],
        &[],
    );
    let plain = String::from_utf8(plain.stdout).unwrap();

    let (url, seen) = stub_model("ok").await;
    let out = run(url, "10s").await.unwrap();
    assert!(out.status.success());
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(
        md.contains("## Narrative (written by a language model: stub-model; not verified)"),
        "{md}"
    );
    assert!(
        md.contains("Two addresses stand out") && !unescaped(&md, "<b>"),
        "{md}"
    );
    assert!(
        md.starts_with(plain.trim_end()),
        "the deterministic sections are unchanged"
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, format!("Bearer {key}"));
    let sent: Value = serde_json::from_str(&seen[0].1).unwrap();
    assert_eq!(sent["model"], "stub-model");
    assert!(sent["messages"][1]["content"]
        .as_str()
        .unwrap()
        .contains("203.0.113.7"));

    for (mode, timeout, why) in [
        ("fail", "10s", "HTTP 500"),
        ("silent", "1s", "did not answer within"),
    ] {
        let (url, _) = stub_model(mode).await;
        // A generous deadline: its expiry means the client's timeout never fired.
        let out = tokio::time::timeout(Duration::from_secs(120), run(url, timeout))
            .await
            .unwrap_or_else(|_| panic!("{mode}: the report never finished"))
            .unwrap();
        assert!(out.status.success(), "{mode}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("without the narrative") && stderr.contains(why),
            "{mode}: {stderr}"
        );
        assert!(!stderr.contains(key), "{mode}: the key leaked into stderr");
        let md = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            md, plain,
            "{mode}: a failed narrative leaves the report exactly as without it"
        );
    }
}

// t15-lifecycle: `report --topic` over several partitions, and `--since` by message time.

/// Produces each payload with its message timestamp (ms since the epoch) to `partition`, the
/// last one in a batch of its own (see `common::produce_last_alone`).
async fn produce_at(topic: &str, partition: i32, timed: &[(i64, Vec<u8>)]) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", common::brokers())
        .create()
        .expect("producer");
    let Some((last, rest)) = timed.split_last() else {
        return;
    };
    for batch in [rest, std::slice::from_ref(last)] {
        let sends = batch.iter().map(|(at, payload)| {
            producer.send(
                FutureRecord::<(), [u8]>::to(topic)
                    .partition(partition)
                    .timestamp(*at)
                    .payload(&payload[..]),
                Duration::from_secs(30),
            )
        });
        for sent in futures::future::join_all(sends).await {
            sent.map_err(|(e, _)| e).expect("produce");
        }
    }
}

/// `threatsift report --topic topic [extra…] --format json`: its exit status and the addresses
/// of its threats, sorted.
async fn report_topic_ips(topic: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["report", "--topic", topic, "--format", "json"];
    args.extend_from_slice(extra);
    let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
    let brokers = common::brokers();
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        threatsift(&args, &[("THREATSIFT__KAFKA__BROKERS", brokers.as_str())])
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut ips: Vec<String> = report["threats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["ip"].as_str().unwrap().to_owned())
        .collect();
    ips.sort();
    ips
}

fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since_epoch.as_millis()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_reads_every_partition_of_the_topic() {
    let topics = common::create_topics(3).await;
    let now = now_ms();
    let mut expected = Vec::new();
    for partition in 0..3 {
        let timed: Vec<(i64, Vec<u8>)> = (1..=3)
            .map(|i| {
                let ip = format!("203.0.113.{}", partition * 10 + i);
                expected.push(ip.clone());
                let record = record(&ip, 80, "malicious", "high", "disabled");
                (now, record.to_string().into_bytes())
            })
            .collect();
        produce_at(&topics.input, partition, &timed).await;
    }
    expected.sort();
    assert_eq!(report_topic_ips(&topics.input, &[]).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_since_keeps_only_records_published_within_the_window() {
    let topics = common::create_topics(2).await;
    let now = now_ms();
    let two_days_ago = now - 48 * 3600 * 1000;
    let one_hour_ago = now - 3600 * 1000;
    let at = |when: i64, ip: &str| {
        let record = record(ip, 80, "malicious", "high", "disabled");
        (when, record.to_string().into_bytes())
    };
    // Partition 0: old, then recent. Partition 1: only old, so nothing of it is in the window.
    produce_at(
        &topics.input,
        0,
        &[
            at(two_days_ago, "198.51.100.1"),
            at(two_days_ago, "198.51.100.2"),
            at(one_hour_ago, "203.0.113.1"),
            at(now, "203.0.113.2"),
        ],
    )
    .await;
    produce_at(&topics.input, 1, &[at(two_days_ago, "198.51.100.3")]).await;

    assert_eq!(
        report_topic_ips(&topics.input, &["--since", "24h"]).await,
        ["203.0.113.1", "203.0.113.2"]
    );
    assert_eq!(
        report_topic_ips(&topics.input, &[]).await,
        [
            "198.51.100.1",
            "198.51.100.2",
            "198.51.100.3",
            "203.0.113.1",
            "203.0.113.2"
        ],
        "without --since every record counts"
    );
}

/// Whether `needle` occurs in Markdown `text` without a backslash escaping its first character
/// (the renderer escapes only what would be read as syntax, so `\<b>` is the text "<b>").
fn unescaped(text: &str, needle: &str) -> bool {
    text.match_indices(needle)
        .any(|(at, _)| !text[..at].ends_with('\\'))
}
