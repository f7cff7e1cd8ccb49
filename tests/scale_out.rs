//! Issue 16: three daemons in one consumer group on the real broker (tansu), 100,000 firewall
//! events over 5,000 public addresses spread over every input partition, VirusTotal and
//! AbuseIPDB mocks on 127.0.0.1 that count each request (address, the daemon's key, arrival).
//!
//! * Scaled mode: each address is requested exactly once per provider, every address gets its
//!   records, and the requests of all daemons together stay within the configured per-minute
//!   budget in every 60 s window.
//! * Scaled mode with one daemon SIGKILLed mid-run and restarted: nothing it had an answer for is
//!   asked again; only its lookups in flight at the kill (held at the mock, so they are known)
//!   and lookups in flight at a handover are repeated; every address ends answered.
//! * Single mode (ignored, the baseline scaled mode fixes): each daemon keeps its own dedup
//!   window and budget, so an address seen on partitions of three daemons is asked about up to
//!   three times.
//!
//! The figures of each run (requests per address min/max/mean, the most requests in a 60 s
//! window, wall time) are printed for the closing note.
#![allow(clippy::disallowed_methods)] // plain test threads may sleep; no runtime is blocked

mod common;
mod mock_api;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::*;
use mock_api::{Asked, CountingMock, Gate};

/// Input partitions, and sightings and state partitions.
const PARTITIONS: i32 = 6;
const ADDRESSES: u32 = 5_000;
const EVENTS: u32 = 100_000;
/// Each address appears once per round, on partition (address + round) % PARTITIONS: on every
/// partition over the run, so in single mode every daemon sees it.
const ROUNDS: u32 = EVENTS / ADDRESSES;
/// Each provider's `per_minute`, for the whole group. Below ADDRESSES, so the budget binds:
/// the lookups cannot all go out within one minute and the pacing is what the window check
/// sees. 3,000 a minute keeps a run near two minutes.
const PER_MINUTE: usize = 3_000;
const MINUTE: Duration = Duration::from_secs(60);
/// The window the mocks count requests in. The daemons' budgets run on the wall clock
/// (`SystemTime`, which NTP may slew by up to 500 ppm, 30 ms a minute) and a token comes back
/// one minute after its request finished, so at full budget the next request reaches the mock
/// about a millisecond past the minute; the mock times arrivals on the monotonic clock. Half a
/// second less than a minute absorbs the difference between the two clocks (a share that were
/// wrong by even one request per daemon would still show: e.g. the whole budget per daemon
/// puts 5,000 in one window).
const BUDGET_WINDOW: Duration = Duration::from_millis(59_500);
/// `remote::LOOKUPS_IN_FLIGHT` (src/remote/stage.rs): lookups one daemon has in flight per
/// provider.
const LOOKUPS_IN_FLIGHT: usize = 4;
const DAEMONS: usize = 3;

const _: () = assert!(ADDRESSES as usize > PER_MINUTE, "the budget must bind");
const _: () = assert!(EVENTS % ADDRESSES == 0 && ROUNDS as i32 >= PARTITIONS);

/// First octets of public IPv4 space (none reserved or special-purpose).
const FIRST_OCTETS: [u32; 20] = [
    31, 37, 45, 62, 77, 80, 89, 91, 103, 109, 141, 146, 176, 185, 188, 193, 195, 212, 213, 217,
];

/// The `a`-th address: public, one in ten IPv6 (2a02::/16, RIPE space), the rest IPv4.
fn address(a: u32) -> IpAddr {
    if a % 10 == 9 {
        format!("2a02:{:x}:{:x}::{:x}", 0x1000 + a / 10, a % 7 + 1, a + 1)
            .parse()
            .unwrap()
    } else {
        let first = FIRST_OCTETS[(a % 20) as usize];
        format!(
            "{first}.{}.{}.{}",
            1 + a / 20,
            (a * 37) % 256,
            1 + (a * 13) % 254
        )
        .parse()
        .unwrap()
    }
}

