//! w-bench: state records as the daemon writes them, and the warm start as the daemon runs it,
//! for `benches/warm_start.rs`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::intel::feeds::FeedMatch;
use crate::model::{
    rfc3339, Network, Observed, Origin, ProviderIntel, ProviderStatus, Reason, Role, Severity,
    ThreatRecord, Verdict, THREAT_SCHEMA,
};
use crate::remote::{NoRevisions, RemoteJob, RemoteStage};
use crate::settings::Settings;
use crate::stages::dedup::DedupCache;
use crate::stages::process::Priority;
use crate::state::{StateParts, StateRecord, StoredAnswer};
use crate::telemetry::Metrics;

/// The remote providers a [`StateWriter`]'s states name: two answered, one `pending` in every
/// tenth state.
pub const STATE_PROVIDERS: [&str; 3] = ["virustotal", "abuseipdb", "otx"];

/// Builds state records (`threatsift.state/1`) with the crate's own encoder: each a published
/// record with a VirusTotal and an AbuseIPDB answer, a feed match and, for one address in ten,
/// OTX `pending`. Its sightings come from its own dedup window, as the processor's do.
pub struct StateWriter {
    window: DedupCache,
    now: SystemTime,
}

impl StateWriter {
    /// A writer for up to `addresses` addresses, their states written at `now` (first seen ten
    /// minutes before, answers valid for 24 h after).
    pub fn new(addresses: u64, now: SystemTime) -> StateWriter {
        StateWriter {
            window: DedupCache::new(Duration::from_secs(86_400), addresses.max(1)),
            now,
        }
    }

    /// The state of the `index`th address `ip`: its key (the address text) and payload.
    pub fn state(&self, ip: IpAddr, index: u64) -> (Vec<u8>, Vec<u8>) {
        let first_seen = self.now - Duration::from_secs(600);
        let sighting = self.window.observe(ip, first_seen).sighting;
        let sightings = 1 + index % 5;
        for i in 1..sightings {
            self.window
                .observe(ip, first_seen + Duration::from_secs(60 * i));
        }
        let pending = index % 10 == 0;
        let malicious = 3 + index % 9;
        let confidence = 40 + index % 60;
        let (vt, abuse, feed) = (30, 25, 20);
        let score: u32 = vt + abuse + feed;
        sighting.next_revision(score, Verdict::Malicious);
        let mut intel = BTreeMap::new();
        intel.insert(
            "virustotal".to_owned(),
            ProviderIntel {
                status: ProviderStatus::Ok,
                detail: None,
                facts: facts(json!({
                    "last_analysis_stats": {"malicious": malicious, "suspicious": 1,
                        "undetected": 20, "harmless": 70 - malicious, "timeout": 0},
                    "reputation": -(malicious as i64) * 3,
                    "asn": 64_500 + index % 100,
                    "as_owner": "Example Hosting Ltd",
                    "country": "NL",
                    "network": format!("{ip}/24"),
                    "regional_internet_registry": "RIPE NCC",
                    "flagged_by": ["EngineA", "EngineB", "EngineC"],
                })),
            },
        );
        intel.insert(
            "abuseipdb".to_owned(),
            ProviderIntel {
                status: ProviderStatus::Ok,
                detail: None,
                facts: facts(json!({
                    "abuse_confidence_score": confidence,
                    "total_reports": 10 + index % 300,
                    "num_distinct_users": 3 + index % 40,
                    "usage_type": "Data Center/Web Hosting/Transit",
                    "isp": "Example Hosting Ltd",
                    "domain": "hosting.example",
                    "last_reported_at": rfc3339(self.now - Duration::from_secs(3_600)),
                    "country_code": "NL",
                    "is_tor": false,
                    "is_whitelisted": false,
                    "is_public": true,
                    "max_age_in_days": 90,
                })),
            },
        );
        if pending {
            intel.insert(
                "otx".to_owned(),
                ProviderIntel::status(ProviderStatus::Pending, "asked after the first record"),
            );
        }
        let network = Network {
            asn: Some(64_500 + (index % 100) as u32),
            as_org: Some("Example Hosting Ltd".into()),
            country: Some("NL".into()),
            rir: Some("RIPE NCC".into()),
            cidr: None,
        };
        let origin = Origin {
            topic: Arc::from("firewall"),
            partition: (index % 6) as i32,
            offset: index as i64,
        };
        let record = ThreatRecord {
            schema: THREAT_SCHEMA.to_owned(),
            ip: ip.to_string(),
            ip_version: if ip.is_ipv4() { 4 } else { 6 },
            verdict: Verdict::Malicious,
            severity: Severity::High,
            score,
            reasons: vec![
                reason("virustotal", &format!("{malicious} engines flag it"), vt),
                reason("abuseipdb", &format!("confidence {confidence}%"), abuse),
                reason("feeds", "listed by drop", feed),
            ],
            indicator: "Malicious IP".to_owned(),
            first_seen: rfc3339(sighting.first_seen()),
            last_seen: rfc3339(sighting.last_seen()),
            sightings: sighting.count(),
            roles: vec![Role::Source],
            observed: Observed {
                format: "kv".to_owned(),
                vendor: Some("Fortinet".to_owned()),
                product: Some("FortiGate".to_owned()),
                action: Some("deny".to_owned()),
                peer_ip: Some("10.0.10.80".to_owned()),
                rule: Some("wan-in".to_owned()),
                topic: origin.topic.to_string(),
                partition: origin.partition,
                offset: origin.offset,
                ..Observed::default()
            },
            network: network.clone(),
            intel,
            revision: sighting.revision(),
            generated_at: rfc3339(self.now),
            id: None,
            event_time: None,
            confidence: None,
            tlp: None,
            expires_at: None,
            revoked: false,
            revocation_reason: None,
        };
        let until = rfc3339(self.now + Duration::from_secs(86_400));
        let answers: BTreeMap<String, StoredAnswer> = [
            (
                "virustotal".to_owned(),
                StoredAnswer {
                    until: until.clone(),
                    network: Some(network),
                },
            ),
            (
                "abuseipdb".to_owned(),
                StoredAnswer {
                    until,
                    network: None,
                },
            ),
        ]
        .into();
        let matches = [FeedMatch {
            feed: Arc::from("drop"),
            cidr: format!("{ip}/32").parse().expect("a host route"),
            exact: true,
        }];
        let parts = StateParts {
            record: &record,
            sighting: &sighting,
            feed_matches: &matches,
            threat: Some("scanner"),
            reporter: Some("FortiGate"),
            priority: Priority {
                locally_suspicious: true,
                sightings_order: Priority::sightings_order(sighting.count()),
                allowed: false,
            },
            answers: &answers,
            retry_at: None,
            origin: &origin,
        };
        let output = StateRecord::build(ip, parts, self.now)
            .encode()
            .expect("a state encodes");
        (output.key.expect("keyed by the address"), output.payload)
    }
}

