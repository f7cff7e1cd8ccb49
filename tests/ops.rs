//! The installed-daemon view (issue 13): `threatsift run` from a directory that is not the
//! checkout, with the built-in defaults alone and with a config file whose relative paths are
//! taken from the file's own directory; and the stop timeouts of every deploy file (systemd,
//! Compose, Kubernetes) outlasting the drain they must wait for.
#![allow(clippy::disallowed_methods)] // plain test threads may sleep; no runtime is blocked

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The daemon started with `args` in the working directory `cwd` (nothing of the checkout
/// there), with `envs` added; its stderr goes to a file in `logs`.
fn daemon_in(cwd: &Path, logs: &Path, port: u16, args: &[&str], envs: &[(&str, &str)]) -> Daemon {
    let log = logs.join(format!("daemon-{}.log", unique("log")));
    let stderr = std::fs::File::create(&log).expect("log file");
    let mut command = Command::new(env!("CARGO_BIN_EXE_threatsift"));
    command
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "info")
        .env_remove("THREATSIFT_CONFIG")
        .stdout(Stdio::null())
        .stderr(stderr);
    for (key, value) in envs {
        command.env(key, value);
    }
    let child = command.spawn().expect("start daemon");
    Daemon { child, log, port }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_only_the_built_in_defaults_starts_from_an_empty_directory() {
    let topics = create_topics(1).await;
    let empty = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let brokers = brokers();
    // Only what must differ on a shared test broker; no config file, no feed file anywhere.
    let mut daemon = daemon_in(
        empty.path(),
        logs.path(),
        port,
        &["run"],
        &[
            ("THREATSIFT__KAFKA__BROKERS", brokers.as_str()),
            ("THREATSIFT__KAFKA__GROUP_ID", topics.group.as_str()),
            ("THREATSIFT__KAFKA__INPUT_TOPICS", topics.input.as_str()),
            ("THREATSIFT__KAFKA__OUTPUT_TOPIC", topics.output.as_str()),
            ("THREATSIFT__KAFKA__DLQ_TOPIC", topics.dlq.as_str()),
            ("THREATSIFT__KAFKA__SESSION_TIMEOUT", "6s"),
            ("THREATSIFT__SHUTDOWN__DRAIN_TIMEOUT", "5s"),
            ("THREATSIFT__SERVER__LISTEN", listen.as_str()),
        ],
    );
    daemon.wait_ready(Duration::from_secs(60));
    daemon.signal("TERM");
    let status = daemon.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "{status}:\n{}", daemon.log_text());
    assert!(
        std::fs::read_dir(empty.path())
            .expect("read dir")
            .next()
            .is_none(),
        "the daemon wrote into its working directory"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relative_feed_path_is_read_beside_the_config_file_and_weighs_70_by_default() {
    let topics = create_topics(1).await;
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let etc = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(etc.path().join("feeds")).expect("mkdir");
    std::fs::write(
        etc.path().join("feeds/block.txt"),
        "203.0.113.0/25 ; listed\n",
    )
    .expect("feed");
    let port = free_port();
    let config = etc.path().join("threatsift.toml");
    // A minimal feed entry: no weight.
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
start_from = "earliest"
[filter]
allow_documentation_ranges = true
[server]
listen = "127.0.0.1:{port}"
[shutdown]
drain_timeout = "5s"
[[feeds]]
name = "beside-the-config"
path = "feeds/block.txt"
"#,
            brokers = brokers(),
            group = topics.group,
            input = topics.input,
            output = topics.output,
            dlq = topics.dlq,
        ),
    )
    .expect("config");
    let config_arg = config.display().to_string();
    let mut daemon = daemon_in(
        elsewhere.path(),
        etc.path(),
        port,
        &["run", "--config", &config_arg],
        &[],
    );
    daemon.wait_ready(Duration::from_secs(60));
    produce(&topics.input, None, &[ecs_event("203.0.113.9", "10.0.0.5")]).await;
    let records = read_until(&topics.output, Duration::from_secs(60), |m| !m.is_empty());
    assert_eq!(
        records.len(),
        1,
        "no record for the listed address:\n{}",
        daemon.log_text()
    );
    let record = records[0].json();
    assert_valid_record(&record_validator(), &record);
    assert_eq!(record["ip"], "203.0.113.9");
    assert_eq!(
        record["intel"]["feeds"]["matches"][0]["feed"],
        "beside-the-config"
    );
    assert_eq!(record["score"], 70, "{record}");
    assert_eq!(record["verdict"], "malicious");
}

// --- deploy files: whatever stops the daemon waits longer than its drain -------------------

/// A duration as the deploy files write it: `30s`, `1m`, `90` (seconds).
fn seconds(text: &str) -> u64 {
    let text = text.trim().trim_matches('"');
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let number: u64 = number
        .parse()
        .unwrap_or_else(|_| panic!("not a duration: {text:?}"));
    match unit {
        "" | "s" => number,
        "m" | "min" => number * 60,
        other => panic!("unit {other:?} in {text:?}"),
    }
}

