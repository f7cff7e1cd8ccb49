//! The remote stage against real HTTP mocks on 127.0.0.1 that count every request: one
//! [`ProviderSlot`] (budget, circuit breaker, answer cache) and the [`RemoteStage`] (bounded
//! priority queues, dispatchers, revisions) as the daemon wires them.
//!
//! Covered, each with the upstream request count the mock measured:
//! * one upstream request for 100 concurrent lookups of one address, then a cache hit;
//! * a burst of 10,000 addresses: the per-minute budget is never exceeded, the queue bound
//!   drops (and counts, and marks `skipped`) the lowest priority, the highest priority goes
//!   first;
//! * 401: the provider is marked down, asked no more, and the failure is never evidence;
//! * the API key never leaves the `x-apikey` header (logs, records, outcomes, metrics, details);
//! * 429 with `Retry-After`: held, skipped without patience, answered after the hold;
//! * 5xx: retries, then the circuit opens and no request is made;
//! * revisions: an answer that changes the verdict publishes exactly one revision with the
//!   next revision number; a `not_found` afterwards publishes nothing;
//! * the spend policy of the README at the slot: the daily budget (`skipped` until 00:00 UTC),
//!   the holds (Retry-After, a 429 without it, VirusTotal's 60 s, a quota's reset, 00:00 UTC),
//!   401/403/429 closing the circuit, provider errors never evidence, retries and RDAP's
//!   bootstrap and redirects spending budget, answer and error caching, and the
//!   `provider_quota_remaining` and `remote_queue_depth` gauges.
//!
//! No assertion is about speed, and no sleep decides an outcome. Slots run on a
//! [`VirtualClock`] the test sets: budgets, holds and retries are checked at chosen instants,
//! and a wait of the slot moves that clock instead of taking real time. Dispatcher runs end
//! on an event (requests and the queue depth reaching what the budget allows), then the
//! dispatchers are stopped and every lookup they started is awaited, so that nothing can
//! arrive after the counts are read.

mod common;
mod mock_api;

use mock_api::{held, html_answer, ip, json_answer, settings, Canned, Gate, Mock, Route};

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use prometheus::Registry;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use threatsift::test_support::remote::{
    defaults, limits, new_metrics, now_patience, patience, remote_job, rules, StandingClock,
    VirtualClock,
};
use threatsift::DedupCache;
use threatsift::EvidenceInput;
use threatsift::InternetDb;
use threatsift::Metrics;
use threatsift::Settings;
use threatsift::VirusTotal;
use threatsift::FAILURE_THRESHOLD;
use threatsift::NAMESPACE;
use threatsift::{
    rfc3339, Network, ProviderIntel, ProviderStatus, ThreatRecord, Verdict, THREAT_SCHEMA,
};
use threatsift::{AbuseIpDb, Clock, GreyNoise, Rdap};
use threatsift::{Observed, Origin, Role};
use threatsift::{Outcome, Patience, ProviderSlot, SlotLimits, MAX_RETRIES};
use threatsift::{Output, OutputKind};
use threatsift::{Priority, RemoteJob, RemoteStage, RevisionSink};
use threatsift::{Provider, PENDING_DETAIL};

fn with_header(mut canned: Canned, name: &'static str, value: &'static str) -> Canned {
    canned.headers.push((name, value));
    canned
}

// ---------------------------------------------------------------------------------------------
// Provider answers (shapes from providers.md §1, §10)

/// A VirusTotal IP object that `engines` engines flag malicious, with a negative reputation.
fn vt_malicious(address: &str, engines: u64) -> Value {
    let mut results = serde_json::Map::new();
    for i in 0..engines {
        results.insert(
            format!("Engine{i:02}"),
            json!({"category": "malicious", "engine_name": format!("Engine{i:02}"),
                   "method": "blacklist", "result": "malware"}),
        );
    }
    json!({
      "data": {
        "id": address,
        "type": "ip_address",
        "links": {"self": format!("https://www.virustotal.com/api/v3/ip_addresses/{address}")},
        "attributes": {
          "as_owner": "Example Hosting Ltd",
          "asn": 64500,
          "country": "NL",
          "network": "203.0.113.0/24",
          "regional_internet_registry": "RIPE NCC",
          "reputation": -35,
          "last_analysis_stats": {"harmless": 40, "malicious": engines, "suspicious": 0,
                                  "undetected": 50, "timeout": 0},
          "last_analysis_results": results
        }
      }
    })
}

fn vt_ok(address: &str) -> Canned {
    json_answer(200, vt_malicious(address, 14))
}

fn vt_error(status: u16, code: &str, message: &str) -> Canned {
    json_answer(status, json!({"error": {"code": code, "message": message}}))
}

fn vt_wrong_key() -> Canned {
    vt_error(401, "WrongCredentialsError", "Wrong API key")
}

// ---------------------------------------------------------------------------------------------
// Slots, stages, records

const VT_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

fn virustotal(mock: &Mock, key: &str) -> Arc<dyn Provider> {
    Arc::new(
        VirusTotal::new(&settings(
            &format!("{}/api/v3", mock.url),
            key,
            Duration::from_secs(5),
        ))
        .unwrap(),
    )
}

fn internetdb(mock: &Mock) -> Arc<dyn Provider> {
    Arc::new(InternetDb::new(&settings(&mock.url, "", Duration::from_secs(5))).unwrap())
}

fn slot(
    provider: Arc<dyn Provider>,
    limits: SlotLimits,
    metrics: &Arc<Metrics>,
) -> Arc<ProviderSlot> {
    Arc::new(ProviderSlot::new(provider, limits, metrics.clone()))
}

/// A VirusTotal slot on `mock` without limits.
fn slot_for(mock: &Mock, metrics: &Arc<Metrics>) -> Arc<ProviderSlot> {
    slot(virustotal(mock, VT_KEY), limits(0, 0), metrics)
}

/// Collects what the stage publishes.
#[derive(Default)]
struct Collect(Mutex<Vec<Output>>);

impl Collect {
    fn outputs(&self) -> Vec<Output> {
        self.0.lock().unwrap().clone()
    }

    /// The published records, each checked against the record schema.
    fn records(&self) -> Vec<Value> {
        self.outputs()
            .iter()
            .map(|o| {
                let record = serde_json::from_slice(&o.payload).unwrap();
                assert_schema_valid(&record);
                record
            })
            .collect()
    }
}

impl RevisionSink for Collect {
    fn publish(&self, output: Output, _origin: Origin) -> BoxFuture<'_, ()> {
        self.0.lock().unwrap().push(output);
        Box::pin(async {})
    }
}

fn new_stage(
    slots: Vec<Arc<ProviderSlot>>,
    capacity: usize,
    settings: &Settings,
    sink: Arc<Collect>,
    patience: Patience,
    metrics: &Arc<Metrics>,
) -> Arc<RemoteStage> {
    Arc::new(RemoteStage::new(
        slots,
        capacity,
        rules(settings),
        sink,
        patience,
        metrics.clone(),
    ))
}

fn origin() -> Origin {
    Origin {
        topic: Arc::from("fw-events"),
        partition: 0,
        offset: 42,
    }
}

/// A job for `ip` as the processor builds it: the record scored from local evidence only
/// (`threat`: a vendor threat event, else nothing), every remote provider `pending`. When the
/// record reaches `publish.min_verdict` its first revision counts as published, as the
/// processor would have published it.
fn job(
    ip: IpAddr,
    dedup: &DedupCache,
    settings: &Settings,
    providers: &[&str],
    threat: Option<&str>,
    priority: Priority,
) -> RemoteJob {
    let now = SystemTime::now();
    let seen = dedup.observe(ip, now);
    let mut intel: BTreeMap<String, ProviderIntel> = providers
        .iter()
        .map(|p| {
            (
                (*p).to_owned(),
                ProviderIntel::status(ProviderStatus::Pending, PENDING_DETAIL),
            )
        })
        .collect();
    intel.insert(
        "feeds".to_owned(),
        ProviderIntel::status(ProviderStatus::Disabled, "no feeds configured"),
    );
    let reporter = threat.map(|_| "Suricata");
    let scored = rules(settings).scoring.score(&EvidenceInput {
        feed_matches: &[],
        intel: &intel,
        threat,
        reporter,
        sightings: seen.sighting.count(),
    });
    let assessment = scored.assessment;
    let mut record = ThreatRecord {
        schema: THREAT_SCHEMA.to_owned(),
        ip: ip.to_string(),
        ip_version: if ip.is_ipv4() { 4 } else { 6 },
        verdict: assessment.verdict,
        severity: assessment.severity,
        score: assessment.score,
        reasons: scored.reasons,
        indicator: assessment.indicator,
        first_seen: rfc3339(seen.sighting.first_seen()),
        last_seen: rfc3339(seen.sighting.last_seen()),
        sightings: seen.sighting.count(),
        roles: vec![Role::Source],
        observed: Observed {
            format: "suricata_eve".to_owned(),
            vendor: Some("OISF".to_owned()),
            product: reporter.map(str::to_owned),
            action: Some("allowed".to_owned()),
            peer_ip: Some("192.0.2.10".to_owned()),
            rule: None,
            topic: "fw-events".to_owned(),
            partition: 0,
            offset: 42,
            ..Observed::default()
        },
        network: Network::default(),
        intel,
        revision: 1,
        generated_at: rfc3339(now),
        // d-siem: set when the record is encoded for publishing.
        id: None,
        event_time: None,
        confidence: None,
        tlp: None,
        expires_at: None,
        revoked: false,
        revocation_reason: None,
    };
    if record.verdict >= settings.publish.min_verdict {
        record.revision = seen.sighting.next_revision(record.score, record.verdict);
    }
    remote_job(
        ip,
        priority,
        record,
        threat.map(str::to_owned),
        reporter.map(str::to_owned),
        seen.sighting,
        origin(),
    )
}

/// A generous bound on waits for events; its expiry fails the test (nothing here takes more
/// than milliseconds unless the code is wrong).
const EVENT_DEADLINE: Duration = Duration::from_secs(60);