/// Event `round` of address `a`: an inbound connection denied at the edge, as a FortiGate kv
/// line (even rounds) or FortiGate's CEF (odd rounds); the destination is internal.
fn event(a: u32, round: u32) -> Vec<u8> {
    let ip = address(a);
    let internal = match ip {
        IpAddr::V4(_) => format!("10.20.{}.{}", a % 200, 1 + round),
        IpAddr::V6(_) => format!("fd00::{:x}", 1 + round),
    };
    let n = round * ADDRESSES + a;
    let (second, port) = (n % 60, 1024 + n % 60_000);
    if round % 2 == 0 {
        format!(
            "<189>date=2026-12-05 time=10:{:02}:{second:02} devname=\"FGT-EDGE\" \
             devid=\"FGT60F0000000000\" eventtime={} tz=\"+0000\" logid=\"0000000013\" \
             type=\"traffic\" subtype=\"forward\" level=\"notice\" vd=\"root\" srcip={ip} \
             srcport={port} srcintf=\"wan1\" srcintfrole=\"wan\" dstip={internal} dstport=443 \
             dstintf=\"internal\" dstintfrole=\"lan\" sessionid={n} proto=6 action=\"deny\" \
             policyid=7 policytype=\"policy\" service=\"HTTPS\" duration=0 sentbyte=0 rcvdbyte=0",
            round,
            1_796_464_800 + u64::from(n),
        )
    } else {
        format!(
            "<134>Dec  5 10:{:02}:{second:02} fw-edge-2 CEF:0|Fortinet|Fortigate|v7.2.5|00013|\
             traffic:forward deny|3|deviceExternalId=FGT60F0000000001 cat=traffic:forward \
             src={ip} spt={port} dst={internal} dpt=443 act=deny",
            round
        )
    }
    .into_bytes()
}

/// The whole input: every address once per round, round after round.
fn input() -> Vec<(i32, Vec<u8>)> {
    (0..ROUNDS)
        .flat_map(|round| {
            (0..ADDRESSES).map(move |a| (((a + round) % PARTITIONS as u32) as i32, event(a, round)))
        })
        .collect()
}

fn all_addresses() -> BTreeSet<IpAddr> {
    (0..ADDRESSES).map(address).collect()
}

/// VirusTotal's IP object (providers.md): 1-5 engines flag the address and the community
/// reputation is negative, so the answer always raises the score and makes a revision.
fn vt_answer(ip: IpAddr) -> mock_api::Canned {
    let malicious = 1 + ip.to_string().len() % 5;
    mock_api::json_answer(
        200,
        serde_json::json!({"data": {
            "id": ip.to_string(), "type": "ip_address",
            "links": {"self": format!("https://www.virustotal.com/api/v3/ip_addresses/{ip}")},
            "attributes": {
                "as_owner": "Example Transit Ltd", "asn": 64501, "country": "DE",
                "continent": "EU", "regional_internet_registry": "RIPE NCC",
                "reputation": -4, "tags": [],
                "total_votes": {"harmless": 0, "malicious": 1},
                "last_analysis_date": 1_796_400_000,
                "last_analysis_stats": {"harmless": 60, "malicious": malicious,
                    "suspicious": 0, "undetected": 30, "timeout": 0},
                "last_analysis_results": {
                    "ExampleAV": {"category": "malicious", "engine_name": "ExampleAV",
                        "method": "blacklist", "result": "malware"}
                }
            }
        }}),
    )
}

/// AbuseIPDB's `/check` answer (providers.md): a confidence of 20-69 %, so it raises the
/// score too.
fn abuse_answer(ip: IpAddr) -> mock_api::Canned {
    let confidence = 20 + ip.to_string().len() * 3 % 50;
    mock_api::json_answer(
        200,
        serde_json::json!({"data": {
            "ipAddress": ip.to_string(), "isPublic": true,
            "ipVersion": if ip.is_ipv4() { 4 } else { 6 },
            "isWhitelisted": false, "abuseConfidenceScore": confidence,
            "countryCode": "DE", "usageType": "Data Center/Web Hosting/Transit",
            "isp": "Example Transit Ltd", "domain": "example-transit.test", "hostnames": [],
            "isTor": false, "totalReports": 12, "numDistinctUsers": 5,
            "lastReportedAt": "2026-12-04T21:37:02+00:00"
        }}),
    )
}

