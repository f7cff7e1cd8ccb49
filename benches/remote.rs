//! Criterion benches of the remote stage's own costs, with an in-process provider (no HTTP):
//! offering a job to full queues (the sink awaits this for every first sighting), answering
//! from a provider's cache, and folding one answer into a record (rescore + serialise).
//! Run: `cargo bench --bench remote`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use futures::future::BoxFuture;

use threatsift::test_support::remote::{
    self, defaults, new_metrics, now_patience, remote_job, rules,
};
use threatsift::DedupCache;
use threatsift::Origin;
use threatsift::{apply_outcome, NoRevisions, Priority, RemoteJob, RemoteStage};
use threatsift::{Lookup, Provider, ProviderError};
use threatsift::{Network, ProviderIntel, ProviderStatus, ThreatRecord};
use threatsift::{Outcome, ProviderSlot, SlotLimits};

/// Answers every address at once with VirusTotal-shaped facts.
#[derive(Debug)]
struct InstantProvider(&'static str);

impl Provider for InstantProvider {
    fn name(&self) -> &'static str {
        self.0
    }

    fn lookup(&self, _ip: IpAddr) -> BoxFuture<'_, Result<Lookup, ProviderError>> {
        Box::pin(async {
            Ok(Lookup::Found {
                facts: facts(3),
                network: Network::default(),
            })
        })
    }
}

fn facts(malicious: u32) -> serde_json::Map<String, serde_json::Value> {
    let mut facts = serde_json::Map::new();
    facts.insert(
        "last_analysis_stats".into(),
        serde_json::json!({"malicious": malicious, "suspicious": 1, "harmless": 60, "undetected": 20, "timeout": 0}),
    );
    facts.insert("reputation".into(), serde_json::json!(-3));
    facts
}

fn template(ip: IpAddr) -> ThreatRecord {
    serde_json::from_value(serde_json::json!({
        "schema": "threatsift.threat/1", "ip": ip.to_string(), "ip_version": 4,
        "verdict": "unknown", "severity": "info", "score": 0, "reasons": [],
        "indicator": "IP Observed", "first_seen": "2026-11-23T10:00:00Z",
        "last_seen": "2026-11-23T10:00:00Z", "sightings": 1, "roles": ["source"],
        "observed": {"format": "fortigate", "vendor": "Fortinet", "product": "FortiGate",
                     "action": "accept", "topic": "firewall", "partition": 0, "offset": 1},
        "network": {"asn": null, "as_org": null, "country": null, "rir": null, "cidr": null},
        "intel": {
            "virustotal": {"status": "pending"}, "abuseipdb": {"status": "pending"},
            "rdap": {"status": "pending"}, "internetdb": {"status": "pending"},
            "greynoise": {"status": "pending"}, "otx": {"status": "pending"},
            "feeds": {"status": "ok", "matches": []}
        },
        "revision": 1, "generated_at": "2026-11-23T10:00:00Z"
    }))
    .expect("template record")
}

fn addr(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i))
}

fn job(dedup: &DedupCache, i: u32) -> RemoteJob {
    let ip = addr(i);
    let sighting = dedup.observe(ip, SystemTime::now()).sighting;
    let priority = Priority {
        locally_suspicious: i % 7 == 0,
        sightings_order: 1,
        allowed: i % 2 == 0,
    };
    let origin = Origin {
        topic: "firewall".into(),
        partition: 0,
        offset: i64::from(i),
    };
    remote_job(
        ip,
        priority,
        template(ip),
        None,
        Some("FortiGate".into()),
        sighting,
        origin,
    )
}

/// No budgets; `not_found` answers cached as long as the others.
fn limits() -> SlotLimits {
    SlotLimits {
        not_found_ttl: Duration::from_secs(3600),
        ..remote::limits(0, 0)
    }
}

fn bench_remote(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (_, metrics) = new_metrics();
    let mut group = c.benchmark_group("remote");
    group.throughput(Throughput::Elements(1));

    // Six providers, each queue full (1,000): every offer evicts one address per provider.
    let slots = [
        "virustotal",
        "abuseipdb",
        "rdap",
        "internetdb",
        "greynoise",
        "otx",
    ]
    .into_iter()
    .map(|name| {
        Arc::new(ProviderSlot::new(
            Arc::new(InstantProvider(name)),
            limits(),
            metrics.clone(),
        ))
    })
    .collect();
    let stage = Arc::new(RemoteStage::new(
        slots,
        1000,
        rules(&defaults()),
        Arc::new(NoRevisions),
        now_patience(),
        metrics.clone(),
    ));
    let dedup = DedupCache::new(Duration::from_secs(3600), 10_000_000);
    let mut next = 0u32;
    runtime.block_on(async {
        for _ in 0..1000 {
            stage.offer(job(&dedup, next)).await;
            next += 1;
        }
    });
    group.bench_function("offer_to_six_full_queues", |b| {
        b.iter_batched(
            || {
                next += 1;
                job(&dedup, next)
            },
            |job| runtime.block_on(stage.offer(job)),
            BatchSize::SmallInput,
        )
    });

    let slot = ProviderSlot::new(
        Arc::new(InstantProvider("virustotal")),
        limits(),
        metrics.clone(),
    );
    let patience = now_patience();
    runtime.block_on(async {
        for i in 0..1000 {
            slot.lookup(addr(i), patience).await;
        }
    });
    let mut i = 0u32;
    group.bench_function("cached_answer", |b| {
        b.iter(|| {
            i = (i + 1) % 1000;
            black_box(runtime.block_on(slot.lookup(addr(i), patience)))
        })
    });

    let rules = rules(&defaults());
    group.bench_function("apply_answer_rescore_serialise", |b| {
        b.iter_batched(
            || {
                next += 1;
                let job = job(&dedup, next);
                Arc::try_unwrap(job.tracked)
                    .expect("sole owner")
                    .into_inner()
            },
            |mut tracked| {
                let outcome = Outcome {
                    intel: ProviderIntel {
                        status: ProviderStatus::Ok,
                        detail: None,
                        facts: facts(8),
                    },
                    network: None,
                    retry_at: None,
                };
                black_box(apply_outcome(
                    &mut tracked,
                    "virustotal",
                    outcome,
                    &rules,
                    SystemTime::now(),
                ))
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_remote);
criterion_main!(benches);