/// Polls `done` until it holds; panics naming `what` when it does not within
/// [`EVENT_DEADLINE`].
async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + EVENT_DEADLINE;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not reached within {EVENT_DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Offers `jobs` and runs the dispatchers until `settled` holds (what the budget allows was
/// done), then stops them as the daemon does at shutdown and awaits every lookup they started:
/// after this returns nothing more can reach the mock, so counts read then are final. Panics
/// when `settled` is not reached, or when the dispatchers do not stop (a lookup left waiting
/// inside the slot).
async fn offer_and_dispatch_until(
    stage: &Arc<RemoteStage>,
    jobs: &[RemoteJob],
    what: &str,
    settled: impl FnMut() -> bool,
) {
    for job in jobs {
        stage.offer(job.clone()).await;
    }
    let stop = CancellationToken::new();
    let mut dispatchers = threatsift::spawn_dispatchers(stage, &stop);
    wait_for(what, settled).await;
    stop.cancel();
    let joined = tokio::time::timeout(EVENT_DEADLINE, async {
        while dispatchers.join_next().await.is_some() {}
    })
    .await;
    assert!(
        joined.is_ok(),
        "the dispatchers did not stop: a lookup started past the budget was left waiting \
         inside the slot"
    );
}

/// Every record a test reads is checked against `schema/threat-record.schema.json`.
fn assert_schema_valid(record: &Value) {
    static VALIDATOR: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    common::assert_valid_record(VALIDATOR.get_or_init(common::record_validator), record);
}

/// [`assert_schema_valid`] for a typed record.
fn valid(record: ThreatRecord) -> ThreatRecord {
    assert_schema_valid(&serde_json::to_value(&record).unwrap());
    record
}

/// 10:00 UTC on a Monday, far from a day's reset.
const MORNING: &str = "2026-11-23T10:00:00Z";

fn at(text: &str) -> SystemTime {
    humantime::parse_rfc3339(text).unwrap()
}

/// A slot on a [`StandingClock`]: the dispatcher's waits for budget end only when the test
/// moves the clock.
fn standing(
    provider: Arc<dyn Provider>,
    limits: SlotLimits,
    metrics: &Arc<Metrics>,
    clock: &Arc<StandingClock>,
) -> Arc<ProviderSlot> {
    Arc::new(ProviderSlot::with_clock(
        provider,
        limits,
        metrics.clone(),
        clock.clone(),
    ))
}

/// A slot on `clock`.
fn clocked(
    provider: Arc<dyn Provider>,
    limits: SlotLimits,
    metrics: &Arc<Metrics>,
    clock: &Arc<VirtualClock>,
) -> Arc<ProviderSlot> {
    Arc::new(ProviderSlot::with_clock(
        provider,
        limits,
        metrics.clone(),
        clock.clone(),
    ))
}

/// VirusTotal on `mock` with a timeout no loaded machine reaches: a timed-out request would be
/// retried, and a retry spends a token the test means for another address.
fn patient_virustotal(mock: &Mock) -> Arc<dyn Provider> {
    Arc::new(
        VirusTotal::new(&settings(
            &format!("{}/api/v3", mock.url),
            VT_KEY,
            Duration::from_secs(600),
        ))
        .unwrap(),
    )
}

fn plain() -> Priority {
    Priority {
        locally_suspicious: false,
        sightings_order: Priority::sightings_order(1),
        allowed: true,
    }
}

/// The value of one sample in the Prometheus text, matched by name (without the `threatsift_`
/// namespace) and the given labels.
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let name = format!("{NAMESPACE}_{name}");
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric_name, label_text) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let wanted = metric_name == name
                && labels
                    .iter()
                    .all(|(k, v)| label_text.split(',').any(|p| p == format!("{k}=\"{v}\"")));
            wanted.then(|| value.parse().unwrap())
        })
}

fn rendered(registry: &Registry) -> String {
    Metrics::render(registry)
}

fn intel_of(record: &ThreatRecord, provider: &str) -> ProviderIntel {
    record.intel.get(provider).cloned().unwrap_or_else(|| {
        panic!("no intel.{provider} in {record:?}");
    })
}

// ---------------------------------------------------------------------------------------------
// 1. One upstream request per address

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_lookups_of_one_address_make_one_request() {
    let address = "203.0.113.45";
    // The answer is held until every lookup is under way: all 100 overlap by construction.
    let gate = Gate::new();
    let mock = Mock::start(&mock_api::VIRUSTOTAL, held(vt_ok(address), &gate)).await;
    let (registry, metrics) = new_metrics();
    let slot = slot(virustotal(&mock, VT_KEY), limits(0, 0), &metrics);

    let started = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let lookups: Vec<_> = (0..100)
        .map(|_| {
            let (slot, started) = (slot.clone(), started.clone());
            tokio::spawn(async move {
                let lookup = slot.lookup(ip(address), patience(5));
                tokio::pin!(lookup);
                // Polled once: the lookup has joined (or, wrongly, sent) a request.
                assert!(
                    futures::poll!(&mut lookup).is_pending(),
                    "a lookup finished while the answer was held"
                );
                started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                lookup.await
            })
        })
        .collect();
    wait_for(
        "all 100 lookups under way and one request at the mock",
        || started.load(std::sync::atomic::Ordering::SeqCst) == 100 && mock.requests() >= 1,
    )
    .await;
    gate.open();
    let mut outcomes = Vec::new();
    for lookup in lookups {
        outcomes.push(lookup.await.unwrap());
    }
    println!(
        "upstream requests for 100 concurrent lookups: {}",
        mock.requests()
    );
    assert_eq!(
        mock.requests(),
        1,
        "one request shared by 100 concurrent lookups"
    );
    assert_eq!(mock.asked(), vec![address.to_owned()]);
    let first = &outcomes[0];
    assert_eq!(first.intel.status, ProviderStatus::Ok, "{first:?}");
    assert_eq!(first.intel.facts["last_analysis_stats"]["malicious"], 14);
    assert_eq!(first.network.as_ref().and_then(|n| n.asn), Some(64500));
    for (i, outcome) in outcomes.iter().enumerate() {
        assert_eq!(outcome, first, "outcome {i} differs");
    }

    let hits_before = metric(
        &rendered(&registry),
        "enrich_cache_hits_total",
        &[("provider", "virustotal")],
    )
    .unwrap_or(0.0);
    let later = slot.lookup(ip(address), now_patience()).await;
    let hits_after = metric(
        &rendered(&registry),
        "enrich_cache_hits_total",
        &[("provider", "virustotal")],
    )
    .unwrap_or(0.0);
    println!(
        "upstream requests after a later lookup: {} (cache hits {hits_before} -> {hits_after})",
        mock.requests()
    );
    assert_eq!(later, *first, "the later lookup is the cached answer");
    assert_eq!(mock.requests(), 1, "the later lookup made no request");
    assert_eq!(
        hits_after,
        hits_before + 1.0,
        "the later lookup is a cache hit"
    );
    assert_eq!(
        metric(
            &rendered(&registry),
            "enrich_requests_total",
            &[("provider", "virustotal"), ("status", "ok")]
        ),
        Some(1.0)
    );
}

