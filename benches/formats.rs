//! Criterion benches of parse + extract per format and per format family, and of detection,
//! over the fixture lines in `tests/fixtures/formats/` (the same lines the table tests check).
//!
//! Targets (issue 3, per core): ≥ 1,000,000 events/s for the JSON and key=value families,
//! ≥ 500,000 for the rest. Run: `cargo bench --bench formats`.
//!
//! Every format the registry knows is benched on its own (`format/<name>`); the bench panics,
//! naming it, when a format has no event line in the fixtures, so a new format cannot be left
//! out. Issue 12 added `cisco_wsa`, `f5_bigip`, `meraki`, `stormshield`, `clavister`,
//! `barracuda_activity`, `forcepoint_ngfw`, `skyhigh_swg`, `haproxy`, `clf` and `netskope`.
//! Instruction counts per line, old build against new (load-independent, unlike these wall-clock
//! figures on a shared machine): `scripts/bench-formats-callgrind.sh`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use threatsift::extract_ip_observations;
use threatsift::test_support::fixtures::{fixtures_dir, load_cases};
use threatsift::{FormatRegistry, StreamId};

/// Family of each format, as the targets group them.
fn family(format: &str) -> &'static str {
    match format {
        "ecs_json" | "json" | "suricata_eve" | "zeek" | "ocsf" | "gcp_firewall"
        | "azure_firewall" | "zscaler" | "barracuda" | "netskope" => "json",
        "kv" | "fortigate" | "sonicwall" | "sophos_xg" | "sophos_utm" | "forcepoint"
        | "zscaler_kv" | "checkpoint" | "stormshield" | "clavister" | "skyhigh_swg"
        | "forcepoint_ngfw" | "barracuda_activity" => "key_value",
        "cef" | "leef" => "cef_leef",
        "paloalto" | "pfsense_filterlog" | "umbrella" | "aws_vpc_flow" | "squid"
        | "squid_combined" | "w3c" | "windows_firewall" | "zeek_tsv" | "cisco_wsa" | "haproxy"
        | "clf" => "delimited",
        _ => "syslog_text",
    }
}

struct FixtureFile {
    stream_key: String,
    /// Every line in order (directives included, to prime the stream).
    all: Vec<String>,
    /// Event lines by expected format (no directives, no error cases).
    events: BTreeMap<String, Vec<String>>,
}

fn load() -> Vec<FixtureFile> {
    let mut files: Vec<FixtureFile> = Vec::new();
    for case in load_cases(&fixtures_dir(), None) {
        if files.last().is_none_or(|f| f.stream_key != case.file) {
            files.push(FixtureFile {
                stream_key: case.file.clone(),
                all: Vec::new(),
                events: BTreeMap::new(),
            });
        }
        let file = files.last_mut().expect("a file per case");
        file.all.push(case.line.clone());
        if case.is_event() {
            file.events.entry(case.format).or_default().push(case.line);
        }
    }
    files
}

fn stream(key: &str) -> StreamId<'_> {
    StreamId {
        topic: "bench",
        partition: 0,
        key: Some(key.as_bytes()),
    }
}

/// Parses and extracts every line; returns the address count so nothing is optimised away.
fn parse_all(registry: &FormatRegistry, lines: &[(String, String)]) -> usize {
    let mut ips = Vec::with_capacity(8);
    let mut count = 0;
    for (key, line) in lines {
        if let Ok(parsed) = registry.parse_line(black_box(line), stream(key)) {
            for event in &parsed.events {
                ips.clear();
                extract_ip_observations(event, &mut ips);
                count += ips.len();
            }
        }
    }
    count
}

fn bench_formats(c: &mut Criterion) {
    let files = load();
    let registry = FormatRegistry::builtin(Default::default());
    for file in &files {
        for line in &file.all {
            let _ = registry.parse_line(line, stream(&file.stream_key));
        }
    }
    let mut by_family: BTreeMap<&str, Vec<(String, String)>> = BTreeMap::new();
    let mut by_format: BTreeMap<&str, Vec<(String, String)>> = BTreeMap::new();
    for file in &files {
        for (format, lines) in &file.events {
            for line in lines {
                let item = (file.stream_key.clone(), line.clone());
                by_family
                    .entry(family(format))
                    .or_default()
                    .push(item.clone());
                by_format.entry(format.as_str()).or_default().push(item);
            }
        }
    }
    // Each format the registry knows is listed below with its own figure.
    let unbenched: Vec<&str> = registry
        .names()
        .filter(|name| !by_format.contains_key(name))
        .collect();
    assert!(
        unbenched.is_empty(),
        "formats with no event line in tests/fixtures/formats, so not benched: {unbenched:?}"
    );
    let avg = |lines: &[(String, String)]| {
        lines.iter().map(|(_, l)| l.len()).sum::<usize>() / lines.len().max(1)
    };

    let mut group = c.benchmark_group("family");
    for (name, lines) in &by_family {
        group.throughput(Throughput::Elements(lines.len() as u64));
        group.bench_function(
            format!("{name} ({} lines, {} B avg)", lines.len(), avg(lines)),
            |b| b.iter(|| parse_all(&registry, lines)),
        );
    }
    group.finish();

    let mut group = c.benchmark_group("format");
    for (name, lines) in &by_format {
        group.throughput(Throughput::Elements(lines.len() as u64));
        group.bench_function(format!("{name} ({} B avg)", avg(lines)), |b| {
            b.iter(|| parse_all(&registry, lines))
        });
    }
    group.finish();

    let every: Vec<(String, String)> = by_family.values().flatten().cloned().collect();
    let mut group = c.benchmark_group("detect");
    group.throughput(Throughput::Elements(every.len() as u64));
    group.bench_function(
        format!("detect only, all formats ({} lines)", every.len()),
        |b| {
            b.iter(|| {
                every
                    .iter()
                    .map(|(key, line)| registry.detect_format(black_box(line), stream(key)).len())
                    .sum::<usize>()
            })
        },
    );
    group.bench_function(
        format!(
            "detect + parse + extract, all formats ({} lines)",
            every.len()
        ),
        |b| b.iter(|| parse_all(&registry, &every)),
    );
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench_formats
}
criterion_main!(benches);
