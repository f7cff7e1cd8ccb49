//! `[scoring]`: verdict thresholds, severity bands and the points of each kind of evidence.

use serde::{Deserialize, Serialize};

use super::SettingsError;

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
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
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