// ---------------------------------------------------------------------------------------------
// 2. A burst: budget, queue bound, priority

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_10000_addresses_spends_the_minute_budget_on_the_most_suspicious() {
    const TOTAL: u32 = 10_000;
    const SUSPICIOUS: u32 = 5;
    const CAPACITY: usize = 1_000;
    const PER_MINUTE: u32 = 5;
    let mock = Mock::by_address(&mock_api::VIRUSTOTAL, |ip| {
        json_answer(200, vt_malicious(&ip.to_string(), 3))
    })
    .await;
    let (registry, metrics) = new_metrics();
    let settings = defaults();
    // The clock stands still: no token comes back while the test runs, however slow the machine.
    let clock = StandingClock::at_rfc3339(MORNING);
    let slot = standing(
        patient_virustotal(&mock),
        limits(PER_MINUTE, 0),
        &metrics,
        &clock,
    );
    let sink = Arc::new(Collect::default());
    let stage = new_stage(
        vec![slot],
        CAPACITY,
        &settings,
        sink.clone(),
        Patience {
            max_wait: settings.intel.remote_max_wait,
        },
        &metrics,
    );
    let dedup = DedupCache::new(Duration::from_secs(3_600), 2 * u64::from(TOTAL));

    // 9,995 ordinary addresses, then the 5 locally suspicious ones last.
    let ordinary = |i: u32| IpAddr::V4(Ipv4Addr::from(0x0B00_0000 + i));
    let suspicious = |i: u32| IpAddr::V4(Ipv4Addr::new(45, 33, 0, 1 + i as u8));
    let mut jobs = Vec::new();
    for i in 0..TOTAL - SUSPICIOUS {
        jobs.push(job(
            ordinary(i),
            &dedup,
            &settings,
            &["virustotal"],
            None,
            plain(),
        ));
    }
    for i in 0..SUSPICIOUS {
        let priority = Priority {
            locally_suspicious: true,
            ..plain()
        };
        jobs.push(job(
            suspicious(i),
            &dedup,
            &settings,
            &["virustotal"],
            None,
            priority,
        ));
    }
    for job in &jobs {
        stage.offer(job.clone()).await;
    }
    // Every address beyond the queue's capacity was answered `skipped` at once.
    assert_eq!(
        metric(&rendered(&registry), "remote_queue_depth", &[]),
        Some(CAPACITY as f64),
        "remote_queue_depth counts the addresses waiting after the evictions"
    );
    offer_and_dispatch_until(
        &stage,
        &[],
        "the minute budget's lookups finished (queue depth down by PER_MINUTE)",
        || stage.waiting() <= (CAPACITY - PER_MINUTE as usize) as i64,
    )
    .await;

    let text = rendered(&registry);
    assert_eq!(
        metric(&text, "remote_queue_depth", &[]),
        Some((CAPACITY - PER_MINUTE as usize) as f64)
    );
    assert_eq!(
        metric(
            &text,
            "provider_quota_remaining",
            &[("provider", "virustotal")]
        ),
        Some(0.0),
        "the minute budget is spent"
    );
    let queue_full = metric(
        &text,
        "enrich_skipped_total",
        &[("provider", "virustotal"), ("reason", "queue_full")],
    )
    .unwrap_or(0.0);
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    let mut evicted = Vec::new();
    for job in &jobs {
        let tracked = job.tracked.lock().await;
        let entry = intel_of(&valid(tracked.record.clone()), "virustotal");
        *statuses
            .entry(
                serde_json::to_value(entry.status)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
            .or_default() += 1;
        if entry.status == ProviderStatus::Skipped {
            evicted.push((job.ip, entry.detail.unwrap_or_default()));
        }
    }
    println!(
        "burst of {TOTAL}: upstream requests {}, queue_full {queue_full}, statuses {statuses:?}, \
         asked {:?}",
        mock.requests(),
        mock.asked()
    );
    assert_eq!(
        mock.requests(),
        PER_MINUTE as usize,
        "exactly the per-minute budget was spent"
    );
    assert_eq!(queue_full, f64::from(TOTAL) - CAPACITY as f64);
    assert_eq!(evicted.len(), TOTAL as usize - CAPACITY);
    for (address, detail) in &evicted {
        assert!(
            detail.contains("queue"),
            "{address} skipped without saying the queue was full: {detail}"
        );
    }
    assert_eq!(statuses.get("ok"), Some(&(PER_MINUTE as usize)));
    assert_eq!(
        statuses.get("pending"),
        Some(&(CAPACITY - PER_MINUTE as usize)),
        "the rest still waits in the queue"
    );
    let expected: HashSet<String> = (0..SUSPICIOUS).map(|i| suspicious(i).to_string()).collect();
    assert!(
        evicted
            .iter()
            .all(|(a, _)| !expected.contains(&a.to_string())),
        "a suspicious address was evicted"
    );
    // The budget went to the highest priority. This failed now and then for two reasons, both
    // gone: the dispatcher used to start lookups the budget could not cover (they then took
    // tokens inside the slot in whatever order the runtime polled them; it now reserves the
    // token first, see the next test), and the run was a fixed 3 s of wall time, so on a
    // loaded machine it could end before the fifth lookup was dispatched, or a slow request
    // could time out and its retry take the token meant for the fifth address. Now the run
    // ends on the queue depth, the slot's clock stands still, and the timeout is out of reach.
    let asked: HashSet<String> = mock.asked().into_iter().collect();
    assert_eq!(
        asked, expected,
        "the per-minute budget was not spent on the locally suspicious addresses"
    );
}

/// The budget has one token, four addresses wait, and the dispatcher has four in-flight
/// permits. The token must go to the highest-priority address and the other three must stay
/// queued, not be started as lookups that then wait inside the slot for the next token (in
/// whatever order the runtime polls them, and past the stop). With one worker thread tokio
/// runs the task spawned last first, so a dispatcher that starts more lookups than the budget
/// covers fails this every run, not now and then.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_single_token_goes_to_the_highest_priority_and_the_rest_stay_queued() {
    let mock = Mock::by_address(&mock_api::VIRUSTOTAL, |ip| {
        json_answer(200, vt_malicious(&ip.to_string(), 3))
    })
    .await;
    let (registry, metrics) = new_metrics();
    let settings = defaults();
    // A clock that stands still: the next token never comes back. The dispatcher waits on it
    // for that token (one wait); a lookup started past the budget would wait on it inside the
    // slot (a second wait) and never end, so the dispatchers would not stop.
    let clock = StandingClock::at_rfc3339(MORNING);
    let slot = standing(patient_virustotal(&mock), limits(1, 0), &metrics, &clock);
    let sink = Arc::new(Collect::default());
    let stage = new_stage(
        vec![slot],
        100,
        &settings,
        sink,
        Patience {
            max_wait: settings.intel.remote_max_wait,
        },
        &metrics,
    );
    let dedup = DedupCache::new(Duration::from_secs(3_600), 100);
    let suspicious = Priority {
        locally_suspicious: true,
        ..plain()
    };
    let first = job(
        ip("45.33.0.1"),
        &dedup,
        &settings,
        &["virustotal"],
        None,
        suspicious,
    );
    let mut jobs = vec![first];
    for i in 0..3 {
        let address = IpAddr::V4(Ipv4Addr::new(11, 0, 0, i));
        jobs.push(job(
            address,
            &dedup,
            &settings,
            &["virustotal"],
            None,
            plain(),
        ));
    }
    offer_and_dispatch_until(
        &stage,
        &jobs,
        "the one lookup the budget covers finished and the dispatcher waits for the next token",
        || stage.waiting() <= 3 && !clock.waits().is_empty(),
    )
    .await;
    println!(
        "one token, four waiting: upstream requests {}, asked {:?}, clock waits {:?}",
        mock.requests(),
        mock.asked(),
        clock.waits()
    );
    assert_eq!(
        mock.asked(),
        vec!["45.33.0.1"],
        "the only token was not spent on the highest-priority address"
    );
    assert_eq!(
        clock.waits(),
        [Duration::from_secs(60)],
        "one wait, the dispatcher's for the next token of the minute; any other is a lookup \
         that waited inside the slot for budget"
    );
    assert_eq!(
        metric(&rendered(&registry), "remote_queue_depth", &[]),
        Some(3.0),
        "three addresses still wait for the next token"
    );
    for job in &jobs[1..] {
        let record = valid(job.tracked.lock().await.record.clone());
        assert_eq!(
            intel_of(&record, "virustotal").status,
            ProviderStatus::Pending,
            "{} was not left in the queue",
            job.ip
        );
    }
}

/// The dispatcher waits for the next token on the slot's clock, the one the slot's budget is
/// kept on: once the test moves that clock past the wait, the next address is asked, and no
/// real time has to pass. (Waiting on tokio's timer instead, the dispatcher would not be seen
/// waiting on this clock, and would sleep a real minute.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dispatcher_waits_for_budget_on_the_slots_clock() {
    let mock = Mock::by_address(&mock_api::VIRUSTOTAL, |ip| {
        json_answer(200, vt_malicious(&ip.to_string(), 3))
    })
    .await;
    let (_registry, metrics) = new_metrics();
    let settings = defaults();
    let clock = StandingClock::at_rfc3339(MORNING);
    let slot = standing(patient_virustotal(&mock), limits(1, 0), &metrics, &clock);
    let stage = new_stage(
        vec![slot],
        100,
        &settings,
        Arc::new(Collect::default()),
        Patience {
            max_wait: settings.intel.remote_max_wait,
        },
        &metrics,
    );
    let dedup = DedupCache::new(Duration::from_secs(3_600), 100);
    for address in ["203.0.113.70", "203.0.113.71"] {
        let job = job(
            ip(address),
            &dedup,
            &settings,
            &["virustotal"],
            None,
            plain(),
        );
        stage.offer(job).await;
    }
    let stop = CancellationToken::new();
    let mut dispatchers = threatsift::spawn_dispatchers(&stage, &stop);
    wait_for(
        "one address asked and the dispatcher waiting on the slot's clock for the next token",
        || mock.requests() == 1 && !clock.waits().is_empty(),
    )
    .await;
    assert_eq!(clock.waits(), [Duration::from_secs(60)]);
    assert_eq!(mock.requests(), 1, "the second address waits for the token");
    clock.advance(Duration::from_secs(60));
    wait_for(
        "the second address asked once the slot's clock passed the wait",
        || mock.requests() == 2,
    )
    .await;
    stop.cancel();
    let joined = tokio::time::timeout(EVENT_DEADLINE, async {
        while dispatchers.join_next().await.is_some() {}
    })
    .await;
    assert!(joined.is_ok(), "the dispatchers did not stop");
    let mut asked = mock.asked();
    asked.sort();
    assert_eq!(asked, ["203.0.113.70", "203.0.113.71"]);
}

// ---------------------------------------------------------------------------------------------
// 3. 401: down, asked no more, never evidence

#[tokio::test]
async fn a_rejected_key_marks_the_provider_down_and_changes_no_score() {
    let mock = Mock::start(&mock_api::VIRUSTOTAL, vt_wrong_key()).await;
    let (registry, metrics) = new_metrics();
    let slot = slot(virustotal(&mock, VT_KEY), limits(0, 0), &metrics);
    assert_eq!(
        metric(
            &rendered(&registry),
            "provider_up",
            &[("provider", "virustotal")]
        ),
        Some(1.0)
    );

    let first = slot.lookup(ip("203.0.113.45"), patience(5)).await;
    assert_eq!(
        first.intel.status,
        ProviderStatus::Unauthorized,
        "{first:?}"
    );
    assert!(
        first
            .intel
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("WrongCredentialsError"),
        "{first:?}"
    );
    assert!(first.intel.facts.is_empty());
    assert_eq!(
        metric(
            &rendered(&registry),
            "provider_up",
            &[("provider", "virustotal")]
        ),
        Some(0.0)
    );
    assert!(slot.is_down());

    let second = slot.lookup(ip("198.51.100.7"), patience(5)).await;
    println!(
        "upstream requests after two lookups with a rejected key: {}",
        mock.requests()
    );
    assert_eq!(mock.requests(), 1, "no request after the 401");
    assert_eq!(
        second.intel.status,
        ProviderStatus::Unauthorized,
        "{second:?}"
    );
    let detail = second.intel.detail.clone().unwrap_or_default();
    assert!(detail.starts_with("not asked"), "{detail}");
    assert_eq!(
        metric(
            &rendered(&registry),
            "enrich_skipped_total",
            &[("provider", "virustotal"), ("reason", "provider_down")]
        ),
        Some(1.0)
    );

    // Through the stage: a published record (vendor threat event, score 40) and an unpublished
    // one (no evidence, score 0). The 401 changes neither score and publishes nothing.
    let mock = Mock::start(&mock_api::VIRUSTOTAL, vt_wrong_key()).await;
    let (registry, metrics) = new_metrics();
    let settings = defaults();
    let sink = Arc::new(Collect::default());
    let stage = new_stage(
        vec![slot_for(&mock, &metrics)],
        100,
        &settings,
        sink.clone(),
        patience(5),
        &metrics,
    );
    let dedup = DedupCache::new(Duration::from_secs(3_600), 100);
    let threat = "ET TROJAN Example CnC Beacon";
    let published = job(
        ip("203.0.113.60"),
        &dedup,
        &settings,
        &["virustotal"],
        Some(threat),
        plain(),
    );
    let quiet = job(
        ip("203.0.113.61"),
        &dedup,
        &settings,
        &["virustotal"],
        None,
        plain(),
    );
    let before_published = valid(published.tracked.lock().await.record.clone());
    let before_quiet = valid(quiet.tracked.lock().await.record.clone());
    assert_eq!(
        (
            before_published.score,
            before_published.verdict,
            before_published.revision
        ),
        (40, Verdict::Suspicious, 1)
    );
    assert_eq!(
        (before_quiet.score, before_quiet.verdict),
        (0, Verdict::Unknown)
    );

    let after_published = valid(stage.enrich_now(published.clone()).await);
    let after_quiet = valid(stage.enrich_now(quiet.clone()).await);
    println!(
        "upstream requests through the stage with a rejected key: {}",
        mock.requests()
    );
    assert_eq!(mock.requests(), 1);
    for (before, after) in [
        (&before_published, &after_published),
        (&before_quiet, &after_quiet),
    ] {
        assert_eq!(
            intel_of(after, "virustotal").status,
            ProviderStatus::Unauthorized
        );
        assert_eq!(
            (after.score, after.verdict, after.revision, &after.reasons),
            (
                before.score,
                before.verdict,
                before.revision,
                &before.reasons
            ),
            "a 401 changed the record of {}",
            after.ip
        );
    }
    assert!(sink.outputs().is_empty(), "a 401 published a revision");
    let text = rendered(&registry);
    assert_eq!(metric(&text, "record_revisions_total", &[]), Some(0.0));
    assert_eq!(
        metric(&text, "provider_up", &[("provider", "virustotal")]),
        Some(0.0)
    );
    assert_eq!(stage.waiting(), 0);
}