// ---------------------------------------------------------------------------------------------
// The group

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Single,
    Scaled,
}

/// Daemons of one group on the topics of one test, and the two counting mocks.
struct Group {
    dir: tempfile::TempDir,
    topics: ScaleTopics,
    mode: Mode,
    vt: CountingMock,
    abuse: CountingMock,
    blocklist: std::path::PathBuf,
    /// The live daemons, and the name their keys were made from.
    daemons: Vec<(String, Daemon)>,
}

impl Group {
    async fn new(mode: Mode) -> Group {
        let topics = create_scale_topics(PARTITIONS, PARTITIONS).await;
        // As the README asks operators to set it up (scaled mode checks it at start-up).
        assert_eq!(
            topic_config(&topics.state, "cleanup.policy")
                .await
                .as_deref(),
            Some("compact"),
            "the state topic is compacted"
        );
        let dir = tempfile::tempdir().unwrap();
        // No address of the run is listed: every score comes from the providers.
        let blocklist = write_blocklist(dir.path(), &["192.0.2.0/24 ; unrelated"]);
        Group {
            topics,
            mode,
            vt: CountingMock::start(&mock_api::VIRUSTOTAL, vt_answer).await,
            abuse: CountingMock::start(&mock_api::ABUSEIPDB, abuse_answer).await,
            blocklist,
            dir,
            daemons: Vec::new(),
        }
    }

    /// The key daemon `name` sends to `provider` (the mocks tell the daemons apart by it).
    fn key(name: &str, provider: &str) -> String {
        format!("t16-{name}-{provider}-key")
    }

    /// Starts daemon `name` and waits for `/readyz`.
    fn start(&mut self, name: &str) {
        // Single is the default mode: its table is left out so that the baseline runs on a
        // build without scaled mode too.
        let scale = match self.mode {
            Mode::Single => String::new(),
            Mode::Scaled => "[scale]\nmode = \"scaled\"\n".to_owned(),
        };
        let provider = |section: &str, url: &str| {
            format!(
                "[providers.{section}]\nenabled = true\nbase_url = \"{url}\"\n\
                 api_key = \"{}\"\nper_minute = {PER_MINUTE}\nper_day = \"unlimited\"\ntimeout = \"300s\"\n",
                Group::key(name, section)
            )
        };
        let extra = format!(
            "[pipeline]\nworkers = 1\n\
             [publish]\n# Every address is published, so each one's records can be checked.\n\
             min_verdict = \"unknown\"\n\
             [intel]\nremote_queue_capacity = 20000\n{}{}{scale}",
            provider("virustotal", &self.vt.base_url()),
            provider("abuseipdb", &self.abuse.base_url()),
        );
        let (config, port) = write_config(
            self.dir.path(),
            &self.topics.topics,
            &self.blocklist,
            &extra,
        );
        let mut daemon = Daemon::start(&config, port, self.dir.path());
        daemon.wait_ready(Duration::from_secs(120));
        self.daemons.push((name.to_owned(), daemon));
    }

    fn live(&self) -> Vec<&Daemon> {
        self.daemons.iter().map(|(_, d)| d).collect()
    }

    /// SIGKILLs daemon `name` and waits for it to be gone.
    fn kill(&mut self, name: &str) {
        let index = self
            .daemons
            .iter()
            .position(|(n, _)| n == name)
            .expect("a live daemon of that name");
        let (_, mut daemon) = self.daemons.remove(index);
        daemon.signal("KILL");
        daemon.wait_exit(Duration::from_secs(30));
    }

