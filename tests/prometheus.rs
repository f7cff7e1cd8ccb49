//! A real Prometheus (Debian's `prometheus`, installed by `scripts/ops-tools.sh`) on 127.0.0.1
//! scrapes the daemon running against the test broker, with `deploy/prometheus/alerts.yml`
//! loaded. Through Prometheus' HTTP API: the core series arrive with the daemon's real values,
//! every alert rule loads and evaluates, and every query of `deploy/grafana/threatsift.json`
//! (panels and template variables) returns a series.
#![allow(clippy::disallowed_methods)] // plain test threads may sleep; no runtime is blocked

mod common;
mod mock_api;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::*;

const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// How long Prometheus has to show what the daemon did; expiry fails the test.
const DEADLINE: Duration = Duration::from_secs(120);

/// The Prometheus server of one test, stopped when dropped.
struct Prometheus {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Prometheus {
    /// Starts it on a free port with temporary storage, scraping `target` every second as job
    /// `threatsift`, with the project's alert rules.
    fn start(dir: &Path, target: u16) -> Prometheus {
        let binary = Path::new("/usr/bin/prometheus");
        assert!(
            binary.is_file(),
            "/usr/bin/prometheus is missing: run scripts/ops-tools.sh install (scripts/test.sh does)"
        );
        let port = free_port();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {REPO}/deploy/prometheus/alerts.yml\n\
                 scrape_configs:\n  - job_name: threatsift\n    static_configs:\n      \
                 - targets: [\"127.0.0.1:{target}\"]\n"
            ),
        )
        .expect("prometheus config");
        let log = dir.join("prometheus.log");
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start prometheus");
        Prometheus { child, port, log }
    }

    /// `GET path` of the HTTP API as JSON `data`; `None` while it does not answer "success".
    fn api(&self, path: &str) -> Option<Value> {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        // HTTP/1.0: the body comes whole, never chunked, and the connection closes after it.
        write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let (_, body) = response.split_once("\r\n\r\n")?;
        let json: Value = serde_json::from_str(body).ok()?;
        (json["status"] == "success").then(|| json["data"].clone())
    }