// ---------------------------------------------------------------------------------------------
// 4. The key never leaks

const SECRET_KEY: &str = "k3y-SECRET-4242";

/// A `MakeWriter` target: every log line into one shared buffer.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// The failures a provider can answer with, each echoing the key where a careless provider
/// (or proxy) might.
fn leaky_answers() -> Vec<(&'static str, Canned)> {
    let echo = format!("key {SECRET_KEY} is not valid");
    let mut challenge = html_answer(403);
    challenge.body = format!(
        "<!DOCTYPE html><html><head><title>Just a moment...</title></head>\
         <body>Checking your browser (x-apikey: {SECRET_KEY})</body></html>"
    );
    vec![
        ("401", vt_error(401, "WrongCredentialsError", &echo)),
        (
            "429",
            with_header(
                vt_error(429, "TooManyRequestsError", &echo),
                "retry-after",
                "30",
            ),
        ),
        (
            "500",
            json_answer(
                500,
                json!({"error": {"code": "TransientError", "message": echo}}),
            ),
        ),
        ("html", challenge),
        ("400", vt_error(400, "InvalidArgumentError", &echo)),
        ("200", vt_ok("203.0.113.45")),
    ]
}

#[test]
fn the_api_key_appears_nowhere_but_the_request_header() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
        .with_writer(move || writer.clone())
        .finish();
    let capture = tracing::Dispatch::new(subscriber);
    // Other tests run on other threads without a subscriber. With a single scoped subscriber
    // registered, tracing-core asks only the registering thread's default whether a callsite is
    // interesting, so a `debug!` first reached on another thread would stay off here for the
    // whole run. A second registered dispatcher makes it ask every live one.
    let _second = tracing::Dispatch::new(tracing_subscriber::registry());
    let _guard = tracing::dispatcher::set_default(&capture);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (registry, metrics) = new_metrics();
    let settings = Settings::from_toml_overrides("[publish]\nmin_verdict = \"unknown\"\n").unwrap();
    let sink = Arc::new(Collect::default());

    let texts = runtime.block_on(async {
        let scenarios = leaky_answers()
            .into_iter()
            .enumerate()
            .map(|(i, (name, canned))| {
                let (metrics, settings, sink) = (metrics.clone(), settings.clone(), sink.clone());
                async move {
                    let mock = Mock::start(&mock_api::VIRUSTOTAL, canned).await;
                    let slot = slot(virustotal(&mock, SECRET_KEY), limits(0, 0), &metrics);
                    let address = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 100 + i as u8));
                    let outcome: Outcome = slot.lookup(address, now_patience()).await;
                    let stage =
                        new_stage(vec![slot], 10, &settings, sink, now_patience(), &metrics);
                    let dedup = DedupCache::new(Duration::from_secs(60), 10);
                    let job = job(address, &dedup, &settings, &["virustotal"], None, plain());
                    let record = valid(stage.enrich_now(job).await);
                    (name, mock, outcome, record)
                }
            });
        futures::future::join_all(scenarios).await
    });

    let mut haystack: Vec<(String, String)> = Vec::new();
    let mut requests = 0;
    for (name, mock, outcome, record) in &texts {
        let seen = mock.seen();
        assert!(!seen.is_empty(), "{name}: no request reached the mock");
        for request in &seen {
            assert_eq!(
                mock_api::header(request, "x-apikey"),
                Some(SECRET_KEY),
                "{name}: the key was not sent in x-apikey"
            );
            assert!(!request.path_and_query.contains(SECRET_KEY));
        }
        requests += seen.len();
        haystack.push((format!("{name} outcome Debug"), format!("{outcome:?}")));
        haystack.push((
            format!("{name} outcome intel"),
            serde_json::to_string(&outcome.intel).unwrap(),
        ));
        haystack.push((
            format!("{name} outcome detail"),
            outcome.intel.detail.clone().unwrap_or_default(),
        ));
        haystack.push((
            format!("{name} record"),
            serde_json::to_string(record).unwrap(),
        ));
        haystack.push((format!("{name} record Debug"), format!("{record:?}")));
        for (provider, entry) in &record.intel {
            haystack.push((
                format!("{name} record intel.{provider} detail"),
                entry.detail.clone().unwrap_or_default(),
            ));
        }
        // Each scenario reports its own status (so the answers really were these failures).
        let expected = match *name {
            "401" => ProviderStatus::Unauthorized,
            "429" => ProviderStatus::RateLimited,
            "500" => ProviderStatus::Unavailable,
            "html" | "400" => ProviderStatus::InvalidResponse,
            _ => ProviderStatus::Ok,
        };
        assert_eq!(outcome.intel.status, expected, "{name}: {outcome:?}");
        if *name == "400" {
            // The provider's message echoed the key: it reached the detail, redacted.
            let detail = outcome.intel.detail.as_deref().unwrap_or("");
            assert!(detail.contains("<redacted>"), "{name}: {detail}");
        }
    }
    for record in sink.records() {
        haystack.push(("published revision".to_owned(), record.to_string()));
    }
    haystack.push(("metrics".to_owned(), rendered(&registry)));
    let log_text = logs.text();
    haystack.push(("logs".to_owned(), log_text.clone()));
    println!(
        "key-leak check: {requests} upstream requests, {} texts, {} log bytes, {} revisions",
        haystack.len(),
        log_text.len(),
        sink.outputs().len()
    );

    // The capture works and holds the provider errors an operator sees.
    assert!(
        log_text.contains("provider refused the credentials")
            && log_text.contains("WrongCredentialsError"),
        "the 401 error log was not captured:\n{log_text}"
    );
    assert!(log_text.contains("provider request finished"), "{log_text}");
    assert_eq!(
        sink.outputs().len(),
        1,
        "the 200 answer published one revision"
    );
    for (what, text) in &haystack {
        let leaks: Vec<&str> = text.lines().filter(|l| l.contains(SECRET_KEY)).collect();
        assert!(leaks.is_empty(), "the key leaked into {what}: {leaks:#?}");
    }
}

// ---------------------------------------------------------------------------------------------
// 5. 429 with Retry-After

#[tokio::test]
async fn a_429_holds_the_provider_for_its_retry_after() {
    // Cloudflare's rate-limit page in front of InternetDB: HTML, with a Retry-After it honours.
    let throttled = with_header(html_answer(429), "retry-after", "30");
    let mock = Mock::start(&mock_api::INTERNETDB, throttled).await;
    let (registry, metrics) = new_metrics();
    let clock = VirtualClock::at_rfc3339(MORNING);
    let slot = clocked(internetdb(&mock), limits(0, 0), &metrics, &clock);

    let first = slot.lookup(ip("203.0.113.45"), patience(60)).await;
    assert_eq!(first.intel.status, ProviderStatus::RateLimited, "{first:?}");
    assert!(
        first.intel.detail.as_deref().unwrap_or("").contains("HTML"),
        "{first:?}"
    );
    assert_eq!(
        first.retry_at,
        Some(at("2026-11-23T10:00:30Z")),
        "held until Retry-After: 30 from the answer"
    );

    let impatient = slot.lookup(ip("198.51.100.7"), now_patience()).await;
    assert_eq!(mock.requests(), 1, "no request while held");
    assert_eq!(
        impatient.intel.status,
        ProviderStatus::Skipped,
        "{impatient:?}"
    );
    assert_eq!(impatient.retry_at, Some(at("2026-11-23T10:00:30Z")));
    let detail = impatient.intel.detail.clone().unwrap_or_default();
    assert!(
        detail.contains("next request possible at 2026-11-23T10:00:30Z"),
        "{detail}"
    );
    assert_eq!(
        metric(
            &rendered(&registry),
            "enrich_skipped_total",
            &[("provider", "internetdb"), ("reason", "budget_wait")]
        ),
        Some(1.0)
    );

    // One second before the end of the hold, a lookup that may wait waits out that second
    // (on the slot's clock) and is then asked.
    clock.set(at("2026-11-23T10:00:29Z"));
    mock.answer(json_answer(
        200,
        json!({"cpes": [], "hostnames": [], "ip": "198.51.100.7", "ports": [443],
               "tags": [], "vulns": []}),
    ));
    let patient = slot.lookup(ip("198.51.100.7"), patience(4)).await;
    println!(
        "upstream requests for 429 then a patient lookup: {} (waits on the clock {:?})",
        mock.requests(),
        clock.waits()
    );
    assert_eq!(patient.intel.status, ProviderStatus::Ok, "{patient:?}");
    assert_eq!(
        clock.waits(),
        vec![Duration::from_secs(1)],
        "the rest of the hold was waited out, and only that"
    );
    assert_eq!(mock.requests(), 2);
    assert_eq!(mock.asked(), vec!["203.0.113.45", "198.51.100.7"]);
}

// ---------------------------------------------------------------------------------------------
// 6. 5xx: retries, then the circuit opens