    /// Waits until the group has settled: every live daemon holds some of the partitions and
    /// together they hold all. Scaled: the owner side (the sightings partitions, which decide
    /// who asks about an address), by each daemon's `owned_partitions` gauge. Single: the input
    /// partitions, by each daemon's last rebalance (with 6 partitions and the range assignor,
    /// daemons of different generations cannot add up to exactly 6 with each holding some).
    fn wait_settled(&self) {
        let members = self.daemons.len();
        let live = self.live();
        let what = format!("{members} daemons of the group holding all {PARTITIONS} partitions");
        wait_group(&live, &what, Duration::from_secs(120), || {
            let held: Vec<f64> = match self.mode {
                Mode::Single => live
                    .iter()
                    .map(|d| partitions_held(d).map_or(0.0, |n| n as f64))
                    .collect(),
                Mode::Scaled => live
                    .iter()
                    .map(|d| d.metric("threatsift_owned_partitions").unwrap_or(0.0))
                    .collect(),
            };
            if held.iter().all(|&k| k >= 1.0) && held.iter().sum::<f64>() == f64::from(PARTITIONS) {
                Ok(())
            } else {
                Err(format!("partitions held {held:?}"))
            }
        });
    }

    /// Waits until nothing more can be asked: the group committed every input offset (stored
    /// only after the message's sightings or records were delivered and its lookups queued),
    /// in scaled mode the owners committed every sightings offset too, and no live daemon has
    /// an address waiting for a provider (`remote_queue_depth` counts a lookup until its
    /// answer is folded in and its revision delivered).
    fn wait_drained(&self, timeout: Duration) {
        let live = self.live();
        let deadline = Instant::now() + timeout;
        let left = || deadline.saturating_duration_since(Instant::now());
        let group = &self.topics.topics.group;
        wait_group(&live, "every input offset committed", left(), || {
            let committed = committed_offsets(group, &self.topics.topics.input);
            let sum: i64 = committed.values().sum();
            (sum == i64::from(EVENTS))
                .then_some(())
                .ok_or(format!("{sum} of {EVENTS} committed: {committed:?}"))
        });
        if self.mode == Mode::Scaled {
            // Final now: the input offsets are stored after their sightings were delivered.
            let sightings = read_each_on(&brokers(), &self.topics.sightings, left(), |_| {});
            wait_group(&live, "every sightings offset committed", left(), || {
                let committed =
                    committed_offsets(&self.topics.owners_group, &self.topics.sightings);
                let sum: i64 = committed.values().sum();
                (sum == sightings as i64)
                    .then_some(())
                    .ok_or(format!("{sum} of {sightings} committed: {committed:?}"))
            });
        }
        wait_group(&live, "no address waiting for a provider", left(), || {
            let depths: Vec<f64> = live
                .iter()
                .map(|d| {
                    d.metric("threatsift_remote_queue_depth")
                        .unwrap_or(f64::NAN)
                })
                .collect();
            depths
                .iter()
                .all(|&d| d == 0.0)
                .then_some(())
                .ok_or(format!("remote_queue_depth {depths:?}"))
        });
    }

    /// Every record of the output topic (validated as they are read), by address, in the
    /// order read (per address: one partition, so in publishing order).
    fn records(&self) -> BTreeMap<IpAddr, Vec<serde_json::Value>> {
        let mut by_ip: BTreeMap<IpAddr, Vec<serde_json::Value>> = BTreeMap::new();
        for record in read_records(&self.topics.topics.output) {
            let ip = record.json["ip"].as_str().unwrap().parse().unwrap();
            by_ip.entry(ip).or_default().push(record.json);
        }
        by_ip
    }
}

/// What a run measured, for the assertions and the closing note.
struct Figures {
    provider: &'static str,
    counts: BTreeMap<IpAddr, usize>,
    max_per_minute: usize,
    by_key: BTreeMap<String, usize>,
}

impl Figures {
    fn of(provider: &'static str, mock: &CountingMock) -> Figures {
        let mut by_key = BTreeMap::new();
        for asked in mock.asked() {
            *by_key.entry(asked.key).or_insert(0) += 1;
        }
        Figures {
            provider,
            counts: mock.counts(),
            max_per_minute: mock.max_in_window(BUDGET_WINDOW),
            by_key,
        }
    }

