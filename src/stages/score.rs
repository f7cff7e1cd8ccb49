//! Score: evidence → reasons → score, verdict, severity and indicator. Pure.
//!
//! * In: an [`EvidenceInput`]: the feed matches of an address, its `intel` map (one entry per
//!   provider, with a status and facts), the vendor's threat name when the event was a threat or
//!   IPS detection, and its sightings in the dedup window.
//! * [`ScoringModel::evidence`] turns each piece of evidence into one [`Reason`] whose weight
//!   comes from `[scoring]` (and the `[[feeds]]` weights). Only providers whose status is `ok`
//!   contribute: a failure (unauthorized, timeout, quota, …) is a gap in our data, never
//!   evidence about the address. Evidence worth 0 points adds no reason.
//! * [`ScoringModel::assess`]: `score` = the sum of the weights clamped to 0–100, so every
//!   point is explained by a reason. Benign provider facts (GreyNoise `benign`/RIOT, an
//!   AbuseIPDB whitelisting, OTX validation) may have negative weights: their reasons show the
//!   negative weight and subtract; the verdict and severity follow from the score alone, so they can
//!   never disagree. Below `suspicious_at` the verdict is `unknown`, never `clean`.
//! * Provider facts are read by each provider's own score rule, beside its client
//!   (`intel/providers/<name>.rs`, `intel/talos.rs`), with the weights it declares.

use std::collections::{BTreeMap, HashMap};

use crate::intel::feeds::FeedMatch;
use crate::intel::registry::{capped, points, Weights, PROVIDERS};
use crate::model::{ProviderIntel, ProviderStatus, Reason, Severity, Verdict};
use crate::settings::{FeedSettings, ScoringSettings};

/// `source` of the reason a vendor threat event gives.
pub(crate) const VENDOR_SOURCE: &str = "vendor";
/// `source` of the reason sightings give.
pub(crate) const SIGHTINGS_SOURCE: &str = "sightings";

/// Indicator of a malicious address without a vendor threat name.
pub(crate) const MALICIOUS_INDICATOR: &str = "Malicious IP Detected";
/// Indicator of a suspicious address without a vendor threat name.
pub(crate) const SUSPICIOUS_INDICATOR: &str = "Suspicious IP Detected";
/// Indicator of any other address.
pub(crate) const OBSERVED_INDICATOR: &str = "IP Observed";

/// The assessment of one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    /// 0–100.
    pub score: u32,
    /// From the score.
    pub verdict: Verdict,
    /// From the score.
    pub severity: Severity,
    /// Short title for the record: the vendor's threat name, else one from the verdict.
    pub indicator: String,
}

/// Everything known about one address that may be evidence.
#[derive(Debug, Clone, Copy)]
pub struct EvidenceInput<'a> {
    /// Local blocklist listings of the address.
    pub feed_matches: &'a [FeedMatch],
    /// The record's `intel` map: provider name → status and facts.
    pub intel: &'a BTreeMap<String, ProviderIntel>,
    /// The vendor's threat or signature name, when the event was a threat/IPS detection.
    pub threat: Option<&'a str>,
    /// The product that reported the event (`Suricata`, `PAN-OS`, …), for the reason's words.
    pub reporter: Option<&'a str>,
    /// Sightings of the address in the dedup window so far (1 at the first).
    pub sightings: u64,
}

/// The reasons and the assessment of one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scored {
    /// Every contribution to the score.
    pub reasons: Vec<Reason>,
    /// Score, verdict, severity and indicator.
    pub assessment: Assessment,
}

/// The configured scoring model: `[scoring]` plus the weight of each feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoringModel {
    weights: ScoringSettings,
    provider_weights: Weights,
    feed_weights: HashMap<String, u32>,
}

impl ScoringModel {
    /// The model of `[scoring]` and `[[feeds]]` (validated by `Settings::validate`).
    pub fn new(scoring: &ScoringSettings, feeds: &[FeedSettings]) -> Self {
        ScoringModel {
            weights: scoring.clone(),
            provider_weights: Weights::configured(scoring),
            feed_weights: feeds
                .iter()
                .map(|f| (f.name.clone(), u32::from(f.weight)))
                .collect(),
        }
    }

