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
//!   next revision number; a `not_found` afterwards publishes nothing.
//!
//! No assertion is about speed. The one lower bound checks that a 429 hold is waited out; the
//! stop checks give seconds to what takes milliseconds (only a lookup left waiting inside the
//! slot for next minute's budget exceeds them).

mod mock_api;

use mock_api::{html_answer, ip, json_answer, settings, Canned, Mock};

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures::future::BoxFuture;
use prometheus::Registry;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use threatsift::test_support::remote::{
    defaults, limits, new_metrics, now_patience, patience, remote_job, rules,
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
use threatsift::{Observed, Origin, Role};
use threatsift::{Outcome, Patience, ProviderSlot, SlotLimits, MAX_RETRIES};
use threatsift::{Output, OutputKind};
use threatsift::{Priority, RemoteJob, RemoteStage, RevisionSink};
use threatsift::{Provider, PENDING_DETAIL};

fn with_delay(mut canned: Canned, delay: Duration) -> Canned {
    canned.delay = delay;
    canned
}

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

    fn records(&self) -> Vec<Value> {
        self.outputs()
            .iter()
            .map(|o| serde_json::from_slice(&o.payload).unwrap())
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
        },
        network: Network::default(),
        intel,
        revision: 1,
        generated_at: rfc3339(now),
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

/// Offers `jobs`, runs the dispatchers for `run`, then stops them as the daemon does at
/// shutdown: lookups already sent get `grace`, then are aborted. True when they stopped in time
/// (only a lookup parked inside the slot waiting for budget needs the grace).
async fn offer_and_dispatch(
    stage: &Arc<RemoteStage>,
    jobs: &[RemoteJob],
    run: Duration,
    grace: Duration,
) -> bool {
    for job in jobs {
        stage.offer(job.clone()).await;
    }
    let stop = CancellationToken::new();
    let mut dispatchers = threatsift::spawn_dispatchers(stage, &stop);
    tokio::time::sleep(run).await;
    stop.cancel();
    let joined = tokio::time::timeout(grace, async {
        while dispatchers.join_next().await.is_some() {}
    })
    .await;
    dispatchers.abort_all();
    joined.is_ok()
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
    let mock = Mock::start(
        &mock_api::VIRUSTOTAL,
        with_delay(vt_ok(address), Duration::from_millis(200)),
    )
    .await;
    let (registry, metrics) = new_metrics();
    let slot = slot(virustotal(&mock, VT_KEY), limits(0, 0), &metrics);

    let lookups: Vec<_> = (0..100)
        .map(|_| {
            let slot = slot.clone();
            tokio::spawn(async move { slot.lookup(ip(address), patience(5)).await })
        })
        .collect();
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
    let slot = slot(virustotal(&mock, VT_KEY), limits(PER_MINUTE, 0), &metrics);
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
    let stopped = offer_and_dispatch(
        &stage,
        &jobs,
        Duration::from_secs(3),
        Duration::from_secs(5),
    )
    .await;

    let text = rendered(&registry);
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
        let entry = intel_of(&tracked.record, "virustotal");
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
    // The budget went to the highest priority. (Fails intermittently while the dispatcher
    // starts lookups the budget cannot cover: see the next test.)
    let asked: HashSet<String> = mock.asked().into_iter().collect();
    assert_eq!(
        asked, expected,
        "the per-minute budget was not spent on the locally suspicious addresses"
    );
    assert!(
        stopped,
        "a lookup was still waiting for budget inside the slot 5 s after the stop"
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
    let (_registry, metrics) = new_metrics();
    let settings = defaults();
    let slot = slot(virustotal(&mock, VT_KEY), limits(1, 0), &metrics);
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
    let stopped = offer_and_dispatch(
        &stage,
        &jobs,
        Duration::from_secs(1),
        Duration::from_secs(3),
    )
    .await;
    println!(
        "one token, four waiting: upstream requests {}, asked {:?}, dispatchers stopped: {}",
        mock.requests(),
        mock.asked(),
        stopped
    );
    assert_eq!(
        mock.asked(),
        vec!["45.33.0.1"],
        "the only token was not spent on the highest-priority address"
    );
    assert!(
        stopped,
        "lookups started past the budget were still waiting inside the slot after the stop"
    );
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
    let before_published = published.tracked.lock().await.record.clone();
    let before_quiet = quiet.tracked.lock().await.record.clone();
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

    let after_published = stage.enrich_now(published.clone()).await;
    let after_quiet = stage.enrich_now(quiet.clone()).await;
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
                    let record = stage.enrich_now(job).await;
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
    for output in sink.outputs() {
        haystack.push((
            "published revision".to_owned(),
            String::from_utf8_lossy(&output.payload).into_owned(),
        ));
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
    let throttled = with_header(
        vt_error(429, "TooManyRequestsError", "Too many requests"),
        "retry-after",
        "2",
    );
    let mock = Mock::start(&mock_api::VIRUSTOTAL, throttled).await;
    let (registry, metrics) = new_metrics();
    let slot = slot_for(&mock, &metrics);

    let first = slot.lookup(ip("203.0.113.45"), patience(5)).await;
    let throttled_at = Instant::now();
    assert_eq!(first.intel.status, ProviderStatus::RateLimited, "{first:?}");
    assert!(
        first
            .intel
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("TooManyRequestsError"),
        "{first:?}"
    );
    let retry_in = first
        .retry_at
        .expect("a 429 says when to try again")
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    assert!(
        retry_in > Duration::from_millis(1_000) && retry_in <= Duration::from_secs(2),
        "retry in {retry_in:?}"
    );

    let impatient = slot.lookup(ip("198.51.100.7"), now_patience()).await;
    assert_eq!(mock.requests(), 1, "no request while held");
    assert_eq!(
        impatient.intel.status,
        ProviderStatus::Skipped,
        "{impatient:?}"
    );
    assert!(impatient.retry_at.is_some());
    assert_eq!(
        metric(
            &rendered(&registry),
            "enrich_skipped_total",
            &[("provider", "virustotal"), ("reason", "budget_wait")]
        ),
        Some(1.0)
    );

    mock.answer(vt_ok("198.51.100.7"));
    let patient = slot.lookup(ip("198.51.100.7"), patience(4)).await;
    let waited = throttled_at.elapsed();
    println!(
        "upstream requests for 429 then a patient lookup: {} (waited {waited:?})",
        mock.requests()
    );
    assert_eq!(patient.intel.status, ProviderStatus::Ok, "{patient:?}");
    assert_eq!(mock.requests(), 2);
    assert_eq!(mock.asked(), vec!["203.0.113.45", "198.51.100.7"]);
    assert!(
        waited >= Duration::from_millis(1_500),
        "the hold of Retry-After: 2 was not waited out ({waited:?})"
    );
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
    let slot = slot_for(&mock, &metrics);

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
    // InternetDB answers after VirusTotal: 404 is its normal "not indexed".
    let idb = Mock::start(
        &mock_api::INTERNETDB,
        with_delay(
            json_answer(404, json!({"detail": "No information available"})),
            Duration::from_millis(300),
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
    let before = fresh.tracked.lock().await.record.clone();
    assert_eq!((before.score, before.verdict), (0, Verdict::Unknown));
    assert_eq!(fresh.tracked.lock().await.sighting.published(), None);
    let after = stage.enrich_now(fresh.clone()).await;
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
    let first = seen_before.tracked.lock().await.record.clone();
    assert_eq!((first.verdict, first.revision), (Verdict::Suspicious, 1));
    let lifted = stage.enrich_now(seen_before).await;
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
    let again = idb_only.enrich_now(fresh.clone()).await;
    assert_eq!(sink.outputs().len(), 2, "a not_found published a revision");
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
