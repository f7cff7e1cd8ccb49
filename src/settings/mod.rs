//! Configuration: built-in `config/default.toml` → the `--config` file → environment
//! `THREATSIFT__SECTION__KEY`. Every key lives in `config/default.toml` (embedded in the binary),
//! unknown keys are errors, and [`Settings::validate`] checks the cross-field rules. Errors name
//! the key so `main` can exit 2 with a message an operator can act on.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use serde::{Deserialize, Serialize, Serializer};

use crate::model::Role;
use crate::model::Verdict;

/// The defaults, embedded so the binary runs from any directory.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// Prefix of environment overrides (`THREATSIFT__KAFKA__BROKERS`).
pub const ENV_PREFIX: &str = "THREATSIFT";

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The layers could not be read or did not match the schema.
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    /// A value is present but not acceptable.
    #[error("configuration key `{key}`: {problem}")]
    Invalid {
        /// Dotted key path.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
}

impl SettingsError {
    pub(crate) fn invalid(key: impl Into<String>, problem: impl Into<String>) -> Self {
        SettingsError::Invalid {
            key: key.into(),
            problem: problem.into(),
        }
    }

    /// Short bounded label.
    pub fn kind(&self) -> &'static str {
        match self {
            SettingsError::Load(_) => "load",
            SettingsError::Invalid { .. } => "invalid",
        }
    }
}

/// A secret string: never printed, serialised as a redaction marker.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that must hand it to a client library.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when no value is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The inline value, or else the trimmed contents of `file` (when a path is configured).
    pub fn resolve(&self, file: &str, key: &str) -> Result<Secret, SettingsError> {
        if !self.is_empty() || file.is_empty() {
            return Ok(self.clone());
        }
        std::fs::read_to_string(file)
            .map(|text| Secret(text.trim().to_owned()))
            .map_err(|e| {
                SettingsError::invalid(key, format!("cannot read secret file {file}: {e}"))
            })
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_empty() {
            "\"\""
        } else {
            "\"<redacted>\""
        })
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(if self.is_empty() { "" } else { "<redacted>" })
    }
}

/// The `kafka.librdkafka` passthrough, as `name=value` entries. Accepted forms: a table
/// (`[kafka.librdkafka]` with `"fetch.min.bytes" = 65536`; the config crate splits dotted names
/// into nested tables, which are joined back here), a list of `"name=value"` strings, or, from
/// the environment, a comma-separated string. Values of secret-looking properties (passwords,
/// secrets, tokens, PEM material) are redacted when printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Passthrough(pub Vec<String>);

impl<'de> Deserialize<'de> for Passthrough {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Leaf {
            Text(String),
            Integer(i64),
            Float(f64),
            Flag(bool),
            Table(BTreeMap<String, Leaf>),
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            List(Vec<String>),
            Text(String),
            Table(BTreeMap<String, Leaf>),
        }
        fn flatten(prefix: &str, table: BTreeMap<String, Leaf>, out: &mut Vec<String>) {
            for (key, leaf) in table {
                let name = if prefix.is_empty() {
                    key
                } else {
                    format!("{prefix}.{key}")
                };
                match leaf {
                    Leaf::Text(v) => out.push(format!("{name}={v}")),
                    Leaf::Integer(v) => out.push(format!("{name}={v}")),
                    Leaf::Float(v) => out.push(format!("{name}={v}")),
                    Leaf::Flag(v) => out.push(format!("{name}={v}")),
                    Leaf::Table(inner) => flatten(&name, inner, out),
                }
            }
        }
        Ok(Passthrough(match Form::deserialize(deserializer)? {
            Form::List(items) => items,
            Form::Text(text) if text.trim().is_empty() => Vec::new(),
            Form::Text(text) => text.split(',').map(|t| t.trim().to_owned()).collect(),
            Form::Table(table) => {
                let mut out = Vec::new();
                flatten("", table, &mut out);
                out
            }
        }))
    }
}

/// A list from a file, or a comma-separated string from the environment. Environment values are
/// taken verbatim otherwise (no guessing of numbers or booleans, which would mangle secrets).
fn list_or_comma_separated<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrText {
        List(Vec<String>),
        Text(String),
    }
    Ok(match ListOrText::deserialize(deserializer)? {
        ListOrText::List(items) => items,
        ListOrText::Text(text) if text.trim().is_empty() => Vec::new(),
        ListOrText::Text(text) => text.split(',').map(|t| t.trim().to_owned()).collect(),
    })
}

impl Passthrough {
    fn redacted(&self) -> Vec<String> {
        const SECRET_PARTS: [&str; 5] = ["password", "secret", "token", "pem", "jaas"];
        self.0
            .iter()
            .map(|entry| match entry.split_once('=') {
                Some((name, _))
                    if SECRET_PARTS
                        .iter()
                        .any(|p| name.to_ascii_lowercase().contains(p)) =>
                {
                    format!("{}=<redacted>", name.trim())
                }
                _ => entry.clone(),
            })
            .collect()
    }
}

