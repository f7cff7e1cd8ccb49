//! Score: evidence → score, verdict, severity and indicator. Pure.
//!
//! * In: the reasons gathered for an address (each with a weight).
//! * Out: `score` = the capped sum of the weights (0–100), so every point is explained by a
//!   reason; the verdict and severity follow from the score alone, so they can never disagree.
//! * Nothing here reads provider statuses: only evidence (answers) becomes a reason.

use crate::record::{Reason, Severity, Verdict};

/// Score at or above which the verdict is `malicious`.
pub const MALICIOUS_AT: u32 = 70;
/// Score at or above which the verdict is `suspicious`.
pub const SUSPICIOUS_AT: u32 = 30;

/// The assessment of one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    /// 0–100.
    pub score: u32,
    /// From the score.
    pub verdict: Verdict,
    /// From the score.
    pub severity: Severity,
    /// Short title for the record.
    pub indicator: &'static str,
}

/// Scores the evidence.
pub fn assess(reasons: &[Reason]) -> Assessment {
    let score = reasons.iter().map(|r| r.weight).sum::<u32>().min(100);
    let verdict = if score >= MALICIOUS_AT {
        Verdict::Malicious
    } else if score >= SUSPICIOUS_AT {
        Verdict::Suspicious
    } else {
        // Absence of evidence is not evidence of being clean.
        Verdict::Unknown
    };
    let severity = match score {
        90.. => Severity::Critical,
        70..=89 => Severity::High,
        40..=69 => Severity::Medium,
        20..=39 => Severity::Low,
        _ => Severity::Info,
    };
    let indicator = match verdict {
        Verdict::Malicious => "Malicious IP Detected",
        Verdict::Suspicious => "Suspicious IP Detected",
        Verdict::Clean | Verdict::Unknown => "IP Observed",
    };
    Assessment {
        score,
        verdict,
        severity,
        indicator,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(weight: u32) -> Reason {
        Reason {
            source: "feeds".into(),
            detail: "listed".into(),
            weight,
        }
    }

    #[test]
    fn score_model_table() {
        let cases: [(&[u32], u32, Verdict, Severity); 7] = [
            (&[], 0, Verdict::Unknown, Severity::Info),
            (&[19], 19, Verdict::Unknown, Severity::Info),
            (&[29], 29, Verdict::Unknown, Severity::Low),
            (&[30], 30, Verdict::Suspicious, Severity::Low),
            (&[20, 25], 45, Verdict::Suspicious, Severity::Medium),
            (&[70], 70, Verdict::Malicious, Severity::High),
            (&[70, 70], 100, Verdict::Malicious, Severity::Critical),
        ];
        for (weights, score, verdict, severity) in cases {
            let reasons: Vec<_> = weights.iter().map(|w| reason(*w)).collect();
            let a = assess(&reasons);
            assert_eq!(
                (a.score, a.verdict, a.severity),
                (score, verdict, severity),
                "{weights:?}"
            );
        }
    }
}
