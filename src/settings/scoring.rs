//! `[scoring]`: verdict thresholds, severity bands and the points of each kind of evidence.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use super::SettingsError;

/// `[scoring]`: the thresholds, the severity bands and the weight of each kind of evidence.
/// Feed weights live on each `[[feeds]]` entry. All values are points of the 0–100 score.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
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
    /// Points when the device itself reported a threat or IPS detection for the event.
    pub vendor_threat_event: u32,
    /// Points per sighting in the dedup window beyond the first.
    pub sightings_per: u32,
    /// Most points sightings add.
    pub sightings_max: u32,
    /// The providers' weights (`virustotal_max`, `otx_per_pulse`, …), by key. Which keys exist,
    /// their defaults and which may be negative (benign facts) are the providers' own
    /// (`intel::registry`); checked there.
    #[serde(flatten, deserialize_with = "weights_from_numbers_or_text")]
    pub weights: BTreeMap<String, i32>,
}

impl ScoringSettings {
    /// The thresholds and the non-provider weights, by key (the providers' weights are
    /// checked by the registry).
    fn points(&self) -> Vec<(&'static str, u32)> {
        vec![
            ("malicious_at", self.malicious_at),
            ("suspicious_at", self.suspicious_at),
            ("severity_critical_at", self.severity_critical_at),
            ("severity_high_at", self.severity_high_at),
            ("severity_medium_at", self.severity_medium_at),
            ("severity_low_at", self.severity_low_at),
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

/// A weight from a file is a number; from the environment it is text (`"10"`). Both are read.
fn weights_from_numbers_or_text<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, i32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Points {
        Number(i32),
        Text(String),
    }
    let raw = BTreeMap::<String, Points>::deserialize(deserializer)?;
    raw.into_iter()
        .map(|(key, points)| match points {
            Points::Number(n) => Ok((key, n)),
            Points::Text(text) => match text.trim().parse() {
                Ok(n) => Ok((key, n)),
                Err(_) => Err(serde::de::Error::custom(format!(
                    "scoring.{key}: expected a number, got `{text}`"
                ))),
            },
        })
        .collect()
}