impl fmt::Debug for Passthrough {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.redacted()).finish()
    }
}

impl Serialize for Passthrough {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.redacted().serialize(serializer)
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Brokers, topics, security and client tuning.
    pub kafka: KafkaSettings,
    /// Stage channel sizes and the delivery window.
    pub pipeline: PipelineSettings,
    /// Parser options.
    pub parse: ParseSettings,
    /// Which addresses are never enriched.
    pub filter: FilterSettings,
    /// The dedup window.
    pub dedup: DedupSettings,
    /// Local blocklist feeds.
    pub feeds: Vec<FeedSettings>,
    /// Local intelligence housekeeping.
    pub intel: IntelSettings,
    /// What is published.
    pub publish: PublishSettings,
    /// Dead-letter queue entries.
    pub dlq: DlqSettings,
    /// Metrics and health endpoint.
    pub server: ServerSettings,
    /// Shutdown deadline.
    pub shutdown: ShutdownSettings,
    /// Remote and local intelligence providers.
    pub providers: ProvidersSettings,
    /// How evidence becomes a score, a verdict and a severity.
    pub scoring: ScoringSettings,
    /// `[report]`: scheduled reports and the optional model narrative.
    pub report: ReportSettings,
}

/// `[report]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSettings {
    /// Every `interval` the daemon writes the report of the records it published in that
    /// interval to `directory`; `0s` turns scheduled reports off.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Where scheduled reports are written.
    pub directory: String,
    /// `md`, `json` or `html`.
    pub format: String,
    /// `[report.narrative]`.
    pub narrative: NarrativeSettings,
}

/// `[report.narrative]`: an OpenAI-compatible chat completions endpoint, off by default.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NarrativeSettings {
    /// Whether reports ask the model for a narrative.
    pub enabled: bool,
    /// API root; `/chat/completions` is appended.
    pub base_url: String,
    /// Model name.
    pub model: String,
    /// API key (secret); better set through the environment or `api_key_file`.
    pub api_key: Secret,
    /// File holding the API key, used when `api_key` is empty.
    pub api_key_file: String,
    /// The whole call, connection to last byte; past it the report goes out without prose.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Threats (highest scores first) described to the model.
    pub max_threats: usize,
}

/// `[kafka]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    /// Bootstrap servers, comma-separated `host:port`.
    pub brokers: String,
    /// Consumer group.
    pub group_id: String,
    /// Topics to read events from (from the environment: comma-separated).
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub input_topics: Vec<String>,
    /// Topic threat records are published to.
    pub output_topic: String,
    /// Topic unparseable input goes to.
    pub dlq_topic: String,
    /// `client.id` of both clients.
    pub client_id: String,
    /// `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl`.
    pub security_protocol: String,
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512` (SASL protocols only).
    pub sasl_mechanism: String,
    /// SASL user name.
    pub sasl_username: String,
    /// SASL password (secret).
    pub sasl_password: Secret,
    /// File holding the SASL password, used when `sasl_password` is empty.
    pub sasl_password_file: String,
    /// CA bundle for TLS.
    pub ssl_ca_location: String,
    /// Client certificate for mutual TLS.
    pub ssl_certificate_location: String,
    /// Client key for mutual TLS.
    pub ssl_key_location: String,
    /// Password of the client key (secret).
    pub ssl_key_password: Secret,
    /// Consumer group session timeout.
    #[serde(with = "humantime_serde")]
    pub session_timeout: Duration,
    /// How often stored offsets are committed in the background.
    #[serde(with = "humantime_serde")]
    pub auto_commit_interval: Duration,
    /// How often librdkafka statistics (lag, queues) are sampled; 0s disables.
    #[serde(with = "humantime_serde")]
    pub statistics_interval: Duration,
    /// Raw librdkafka properties applied last, as `"name=value"` strings.
    pub librdkafka: Passthrough,
}

/// `[pipeline]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSettings {
    /// Capacity of each bounded channel between stages, in messages.
    pub channel_capacity: usize,
    /// Messages whose outputs may await delivery reports at once.
    pub max_in_flight: usize,
}

/// `[parse]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ParseSettings {
    /// A line longer than this goes to the DLQ as `too_large`.
    pub max_line_bytes: usize,
    /// A gzip payload decompressing to more than this goes to the DLQ as `invalid_gzip`.
    pub max_decompressed_bytes: usize,
    /// Extra JSON field paths holding addresses, with their role.
    pub json_ip_fields: Vec<JsonIpField>,
    /// Topic → format name: lines from that topic skip format detection.
    pub topic_formats: BTreeMap<String, String>,
}

/// One configured JSON address field.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JsonIpField {
    /// Dotted path, e.g. `data.attacker.addr`.
    pub path: String,
    /// `source`, `destination`, `client`, `nat`, `forwarded` or `unknown`.
    pub role: String,
}