    /// The verdict a score gets.
    pub fn verdict(&self, score: u32) -> Verdict {
        if score >= self.weights.malicious_at {
            Verdict::Malicious
        } else if score >= self.weights.suspicious_at {
            Verdict::Suspicious
        } else {
            // Absence of evidence is not evidence of being clean.
            Verdict::Unknown
        }
    }

    /// The severity a score gets.
    pub fn severity(&self, score: u32) -> Severity {
        let w = &self.weights;
        if score >= w.severity_critical_at {
            Severity::Critical
        } else if score >= w.severity_high_at {
            Severity::High
        } else if score >= w.severity_medium_at {
            Severity::Medium
        } else if score >= w.severity_low_at {
            Severity::Low
        } else {
            Severity::Info
        }
    }

    /// One reason per piece of evidence worth at least one point.
    pub fn evidence(&self, input: &EvidenceInput<'_>) -> Vec<Reason> {
        let mut reasons = Vec::new();
        // A benign fact's weight may be negative: it is shown, and subtracts.
        let mut add = |source: &str, weight: i32, detail: String| {
            if weight != 0 {
                reasons.push(Reason {
                    source: source.to_owned(),
                    detail,
                    weight,
                });
            }
        };
        if let Some(threat) = vendor_threat(input.threat) {
            let reporter = input.reporter.unwrap_or("the device");
            add(
                VENDOR_SOURCE,
                points(self.weights.vendor_threat_event),
                format!("{reporter} reported threat \"{threat}\""),
            );
        }
        for hit in input.feed_matches {
            let weight = self.feed_weights.get(&*hit.feed).copied().unwrap_or(0);
            let weight = points(weight);
            add("feeds", weight, describe_match(hit));
        }
        // Only an `ok` answer is evidence; `not_found` and every failure add nothing. Each
        // provider's own rule turns its facts into reasons (`intel::registry`).
        for spec in PROVIDERS {
            let Some(rule) = spec.score else { continue };
            let answered = input
                .intel
                .get(spec.name)
                .filter(|entry| entry.status == ProviderStatus::Ok);
            if let Some(entry) = answered {
                rule(
                    &entry.facts,
                    &self.provider_weights,
                    &mut |points, detail| add(spec.name, points, detail),
                );
            }
        }
        let repeats = input.sightings.saturating_sub(1);
        add(
            SIGHTINGS_SOURCE,
            points(capped(
                repeats,
                self.weights.sightings_per,
                self.weights.sightings_max,
            )),
            format!("seen {} times in the dedup window", input.sightings),
        );
        reasons
    }

    /// Score, verdict and severity of the reasons; the indicator from the verdict. The score
    /// is the sum of the weights (benign facts' negative ones included), clamped to 0–100.
    pub fn assess(&self, reasons: &[Reason]) -> Assessment {
        let sum: i64 = reasons.iter().map(|r| i64::from(r.weight)).sum();
        let score = u32::try_from(sum.clamp(0, 100)).unwrap_or(0);
        let verdict = self.verdict(score);
        let indicator = match verdict {
            Verdict::Malicious => MALICIOUS_INDICATOR,
            Verdict::Suspicious => SUSPICIOUS_INDICATOR,
            Verdict::Clean | Verdict::Unknown => OBSERVED_INDICATOR,
        };
        Assessment {
            score,
            verdict,
            severity: self.severity(score),
            indicator: indicator.to_owned(),
        }
    }

    /// [`evidence`](Self::evidence) then [`assess`](Self::assess); the indicator is the
    /// vendor's threat name when the event had one.
    pub fn score(&self, input: &EvidenceInput<'_>) -> Scored {
        let reasons = self.evidence(input);
        let mut assessment = self.assess(&reasons);
        if let Some(threat) = vendor_threat(input.threat) {
            assessment.indicator = threat.to_owned();
        }
        Scored {
            reasons,
            assessment,
        }
    }
}

/// The threat name, when there is a non-blank one.
fn vendor_threat(threat: Option<&str>) -> Option<&str> {
    threat.map(str::trim).filter(|t| !t.is_empty())
}

fn describe_match(hit: &FeedMatch) -> String {
    if hit.exact {
        format!("listed by feed {}", hit.feed)
    } else {
        format!("inside {} listed by feed {}", hit.cidr, hit.feed)
    }
}

#[cfg(test)]
#[path = "score_tests.rs"]
mod tests;
