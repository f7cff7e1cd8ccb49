//! Criterion benches per stage: parse + extract (JSON and key=value), the filter, dedup (hit-
//! and miss-heavy), feed lookup, the offset tracker, and one whole message through the processor.
//! Inputs are deterministic. Run: `cargo bench --bench stages`.

use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use threatsift::extract_ip_observations;
use threatsift::DedupCache;
use threatsift::IpFilter;
use threatsift::Metrics;
use threatsift::OffsetTracker;
use threatsift::Settings;
use threatsift::{FeedSpec, LocalFeeds};
use threatsift::{FormatRegistry, StreamId};
use threatsift::{Origin, RawEvent};

fn sample_lines() -> (Vec<String>, Vec<String>) {
    let events = threatsift::SAMPLE_EVENTS;
    let json = events
        .lines()
        .filter(|l| l.starts_with("{\"@timestamp\"") && !l.contains("\"message\""))
        .map(str::to_owned)
        .collect();
    let kv = events
        .lines()
        .filter(|l| l.contains("srcip=") && !l.starts_with('{'))
        .map(str::to_owned)
        .collect();
    (json, kv)
}

fn bench_parse_extract(c: &mut Criterion) {
    let registry = FormatRegistry::builtin(Default::default());
    let (json, kv) = sample_lines();
    let mut group = c.benchmark_group("parse_extract");
    for (name, lines) in [("ecs_json", &json), ("kv", &kv)] {
        let bytes: usize = lines.iter().map(String::len).sum();
        group.throughput(Throughput::Elements(lines.len() as u64));
        group.bench_function(
            format!(
                "{name} ({} lines, {} B avg)",
                lines.len(),
                bytes / lines.len().max(1)
            ),
            |b| {
                let mut out = Vec::with_capacity(8);
                b.iter(|| {
                    for line in lines.iter() {
                        out.clear();
                        if let Ok(parsed) =
                            registry.parse_line(black_box(line), StreamId::default())
                        {
                            for event in &parsed.events {
                                extract_ip_observations(event, &mut out);
                            }
                        }
                    }
                    black_box(out.len())
                })
            },
        );
    }
    group.finish();
}

fn ips(count: u32) -> Vec<IpAddr> {
    (0..count)
        .map(|i| {
            IpAddr::from([
                (i >> 24) as u8 | 1,
                (i >> 16) as u8,
                (i >> 8) as u8,
                i as u8,
            ])
        })
        .collect()
}

fn bench_filter_dedup(c: &mut Criterion) {
    let filter = IpFilter::new(false, vec!["198.18.0.0/15".parse().unwrap()]);
    let addresses = ips(10_000);
    let mut group = c.benchmark_group("address_stages");
    group.throughput(Throughput::Elements(addresses.len() as u64));
    group.bench_function("filter", |b| {
        b.iter(|| {
            addresses
                .iter()
                .filter(|ip| filter.check(**ip).is_ok())
                .count()
        })
    });
    let dedup = DedupCache::new(Duration::from_secs(3600), 1_000_000);
    let now = SystemTime::now();
    for ip in &addresses {
        dedup.observe(*ip, now);
    }
    group.bench_function("dedup_hits", |b| {
        b.iter(|| {
            addresses
                .iter()
                .filter(|ip| dedup.observe(**ip, now).first)
                .count()
        })
    });
    group.bench_function("dedup_misses", |b| {
        b.iter_batched(
            || DedupCache::new(Duration::from_secs(3600), 1_000_000),
            |fresh| {
                addresses
                    .iter()
                    .filter(|ip| fresh.observe(**ip, now).first)
                    .count()
            },
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn bench_offsets(c: &mut Criterion) {
    let topic: Arc<str> = Arc::from("firewall");
    let mut group = c.benchmark_group("offsets");
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("begin_complete_in_order", |b| {
        b.iter(|| {
            let mut tracker = OffsetTracker::new();
            for o in 0..10_000 {
                tracker.begin(&topic, 0, o);
            }
            let mut stored = 0;
            for o in 0..10_000 {
                stored += tracker.complete(&topic, 0, o).is_some() as u32;
            }
            stored
        })
    });
    group.finish();
}

fn bench_process(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("threatsift-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let feed = dir.join("feed.txt");
    std::fs::write(&feed, threatsift::SAMPLE_BLOCKLIST).unwrap();
    let settings =
        Settings::from_toml_overrides("[filter]\nallow_documentation_ranges = true\n").unwrap();
    let feeds = Arc::new(
        LocalFeeds::load(vec![FeedSpec {
            name: "bench".into(),
            path: feed,
        }])
        .unwrap(),
    );
    let metrics = Arc::new(Metrics::new(&prometheus::Registry::new()).unwrap());
    let processor = threatsift::build_processor(&settings, feeds, metrics).unwrap();
    let messages: Vec<RawEvent> = threatsift::SAMPLE_EVENTS
        .lines()
        .enumerate()
        .map(|(i, line)| RawEvent {
            payload: Bytes::copy_from_slice(line.as_bytes()),
            key: None,
            origin: Origin {
                topic: "firewall".into(),
                partition: 0,
                offset: i as i64,
            },
            timestamp_ms: None,
        })
        .collect();
    let mut group = c.benchmark_group("process");
    group.throughput(Throughput::Elements(messages.len() as u64));
    // After the first pass every address is a dedup hit: the steady state of a busy stream.
    group.bench_function("demo_events_steady_state", |b| {
        b.iter(|| {
            messages
                .iter()
                .map(|m| processor.process_message(m, Instant::now()).outputs.len())
                .sum::<usize>()
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group! {
    name = stages;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1)).noise_threshold(0.05);
    targets = bench_parse_extract, bench_filter_dedup, bench_offsets, bench_process
}
criterion_main!(stages);