/// `[filter]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSettings {
    /// Treat documentation ranges as public (demo and tests only).
    pub allow_documentation_ranges: bool,
    /// CIDRs never enriched (your own networks); from the environment: comma-separated.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub ignore_cidrs: Vec<String>,
}

/// `[dedup]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DedupSettings {
    /// How long an address is remembered after its first sighting.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// Most addresses remembered at once.
    pub max_entries: u64,
}

/// `[[feeds]]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FeedSettings {
    /// Name shown in records.
    pub name: String,
    /// File with one IP or CIDR per line.
    pub path: String,
    /// Score contribution of a listing, 0–100.
    pub weight: u8,
}

/// `[intel]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IntelSettings {
    /// How often feed files (and the mmdb and Talos files) are checked for changes.
    #[serde(with = "humantime_serde")]
    pub feeds_reload_interval: Duration,
    /// Addresses each remote provider's queue holds; past it the lowest priority is skipped.
    pub remote_queue_capacity: usize,
    /// Answers each remote provider's cache keeps (`ok` and `not_found`).
    pub provider_cache_entries: u64,
    /// Longest the remote queue waits for a provider's budget, hold or open circuit before the
    /// waiting addresses are reported `skipped`/`unavailable`.
    #[serde(with = "humantime_serde")]
    pub remote_max_wait: Duration,
}

/// `[publish]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PublishSettings {
    /// Lowest verdict published: `unknown`, `clean`, `suspicious` or `malicious`.
    pub min_verdict: Verdict,
}

/// `[dlq]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DlqSettings {
    /// Original bytes kept in a DLQ entry; longer payloads are truncated and flagged.
    pub max_payload_bytes: usize,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    pub listen: String,
}

/// `[shutdown]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownSettings {
    /// Time allowed to drain, flush and commit after SIGTERM/SIGINT.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
}

/// `[providers.*]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProvidersSettings {
    /// VirusTotal v3.
    pub virustotal: ProviderSettings,
    /// AbuseIPDB v2.
    pub abuseipdb: ProviderSettings,
    /// RDAP via the IANA bootstrap.
    pub rdap: ProviderSettings,
    /// Shodan InternetDB.
    pub internetdb: ProviderSettings,
    /// GreyNoise community.
    pub greynoise: ProviderSettings,
    /// AlienVault OTX.
    pub otx: ProviderSettings,
    /// Local MaxMind/DB-IP databases.
    pub mmdb: ProviderSettings,
    /// Cisco Talos (no public API).
    pub talos: ProviderSettings,
}

impl ProvidersSettings {
    /// `(name, settings)` for every provider, in a fixed order.
    pub fn all(&self) -> [(&'static str, &ProviderSettings); 8] {
        [
            ("virustotal", &self.virustotal),
            ("abuseipdb", &self.abuseipdb),
            ("rdap", &self.rdap),
            ("internetdb", &self.internetdb),
            ("greynoise", &self.greynoise),
            ("otx", &self.otx),
            ("mmdb", &self.mmdb),
            ("talos", &self.talos),
        ]
    }
}

/// One provider.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// Whether lookups are made.
    pub enabled: bool,
    /// API root (HTTP providers).
    pub base_url: String,
    /// API key (secret); better set through the environment or `api_key_file`.
    pub api_key: Secret,
    /// File holding the API key, used when `api_key` is empty.
    pub api_key_file: String,
    /// Local database or list file (mmdb, talos).
    pub path: String,
    /// Per-request timeout.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Requests allowed per minute.
    pub per_minute: u32,
    /// Requests allowed per day (0 = no daily budget).
    pub per_day: u32,
    /// How long an answer is kept.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// How long a "not found" answer is kept.
    #[serde(with = "humantime_serde")]
    pub not_found_ttl: Duration,
}

