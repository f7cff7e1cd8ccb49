//! The threat record (schema `threatsift.threat/1`, design §3) and the DLQ entry
//! (`threatsift.dlq/1`). `schema/threat-record.schema.json` describes the record; tests validate
//! every record the daemon publishes against it.

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::model::Role;

/// Schema identifier of a threat record.
pub const THREAT_SCHEMA: &str = "threatsift.threat/1";
/// Schema identifier of a DLQ entry.
pub(crate) const DLQ_SCHEMA: &str = "threatsift.dlq/1";

/// Every parse error's bounded label (`parse_errors_total{kind}`, the DLQ `reason`); the parse
/// stage's `ParseError::kind` returns one of these.
pub(crate) const PARSE_ERROR_KINDS: [&str; 10] = [
    "empty",
    "invalid_utf8",
    "too_large",
    "invalid_gzip",
    "invalid_json",
    "not_an_object",
    "malformed",
    "unrecognized_format",
    "internal_error",
    "too_many_errors",
];

/// What the evidence says about an address, weakest first.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// No evidence either way.
    #[default]
    Unknown,
    /// Evidence that the address is benign.
    Clean,
    /// Some evidence of malice.
    Suspicious,
    /// Strong evidence of malice.
    Malicious,
}

impl Verdict {
    /// Every verdict, for pre-registering metric children.
    pub const ALL: [Verdict; 4] = [
        Verdict::Unknown,
        Verdict::Clean,
        Verdict::Suspicious,
        Verdict::Malicious,
    ];

    /// Bounded label.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Unknown => "unknown",
            Verdict::Clean => "clean",
            Verdict::Suspicious => "suspicious",
            Verdict::Malicious => "malicious",
        }
    }
}

/// How urgently a human should look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Informational.
    Info,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

/// One piece of evidence behind a score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// Where it came from (`feeds`, `virustotal`, …).
    pub source: String,
    /// What it says, in words.
    pub detail: String,
    /// Points it adds to the score; negative for a benign fact that subtracts.
    pub weight: i32,
}

/// `network` block; null where unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// Autonomous system number.
    pub asn: Option<u32>,
    /// Autonomous system organisation.
    pub as_org: Option<String>,
    /// ISO 3166-1 alpha-2 country.
    pub country: Option<String>,
    /// Regional internet registry.
    pub rir: Option<String>,
    /// Announced or registered network.
    pub cidr: Option<String>,
}

/// A provider's answer status (design §3 vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderStatus {
    /// Answered.
    Ok,
    /// Answered: nothing known about the address.
    NotFound,
    /// Not configured.
    Disabled,
    /// Not asked (policy or budget).
    Skipped,
    /// Asked, no answer yet.
    Pending,
    /// 401: credentials missing or rejected.
    Unauthorized,
    /// 403: not allowed.
    Forbidden,
    /// 429: throttled.
    RateLimited,
    /// Daily or monthly budget spent.
    QuotaExhausted,
    /// No answer in time.
    Timeout,
    /// 5xx or connection failure.
    Unavailable,
    /// An answer we could not read.
    InvalidResponse,
}

impl ProviderStatus {
    /// Only answers are evidence; everything else is a gap in our data.
    pub fn is_answer(self) -> bool {
        matches!(self, ProviderStatus::Ok | ProviderStatus::NotFound)
    }
}

/// One provider's entry in `intel`: its status, a short detail, and its facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderIntel {
    /// Status.
    pub status: ProviderStatus,
    /// Why, in a few words (omitted when there is nothing to add).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Provider-specific facts.
    #[serde(flatten)]
    pub facts: serde_json::Map<String, serde_json::Value>,
}

impl ProviderIntel {
    /// An entry with a status and detail and no facts.
    pub fn status(status: ProviderStatus, detail: impl Into<String>) -> Self {
        ProviderIntel {
            status,
            detail: Some(detail.into()),
            facts: serde_json::Map::new(),
        }
    }
}

/// The context of an event that a threat record keeps (design §3 `observed`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// Format that parsed the event.
    pub format: String,
    /// Device vendor.
    pub vendor: Option<String>,
    /// Device product.
    pub product: Option<String>,
    /// Device action.
    pub action: Option<String>,
    /// The other endpoint of the connection, when the event had one.
    pub peer_ip: Option<String>,
    /// Rule or policy name.
    pub rule: Option<String>,
    /// Input topic.
    pub topic: String,
    /// Input partition.
    pub partition: i32,
    /// Input offset.
    pub offset: i64,
    /// Source port of the first event, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    /// Destination port of the first event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_port: Option<u16>,
    /// Transport protocol of the first event, lower case (`tcp`, `udp`, `icmp`, …; IANA
    /// numbers 1, 6, 17 and 58 are named).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Direction of the first event: `inbound`, `outbound`, `internal` or `external`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
}