#[tokio::test]
async fn server_errors_are_retried_then_open_the_circuit() {
    let mock = Mock::start(
        &mock_api::VIRUSTOTAL,
        vt_error(503, "TransientError", "Please retry later"),
    )
    .await;
    let (registry, metrics) = new_metrics();
    // The retries' backoffs pass on this clock, not in real time.
    let clock = VirtualClock::at_rfc3339(MORNING);
    let slot = clocked(virustotal(&mock, VT_KEY), limits(0, 0), &metrics, &clock);

    let first = slot.lookup(ip("203.0.113.1"), now_patience()).await;
    println!(
        "upstream requests for one lookup against a 503: {}",
        mock.requests()
    );
    assert_eq!(mock.requests(), 1 + MAX_RETRIES as usize);
    assert_eq!(first.intel.status, ProviderStatus::Unavailable, "{first:?}");
    assert!(first.retry_at.is_some());

    let mut lookups = 1;
    while mock.requests() < FAILURE_THRESHOLD as usize {
        assert!(lookups < 2 * FAILURE_THRESHOLD, "the circuit never opened");
        lookups += 1;
        let address = IpAddr::V4(Ipv4Addr::new(203, 0, 113, lookups as u8));
        let outcome = slot.lookup(address, now_patience()).await;
        assert_eq!(
            outcome.intel.status,
            ProviderStatus::Unavailable,
            "{outcome:?}"
        );
    }
    let failed = mock.requests();
    assert_eq!(
        failed, FAILURE_THRESHOLD as usize,
        "no retry once the circuit opened"
    );

    let refused = slot.lookup(ip("198.51.100.99"), now_patience()).await;
    println!(
        "upstream requests: {failed} over {lookups} failing lookups, {} after one more with the \
         circuit open",
        mock.requests()
    );
    assert_eq!(
        mock.requests(),
        failed,
        "a request went out with the circuit open"
    );
    assert_eq!(
        refused.intel.status,
        ProviderStatus::Unavailable,
        "{refused:?}"
    );
    let detail = refused.intel.detail.clone().unwrap_or_default();
    assert!(detail.contains("circuit open"), "{detail}");
    assert!(refused.retry_at.is_some());
    let text = rendered(&registry);
    assert_eq!(
        metric(
            &text,
            "enrich_skipped_total",
            &[("provider", "virustotal"), ("reason", "circuit_open")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            "enrich_requests_total",
            &[("provider", "virustotal"), ("status", "unavailable")]
        ),
        Some(failed as f64)
    );
}

// ---------------------------------------------------------------------------------------------
// 7. Revisions

#[tokio::test]
async fn an_answer_that_changes_the_verdict_publishes_exactly_one_revision() {
    let vt = Mock::by_address(&mock_api::VIRUSTOTAL, |ip| vt_ok(&ip.to_string())).await;
    // InternetDB answers after VirusTotal's revision is out (its gate is opened then): 404 is
    // its normal "not indexed".
    let idb_gate = Gate::new();
    let idb = Mock::start(
        &mock_api::INTERNETDB,
        held(
            json_answer(404, json!({"detail": "No information available"})),
            &idb_gate,
        ),
    )
    .await;
    let (registry, metrics) = new_metrics();
    let settings = defaults();
    let sink = Arc::new(Collect::default());
    let stage = new_stage(
        vec![
            slot_for(&vt, &metrics),
            slot(internetdb(&idb), limits(0, 0), &metrics),
        ],
        100,
        &settings,
        sink.clone(),
        patience(5),
        &metrics,
    );
    let providers = ["virustotal", "internetdb"];
    let dedup = DedupCache::new(Duration::from_secs(3_600), 100);

    // Nothing published yet (unknown, below min_verdict): the revision is 1.
    let fresh = job(
        ip("203.0.113.45"),
        &dedup,
        &settings,
        &providers,
        None,
        plain(),
    );
    let before = valid(fresh.tracked.lock().await.record.clone());
    assert_eq!((before.score, before.verdict), (0, Verdict::Unknown));
    assert_eq!(fresh.tracked.lock().await.sighting.published(), None);
    let (after, ()) = tokio::join!(stage.enrich_now(fresh.clone()), async {
        wait_for(
            "VirusTotal's revision published while InternetDB is held",
            || sink.outputs().len() == 1,
        )
        .await;
        idb_gate.open();
    });
    let after = valid(after);
    let published = sink.records();
    println!(
        "revisions after VirusTotal malicious + InternetDB not_found: {} (requests: vt {}, \
         internetdb {})",
        published.len(),
        vt.requests(),
        idb.requests()
    );
    assert_eq!(published.len(), 1, "{published:#?}");
    let revision = &published[0];
    assert_eq!(revision["ip"], "203.0.113.45");
    assert_eq!(revision["revision"], 1);
    assert_eq!(revision["intel"]["virustotal"]["status"], "ok");
    // The fixture fixes the outcome: 14 malicious engines give 5 each, capped at 60, and the
    // reputation of -35 adds 10: 70, malicious (malicious_at 70), severity high.
    assert_eq!(
        (
            &revision["score"],
            &revision["verdict"],
            &revision["severity"]
        ),
        (&json!(70), &json!("malicious"), &json!("high")),
        "{revision}"
    );
    assert_eq!(sink.outputs()[0].key.as_deref(), Some(&b"203.0.113.45"[..]));
    assert!(
        matches!(
            sink.outputs()[0].kind,
            OutputKind::Record(Verdict::Malicious)
        ),
        "{:?}",
        sink.outputs()[0].kind
    );
    assert_eq!(
        intel_of(&after, "internetdb").status,
        ProviderStatus::NotFound
    );
    assert_eq!(intel_of(&after, "virustotal").status, ProviderStatus::Ok);
    assert_eq!(after.revision, 1);
    assert_eq!(after.score, revision["score"].as_u64().unwrap() as u32);
    assert_eq!(after.network.asn, Some(64500), "network facts merged");
    assert_eq!(
        fresh.tracked.lock().await.sighting.published(),
        Some((after.score, after.verdict))
    );

    // Already published as revision 1 (vendor threat event): the answer makes revision 2.
    let seen_before = job(
        ip("203.0.113.46"),
        &dedup,
        &settings,
        &providers,
        Some("ET TROJAN Example CnC Beacon"),
        plain(),
    );
    let first = valid(seen_before.tracked.lock().await.record.clone());
    assert_eq!((first.verdict, first.revision), (Verdict::Suspicious, 1));
    let lifted = valid(stage.enrich_now(seen_before).await);
    let published = sink.records();
    assert_eq!(published.len(), 2, "{published:#?}");
    assert_eq!(published[1]["ip"], "203.0.113.46");
    assert_eq!(published[1]["revision"], 2);
    assert_eq!(published[1]["verdict"], "malicious");
    assert_eq!(lifted.revision, 2);

    // A later not_found from the second provider alone publishes nothing more.
    let idb_only = new_stage(
        vec![slot(internetdb(&idb), limits(0, 0), &metrics)],
        100,
        &settings,
        sink.clone(),
        patience(5),
        &metrics,
    );
    let again = valid(idb_only.enrich_now(fresh.clone()).await);
    assert_eq!(sink.records().len(), 2, "a not_found published a revision");
    assert_eq!(
        intel_of(&again, "internetdb").status,
        ProviderStatus::NotFound
    );
    assert_eq!(
        (again.score, again.verdict, again.revision),
        (after.score, after.verdict, 1)
    );
    println!(
        "revisions in all: {} (requests: vt {}, internetdb {})",
        sink.outputs().len(),
        vt.requests(),
        idb.requests()
    );
    assert_eq!(vt.requests(), 2);
    assert_eq!(
        metric(&rendered(&registry), "record_revisions_total", &[]),
        Some(2.0)
    );
}

// ---------------------------------------------------------------------------------------------
// 8. The spend policy at the slot, on a clock the test sets (README "Spend policy")

fn skipped_count(registry: &Registry, provider: &str, reason: &str) -> f64 {
    metric(
        &rendered(registry),
        "enrich_skipped_total",
        &[("provider", provider), ("reason", reason)],
    )
    .unwrap_or(0.0)
}

fn quota_remaining(registry: &Registry, provider: &str) -> Option<f64> {
    metric(
        &rendered(registry),
        "provider_quota_remaining",
        &[("provider", provider)],
    )
}

/// A mock VirusTotal answering every address with its own malicious object.
async fn vt_by_address() -> Mock {
    Mock::by_address(&mock_api::VIRUSTOTAL, |ip| vt_ok(&ip.to_string())).await
}

#[tokio::test]
async fn a_spent_daily_budget_is_skipped_without_a_request_until_00_00_utc() {
    let mock = vt_by_address().await;
    let (registry, metrics) = new_metrics();
    let clock = VirtualClock::at_rfc3339("2026-11-23T23:58:00Z");
    let slot = clocked(patient_virustotal(&mock), limits(0, 2), &metrics, &clock);
    assert_eq!(
        quota_remaining(&registry, "virustotal"),
        Some(2.0),
        "the gauge starts at the daily budget"
    );

    for (address, left) in [("203.0.113.1", 1.0), ("203.0.113.2", 0.0)] {
        let outcome = slot.lookup(ip(address), now_patience()).await;
        assert_eq!(outcome.intel.status, ProviderStatus::Ok, "{outcome:?}");
        assert_eq!(quota_remaining(&registry, "virustotal"), Some(left));
    }
    let midnight = at("2026-11-24T00:00:00Z");
    let expected_detail = "daily budget of 2 lookups spent; it resets at 2026-11-24T00:00:00Z \
                           and the address is looked up when seen after that";

    // A new record says `skipped` at once instead of `pending`.
    let known = slot
        .known_without_asking(ip("203.0.113.3"), clock.now())
        .expect("settled without asking");
    assert_eq!(known.status, ProviderStatus::Skipped);
    assert_eq!(known.detail.as_deref(), Some(expected_detail));

    // A patient lookup is not made to wait for the new day either.
    let spent = slot.lookup(ip("203.0.113.3"), patience(3_600)).await;
    assert_eq!(spent.intel.status, ProviderStatus::Skipped, "{spent:?}");
    assert_eq!(spent.intel.detail.as_deref(), Some(expected_detail));
    assert_eq!(
        spent.retry_at,
        Some(midnight),
        "retried when seen after the reset"
    );
    assert_eq!(
        mock.requests(),
        2,
        "no request once the day's budget is spent"
    );
    assert_eq!(skipped_count(&registry, "virustotal", "budget_day"), 1.0);
    assert!(clock.waits().is_empty(), "{:?}", clock.waits());

    clock.set(midnight - Duration::from_secs(1));
    let still = slot.lookup(ip("203.0.113.3"), now_patience()).await;
    assert_eq!(still.intel.status, ProviderStatus::Skipped);
    assert_eq!(mock.requests(), 2);

    // After 00:00 UTC the gauge keeps the old value until a lookup is considered.
    clock.set(midnight);
    assert_eq!(quota_remaining(&registry, "virustotal"), Some(0.0));
    let next_day = slot.lookup(ip("203.0.113.3"), now_patience()).await;
    assert_eq!(next_day.intel.status, ProviderStatus::Ok, "{next_day:?}");
    assert_eq!(mock.requests(), 3);
    assert_eq!(mock.asked()[2], "203.0.113.3");
    assert_eq!(
        quota_remaining(&registry, "virustotal"),
        Some(1.0),
        "a full budget again, one lookup spent"
    );
}

#[tokio::test]
async fn a_429_without_retry_after_holds_the_provider_for_60_s() {
    // VirusTotal's short-window throttle: no rate-limit headers at all.
    let mock = Mock::start(
        &mock_api::VIRUSTOTAL,
        vt_error(429, "TooManyRequestsError", "Too many requests"),
    )
    .await;
    let (registry, metrics) = new_metrics();
    let clock = VirtualClock::at_rfc3339(MORNING);
    let slot = clocked(patient_virustotal(&mock), limits(0, 0), &metrics, &clock);

    let throttled = slot.lookup(ip("203.0.113.45"), now_patience()).await;
    assert_eq!(throttled.intel.status, ProviderStatus::RateLimited);
    assert_eq!(throttled.retry_at, Some(at("2026-11-23T10:01:00Z")));
    clock.set(at("2026-11-23T10:00:59Z"));
    let held = slot.lookup(ip("198.51.100.7"), now_patience()).await;
    assert_eq!(held.intel.status, ProviderStatus::Skipped, "{held:?}");
    assert_eq!(held.retry_at, Some(at("2026-11-23T10:01:00Z")));
    assert_eq!(mock.requests(), 1, "no request during the hold");
    assert_eq!(skipped_count(&registry, "virustotal", "budget_wait"), 1.0);

    mock.answer(vt_ok("198.51.100.7"));
    clock.set(at("2026-11-23T10:01:00Z"));
    let after = slot.lookup(ip("198.51.100.7"), now_patience()).await;
    assert_eq!(after.intel.status, ProviderStatus::Ok, "{after:?}");
    assert_eq!(mock.requests(), 2);
}

#[tokio::test]
async fn virustotal_quota_exceeded_holds_it_for_60_s_not_until_00_00_utc() {
    let mock = Mock::start(
        &mock_api::VIRUSTOTAL,
        vt_error(429, "QuotaExceededError", "Quota exceeded"),
    )
    .await;
    let (_registry, metrics) = new_metrics();
    // An hour before the day's reset: a hold until 00:00 UTC would be an hour, not a minute.
    let clock = VirtualClock::at_rfc3339("2026-11-23T23:00:00Z");
    let slot = clocked(patient_virustotal(&mock), limits(4, 500), &metrics, &clock);

    let refused = slot.lookup(ip("203.0.113.45"), now_patience()).await;
    assert_eq!(refused.intel.status, ProviderStatus::QuotaExhausted);
    let detail = refused.intel.detail.clone().unwrap_or_default();
    assert!(detail.contains("QuotaExceededError"), "{detail}");
    assert_eq!(refused.retry_at, Some(at("2026-11-23T23:01:00Z")));
    clock.set(at("2026-11-23T23:00:59Z"));
    assert_eq!(
        slot.lookup(ip("198.51.100.7"), now_patience())
            .await
            .intel
            .status,
        ProviderStatus::Skipped
    );
    assert_eq!(mock.requests(), 1);
    clock.set(at("2026-11-23T23:01:00Z"));
    let again = slot.lookup(ip("198.51.100.7"), now_patience()).await;
    assert_eq!(again.intel.status, ProviderStatus::QuotaExhausted);
    assert_eq!(mock.requests(), 2, "asked again after 60 s");
    assert_eq!(again.retry_at, Some(at("2026-11-23T23:02:00Z")));
}

#[tokio::test]
async fn a_spent_quota_without_a_reset_time_holds_until_00_00_utc() {
    // GreyNoise's keyless allowance spent: its plan body, no rate-limit headers.
    let mock = Mock::start(
        &mock_api::GREYNOISE,
        json_answer(
            429,
            json!({"plan": "unauthenticated", "rate-limit": "10 IP lookups per day",
               "plan_url": "https://greynoise.io/pricing",
               "message": "You have hit your daily rate limit of 10 requests per day. Please \
                           create a free account or upgrade your plan at \
                           https://greynoise.io/pricing."}),
        ),
    )
    .await;
    let (registry, metrics) = new_metrics();
    let clock = VirtualClock::at_rfc3339(MORNING);
    let provider = GreyNoise::new(&settings(
        &format!("{}/v3/community", mock.url),
        "",
        Duration::from_secs(600),
    ))
    .unwrap();
    let slot = clocked(Arc::new(provider), limits(10, 10), &metrics, &clock);

    let spent = slot.lookup(ip("203.0.113.45"), now_patience()).await;
    assert_eq!(
        spent.intel.status,
        ProviderStatus::QuotaExhausted,
        "{spent:?}"
    );
    let midnight = at("2026-11-24T00:00:00Z");
    assert_eq!(spent.retry_at, Some(midnight));
    clock.set(midnight - Duration::from_secs(1));
    let held = slot.lookup(ip("198.51.100.7"), now_patience()).await;
    assert_eq!(held.intel.status, ProviderStatus::Skipped, "{held:?}");
    assert_eq!(held.retry_at, Some(midnight));
    assert_eq!(mock.requests(), 1, "no request before 00:00 UTC");
    assert_eq!(skipped_count(&registry, "greynoise", "budget_wait"), 1.0);
    clock.set(midnight);
    slot.lookup(ip("198.51.100.7"), now_patience()).await;
    assert_eq!(mock.requests(), 2, "asked again from 00:00 UTC");
}

/// AbuseIPDB's documented 429: the daily limit, with `Retry-After` and the `X-RateLimit-*`
/// headers.
fn abuseipdb_daily_limit(headers: &[(&'static str, &'static str)]) -> Canned {
    let mut canned = json_answer(
        429,
        json!({"errors": [{"detail": "Daily rate limit of 1000 requests exceeded for this \
                                      endpoint. See headers for additional details.",
                           "status": 429}]}),
    );
    canned.headers.extend_from_slice(headers);
    canned
}

fn abuseipdb(mock: &Mock) -> Arc<dyn Provider> {
    Arc::new(
        AbuseIpDb::new(&settings(
            &format!("{}/api/v2", mock.url),
            "abuse-test-key",
            Duration::from_secs(600),
        ))
        .unwrap(),
    )
}

#[tokio::test]
async fn a_spent_quota_holds_until_the_providers_retry_after_else_its_reset_time() {
    // Retry-After wins over the reset time.
    let mock = Mock::start(
        &mock_api::ABUSEIPDB,
        abuseipdb_daily_limit(&[
            ("retry-after", "29241"),
            ("x-ratelimit-limit", "1000"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1545973200"),
        ]),
    )
    .await;
    let (_registry, metrics) = new_metrics();
    let clock = VirtualClock::at_rfc3339(MORNING);
    let slot = clocked(abuseipdb(&mock), limits(60, 1000), &metrics, &clock);
    let spent = slot.lookup(ip("203.0.113.45"), now_patience()).await;
    assert_eq!(
        spent.intel.status,
        ProviderStatus::QuotaExhausted,
        "{spent:?}"
    );
    let until = at(MORNING) + Duration::from_secs(29_241);
    assert_eq!(spent.retry_at, Some(until));
    clock.set(until - Duration::from_secs(1));
    assert_eq!(
        slot.lookup(ip("198.51.100.7"), now_patience())
            .await
            .intel
            .status,
        ProviderStatus::Skipped
    );
    assert_eq!(mock.requests(), 1);
    clock.set(until);
    slot.lookup(ip("198.51.100.7"), now_patience()).await;
    assert_eq!(
        mock.requests(),
        2,
        "asked again when the Retry-After ran out"
    );

    // Without Retry-After: until X-RateLimit-Reset, read against the slot's clock: the hold
    // ends exactly at the reset, two hours after this clock's morning.
    let reset_at = at(MORNING) + Duration::from_secs(7_200);
    let reset = reset_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let reset_header: &'static str = Box::leak(reset.to_string().into_boxed_str());
    let mock = Mock::start(
        &mock_api::ABUSEIPDB,
        abuseipdb_daily_limit(&[
            ("x-ratelimit-limit", "1000"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", reset_header),
        ]),
    )
    .await;
    let clock = VirtualClock::at_rfc3339(MORNING);
    let slot = clocked(abuseipdb(&mock), limits(60, 1000), &metrics, &clock);
    let spent = slot.lookup(ip("203.0.113.45"), now_patience()).await;
    assert_eq!(
        spent.intel.status,
        ProviderStatus::QuotaExhausted,
        "{spent:?}"
    );
    assert_eq!(
        spent.retry_at,
        Some(reset_at),
        "held until the provider's reset on the slot's clock ({:?})",
        spent.retry_at.map(rfc3339)
    );
    clock.set(reset_at - Duration::from_secs(1));
    slot.lookup(ip("198.51.100.7"), now_patience()).await;
    assert_eq!(mock.requests(), 1, "no request before the reset");
    clock.set(reset_at);
    slot.lookup(ip("198.51.100.7"), now_patience()).await;
    assert_eq!(mock.requests(), 2, "asked again at the reset");
}

/// Fails every lookup with a 503 until told otherwise.
fn vt_unavailable() -> Canned {
    vt_error(503, "TransientError", "Please retry later")
}

#[tokio::test]
async fn a_401_403_or_429_answer_closes_the_circuit_the_provider_is_up() {
    // Each scenario: a provider, the answer that says it is up, and how long that answer holds
    // it (a 403 without a key is a block of an hour; a 429 without Retry-After a minute).
    let json_403 = json_answer(403, json!({"detail": "Forbidden"}));
    let scenarios: Vec<(&str, Canned, Canned, Duration)> = vec![
        (
            "virustotal 429",
            vt_unavailable(),
            vt_error(429, "TooManyRequestsError", "Too many requests"),
            Duration::from_secs(60),
        ),
        (
            "internetdb 403",
            json_answer(503, json!({"detail": "Service Unavailable"})),
            json_403,
            Duration::from_secs(3_600),
        ),
        (
            "greynoise 401 without a key",
            json_answer(503, json!({"message": "Service Unavailable"})),
            json_answer(401, json!({"message": "Unauthorized"})),
            Duration::from_secs(3_600),
        ),
    ];
    for (name, failing, answer, hold) in scenarios {
        let api = match name {
            "virustotal 429" => &mock_api::VIRUSTOTAL,
            "internetdb 403" => &mock_api::INTERNETDB,
            _ => &mock_api::GREYNOISE,
        };
        let mock = Mock::start(api, failing.clone()).await;
        let (_registry, metrics) = new_metrics();
        let clock = VirtualClock::at_rfc3339(MORNING);
        let provider: Arc<dyn Provider> = match name {
            "virustotal 429" => patient_virustotal(&mock),
            "internetdb 403" => internetdb(&mock),
            _ => Arc::new(
                GreyNoise::new(&settings(
                    &format!("{}/v3/community", mock.url),
                    "",
                    Duration::from_secs(600),
                ))
                .unwrap(),
            ),
        };
        let slot = clocked(provider, limits(0, 0), &metrics, &clock);
        // Three failures (one lookup and its two retries): two short of opening the circuit.
        let failed = slot.lookup(ip("203.0.113.1"), now_patience()).await;
        assert_eq!(failed.intel.status, ProviderStatus::Unavailable, "{name}");
        assert_eq!(mock.requests(), 3, "{name}");
        mock.answer(answer);
        let up = slot.lookup(ip("203.0.113.2"), now_patience()).await;
        assert!(
            matches!(
                up.intel.status,
                ProviderStatus::RateLimited
                    | ProviderStatus::Forbidden
                    | ProviderStatus::Unauthorized
            ),
            "{name}: {up:?}"
        );
        assert!(!slot.is_down(), "{name}: no key was refused");
        clock.advance(hold);
        // Three more failures: with the count reset by the answer, the circuit stays closed.
        mock.answer(failing);
        slot.lookup(ip("203.0.113.3"), now_patience()).await;
        assert_eq!(
            mock.requests(),
            7,
            "{name}: the retries stopped, so the circuit opened: the answer did not reset the \
             failure count"
        );
        let next = slot.lookup(ip("203.0.113.4"), now_patience()).await;
        assert!(
            mock.requests() > 7,
            "{name}: no request: the circuit opened, so the answer did not close it ({next:?})"
        );
        assert!(
            !next
                .intel
                .detail
                .unwrap_or_default()
                .contains("circuit open"),
            "{name}"
        );
    }
}

#[tokio::test]
async fn no_provider_error_changes_a_score_or_publishes_a_revision() {
    let mut challenge = html_answer(403);
    challenge.body = "<!DOCTYPE html><html><head><title>Attention Required! | Cloudflare</title>\
                      </head><body>Sorry, you have been blocked</body></html>"
        .to_owned();
    let failures: Vec<(&str, Canned, ProviderStatus)> = vec![
        (
            "403",
            vt_error(
                403,
                "ForbiddenError",
                "You are not allowed to perform the requested operation",
            ),
            ProviderStatus::Forbidden,
        ),
        (
            "429",
            vt_error(429, "TooManyRequestsError", "Too many requests"),
            ProviderStatus::RateLimited,
        ),
        (
            "429 quota",
            vt_error(429, "QuotaExceededError", "Quota exceeded"),
            ProviderStatus::QuotaExhausted,
        ),
        ("503", vt_unavailable(), ProviderStatus::Unavailable),
        ("html", challenge, ProviderStatus::InvalidResponse),
    ];
    let settings = defaults();
    for (name, canned, status) in failures {
        let mock = Mock::start(&mock_api::VIRUSTOTAL, canned).await;
        let (registry, metrics) = new_metrics();
        let clock = VirtualClock::at_rfc3339(MORNING);
        let sink = Arc::new(Collect::default());
        let stage = new_stage(
            vec![clocked(
                patient_virustotal(&mock),
                limits(0, 0),
                &metrics,
                &clock,
            )],
            100,
            &settings,
            sink.clone(),
            now_patience(),
            &metrics,
        );
        let dedup = DedupCache::new(Duration::from_secs(3_600), 100);
        // A published record (vendor threat event, 40) and one below min_verdict (0).
        let published = job(
            ip("203.0.113.60"),
            &dedup,
            &settings,
            &["virustotal"],
            Some("ET TROJAN Example CnC Beacon"),
            plain(),
        );
        let quiet = job(
            ip("203.0.113.61"),
            &dedup,
            &settings,
            &["virustotal"],
            None,
            plain(),
        );
        for (i, job) in [published, quiet].into_iter().enumerate() {
            let before = valid(job.tracked.lock().await.record.clone());
            let after = valid(stage.enrich_now(job).await);
            let got = intel_of(&after, "virustotal").status;
            // The second lookup may find the provider held (429) or down (403) by the first.
            assert!(
                got == status || (i == 1 && got == ProviderStatus::Skipped),
                "{name}: {got:?}"
            );
            assert!(intel_of(&after, "virustotal").facts.is_empty(), "{name}");
            assert_eq!(
                (
                    after.score,
                    after.verdict,
                    after.revision,
                    &after.reasons,
                    &after.network
                ),
                (
                    before.score,
                    before.verdict,
                    before.revision,
                    &before.reasons,
                    &before.network
                ),
                "{name}: the failure changed the record of {}",
                after.ip
            );
        }
        assert!(
            sink.outputs().is_empty(),
            "{name}: a failure published a revision"
        );
        assert_eq!(
            metric(&rendered(&registry), "record_revisions_total", &[]),
            Some(0.0),
            "{name}"
        );
    }
}

#[tokio::test]
async fn every_retry_spends_a_token_of_the_minute_budget() {
    let mock = Mock::start(&mock_api::VIRUSTOTAL, vt_unavailable()).await;
    let (registry, metrics) = new_metrics();
    let clock = VirtualClock::at_rfc3339(MORNING);
    let slot = clocked(patient_virustotal(&mock), limits(3, 0), &metrics, &clock);
    assert_eq!(quota_remaining(&registry, "virustotal"), Some(3.0));

    let failed = slot.lookup(ip("203.0.113.1"), now_patience()).await;
    assert_eq!(failed.intel.status, ProviderStatus::Unavailable);
    assert_eq!(mock.requests(), 1 + MAX_RETRIES as usize);
    // The backoffs went by on the slot's clock: 0.5 s then 1 s, each a point in its upper half.
    let waits = clock.waits();
    assert_eq!(waits.len(), MAX_RETRIES as usize, "{waits:?}");
    for (wait, ceiling) in waits.iter().zip([500u64, 1_000]) {
        let ceiling = Duration::from_millis(ceiling);
        assert!(*wait >= ceiling / 2 && *wait <= ceiling, "{waits:?}");
    }
    assert_eq!(
        quota_remaining(&registry, "virustotal"),
        Some(0.0),
        "three requests, three tokens"
    );
    let next = slot.lookup(ip("203.0.113.2"), now_patience()).await;
    assert_eq!(next.intel.status, ProviderStatus::Skipped, "{next:?}");
    assert_eq!(mock.requests(), 3, "no fourth request within the minute");
    assert_eq!(skipped_count(&registry, "virustotal", "budget_wait"), 1.0);
}

#[tokio::test]
async fn an_rdap_lookup_spends_one_token_for_its_bootstrap_query_and_redirect() {
    // Registry B holds the range; registry A redirects there; the bootstrap names A.
    let b = Mock::serve(&[Route::get("/ip/{ip}")], |seen| {
        let path = seen.path();
        let mut canned = json_answer(
            200,
            json!({"objectClassName": "ip network", "handle": "198.51.100.0 - 198.51.101.255",
                   "startAddress": "198.51.100.0", "endAddress": "198.51.101.255",
                   "ipVersion": "v4", "name": "EXAMPLE-TRANSFERRED", "type": "ASSIGNED PA",
                   "country": "NL", "port43": "whois.ripe.net",
                   "ip": path}),
        );
        canned.content_type = "application/rdap+json";
        canned
    })
    .await;
    let location: &'static str = Box::leak(format!("{}/ip/", b.url).into_boxed_str());
    let a = Mock::serve(&[Route::get("/registry/ip/{ip}")], move |seen| {
        let address = seen.path().rsplit('/').next().unwrap_or("");
        let target: &'static str = Box::leak(format!("{location}{address}").into_boxed_str());
        let mut canned = with_header(json_answer(301, json!({})), "location", target);
        canned.content_type = "application/rdap+json";
        canned
    })
    .await;
    let a_base = format!("{}/registry/", a.url);
    let bootstrap = Mock::serve(
        &[Route::get("/rdap/ipv4.json"), Route::get("/rdap/ipv6.json")],
        move |seen| match seen.path() {
            "/rdap/ipv4.json" => json_answer(
                200,
                json!({"description": "RDAP bootstrap file for IPv4 address allocations",
                   "publication": "2026-06-01T20:00:00Z", "version": "1.0",
                   "services": [[["198.51.100.0/24"], [a_base]]]}),
            ),
            _ => json_answer(404, json!({})),
        },
    )
    .await;
    let (registry, metrics) = new_metrics();
    let clock = VirtualClock::at_rfc3339(MORNING);
    let rdap = Rdap::new(&settings(
        &format!("{}/rdap/", bootstrap.url),
        "",
        Duration::from_secs(600),
    ))
    .unwrap();
    let slot = clocked(Arc::new(rdap), limits(2, 0), &metrics, &clock);

    let first = slot.lookup(ip("198.51.100.7"), now_patience()).await;
    assert_eq!(first.intel.status, ProviderStatus::Ok, "{first:?}");
    assert_eq!(
        (bootstrap.requests(), a.requests(), b.requests()),
        (1, 1, 1),
        "bootstrap, query and redirect"
    );
    assert_eq!(
        quota_remaining(&registry, "rdap"),
        Some(1.0),
        "three HTTP requests, one lookup: one token"
    );
    let second = slot.lookup(ip("198.51.100.8"), now_patience()).await;
    assert_eq!(second.intel.status, ProviderStatus::Ok, "{second:?}");
    assert_eq!(bootstrap.requests(), 1, "the bootstrap is fetched once");
    assert_eq!(quota_remaining(&registry, "rdap"), Some(0.0));
    let third = slot.lookup(ip("198.51.100.9"), now_patience()).await;
    assert_eq!(third.intel.status, ProviderStatus::Skipped, "{third:?}");
    assert_eq!(
        (a.requests(), b.requests()),
        (2, 2),
        "no request past the budget"
    );
}

#[tokio::test]
async fn answers_are_cached_and_errors_never_are() {
    let mock = Mock::start(
        &mock_api::INTERNETDB,
        json_answer(404, json!({"detail": "No information available"})),
    )
    .await;
    let (registry, metrics) = new_metrics();
    let clock = VirtualClock::at_rfc3339(MORNING);
    let slot = clocked(internetdb(&mock), limits(0, 0), &metrics, &clock);
    let hits = || {
        metric(
            &rendered(&registry),
            "enrich_cache_hits_total",
            &[("provider", "internetdb")],
        )
        .unwrap_or(0.0)
    };

    // not_found is an answer: cached (for not_found_ttl), no second request.
    let unknown = slot.lookup(ip("203.0.113.1"), now_patience()).await;
    assert_eq!(unknown.intel.status, ProviderStatus::NotFound);
    let again = slot.lookup(ip("203.0.113.1"), now_patience()).await;
    assert_eq!(again, unknown);
    assert_eq!(mock.requests(), 1);
    assert_eq!(hits(), 1.0);
    assert!(!slot.needs_request(ip("203.0.113.1")));

    // Errors are not: each later lookup of the address asks again.
    let errors = [
        json_answer(503, json!({"detail": "Service Unavailable"})),
        html_answer(403),
        with_header(html_answer(429), "retry-after", "30"),
    ];
    let mut expected = 1;
    for canned in errors {
        mock.answer(canned);
        let address = ip("203.0.113.2");
        let failed = slot.lookup(address, now_patience()).await;
        assert_ne!(failed.intel.status, ProviderStatus::Ok);
        expected = mock.requests();
        assert!(slot.needs_request(address), "{failed:?} was cached");
        // Past any hold the error set.
        clock.advance(Duration::from_secs(3_600));
    }
    mock.answer(json_answer(
        200,
        json!({"cpes": [], "hostnames": [], "ip": "203.0.113.2", "ports": [22],
               "tags": [], "vulns": []}),
    ));
    let answered = slot.lookup(ip("203.0.113.2"), now_patience()).await;
    assert_eq!(answered.intel.status, ProviderStatus::Ok, "{answered:?}");
    assert_eq!(
        mock.requests(),
        expected + 1,
        "asked again after the errors"
    );
    assert_eq!(hits(), 1.0, "no error was served from the cache");
}

// ---------------------------------------------------------------------------------------------
// 9. Shutdown: lookups already sent get the grace, queued ones are dropped

/// A stage with one VirusTotal slot of one token a minute on `mock`, two addresses offered
/// (the suspicious one first) and its dispatchers running until the first lookup reached the
/// provider; the second waits in the queue for the next token.
async fn one_lookup_running(
    mock: &Mock,
    metrics: &Arc<Metrics>,
    sink: Arc<Collect>,
) -> (
    Arc<RemoteStage>,
    Vec<RemoteJob>,
    CancellationToken,
    tokio::task::JoinSet<()>,
) {
    let settings = defaults();
    // Standing: the dispatcher's wait for the next token never ends while the test runs.
    let clock = StandingClock::at_rfc3339(MORNING);
    let slot = standing(patient_virustotal(mock), limits(1, 0), metrics, &clock);
    // Patient: the second address waits in the queue for the next token, not skipped.
    let stage = new_stage(vec![slot], 10, &settings, sink, patience(3_600), metrics);
    let dedup = DedupCache::new(Duration::from_secs(3_600), 10);
    let suspicious = Priority {
        locally_suspicious: true,
        ..plain()
    };
    let jobs = vec![
        job(
            ip("203.0.113.45"),
            &dedup,
            &settings,
            &["virustotal"],
            None,
            suspicious,
        ),
        job(
            ip("203.0.113.46"),
            &dedup,
            &settings,
            &["virustotal"],
            None,
            plain(),
        ),
    ];
    for job in &jobs {
        stage.offer(job.clone()).await;
    }
    let stop = CancellationToken::new();
    let dispatchers = threatsift::spawn_dispatchers(&stage, &stop);
    wait_for("the first lookup reached the provider", || {
        mock.requests() == 1
    })
    .await;
    (stage, jobs, stop, dispatchers)
}

#[test]
fn at_shutdown_a_lookup_past_the_grace_is_abandoned_with_a_warning_giving_the_count() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .with_writer(move || writer.clone())
        .finish();
    let capture = tracing::Dispatch::new(subscriber);
    // See the_api_key_appears_nowhere_but_the_request_header: a second dispatcher makes
    // tracing ask every live one whether a callsite is interesting.
    let _second = tracing::Dispatch::new(tracing_subscriber::registry());
    let _guard = tracing::dispatcher::set_default(&capture);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // The provider never answers: the lookup is still running at the stop.
        let mock = Mock::start(&mock_api::VIRUSTOTAL, mock_api::no_answer()).await;
        let (_registry, metrics) = new_metrics();
        let sink = Arc::new(Collect::default());
        let (stage, jobs, stop, dispatchers) =
            one_lookup_running(&mock, &metrics, sink.clone()).await;
        stop.cancel();
        // A short grace stands in for the daemon's 5 s (remote_grace, unit-tested).
        let finished = tokio::time::timeout(
            EVENT_DEADLINE,
            threatsift::finish_lookups(dispatchers, Duration::from_millis(100), Some(&stage)),
        )
        .await
        .expect("finish_lookups waited past its grace for a lookup that never ends");
        assert!(
            !finished,
            "a lookup that is never answered finished in the grace"
        );
        assert_eq!(
            mock.requests(),
            1,
            "the queued address was asked after the stop"
        );
        assert_eq!(
            stage.waiting(),
            2,
            "both addresses are lost with the process"
        );
        for job in &jobs {
            let record = valid(job.tracked.lock().await.record.clone());
            assert_eq!(
                intel_of(&record, "virustotal").status,
                ProviderStatus::Pending,
                "{}",
                job.ip
            );
        }
        assert!(sink.outputs().is_empty());
    });
    let text = logs.text();
    let warning = text
        .lines()
        .find(|l| l.contains("remote lookups still running at shutdown were abandoned"))
        .unwrap_or_else(|| panic!("no abandon warning in the logs:\n{text}"));
    let line: Value = serde_json::from_str(warning).unwrap();
    assert_eq!(line["level"], "WARN", "{warning}");
    assert_eq!(line["fields"]["waiting"], 2, "{warning}");
}