    fn total(&self) -> usize {
        self.counts.values().sum()
    }

    fn mean(&self) -> f64 {
        self.total() as f64 / self.counts.len().max(1) as f64
    }

    fn print(&self, run: &str, wall: Duration) {
        let min = self.counts.values().min().copied().unwrap_or(0);
        let max = self.counts.values().max().copied().unwrap_or(0);
        eprintln!(
            "{run}: {}: {} requests for {} addresses ({ADDRESSES} in the input), per address \
             min {min} max {max} mean {:.2}; at most {} in a 60 s window (per_minute \
             {PER_MINUTE}); per daemon key {:?}; wall {wall:.1?}",
            self.provider,
            self.total(),
            self.counts.len(),
            self.mean(),
            self.max_per_minute,
            self.by_key,
        );
    }

    /// Addresses asked about more than once, with their counts.
    fn repeated(&self) -> BTreeMap<IpAddr, usize> {
        self.counts
            .iter()
            .filter(|(_, &n)| n > 1)
            .map(|(ip, n)| (*ip, *n))
            .collect()
    }
}

/// Every address of the input has records, among them revision 1 (with `first_once`, exactly
/// one: in single mode each daemon publishes its own; after a SIGKILL a first record may be
/// repeated, at least once); and its last revision holds both providers' `ok` answers
/// (nothing left `pending`).
fn assert_every_address_answered_and_published(
    records: &BTreeMap<IpAddr, Vec<serde_json::Value>>,
    first_once: bool,
) {
    let expected = all_addresses();
    let published: BTreeSet<IpAddr> = records.keys().copied().collect();
    let missing: Vec<&IpAddr> = expected.difference(&published).take(10).collect();
    assert!(
        missing.is_empty(),
        "{} of {ADDRESSES} addresses have no record, e.g. {missing:?}",
        expected.difference(&published).count()
    );
    assert_eq!(
        published, expected,
        "records for addresses not in the input"
    );
    for (ip, revisions) in records {
        let firsts = revisions.iter().filter(|r| r["revision"] == 1).count();
        assert!(
            firsts == 1 || (!first_once && firsts > 1),
            "{ip}: revision 1 published {firsts} times: {revisions:#?}"
        );
        let last = revisions
            .iter()
            .max_by_key(|r| r["revision"].as_u64())
            .unwrap();
        for provider in ["virustotal", "abuseipdb"] {
            assert_eq!(
                last["intel"][provider]["status"], "ok",
                "{ip}: the last revision does not hold {provider}'s answer: {last:#}"
            );
        }
    }
}

/// Every address of the input was asked about (and no other). The failure counts the
/// never-asked addresses' statuses in their last records (`pending` for ever: a queued lookup
/// was lost).
fn assert_all_asked(
    figures: &Figures,
    expected: &BTreeSet<IpAddr>,
    records: &BTreeMap<IpAddr, Vec<serde_json::Value>>,
) {
    let asked: BTreeSet<IpAddr> = figures.counts.keys().copied().collect();
    let never: Vec<&IpAddr> = expected.difference(&asked).collect();
    if !never.is_empty() {
        let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
        for ip in &never {
            let last = records
                .get(ip)
                .and_then(|revisions| revisions.iter().max_by_key(|r| r["revision"].as_u64()));
            let status = last.map_or("no record".to_owned(), |r| {
                r["intel"][figures.provider]["status"].to_string()
            });
            *statuses.entry(status).or_insert(0) += 1;
        }
        panic!(
            "{}: {} of {ADDRESSES} addresses never asked about, e.g. {:?}; their last records \
             say {statuses:?}",
            figures.provider,
            never.len(),
            &never[..never.len().min(10)]
        );
    }
    assert_eq!(
        asked.len(),
        expected.len(),
        "{}: asked about other addresses",
        figures.provider
    );
}