/// The value after `key` on the first line of `file` that has it (`key=v`, `key: v`).
fn value_of(file: &str, key: &str) -> u64 {
    let path: PathBuf = [REPO, file].iter().collect();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
    let line = text
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with(key))
        .unwrap_or_else(|| panic!("{file} has no {key}"));
    seconds(line[key.len()..].trim_start_matches([':', '=', ' ']))
}

/// `shutdown.drain_timeout` in seconds as the real binary loads it: the built-in default, or
/// with `config` on top.
fn drain_seconds(config: Option<&Path>) -> u64 {
    let mut args = vec!["check-config".to_owned()];
    if let Some(config) = config {
        args.extend(["--config".to_owned(), config.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = threatsift(&args, &[]);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|line| line.starts_with("drain_timeout"))
        .unwrap_or_else(|| panic!("check-config shows no drain_timeout:\n{text}"));
    seconds(line.split('=').nth(1).unwrap_or_default())
}

#[test]
fn every_deploy_file_waits_longer_than_the_drain_before_killing() {
    let drain = drain_seconds(None);
    for (file, key) in [
        ("deploy/systemd/threatsift.service", "TimeoutStopSec"),
        ("deploy/compose.yaml", "stop_grace_period"),
        (
            "deploy/k8s/deployment.yaml",
            "terminationGracePeriodSeconds",
        ),
    ] {
        let stop = value_of(file, key);
        assert!(
            stop > drain,
            "{file}: {key} = {stop}s does not outlast shutdown.drain_timeout = {drain}s"
        );
    }
}

// --- alert rules: promtool checks them and runs their unit tests ----------------------------

/// A tool of Debian's `prometheus` package, which `scripts/ops-tools.sh` installs.
fn prometheus_tool(name: &str) -> PathBuf {
    let path = PathBuf::from("/usr/bin").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/ops-tools.sh install (scripts/test.sh does)",
        path.display()
    );
    path
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new(prometheus_tool("promtool"))
        .args(args)
        .current_dir(REPO)
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    promtool(&["check", "rules", "deploy/prometheus/alerts.yml"]);
    promtool(&["check", "config", "deploy/prometheus/prometheus.yml"]);
    let out = promtool(&["test", "rules", "deploy/prometheus/alerts.test.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn every_alert_rule_has_a_firing_and_a_quiet_unit_test() {
    let read = |file: &str| {
        std::fs::read_to_string(Path::new(REPO).join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"))
    };
    let rules = read("deploy/prometheus/alerts.yml");
    let tests = read("deploy/prometheus/alerts.test.yml");
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- alert: "))
        .collect();
    assert!(alerts.len() >= 12, "{alerts:?}");
    let lines: Vec<&str> = tests.lines().map(str::trim).collect();
    for alert in alerts {
        // What each `alertname: <alert>` case expects: `[]` (quiet) or a list of alerts.
        let expectations: Vec<&str> = lines
            .iter()
            .enumerate()
            .filter(|(_, line)| **line == format!("alertname: {alert}"))
            .filter_map(|(i, _)| lines.get(i + 1).copied())
            .collect();
        assert!(
            expectations.contains(&"exp_alerts: []"),
            "{alert} has no case where it stays quiet"
        );
        assert!(
            expectations.contains(&"exp_alerts:"),
            "{alert} has no case where it fires"
        );
    }
}

// --- Kubernetes and Compose, checked offline ------------------------------------------------

/// `python` of the venv `scripts/ops-tools.sh` makes (kubernetes-validate, PyYAML) running
/// `script` with `args` from the repository root; its stdout, or a panic with its stderr.
fn ops_python(script: &str, args: &[&str]) -> String {
    let python = Path::new(REPO).join(".ops-venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run scripts/ops-tools.sh install (scripts/test.sh does)",
        python.display()
    );
    let out = Command::new(python)
        .arg(script)
        .args(args)
        .current_dir(REPO)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{script} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn k8s_manifests_pass_schema_validation_and_their_config_drains_within_the_grace_period() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("threatsift.toml");
    let out = ops_python(
        "scripts/check-k8s.py",
        &["deploy/k8s", config.to_str().expect("utf-8 path")],
    );
    let grace: u64 = out
        .trim()
        .strip_prefix("terminationGracePeriodSeconds=")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("unexpected output {out:?}"));
    // The ConfigMap's file loads with the real binary, and its drain ends before the kill.
    let drain = drain_seconds(Some(&config));
    assert!(
        grace > drain,
        "terminationGracePeriodSeconds {grace} <= drain_timeout {drain}"
    );
}

#[test]
fn compose_file_is_consistent_and_its_config_drains_within_the_stop_grace_period() {
    let out = ops_python("scripts/check-compose.py", &["deploy/compose.yaml"]);
    let config = PathBuf::from(out.trim());
    let drain = drain_seconds(Some(&config));
    let stop = value_of("deploy/compose.yaml", "stop_grace_period");
    assert!(
        stop > drain,
        "stop_grace_period {stop}s <= drain_timeout {drain}s"
    );
}