#[tokio::test]
async fn at_shutdown_a_lookup_already_sent_finishes_in_the_grace_and_publishes() {
    // The answer (14 engines: malicious) is held until after the stop.
    let gate = Gate::new();
    let mock = Mock::start(&mock_api::VIRUSTOTAL, held(vt_ok("203.0.113.45"), &gate)).await;
    let (registry, metrics) = new_metrics();
    let sink = Arc::new(Collect::default());
    let (stage, jobs, stop, dispatchers) = one_lookup_running(&mock, &metrics, sink.clone()).await;
    stop.cancel();
    gate.open();
    assert!(
        threatsift::finish_lookups(dispatchers, EVENT_DEADLINE, Some(&stage)).await,
        "the running lookup was abandoned within a grace it needed a moment of"
    );
    let published = sink.records();
    assert_eq!(published.len(), 1, "{published:#?}");
    assert_eq!(published[0]["ip"], "203.0.113.45");
    assert_eq!(published[0]["verdict"], "malicious");
    assert_eq!(
        mock.requests(),
        1,
        "the queued address was asked after the stop"
    );
    // The queued address was dropped: its record keeps `pending`, and it still counts.
    assert_eq!(stage.waiting(), 1);
    assert_eq!(
        metric(&rendered(&registry), "remote_queue_depth", &[]),
        Some(1.0)
    );
    let record = valid(jobs[1].tracked.lock().await.record.clone());
    assert_eq!(
        intel_of(&record, "virustotal").status,
        ProviderStatus::Pending
    );
}