/// `[scoring]`: the thresholds, the severity bands and the weight of each kind of evidence.
/// Feed weights live on each `[[feeds]]` entry. All values are points of the 0–100 score.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScoringSettings {
    /// Score at or above which the verdict is `malicious`.
    pub malicious_at: u32,
    /// Score at or above which the verdict is `suspicious` (below it: `unknown`).
    pub suspicious_at: u32,
    /// Lowest score of severity `critical`.
    pub severity_critical_at: u32,
    /// Lowest score of severity `high`.
    pub severity_high_at: u32,
    /// Lowest score of severity `medium`.
    pub severity_medium_at: u32,
    /// Lowest score of severity `low` (below it: `info`).
    pub severity_low_at: u32,
    /// Points per VirusTotal engine that flags the address malicious.
    pub virustotal_per_malicious_engine: u32,
    /// Points per VirusTotal engine that flags the address suspicious.
    pub virustotal_per_suspicious_engine: u32,
    /// Most points the VirusTotal engine counts add together.
    pub virustotal_max: u32,
    /// Points for a negative VirusTotal community reputation.
    pub virustotal_negative_reputation: u32,
    /// Percentage of the AbuseIPDB confidence score that counts as points.
    pub abuseipdb_confidence_percent: u32,
    /// Points per 10 AbuseIPDB reports (`total_reports`), within `abuseipdb_max`.
    pub abuseipdb_per_10_reports: u32,
    /// Most points AbuseIPDB adds.
    pub abuseipdb_max: u32,
    /// Points for a GreyNoise `malicious` classification.
    pub greynoise_malicious: u32,
    /// Points for a GreyNoise `suspicious` classification.
    pub greynoise_suspicious: u32,
    /// Points per OTX pulse that lists the address.
    pub otx_per_pulse: u32,
    /// Most points OTX adds.
    pub otx_max: u32,
    /// Points when the configured Talos-format list lists the address.
    pub talos_listed: u32,
    /// Points when the device itself reported a threat or IPS detection for the event.
    pub vendor_threat_event: u32,
    /// Points per sighting in the dedup window beyond the first.
    pub sightings_per: u32,
    /// Most points sightings add.
    pub sightings_max: u32,
}

impl ScoringSettings {
    /// The point values, by key, for the 0–100 check.
    fn points(&self) -> [(&'static str, u32); 21] {
        [
            ("malicious_at", self.malicious_at),
            ("suspicious_at", self.suspicious_at),
            ("severity_critical_at", self.severity_critical_at),
            ("severity_high_at", self.severity_high_at),
            ("severity_medium_at", self.severity_medium_at),
            ("severity_low_at", self.severity_low_at),
            (
                "virustotal_per_malicious_engine",
                self.virustotal_per_malicious_engine,
            ),
            (
                "virustotal_per_suspicious_engine",
                self.virustotal_per_suspicious_engine,
            ),
            ("virustotal_max", self.virustotal_max),
            (
                "virustotal_negative_reputation",
                self.virustotal_negative_reputation,
            ),
            (
                "abuseipdb_confidence_percent",
                self.abuseipdb_confidence_percent,
            ),
            ("abuseipdb_per_10_reports", self.abuseipdb_per_10_reports),
            ("abuseipdb_max", self.abuseipdb_max),
            ("greynoise_malicious", self.greynoise_malicious),
            ("greynoise_suspicious", self.greynoise_suspicious),
            ("otx_per_pulse", self.otx_per_pulse),
            ("otx_max", self.otx_max),
            ("talos_listed", self.talos_listed),
            ("vendor_threat_event", self.vendor_threat_event),
            ("sightings_per", self.sightings_per),
            ("sightings_max", self.sightings_max),
        ]
    }

    /// Every value is 0–100; thresholds and bands are above 0 and rise in order.
    fn validate(&self) -> Result<(), SettingsError> {
        for (key, value) in self.points() {
            if value > 100 {
                return Err(SettingsError::invalid(
                    format!("scoring.{key}"),
                    "must be 0–100",
                ));
            }
        }
        let ordered = [
            (
                "suspicious_at",
                self.suspicious_at,
                "malicious_at",
                self.malicious_at,
            ),
            (
                "severity_low_at",
                self.severity_low_at,
                "severity_medium_at",
                self.severity_medium_at,
            ),
            (
                "severity_medium_at",
                self.severity_medium_at,
                "severity_high_at",
                self.severity_high_at,
            ),
            (
                "severity_high_at",
                self.severity_high_at,
                "severity_critical_at",
                self.severity_critical_at,
            ),
        ];
        for (low_key, low, high_key, high) in ordered {
            if low == 0 {
                // A threshold of 0 would give every address without evidence that verdict.
                return Err(SettingsError::invalid(
                    format!("scoring.{low_key}"),
                    "must be > 0",
                ));
            }
            if low >= high {
                return Err(SettingsError::invalid(
                    format!("scoring.{low_key}"),
                    format!("must be below scoring.{high_key} ({high})"),
                ));
            }
        }
        // Severity must not outrank the verdict: `unknown` stays at most low, `suspicious` at
        // most medium, so report wording cannot contradict itself.
        let floors = [
            (
                "severity_medium_at",
                self.severity_medium_at,
                "suspicious_at",
                self.suspicious_at,
            ),
            (
                "severity_high_at",
                self.severity_high_at,
                "malicious_at",
                self.malicious_at,
            ),
        ];
        for (key, band, threshold_key, threshold) in floors {
            if band < threshold {
                return Err(SettingsError::invalid(
                    format!("scoring.{key}"),
                    format!("must be at least scoring.{threshold_key} ({threshold})"),
                ));
            }
        }
        Ok(())
    }
}

impl Settings {
    /// Loads the layers and validates the result.
    pub fn load(config_file: Option<&Path>) -> Result<Settings, SettingsError> {
        Self::load_with_env(config_file, Environment::with_prefix(ENV_PREFIX))
    }