/// Traffic Light Protocol 2.0 marking, least restrictive first (so the strictest is the
/// greatest).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub enum Tlp {
    /// TLP:CLEAR: no restriction.
    #[serde(rename = "clear")]
    Clear,
    /// TLP:GREEN: the community, not public.
    #[serde(rename = "green")]
    Green,
    /// TLP:AMBER: the organisation and its clients, need to know.
    #[default]
    #[serde(rename = "amber")]
    Amber,
    /// TLP:AMBER+STRICT: the organisation only.
    #[serde(rename = "amber+strict")]
    AmberStrict,
    /// TLP:RED: the named recipients only.
    #[serde(rename = "red")]
    Red,
}

impl Tlp {
    /// The label as written in records and configuration.
    pub fn label(self) -> &'static str {
        match self {
            Tlp::Clear => "clear",
            Tlp::Green => "green",
            Tlp::Amber => "amber",
            Tlp::AmberStrict => "amber+strict",
            Tlp::Red => "red",
        }
    }
}

/// The threat record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreatRecord {
    /// Always [`THREAT_SCHEMA`].
    pub schema: String,
    /// Canonical address text.
    pub ip: String,
    /// 4 or 6.
    pub ip_version: u8,
    /// Verdict.
    pub verdict: Verdict,
    /// Severity, from the score.
    pub severity: Severity,
    /// 0–100, the capped sum of the reasons' weights.
    pub score: u32,
    /// Evidence.
    pub reasons: Vec<Reason>,
    /// Short title.
    pub indicator: String,
    /// First sighting in the dedup window (RFC 3339).
    pub first_seen: String,
    /// Latest sighting (RFC 3339).
    pub last_seen: String,
    /// Sightings in the window so far.
    pub sightings: u64,
    /// Roles the address was seen in.
    pub roles: Vec<Role>,
    /// Context of the first event.
    pub observed: Observed,
    /// Network facts.
    pub network: Network,
    /// Per-provider status and facts.
    pub intel: BTreeMap<String, ProviderIntel>,
    /// Update counter per address.
    pub revision: u32,
    /// When this revision was made (RFC 3339).
    pub generated_at: String,
    /// Stable id of this revision of this address: the same revision re-published (after a
    /// crash, a replay) has the same id (`stages::record::record_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The first event's own time (as the device wrote it), RFC 3339 UTC, when it could be
    /// read without guessing (`stages::event_time`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time: Option<String>,
    /// 0–100: how sure the verdict is, from the independent sources that answered and whether
    /// they agree (`stages::record::confidence`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<u8>,
    /// The strictest TLP of the sources whose evidence is in `reasons` (and `publish.tlp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tlp: Option<Tlp>,
    /// Until when this verdict holds (RFC 3339): the earlier of `last_seen` + `dedup.ttl` and
    /// the contributing evidence's own lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// True on a withdrawal: the verdict no longer holds (omitted when false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revoked: bool,
    /// Why it was withdrawn (`expired`, `feed_removed`, `allowlisted`, …), on a withdrawal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_reason: Option<String>,
}

/// A message that could not be processed, as published to the DLQ topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DlqEntry {
    /// Always [`DLQ_SCHEMA`].
    pub schema: String,
    /// Bounded reason label (`invalid_utf8`, `invalid_json`, …).
    pub reason: String,
    /// Human-readable error.
    pub error: String,
    /// Input topic.
    pub topic: String,
    /// Input partition.
    pub partition: i32,
    /// Input offset.
    pub offset: i64,
    /// Line within the message (0-based) when the message held several.
    pub line: Option<usize>,
    /// The message's Kafka timestamp, RFC 3339, when it had one.
    pub message_time: Option<String>,
    /// When the entry was made, RFC 3339.
    pub dead_lettered_at: String,
    /// `utf8` or `base64`.
    pub payload_encoding: String,
    /// The original bytes (possibly truncated).
    pub payload: String,
    /// Size of the original bytes.
    pub payload_bytes: usize,
    /// True when `payload` holds only the first `dlq.max_payload_bytes`.
    pub payload_truncated: bool,
}