fn facts(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match value {
        serde_json::Value::Object(map) => map,
        _ => unreachable!("facts are an object"),
    }
}

fn reason(source: &str, detail: &str, weight: u32) -> Reason {
    let weight = i32::try_from(weight).unwrap_or(i32::MAX);
    Reason {
        source: source.to_owned(),
        detail: detail.to_owned(),
        weight,
    }
}

/// The states [`read_state`] read, held (as read) until [`restore_state`].
pub struct StateRead {
    warm: crate::state::WarmState,
    /// Records read (states and tombstones).
    pub records: u64,
    /// Time the read took.
    pub elapsed: Duration,
}

/// The first half of the daemon's warm start: `state::warm_start` of every partition of
/// `<output_topic>.state`, to each one's end.
pub async fn read_state(settings: &Settings) -> StateRead {
    let started = std::time::Instant::now();
    let warm = crate::state::warm_start(settings, None, &CancellationToken::new())
        .await
        .expect("the state topic reads")
        .expect("not stopped");
    StateRead {
        records: warm.records,
        elapsed: started.elapsed(),
        warm,
    }
}

/// What [`restore_state`] restored into.
pub struct WarmStarted {
    /// The dedup window, as the processor builds it (`dedup.ttl`, `dedup.max_entries`).
    pub dedup: DedupCache,
    /// The remote stage over the enabled remote providers, as the daemon builds it.
    pub remote: Option<Arc<RemoteStage>>,
    /// The jobs the daemon would queue again.
    pub requeue: Vec<RemoteJob>,
    /// Time the restore took (not the set-up before it).
    pub elapsed: Duration,
}

/// The second half: `state::restore` of `read` into a fresh dedup window and the remote stage
/// built from `settings` as the daemon builds it (its revisions go nowhere: nothing is
/// requeued, so no provider is asked). The figures go to `metrics`
/// (`warm_start_records_total`, `warm_start_lookups_requeued_total`, `warm_start_seconds`).
pub async fn restore_state(
    read: StateRead,
    settings: &Settings,
    metrics: &Arc<Metrics>,
) -> WarmStarted {
    let providers = crate::topology::build_providers(settings)
        .await
        .expect("the providers build");
    let remote = crate::topology::build_remote_stage(
        settings,
        &providers,
        None,
        Arc::new(NoRevisions),
        metrics.clone(),
    )
    .expect("the remote stage builds");
    let dedup = DedupCache::new(settings.dedup.ttl, settings.dedup.max_entries);
    let started = std::time::Instant::now();
    let requeue = crate::state::restore(read.warm, &dedup, remote.as_ref(), metrics).await;
    WarmStarted {
        dedup,
        remote,
        requeue,
        elapsed: started.elapsed(),
    }
}