    /// The series an instant query returns (empty while there are none).
    fn query(&self, promql: &str) -> Vec<Value> {
        self.api(&format!("/api/v1/query?query={}", percent_encode(promql)))
            .and_then(|data| data["result"].as_array().cloned())
            .unwrap_or_default()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Polls `pending` (which returns what is still missing) until nothing is; panics with what
/// is still missing when [`DEADLINE`] passes.
async fn wait_for(
    what: &str,
    prometheus: &Prometheus,
    daemon: &Daemon,
    pending: impl Fn() -> Vec<String>,
) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let missing = pending();
        if missing.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "{what}: still missing after {DEADLINE:?}:\n  {}\n--- prometheus log:\n{}\n--- daemon log:\n{}",
                missing.join("\n  "),
                prometheus.log_text(),
                daemon.log_text()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every PromQL expression of the dashboard: each panel target's `expr`, and each query
/// variable's `label_values(metric, label)` as `count by (label) (metric)`, with the template
/// variables replaced the way Grafana does for "All" and a short rate window.
fn dashboard_queries() -> Vec<(String, String)> {
    let path = Path::new(REPO).join("deploy/grafana/threatsift.json");
    let text = std::fs::read_to_string(&path).expect("deploy/grafana/threatsift.json");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let substitute = |expr: &str| {
        expr.replace("$__rate_interval", "1m")
            .replace("$instance", ".+")
            .replace("$topic", ".+")
    };
    let mut queries = Vec::new();
    let mut panels: Vec<&Value> = dashboard["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    while let Some(panel) = panels.pop() {
        // Rows keep their collapsed panels inside.
        panels.extend(panel["panels"].as_array().into_iter().flatten());
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                let title = panel["title"].as_str().unwrap_or("?");
                queries.push((format!("panel {title:?}"), substitute(expr)));
            }
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if variable["type"] != "query" {
            continue;
        }
        let query = variable["query"]["query"]
            .as_str()
            .or(variable["query"].as_str())
            .unwrap_or_default();
        let inner = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable query {query:?} is not label_values(...)"));
        let (metric, label) = inner.rsplit_once(',').expect("label_values(metric, label)");
        queries.push((
            format!("variable ${}", variable["name"].as_str().unwrap_or("?")),
            substitute(&format!("count by ({}) ({})", label.trim(), metric.trim())),
        ));
    }
    queries
}

fn vt_flagged() -> Value {
    serde_json::json!({"data": {"id": "198.51.100.20", "type": "ip_address", "attributes": {
        "as_owner": "Example Hosting Ltd", "asn": 64500, "country": "NL",
        "network": "198.51.100.0/24", "regional_internet_registry": "RIPE NCC",
        "reputation": -11,
        "last_analysis_stats": {"harmless": 58, "malicious": 4, "suspicious": 1, "undetected": 31, "timeout": 0},
        "last_analysis_results": {}
    }}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_daemon_loads_the_rules_and_answers_every_dashboard_query() {
    let queries = dashboard_queries();
    assert!(queries.len() >= 15, "{queries:?}");
    let topics = create_topics(2).await;
    let dir = tempfile::tempdir().unwrap();
    let blocklist = write_blocklist(dir.path(), &["203.0.113.0/25"]);
    let (vt_url, _vt_seen) = mock_api::mock(
        &mock_api::VIRUSTOTAL,
        mock_api::json_answer(200, vt_flagged()),
    )
    .await;
    // RDAP at a port nothing listens on: every lookup fails, the circuit opens after five, and
    // later addresses are skipped with reason circuit_open (the dashboard's circuit panel).
    let closed = free_port();
    // One worker, one message in flight and the smallest channels: the sink waits for each
    // delivery, so the stages before it wait for room (the backpressure panel).
    let extra = format!(
        "[pipeline]\nworkers = 1\nmax_in_flight = 1\nbatch_max_messages = 1\nchannel_capacity = 2\n\
         [intel]\nremote_max_wait = \"1s\"\n\
         [providers.virustotal]\nenabled = true\nbase_url = \"{vt_url}/api/v3\"\n\
         api_key = \"k3y-prometheus-test\"\nper_minute = 6000\n\
         [providers.rdap]\nenabled = true\nbase_url = \"http://127.0.0.1:{closed}\"\n"
    );
    let (config, port) = write_config(dir.path(), &topics, &blocklist, &extra);
    // Listed and unlisted addresses, each seen twice (dedup hits), and lines no parser reads
    // (parse errors, DLQ).
    let mut events = Vec::new();
    for round in 0..2 {
        for i in 1..=40 {
            events.push(ecs_event(&format!("203.0.113.{i}"), "10.0.0.1"));
            events.push(ecs_event(&format!("198.51.100.{i}"), "10.0.0.2"));
        }
        events.push(format!("garbage line {round} that no parser reads").into_bytes());
    }
    let total = events.len();
    produce(&topics.input, None, &events).await;

    let mut daemon = Daemon::start(&config, port, dir.path());
    daemon.wait_ready(Duration::from_secs(60));
    let prometheus = Prometheus::start(dir.path(), port);

    // The scrape works and carries the daemon's own numbers.
    let completed = format!("threatsift_messages_completed_total{{job=\"threatsift\"}} == {total}");
    wait_for(
        "the scrape of every finished message",
        &prometheus,
        &daemon,
        || {
            if prometheus.query(&completed).is_empty() {
                vec![completed.clone()]
            } else {
                Vec::new()
            }
        },
    )
    .await;
    let core = [
        "up{job=\"threatsift\"} == 1",
        "threatsift_events_consumed_total",
        "threatsift_events_parsed_total",
        "threatsift_records_published_total{verdict=\"malicious\"} > 0",
        "threatsift_dlq_messages_total",
        "threatsift_parse_errors_total",
        "threatsift_consumer_lag_messages",
        "threatsift_dedup_hits_total > 0",
        "threatsift_enrich_requests_total{provider=\"virustotal\", status=\"ok\"} > 0",
        "threatsift_provider_up{provider=\"virustotal\"} == 1",
        "threatsift_event_to_record_seconds_count > 0",
    ];
    wait_for("core series", &prometheus, &daemon, || {
        core.iter()
            .filter(|q| prometheus.query(q).is_empty())
            .map(|q| (*q).to_owned())
            .collect()
    })
    .await;

    // Every rule of alerts.yml loaded and evaluated without error.
    let rules_file = std::fs::read_to_string(Path::new(REPO).join("deploy/prometheus/alerts.yml"))
        .expect("alerts.yml");
    let alerts: Vec<String> = rules_file
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: ").map(str::to_owned))
        .collect();
    wait_for(
        "alert rules evaluated with health ok",
        &prometheus,
        &daemon,
        || {
            let data = prometheus.api("/api/v1/rules").unwrap_or(Value::Null);
            let healthy: Vec<String> = data["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
                .filter(|r| r["health"] == "ok")
                .filter_map(|r| r["name"].as_str().map(str::to_owned))
                .collect();
            alerts
                .iter()
                .filter(|a| !healthy.contains(a))
                .cloned()
                .collect()
        },
    )
    .await;

    // Every dashboard query returns a series.
    wait_for(
        "dashboard queries with a series",
        &prometheus,
        &daemon,
        || {
            queries
                .iter()
                .filter(|(_, q)| prometheus.query(q).is_empty())
                .map(|(where_, q)| format!("{where_}: {q}"))
                .collect()
        },
    )
    .await;

    // The records the scrape counted are real: valid threat records on the output topic.
    let records = read_all(&topics.output);
    assert!(!records.is_empty(), "no records on the output topic");
    let validator = record_validator();
    for record in &records {
        assert_valid_record(&validator, &record.json());
    }
}