#[tokio::test]
async fn not_found_is_served_from_the_cache_for_not_found_ttl_and_ok_for_ttl() {
    let mock = Mock::by_address(&mock_api::INTERNETDB, |ip| match ip.to_string().as_str() {
        "203.0.113.2" => json_answer(
            200,
            json!({"cpes": [], "hostnames": [], "ip": "203.0.113.2", "ports": [22],
                   "tags": [], "vulns": []}),
        ),
        _ => json_answer(404, json!({"detail": "No information available"})),
    })
    .await;
    let (_registry, metrics) = new_metrics();
    let clock = VirtualClock::at_rfc3339(MORNING);
    // limits(): ttl one hour, not_found_ttl ten minutes.
    let slot = clocked(internetdb(&mock), limits(0, 0), &metrics, &clock);
    let (unknown, known) = (ip("203.0.113.1"), ip("203.0.113.2"));
    let look = |address| slot.lookup(address, now_patience());

    assert_eq!(look(unknown).await.intel.status, ProviderStatus::NotFound);
    assert_eq!(look(known).await.intel.status, ProviderStatus::Ok);
    assert_eq!(mock.requests(), 2);

    clock.set(at("2026-11-23T10:09:59Z"));
    look(unknown).await;
    look(known).await;
    assert_eq!(
        mock.requests(),
        2,
        "both answers cached within not_found_ttl"
    );

    clock.set(at("2026-11-23T10:10:00Z"));
    assert_eq!(look(unknown).await.intel.status, ProviderStatus::NotFound);
    assert_eq!(
        mock.requests(),
        3,
        "not_found asked again after not_found_ttl"
    );
    assert_eq!(look(known).await.intel.status, ProviderStatus::Ok);
    assert_eq!(mock.requests(), 3, "the ok answer is still within its ttl");

    clock.set(at("2026-11-23T10:59:59Z"));
    look(known).await;
    assert_eq!(mock.requests(), 3);
    clock.set(at("2026-11-23T11:00:00Z"));
    assert_eq!(look(known).await.intel.status, ProviderStatus::Ok);
    assert_eq!(mock.requests(), 4, "ok asked again after ttl");
    assert_eq!(
        mock.asked(),
        ["203.0.113.1", "203.0.113.2", "203.0.113.1", "203.0.113.2"]
    );
}
