//! Withdrawal events (ef-withdraw): withdrawals published, feed-reload re-evaluations, the
//! published index, and the blocklist endpoint. Their metrics are registered here, beside the
//! events, against the daemon's registry ([`WithdrawMetrics::new`]).

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use tracing::{debug, info, warn};

use crate::telemetry::metrics::NAMESPACE;

/// The metrics of withdrawals, re-evaluations and the blocklist.
#[derive(Debug, Clone)]
pub(crate) struct WithdrawMetrics {
    /// `withdrawals_total{reason}`: withdrawal revisions delivered.
    withdrawals: IntCounterVec,
    /// `reevaluations_total{outcome}`: addresses scored again at a feed reload.
    reevaluations: IntCounterVec,
    /// `published_index_evictions_total`: published addresses the full index forgot.
    evictions: IntCounter,
    /// `blocklist_requests_total{list,status}`: blocklist requests answered.
    requests: IntCounterVec,
    /// `blocklist_entries_served_total{list}`: addresses served in blocklist bodies.
    entries: IntCounterVec,
}

/// Every withdrawal reason label.
pub(crate) const WITHDRAWAL_REASONS: [&str; 3] = ["expired", "feed_removed", "allowlisted"];
/// Every re-evaluation outcome label.
const REEVALUATION_OUTCOMES: [&str; 4] = ["flagged", "revised", "withdrawn", "unchanged"];

impl WithdrawMetrics {
    /// Registers the metrics with `registry`.
    pub(crate) fn new(registry: &Registry) -> prometheus::Result<Self> {
        let vec = |name: &str, help: &str, labels: &[&str]| -> prometheus::Result<IntCounterVec> {
            let c = IntCounterVec::new(Opts::new(name, help).namespace(NAMESPACE), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let metrics = WithdrawMetrics {
            withdrawals: vec(
                "withdrawals_total",
                "Withdrawal revisions (revoked: true) delivered, by reason",
                &["reason"],
            )?,
            reevaluations: vec(
                "reevaluations_total",
                "Addresses scored again because a feed reload changed their listing",
                &["outcome"],
            )?,
            evictions: {
                let c = IntCounter::with_opts(
                    Opts::new(
                        "published_index_evictions_total",
                        "Published addresses the full index forgot (never withdrawn on expiry)",
                    )
                    .namespace(NAMESPACE),
                )?;
                registry.register(Box::new(c.clone()))?;
                c
            },
            requests: vec(
                "blocklist_requests_total",
                "Blocklist requests by list and HTTP status",
                &["list", "status"],
            )?,
            entries: vec(
                "blocklist_entries_served_total",
                "Addresses served in blocklist bodies",
                &["list"],
            )?,
        };
        for reason in WITHDRAWAL_REASONS {
            metrics.withdrawals.with_label_values(&[reason]);
        }
        for outcome in REEVALUATION_OUTCOMES {
            metrics.reevaluations.with_label_values(&[outcome]);
        }
        Ok(metrics)
    }
}

/// A withdrawal revision was delivered.
pub(crate) struct WithdrawalPublished<'a> {
    /// The address.
    pub ip: &'a str,
    /// Why (one of [`WITHDRAWAL_REASONS`]).
    pub reason: &'static str,
    /// Its revision number.
    pub revision: u32,
}
impl WithdrawalPublished<'_> {
    /// Counts and logs it.
    pub(crate) fn emit(&self, m: &WithdrawMetrics) {
        m.withdrawals.with_label_values(&[self.reason]).inc();
        info!(
            ip = self.ip,
            reason = self.reason,
            revision = self.revision,
            "verdict withdrawn"
        );
    }
}

/// An address was scored again after a feed reload changed its listing.
pub(crate) struct AddressReevaluated<'a> {
    /// The address.
    pub ip: &'a str,
    /// `flagged` (first published), `revised`, `withdrawn` or `unchanged`.
    pub outcome: &'static str,
    /// The new score.
    pub score: u32,
}
impl AddressReevaluated<'_> {
    /// Counts it; logs at debug (the withdrawal and the record say the rest).
    pub(crate) fn emit(&self, m: &WithdrawMetrics) {
        m.reevaluations.with_label_values(&[self.outcome]).inc();
        debug!(
            ip = self.ip,
            outcome = self.outcome,
            score = self.score,
            "address re-evaluated after a feed reload"
        );
    }
}

/// A feed reload's re-evaluation pass finished.
pub(crate) struct ReevaluationFinished {
    /// Addresses in the dedup window and the published index looked at.
    pub scanned: u64,
    /// Of them, addresses whose feed listing changed.
    pub changed: u64,
}
impl ReevaluationFinished {
    /// Logs it.
    pub(crate) fn emit(&self) {
        info!(
            scanned = self.scanned,
            changed = self.changed,
            "feed reload: addresses re-evaluated"
        );
    }
}

/// A record for the output topic could not be made (a bug: plain data).
pub(crate) struct WithdrawalNotEncoded<'a> {
    /// The serialiser's error.
    pub error: &'a dyn std::error::Error,
}
impl WithdrawalNotEncoded<'_> {
    /// Logs it.
    pub(crate) fn emit(&self) {
        warn!(error = %self.error, "a withdrawal or re-evaluated record could not be encoded");
    }
}

/// The published index was sampled.
pub(crate) struct PublishedIndexSampled {
    /// Evictions since the last sample.
    pub new_evictions: u64,
}
impl PublishedIndexSampled {
    /// Counts the evictions.
    pub(crate) fn emit(&self, m: &WithdrawMetrics) {
        m.evictions.inc_by(self.new_evictions);
    }
}

/// A blocklist request was answered.
pub(crate) struct BlocklistServed {
    /// `ipv4` or `ipv6` (or `other` for unknown paths).
    pub list: &'static str,
    /// HTTP status.
    pub status: u16,
    /// Addresses in the body.
    pub entries: usize,
}
impl BlocklistServed {
    /// Counts it. Never logs the token or the request's headers.
    pub(crate) fn emit(&self, m: &WithdrawMetrics) {
        let status = self.status.to_string();
        m.requests.with_label_values(&[self.list, &status]).inc();
        m.entries
            .with_label_values(&[self.list])
            .inc_by(self.entries as u64);
        debug!(
            list = self.list,
            status = self.status,
            entries = self.entries,
            "blocklist served"
        );
    }
}