impl DlqEntry {
    /// Builds an entry keeping at most `max_payload` bytes of the original, as UTF-8 text when
    /// the kept bytes are valid UTF-8 and as base64 otherwise.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        reason: &str,
        error: String,
        origin: &crate::model::Origin,
        line: Option<usize>,
        message_time_ms: Option<i64>,
        payload: &[u8],
        max_payload: usize,
        now: std::time::SystemTime,
    ) -> Self {
        let kept = &payload[..payload.len().min(max_payload)];
        let (payload_encoding, text) = match std::str::from_utf8(kept) {
            Ok(text) => ("utf8", text.to_owned()),
            Err(_) => (
                "base64",
                base64::engine::general_purpose::STANDARD.encode(kept),
            ),
        };
        DlqEntry {
            schema: DLQ_SCHEMA.to_owned(),
            reason: reason.to_owned(),
            error,
            topic: origin.topic.to_string(),
            partition: origin.partition,
            offset: origin.offset,
            line,
            message_time: message_time_ms.and_then(rfc3339_from_millis),
            dead_lettered_at: rfc3339(now),
            payload_encoding: payload_encoding.to_owned(),
            payload: text,
            payload_bytes: payload.len(),
            payload_truncated: kept.len() < payload.len(),
        }
    }
}

/// The last instant RFC 3339 can write (9999-12-31T23:59:59Z), as seconds since the epoch.
const MAX_RFC3339_SECS: u64 = 253_402_300_799;

/// RFC 3339 in UTC with whole seconds; times past year 9999 are written as its last second.
pub fn rfc3339(time: std::time::SystemTime) -> String {
    let latest = std::time::UNIX_EPOCH + std::time::Duration::from_secs(MAX_RFC3339_SECS);
    humantime::format_rfc3339_seconds(time.min(latest)).to_string()
}

/// RFC 3339 with milliseconds for a Kafka timestamp; `None` when negative or past year 9999.
fn rfc3339_from_millis(ms: i64) -> Option<String> {
    let ms = u64::try_from(ms)
        .ok()
        .filter(|ms| ms / 1000 <= MAX_RFC3339_SECS)?;
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    Some(humantime::format_rfc3339_millis(time).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Origin;
    use std::time::UNIX_EPOCH;

    fn origin() -> Origin {
        Origin {
            topic: "firewall".into(),
            partition: 2,
            offset: 7,
        }
    }

    #[test]
    fn dlq_keeps_text_as_utf8_and_binary_as_base64() {
        let e = DlqEntry::new(
            "x",
            "e".into(),
            &origin(),
            None,
            None,
            b"hello",
            100,
            UNIX_EPOCH,
        );
        assert_eq!(
            (e.payload_encoding.as_str(), e.payload.as_str()),
            ("utf8", "hello")
        );
        let e = DlqEntry::new(
            "x",
            "e".into(),
            &origin(),
            None,
            None,
            &[0xff, 0],
            100,
            UNIX_EPOCH,
        );
        assert_eq!(
            (e.payload_encoding.as_str(), e.payload.as_str()),
            ("base64", "/wA=")
        );
        assert_eq!(
            (e.topic.as_str(), e.partition, e.offset),
            ("firewall", 2, 7)
        );
    }

    #[test]
    fn dlq_truncates_and_says_so() {
        let big = vec![b'a'; 1000];
        let e = DlqEntry::new(
            "x",
            "e".into(),
            &origin(),
            None,
            Some(0),
            &big,
            10,
            UNIX_EPOCH,
        );
        assert_eq!(e.payload.len(), 10);
        assert!(e.payload_truncated);
        assert_eq!(e.payload_bytes, 1000);
        assert_eq!(e.message_time.as_deref(), Some("1970-01-01T00:00:00.000Z"));
    }

    #[test]
    fn absurd_timestamps_do_not_panic() {
        let far = UNIX_EPOCH + std::time::Duration::from_secs(u64::from(u32::MAX) * 1000);
        assert_eq!(rfc3339(far), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339_from_millis(i64::MAX), None);
        assert_eq!(rfc3339_from_millis(-1), None);
    }

    #[test]
    fn verdicts_order_from_weakest() {
        assert!(Verdict::Malicious > Verdict::Suspicious);
        assert!(Verdict::Suspicious > Verdict::Clean);
        assert!(Verdict::Clean > Verdict::Unknown);
    }
}
