//! The report's content, built from threat records and nothing else: what the renderers
//! (Markdown, HTML, JSON) print. Every word that judges an address (verdict, severity, priority)
//! comes from the record's own numbers, so the sections can never contradict each other.

use serde::Serialize;

use crate::model::Role;
use crate::model::{ProviderStatus, Reason, Severity, Verdict};

/// Both reports of one run: the Threat Report and the Actionable Intelligence Report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// `YYYY-MM-DD`: `--date`, else the date of the newest `generated_at` in the records.
    pub date: String,
    /// One line naming what the report covers.
    pub subject: String,
    /// Records whose verdict is `suspicious` or `malicious`.
    pub suspicious_count: usize,
    /// All records in the report (latest revision per address).
    pub total_count: usize,
    /// A few sentences, built from the counts and the top threat.
    pub executive_summary: String,
    /// Every address, ranked by score (highest first), then by address.
    pub threats: Vec<ThreatEntry>,
    /// Do now: block rules for malicious addresses the devices let through.
    pub immediate_actions: Vec<Action>,
    /// Do next: investigate suspicious addresses, confirm blocks, monitor the rest.
    pub follow_up_actions: Vec<Action>,
    /// Providers that returned no data for some records, and why.
    pub data_gaps: Vec<DataGap>,
    /// Optional prose from a language model, in its own labelled section.
    pub narrative: Option<Narrative>,
}

/// One address in the Threat Report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThreatEntry {
    /// 1-based position in the ranking.
    pub rank: usize,
    /// The address.
    pub ip: String,
    /// The record's indicator (short title).
    pub indicator: String,
    /// The record's verdict.
    pub verdict: Verdict,
    /// The record's severity.
    pub severity: Severity,
    /// Priority words derived from `severity` only (see [`priority`]).
    pub priority: &'static str,
    /// 0–100.
    pub score: u32,
    /// Whether the address is among the critical threats (severity high or critical).
    pub critical: bool,
    /// The initiator of the first event: the address itself when it was seen as a source
    /// (or client/forwarded), else the event's peer when the address was the destination.
    pub source_ip: Option<String>,
    /// Talos reputation, when a Talos list gave one.
    pub talos_reputation: Option<String>,
    /// Talos owner, when a Talos list gave one.
    pub talos_owner: Option<String>,
    /// VirusTotal `last_analysis_stats`, when VirusTotal answered.
    pub virustotal: Option<VirusTotalStats>,
    /// `AS<n>`.
    pub asn: Option<String>,
    /// AS organisation / network owner.
    pub organization: Option<String>,
    /// Country code.
    pub country: Option<String>,
    /// Regional Internet Registry.
    pub rir: Option<String>,
    /// One line built from the evidence.
    pub summary: String,
    /// The record's reasons: every contribution to the score.
    pub evidence: Vec<Reason>,
    /// Roles the address was seen in.
    pub roles: Vec<Role>,
    /// Sightings in the dedup window.
    pub sightings: u64,
    /// RFC 3339.
    pub first_seen: String,
    /// RFC 3339.
    pub last_seen: String,
    /// What the first event said: format, vendor, product, device action, rule, peer.
    pub seen_in: SeenIn,
}

/// The event context of a threat.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SeenIn {
    /// Log format.
    pub format: String,
    /// Device vendor.
    pub vendor: Option<String>,
    /// Device product.
    pub product: Option<String>,
    /// What the device did (`deny`, `allow`, …).
    pub action: Option<String>,
    /// Rule or policy.
    pub rule: Option<String>,
    /// The other end of the connection.
    pub peer_ip: Option<String>,
}

/// VirusTotal's engine counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct VirusTotalStats {
    /// Engines that flag it malicious.
    pub malicious: u64,
    /// Engines that flag it suspicious.
    pub suspicious: u64,
    /// Engines with no opinion.
    pub undetected: u64,
    /// Engines that call it harmless.
    pub harmless: u64,
    /// Engines that timed out.
    pub timeout: u64,
}

/// What kind of action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Add a block rule.
    Block,
    /// Look into it.
    Investigate,
    /// Keep watching.
    Monitor,
}

/// One recommended action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    /// Block, investigate or monitor.
    pub kind: ActionKind,
    /// The address it concerns.
    pub ip: String,
    /// What to do and why, built from the record.
    pub text: String,
}

/// A provider that returned nothing for some records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataGap {
    /// The provider's display name (`VirusTotal`).
    pub provider: String,
    /// The status it reported.
    pub status: ProviderStatus,
    /// How many records carry that status for it.
    pub records: usize,
    /// What it means for the reader, e.g. "VirusTotal: 401 Unauthorized — check the configured
    /// API key". Never a claim about the addresses or the key's safety.
    pub message: String,
}

/// Prose from a language model, kept apart from the deterministic sections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Narrative {
    /// The model that wrote it.
    pub model: String,
    /// The text, as returned (escaped by the renderers like any other outside text).
    pub text: String,
}

/// Priority words for a severity: the only source of priority in the reports.
pub(crate) fn priority(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "P1 (act now)",
        Severity::High => "P2 (act today)",
        Severity::Medium => "P3 (this week)",
        Severity::Low => "P4 (when convenient)",
        Severity::Info => "P5 (informational)",
    }
}