    /// Loads the defaults with `overrides` (TOML) on top, without reading the environment; for
    /// the demo and tests.
    pub fn from_toml_overrides(overrides: &str) -> Result<Settings, SettingsError> {
        let settings: Settings = Config::builder()
            .add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml))
            .add_source(File::from_str(overrides, FileFormat::Toml))
            .build()?
            .try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    fn load_with_env(
        config_file: Option<&Path>,
        env: Environment,
    ) -> Result<Settings, SettingsError> {
        let mut builder =
            Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
        if let Some(path) = config_file {
            if !path.is_file() {
                return Err(SettingsError::invalid(
                    "--config",
                    format!("{} is not a readable file", path.display()),
                ));
            }
            builder = builder.add_source(File::from(path).format(FileFormat::Toml));
        }
        let env = env.prefix_separator("__").separator("__");
        let settings: Settings = builder.add_source(env).build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks the rules that the types cannot express.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if !matches!(self.report.format.as_str(), "md" | "json" | "html") {
            return Err(SettingsError::invalid(
                "report.format",
                "expected md, json or html",
            ));
        }
        if !self.report.interval.is_zero() && self.report.directory.is_empty() {
            return Err(SettingsError::invalid(
                "report.directory",
                "scheduled reports (report.interval > 0) need a directory",
            ));
        }
        let narrative = &self.report.narrative;
        if narrative.enabled {
            require_non_empty("report.narrative.base_url", &narrative.base_url)?;
            require_non_empty("report.narrative.model", &narrative.model)?;
            if narrative.timeout.is_zero() {
                return Err(SettingsError::invalid(
                    "report.narrative.timeout",
                    "must be more than 0s",
                ));
            }
        }
        let k = &self.kafka;
        require_non_empty("kafka.brokers", &k.brokers)?;
        require_non_empty("kafka.group_id", &k.group_id)?;
        require_non_empty("kafka.output_topic", &k.output_topic)?;
        require_non_empty("kafka.dlq_topic", &k.dlq_topic)?;
        if k.input_topics.is_empty() {
            return Err(SettingsError::invalid(
                "kafka.input_topics",
                "at least one topic is needed",
            ));
        }
        for (i, topic) in k.input_topics.iter().enumerate() {
            require_non_empty(&format!("kafka.input_topics[{i}]"), topic)?;
            if topic == &k.output_topic || topic == &k.dlq_topic {
                return Err(SettingsError::invalid(
                    format!("kafka.input_topics[{i}]"),
                    format!("`{topic}` is also the output or DLQ topic; that would loop"),
                ));
            }
        }
        if k.output_topic == k.dlq_topic {
            return Err(SettingsError::invalid(
                "kafka.dlq_topic",
                "must differ from output_topic",
            ));
        }
        let protocol = k.security_protocol.to_ascii_lowercase();
        if !["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"].contains(&protocol.as_str()) {
            return Err(SettingsError::invalid(
                "kafka.security_protocol",
                "expected plaintext, ssl, sasl_plaintext or sasl_ssl",
            ));
        }
        if protocol.starts_with("sasl")
            && !["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].contains(&k.sasl_mechanism.as_str())
        {
            return Err(SettingsError::invalid(
                "kafka.sasl_mechanism",
                "expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 with a SASL security_protocol",
            ));
        }
        for (i, entry) in k.librdkafka.0.iter().enumerate() {
            match entry.split_once('=') {
                Some((name, _)) if !name.trim().is_empty() => {}
                _ => {
                    return Err(SettingsError::invalid(
                        format!("kafka.librdkafka[{i}]"),
                        "expected \"name=value\"",
                    ))
                }
            }
        }
        if k.session_timeout < Duration::from_secs(6) {
            return Err(SettingsError::invalid(
                "kafka.session_timeout",
                "must be at least 6s",
            ));
        }
        if self.pipeline.channel_capacity == 0 {
            return Err(SettingsError::invalid(
                "pipeline.channel_capacity",
                "must be > 0",
            ));
        }
        if self.pipeline.max_in_flight == 0 {
            return Err(SettingsError::invalid(
                "pipeline.max_in_flight",
                "must be > 0",
            ));
        }
        if self.parse.max_decompressed_bytes < self.parse.max_line_bytes {
            return Err(SettingsError::invalid(
                "parse.max_decompressed_bytes",
                "must be at least parse.max_line_bytes",
            ));
        }
        if self.parse.max_line_bytes == 0 {
            return Err(SettingsError::invalid(
                "parse.max_line_bytes",
                "must be > 0",
            ));
        }
        if !self.parse.topic_formats.is_empty() {
            let registry = crate::stages::parse::FormatRegistry::builtin(Default::default());
            for (topic, name) in &self.parse.topic_formats {
                if !registry.knows(name) {
                    return Err(SettingsError::invalid(
                        format!("parse.topic_formats.{topic}"),
                        format!(
                            "unknown format {name:?}; known formats: {}",
                            registry.names().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
            }
        }
        for (i, field) in self.parse.json_ip_fields.iter().enumerate() {
            require_non_empty(&format!("parse.json_ip_fields[{i}].path"), &field.path)?;
            if Role::from_label(&field.role).is_none() {
                return Err(SettingsError::invalid(
                    format!("parse.json_ip_fields[{i}].role"),
                    "expected source, destination, client, nat, forwarded or unknown",
                ));
            }
        }
        self.ignore_cidrs()?;
        if self.dedup.max_entries == 0 {
            return Err(SettingsError::invalid("dedup.max_entries", "must be > 0"));
        }
        if self.dedup.ttl.is_zero() {
            return Err(SettingsError::invalid("dedup.ttl", "must be > 0"));
        }
        for (i, feed) in self.feeds.iter().enumerate() {
            require_non_empty(&format!("feeds[{i}].name"), &feed.name)?;
            require_non_empty(&format!("feeds[{i}].path"), &feed.path)?;
            if feed.weight > 100 {
                return Err(SettingsError::invalid(
                    format!("feeds[{i}].weight"),
                    "must be 0–100",
                ));
            }
            if self.feeds[..i].iter().any(|other| other.name == feed.name) {
                return Err(SettingsError::invalid(
                    format!("feeds[{i}].name"),
                    format!("`{}` is used by an earlier feed", feed.name),
                ));
            }
        }
        if self.intel.feeds_reload_interval.is_zero() {
            return Err(SettingsError::invalid(
                "intel.feeds_reload_interval",
                "must be > 0",
            ));
        }
        if self.intel.remote_queue_capacity == 0 {
            return Err(SettingsError::invalid(
                "intel.remote_queue_capacity",
                "must be > 0",
            ));
        }
        if self.intel.provider_cache_entries == 0 {
            return Err(SettingsError::invalid(
                "intel.provider_cache_entries",
                "must be > 0",
            ));
        }
        self.listen_addr()?;
        if self.shutdown.drain_timeout.is_zero() {
            return Err(SettingsError::invalid(
                "shutdown.drain_timeout",
                "must be > 0",
            ));
        }
        self.scoring.validate()?;
        for (name, provider) in self.providers.all() {
            if !provider.enabled {
                continue;
            }
            let key = |field: &str| format!("providers.{name}.{field}");
            match name {
                "mmdb" if provider.path.trim().is_empty() => {
                    return Err(SettingsError::invalid(
                        key("path"),
                        "required when enabled: one or more GeoLite2/DB-IP .mmdb files, \
                         comma-separated",
                    ))
                }
                // Talos without a list file reports `disabled` with the reason; no error.
                "mmdb" | "talos" => {}
                _ => {
                    if provider.timeout.is_zero() {
                        return Err(SettingsError::invalid(key("timeout"), "must be > 0"));
                    }
                    if provider.ttl.is_zero() || provider.not_found_ttl.is_zero() {
                        return Err(SettingsError::invalid(
                            key(if provider.ttl.is_zero() {
                                "ttl"
                            } else {
                                "not_found_ttl"
                            }),
                            "must be > 0 (answers must be kept to spend no quota twice)",
                        ));
                    }
                    let keyed = matches!(name, "virustotal" | "abuseipdb");
                    if keyed && provider.api_key.is_empty() && provider.api_key_file.is_empty() {
                        return Err(SettingsError::invalid(
                            key("api_key"),
                            format!(
                                "required when enabled: set THREATSIFT__PROVIDERS__{}__API_KEY \
                                 or providers.{name}.api_key_file",
                                name.to_ascii_uppercase()
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// `filter.ignore_cidrs`, parsed.
    pub fn ignore_cidrs(&self) -> Result<Vec<ipnet::IpNet>, SettingsError> {
        self.filter
            .ignore_cidrs
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let text = text.trim();
                text.parse::<ipnet::IpNet>()
                    .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        SettingsError::invalid(
                            format!("filter.ignore_cidrs[{i}]"),
                            format!("`{text}` is not an IP address or CIDR"),
                        )
                    })
            })
            .collect()
    }

    /// `server.listen`, parsed.
    pub fn listen_addr(&self) -> Result<SocketAddr, SettingsError> {
        self.server.listen.parse().map_err(|_| {
            SettingsError::invalid("server.listen", "expected host:port, e.g. 127.0.0.1:9464")
        })
    }

    /// `parse.json_ip_fields`, with roles parsed (validated already).
    pub fn json_ip_fields(&self) -> Vec<(String, Role)> {
        self.parse
            .json_ip_fields
            .iter()
            .filter_map(|f| Role::from_label(&f.role).map(|role| (f.path.clone(), role)))
            .collect()
    }

    /// The format registry's options.
    pub fn registry_options(&self) -> crate::stages::parse::RegistryOptions {
        crate::stages::parse::RegistryOptions {
            json_ip_fields: self.json_ip_fields(),
            topic_formats: self
                .parse
                .topic_formats
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// The effective settings as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render settings: {e}\n"))
    }

    /// `kafka.librdkafka` as pairs.
    pub fn librdkafka_overrides(&self) -> BTreeMap<String, String> {
        self.kafka
            .librdkafka
            .0
            .iter()
            .filter_map(|entry| entry.split_once('='))
            .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
            .collect()
    }

    /// Feed files as the intel module wants them.
    pub fn feed_paths(&self) -> Vec<(String, PathBuf)> {
        self.feeds
            .iter()
            .map(|f| (f.name.clone(), PathBuf::from(&f.path)))
            .collect()
    }
}

fn require_non_empty(key: &str, value: &str) -> Result<(), SettingsError> {
    if value.trim().is_empty() {
        Err(SettingsError::invalid(key, "must not be empty"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_from(vars: &[(&str, &str)]) -> Environment {
        let map = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Environment::with_prefix(ENV_PREFIX).source(Some(map))
    }

    #[test]
    fn defaults_load_and_validate() {
        let settings = Settings::load_with_env(None, env_from(&[])).expect("defaults load");
        assert_eq!(settings.kafka.brokers, "127.0.0.1:9092");
        assert_eq!(settings.kafka.input_topics, vec!["firewall", "proxy"]);
        assert_eq!(settings.dedup.ttl, Duration::from_secs(24 * 3600));
        assert_eq!(settings.publish.min_verdict, Verdict::Suspicious);
        assert_eq!(settings.feeds.len(), 1);
    }

    #[test]
    fn environment_overrides_nested_keys_and_lists() {
        let settings = Settings::load_with_env(
            None,
            env_from(&[
                ("THREATSIFT__KAFKA__BROKERS", "10.1.1.1:9093"),
                ("THREATSIFT__KAFKA__INPUT_TOPICS", "a,b,c"),
                ("THREATSIFT__DEDUP__MAX_ENTRIES", "42"),
                ("THREATSIFT__FILTER__ALLOW_DOCUMENTATION_RANGES", "true"),
            ]),
        )
        .expect("overrides load");
        assert_eq!(settings.kafka.brokers, "10.1.1.1:9093");
        assert_eq!(settings.kafka.input_topics, vec!["a", "b", "c"]);
        assert_eq!(settings.dedup.max_entries, 42);
        assert!(settings.filter.allow_documentation_ranges);
    }

    #[test]
    fn unknown_topic_format_names_the_key_and_the_known_formats() {
        let err = Settings::from_toml_overrides("[parse.topic_formats]\nfw = \"paloalto2\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("parse.topic_formats.fw"), "{err}");
        assert!(
            err.contains("paloalto2") && err.contains("cisco_asa"),
            "{err}"
        );
        Settings::from_toml_overrides("[parse.topic_formats]\nfw = \"cisco_asa\"\n").unwrap();
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let err = Settings::from_toml_overrides("[kafka]\nbrokerz = \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("brokerz"), "{err}");
        let err = Settings::load_with_env(None, env_from(&[("THREATSIFT__DEDUP__TLL", "1h")]))
            .unwrap_err();
        assert!(err.to_string().contains("tll"), "{err}");
    }

    #[test]
    fn invalid_values_name_the_key() {
        let cases = [
            ("[kafka]\ninput_topics = []\n", "kafka.input_topics"),
            (
                "[kafka]\ninput_topics = [\"threats\"]\n",
                "kafka.input_topics[0]",
            ),
            (
                "[filter]\nignore_cidrs = [\"10.0.0.0/8\", \"nope\"]\n",
                "filter.ignore_cidrs[1]",
            ),
            ("[server]\nlisten = \"localhost\"\n", "server.listen"),
            ("[dedup]\nmax_entries = 0\n", "dedup.max_entries"),
            (
                "[kafka]\nsecurity_protocol = \"sasl_ssl\"\n",
                "kafka.sasl_mechanism",
            ),
            (
                "[kafka]\nlibrdkafka = [\"nonsense\"]\n",
                "kafka.librdkafka[0]",
            ),
            (
                "[providers.virustotal]\nenabled = true\n",
                "providers.virustotal.api_key",
            ),
            (
                "[providers.abuseipdb]\nenabled = true\n",
                "providers.abuseipdb.api_key",
            ),
            ("[providers.mmdb]\nenabled = true\n", "providers.mmdb.path"),
            (
                "[providers.rdap]\nenabled = true\nttl = \"0s\"\n",
                "providers.rdap.ttl",
            ),
            (
                "[intel]\nremote_queue_capacity = 0\n",
                "intel.remote_queue_capacity",
            ),
        ];
        for (toml, key) in cases {
            let err = Settings::from_toml_overrides(toml).unwrap_err();
            assert!(
                err.to_string().contains(&format!("`{key}`")),
                "{toml}: {err}"
            );
        }
        let err = Settings::from_toml_overrides("[dedup]\nttl = \"soon\"\n").unwrap_err();
        assert!(err.to_string().contains("ttl"), "{err}");
    }

    #[test]
    fn secrets_are_redacted_in_debug_and_output() {
        let settings = Settings::from_toml_overrides(
            "[kafka]\nsasl_password = \"hunter2-secret\"\n[providers.otx]\napi_key = \"k-123456\"\n\
             [report.narrative]\napi_key = \"sk-narrative-777\"\n",
        )
        .expect("loads");
        let rendered = settings.to_redacted_toml();
        let debug = format!("{settings:?}");
        for text in [&rendered, &debug] {
            assert!(!text.contains("hunter2-secret") && !text.contains("k-123456"));
            assert!(!text.contains("sk-narrative-777"));
        }
        assert!(rendered.contains("<redacted>"));
        assert_eq!(settings.kafka.sasl_password.expose(), "hunter2-secret");
    }

    #[test]
    fn environment_strings_are_taken_verbatim() {
        let settings = Settings::load_with_env(
            None,
            env_from(&[
                ("THREATSIFT__KAFKA__SASL_PASSWORD", "0123"),
                ("THREATSIFT__KAFKA__INPUT_TOPICS", "2024"),
                ("THREATSIFT__KAFKA__SASL_USERNAME", "True"),
            ]),
        )
        .expect("loads");
        assert_eq!(settings.kafka.sasl_password.expose(), "0123");
        assert_eq!(settings.kafka.input_topics, vec!["2024"]);
        assert_eq!(settings.kafka.sasl_username, "True");
    }

    #[test]
    fn passthrough_secrets_are_redacted() {
        let settings = Settings::from_toml_overrides(
            "[kafka]\nlibrdkafka = [\"sasl.password=pw-123\", \"ssl.key.pem=KEY\", \"linger.ms=7\"]\n",
        )
        .expect("loads");
        let shown = format!("{}{:?}", settings.to_redacted_toml(), settings);
        assert!(
            !shown.contains("pw-123") && !shown.contains("KEY"),
            "{shown}"
        );
        assert!(shown.contains("linger.ms=7"));
        assert_eq!(
            settings.librdkafka_overrides().get("sasl.password"),
            Some(&"pw-123".into())
        );
    }

    #[test]
    fn librdkafka_passthrough_accepts_a_table_with_dotted_names() {
        let settings = Settings::from_toml_overrides(
            "[kafka.librdkafka]\n\"fetch.min.bytes\" = 65536\n\"compression.type\" = \"lz4\"\n",
        )
        .expect("loads");
        let overrides = settings.librdkafka_overrides();
        assert_eq!(overrides.get("fetch.min.bytes"), Some(&"65536".into()));
        assert_eq!(overrides.get("compression.type"), Some(&"lz4".into()));
        let from_env = Settings::load_with_env(
            None,
            env_from(&[("THREATSIFT__KAFKA__LIBRDKAFKA", "linger.ms=7,acks=all")]),
        )
        .expect("loads");
        assert_eq!(
            from_env.librdkafka_overrides().get("acks"),
            Some(&"all".into())
        );
    }

    #[test]
    fn librdkafka_passthrough_keeps_dotted_names() {
        let settings =
            Settings::from_toml_overrides("[kafka]\nlibrdkafka = [\"fetch.min.bytes = 10\"]\n")
                .expect("loads");
        assert_eq!(
            settings.librdkafka_overrides().get("fetch.min.bytes"),
            Some(&"10".into())
        );
    }

    #[test]
    fn secret_file_is_read_when_inline_value_is_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key");
        std::fs::write(&path, "s3cret\n").expect("write");
        let resolved = Secret::default()
            .resolve(path.to_str().unwrap_or_default(), "k")
            .unwrap();
        assert_eq!(resolved.expose(), "s3cret");
        let err = Secret::default()
            .resolve("/nonexistent/key", "kafka.x")
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/key"));
    }
}

#[cfg(test)]
mod layering_tests {
    use super::*;

    #[test]
    fn a_later_feeds_list_replaces_the_default_one() {
        let none = Settings::from_toml_overrides("feeds = []\n").expect("loads");
        assert!(none.feeds.is_empty());
        let two = Settings::from_toml_overrides(
            "[[feeds]]\nname = \"a\"\npath = \"a.txt\"\nweight = 10\n\
             [[feeds]]\nname = \"b\"\npath = \"b.txt\"\nweight = 20\n",
        )
        .expect("loads");
        let names: Vec<&str> = two.feeds.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
    }
}