/// The requests of every daemon together stay within `per_minute` in every 60 s window.
fn assert_within_budget(figures: &Figures) {
    assert!(
        figures.max_per_minute <= PER_MINUTE,
        "{}: {} requests within one 59.5 s window (BUDGET_WINDOW), over the group's per_minute {PER_MINUTE}",
        figures.provider,
        figures.max_per_minute
    );
}

/// Three daemons of `mode` settle in one group, then the whole input is produced and the run
/// goes on until nothing more can be asked. Returns the group (for its records) and the wall
/// time from producing to drained.
async fn three_daemons_run(mode: Mode) -> (Group, Duration) {
    let mut group = Group::new(mode).await;
    for i in 0..DAEMONS {
        group.start(&format!("d{i}"));
    }
    // Settled first: a rebalance mid-run moves addresses between owners, which this test
    // does not mean to exercise.
    group.wait_settled();
    let started = Instant::now();
    produce_to_partitions(&group.topics.topics.input, &input()).await;
    // At PER_MINUTE for the group, the 5,000 lookups per provider take two minutes; the
    // deadline is far beyond, on a loaded machine.
    group.wait_drained(Duration::from_secs(600));
    let wall = started.elapsed();
    (group, wall)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_scaled_daemons_request_each_address_once_per_provider() {
    let (group, wall) = three_daemons_run(Mode::Scaled).await;
    let figures = [
        Figures::of("virustotal", &group.vt),
        Figures::of("abuseipdb", &group.abuse),
    ];
    for f in &figures {
        f.print("three scaled daemons", wall);
    }
    // Read once the run has drained: every record there will be.
    let records = group.records();
    let expected = all_addresses();
    for f in &figures {
        assert_all_asked(f, &expected, &records);
        let repeated = f.repeated();
        assert!(
            repeated.is_empty(),
            "{}: {} addresses asked more than once (mean {:.2} requests per address), e.g. \
             {:?}",
            f.provider,
            repeated.len(),
            f.mean(),
            repeated.iter().take(10).collect::<Vec<_>>()
        );
        assert_within_budget(f);
    }
    assert_every_address_answered_and_published(&records, true);
}

/// The sum over `daemons` of the samples of `rebalances_total` with `kind="revoke"` (any other
/// labels: a daemon may count its input and owner consumers apart).
fn revocations(daemons: &[&Daemon]) -> f64 {
    daemons
        .iter()
        .map(|d| {
            let Some((_, body)) = d.http_get("/metrics") else {
                return 0.0;
            };
            body.lines()
                .filter(|l| l.starts_with("threatsift_rebalances_total{"))
                .filter(|l| l.contains("kind=\"revoke\""))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_scaled_daemon_loses_no_lookup_and_repeats_only_those_in_flight() {
    let mut group = Group::new(Mode::Scaled).await;
    for name in ["d0", "d1", "d2"] {
        group.start(name);
    }
    group.wait_settled();
    let started = Instant::now();
    produce_to_partitions(&group.topics.topics.input, &input()).await;

    // The victim has made some lookups ...
    let victim = "d0";
    let victim_keys = [
        Group::key(victim, "virustotal"),
        Group::key(victim, "abuseipdb"),
    ];
    let by = |mock: &CountingMock, key: &str| -> Vec<Asked> {
        mock.asked().into_iter().filter(|a| a.key == key).collect()
    };
    wait_group(
        &group.live(),
        "the victim's first 100 lookups at each provider",
        Duration::from_secs(300),
        || {
            let made = [
                by(&group.vt, &victim_keys[0]).len(),
                by(&group.abuse, &victim_keys[1]).len(),
            ];
            made.iter()
                .all(|&n| n >= 100)
                .then_some(())
                .ok_or(format!("{made:?}"))
        },
    );
    // ... then its answers are held from now on: its lookup slots fill up with requests the
    // mock holds, so at the kill exactly those are in flight, and every answer it got before
    // was folded in (and its revision and state update delivered: a slot is freed only after
    // that, src/topology/remote.rs) before the slot took the next address.
    let gate = Gate::new();
    group.vt.hold_key(&victim_keys[0], &gate);
    group.abuse.hold_key(&victim_keys[1], &gate);
    let held = |mock: &CountingMock, key: &str| -> BTreeSet<IpAddr> {
        by(mock, key)
            .iter()
            .filter(|a| a.held)
            .map(|a| a.ip)
            .collect()
    };
    wait_group(
        &group.live(),
        "the victim's lookup slots all held at both mocks",
        Duration::from_secs(180),
        || {
            let held = [
                held(&group.vt, &victim_keys[0]).len(),
                held(&group.abuse, &victim_keys[1]).len(),
            ];
            held.iter()
                .all(|&n| n >= LOOKUPS_IN_FLIGHT)
                .then_some(())
                .ok_or(format!("{held:?} held"))
        },
    );
    let survivors_before = revocations(&group.live()[1..]);
    group.kill(victim);
    let in_flight_at_kill = [
        held(&group.vt, &victim_keys[0]),
        held(&group.abuse, &victim_keys[1]),
    ];
    let asked_before_kill = [group.vt.asked(), group.abuse.asked()];
    for (set, asked) in in_flight_at_kill.iter().zip(&asked_before_kill) {
        assert_eq!(
            set.len(),
            LOOKUPS_IN_FLIGHT,
            "one held request per slot: {set:?}"
        );
        let distinct: BTreeSet<IpAddr> = asked.iter().map(|a| a.ip).collect();
        assert!(
            distinct.len() < ADDRESSES as usize,
            "the kill came after every lookup: nothing was left to recover"
        );
    }
    // The survivors take the victim's partitions over; then it comes back (with keys of its
    // own again) and takes some back.
    group.wait_settled();
    let restarted = "d0-restarted";
    group.start(restarted);
    group.wait_settled();
    group.wait_drained(Duration::from_secs(600));
    let wall = started.elapsed();
    gate.open();
    let handover_revocations = revocations(&group.live()) - survivors_before;

    let figures = [
        Figures::of("virustotal", &group.vt),
        Figures::of("abuseipdb", &group.abuse),
    ];
    for f in &figures {
        f.print("three scaled daemons, one SIGKILLed and restarted", wall);
    }
    // For the closing note: what each live daemon's warm starts on assignment read.
    for (name, daemon) in &group.daemons {
        let metrics = daemon
            .http_get("/metrics")
            .map(|(_, body)| body)
            .unwrap_or_default();
        let warm: Vec<&str> = metrics
            .lines()
            .filter(|l| l.starts_with("threatsift_warm_start_"))
            .collect();
        eprintln!("{name}: {warm:?}");
    }
    let records = group.records();
    let expected = all_addresses();
    for ((f, in_flight), victim_key) in figures.iter().zip(&in_flight_at_kill).zip(&victim_keys) {
        assert_all_asked(f, &expected, &records);
        // What the victim had an answer for is never asked again: its state kept it.
        let answered_to_victim: BTreeSet<IpAddr> = asked_before_kill
            [usize::from(f.provider == "abuseipdb")]
        .iter()
        .filter(|a| a.key == *victim_key && !a.held)
        .map(|a| a.ip)
        .collect();
        let asked_again: Vec<(&IpAddr, usize)> = answered_to_victim
            .iter()
            .map(|ip| (ip, f.counts[ip]))
            .filter(|(_, n)| *n > 1)
            .collect();
        assert!(
            asked_again.is_empty(),
            "{}: {} of the {} addresses the victim had answers for were asked again after the \
             kill, e.g. {:?}",
            f.provider,
            asked_again.len(),
            answered_to_victim.len(),
            &asked_again[..asked_again.len().min(10)]
        );
        // Its lookups in flight at the kill were made again after it (by the new owner).
        for ip in in_flight {
            assert!(
                f.counts[ip] >= 2,
                "{}: {ip} was in flight at the kill and never asked again",
                f.provider
            );
        }
        // Any other repeat is a lookup in flight at a handover: a daemon giving up a
        // partition may have LOOKUPS_IN_FLIGHT lookups per provider in flight, whose answers
        // the partition's next owner may not find in the state yet.
        let repeated = f.repeated();
        let others: BTreeMap<&IpAddr, &usize> = repeated
            .iter()
            .filter(|(ip, _)| !in_flight.contains(*ip))
            .collect();
        let bound = LOOKUPS_IN_FLIGHT * handover_revocations as usize;
        eprintln!(
            "{}: repeated {} addresses: {} in flight at the kill, {} others (bound {bound} = \
             {LOOKUPS_IN_FLIGHT} x {handover_revocations} revocations after the kill)",
            f.provider,
            repeated.len(),
            repeated.len() - others.len(),
            others.len()
        );
        assert!(
            others.len() <= bound,
            "{}: {} repeats beyond those in flight at the kill, over the handover bound \
             {bound}, e.g. {:?}",
            f.provider,
            others.len(),
            others.iter().take(10).collect::<Vec<_>>()
        );
        let most = repeated.values().max().copied().unwrap_or(1);
        assert!(
            most <= 3,
            "{}: an address asked {most} times (the kill's repeat, and one more at a handover, \
             at most)",
            f.provider
        );
        assert_within_budget(f);
    }
    assert_every_address_answered_and_published(&records, false);
}

/// The problem scaled mode solves, measured: three single-mode daemons each keep their own
/// dedup window and budget, and every address appears on partitions of all three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the single-mode baseline (issue 16): about three requests per address; minutes"]
async fn three_single_mode_daemons_ask_more_than_once_baseline() {
    let (group, wall) = three_daemons_run(Mode::Single).await;
    let figures = [
        Figures::of("virustotal", &group.vt),
        Figures::of("abuseipdb", &group.abuse),
    ];
    for f in &figures {
        f.print("three single-mode daemons", wall);
        assert_eq!(f.counts.len(), ADDRESSES as usize, "{}", f.provider);
        assert!(
            f.mean() > 2.0,
            "{}: {:.2} requests per address; the baseline expects each of the three daemons to \
             ask about nearly every address",
            f.provider,
            f.mean()
        );
    }
}

// ---- the harness's own arithmetic (no broker): what the tests above rest on

#[test]
fn the_input_names_5000_distinct_addresses_each_on_every_partition() {
    let mut partitions: BTreeMap<IpAddr, BTreeSet<i32>> = BTreeMap::new();
    let input = input();
    assert_eq!(input.len(), EVENTS as usize);
    for (a, (partition, _)) in (0..EVENTS).map(|n| n % ADDRESSES).zip(&input) {
        partitions.entry(address(a)).or_default().insert(*partition);
    }
    assert_eq!(partitions.len(), ADDRESSES as usize, "distinct addresses");
    for (ip, on) in &partitions {
        assert_eq!(
            on.len(),
            PARTITIONS as usize,
            "{ip} is not on every partition"
        );
        // Public: not private, loopback, link-local, CGNAT, documentation or unique-local.
        let private = match ip {
            IpAddr::V4(v4) => {
                v4.is_private()
                    || v4.is_loopback()
                    || v4.is_link_local()
                    || v4.octets()[0] == 100
                    || v4.is_documentation()
            }
            IpAddr::V6(v6) => (v6.segments()[0] & 0xe000) != 0x2000 || v6.segments()[1] == 0xdb8,
        };
        assert!(!private, "{ip} is not a public address");
    }
}

#[test]
fn max_in_window_counts_a_half_open_minute() {
    let start = Instant::now();
    let at = |ms: u64| start + Duration::from_millis(ms);
    // [30 s, 90 s) holds 30, 59.999, 60 and 61 s; [0, 60 s) only three: 60 s is outside.
    let times = [at(0), at(30_000), at(59_999), at(60_000), at(61_000)];
    assert_eq!(mock_api::max_in_window(&times, MINUTE), 4);
    let spread = [at(0), at(60_000), at(120_000)];
    assert_eq!(mock_api::max_in_window(&spread, MINUTE), 1);
    assert_eq!(mock_api::max_in_window(&[], MINUTE), 0);
}
