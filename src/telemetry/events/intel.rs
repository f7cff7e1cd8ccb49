//! Intel events: feeds loaded, reloaded and matched; provider requests, skips, cache hits,
//! budgets and state; the remote queue and the records its answers revise.

use std::time::Duration;

use tracing::{debug, error, info, warn};

use crate::telemetry::{warnings, Metrics};

/// A first sighting was listed by a feed.
pub(crate) struct FeedMatched<'a> {
    /// Feed name.
    pub feed: &'a str,
}
impl FeedMatched<'_> {
    /// Counts it.
    pub(crate) fn emit(&self, m: &Metrics) {
        m.handles.feed_matches.with(self.feed, |c| c.inc());
    }
}

/// A feed was (re)loaded.
pub(crate) struct FeedLoaded<'a> {
    /// Feed name.
    pub feed: &'a str,
    /// Prefixes loaded.
    pub entries: usize,
    /// Lines that were not an address or CIDR.
    pub skipped_lines: usize,
    /// First skipped line, for the operator.
    pub first_skipped: Option<&'a (usize, String)>,
}
impl FeedLoaded<'_> {
    /// Sets the gauge and logs.
    pub(crate) fn emit(&self, m: &Metrics) {
        let entries = i64::try_from(self.entries).unwrap_or(i64::MAX);
        // Once per feed load, next to an info line: not worth a cached handle.
        m.feed_entries.with_label_values(&[self.feed]).set(entries);
        info!(
            feed = self.feed,
            entries = self.entries,
            skipped_lines = self.skipped_lines,
            "feed loaded"
        );
        if let Some((line, text)) = self.first_skipped {
            let text: String = text.chars().take(80).collect();
            warn!(
                feed = self.feed,
                line, text, "feed lines skipped: not an address or cidr"
            );
        }
    }
}

/// A feed reload was attempted.
pub(crate) struct FeedReloadFinished<'a> {
    /// The error, when it failed (the old feeds stay in use).
    pub error: Option<&'a str>,
}
impl FeedReloadFinished<'_> {
    /// Counts it; warns on failure.
    pub(crate) fn emit(&self, m: &Metrics) {
        // Once per reload: not worth a cached handle.
        match self.error {
            None => m.feed_reloads.with_label_values(&["ok"]).inc(),
            Some(error) => {
                m.feed_reloads.with_label_values(&["error"]).inc();
                warn!(error, "feed reload failed; keeping the feeds loaded before");
            }
        }
    }
}

/// The allow-list file was (re)loaded.
/// The allow-list's active entries, sampled between reloads (entries expire meanwhile).
pub(crate) struct AllowlistSampled {
    /// Entries matching now.
    pub active: usize,
}
impl AllowlistSampled {
    /// Sets `allowlist_entries`.
    pub(crate) fn emit(&self, m: &Metrics) {
        m.allowlist_entries
            .set(i64::try_from(self.active).unwrap_or(i64::MAX));
    }
}

pub(crate) struct AllowlistLoaded<'a> {
    /// The file.
    pub path: &'a std::path::Path,
    /// Entries in the file.
    pub entries: usize,
    /// Of them, unexpired now.
    pub active: usize,
    /// Lines that were not entries.
    pub skipped_lines: usize,
    /// The first few of them, with line numbers and why.
    pub skipped: &'a [crate::stages::filter::SkippedLine],
}
impl AllowlistLoaded<'_> {
    /// Sets the gauge; logs the load, and warns once per skipped line kept.
    pub(crate) fn emit(&self, m: &Metrics) {
        m.allowlist_entries
            .set(i64::try_from(self.active).unwrap_or(i64::MAX));
        info!(
            path = %self.path.display(),
            entries = self.entries,
            active = self.active,
            skipped_lines = self.skipped_lines,
            "allow-list loaded"
        );
        for skipped in self.skipped {
            warn!(
                path = %self.path.display(),
                line = skipped.line,
                text = %skipped.text,
                why = skipped.why,
                "allow-list line skipped"
            );
        }
    }
}

/// An allow-list reload was attempted.
pub(crate) struct AllowlistReloadFinished<'a> {
    /// The error, when it failed (the old list stays in use).
    pub error: Option<&'a str>,
}
impl AllowlistReloadFinished<'_> {
    /// Counts it; warns on failure.
    pub(crate) fn emit(&self, m: &Metrics) {
        match self.error {
            None => m.allowlist_reloads.with_label_values(&["ok"]).inc(),
            Some(error) => {
                m.allowlist_reloads.with_label_values(&["error"]).inc();
                warn!(
                    error,
                    "allow-list reload failed; keeping the list loaded before"
                );
            }
        }
    }
}

/// A reload made an allow-list entry match (new, or no longer expired).
pub(crate) struct AllowlistEntryAdded<'a> {
    /// The entry.
    pub entry: &'a crate::stages::filter::AllowEntry,
}
impl AllowlistEntryAdded<'_> {
    /// Logs it (the network, why and who: no secret).
    pub(crate) fn emit(&self) {
        info!(
            cidr = %self.entry.net,
            reason = %self.entry.reason,
            owner = %self.entry.owner,
            line = self.entry.line,
            "allow-list entry added"
        );
    }
}

/// A request to a provider finished (one HTTP request; retries are separate requests).
pub(crate) struct ProviderRequested<'a> {
    /// Provider name.
    pub provider: &'a str,
    /// Status label of the outcome (`ok`, `not_found`, `timeout`, …).
    pub status: &'static str,
    /// How long it took.
    pub elapsed: Duration,
}
impl ProviderRequested<'_> {
    /// Counts it, observes the latency, logs at debug.
    pub(crate) fn emit(&self, m: &Metrics) {
        m.handles
            .enrich_requests
            .with(self.provider, self.status, |c| c.inc());
        m.handles
            .enrich_duration
            .with(self.provider, |h| h.observe(self.elapsed.as_secs_f64()));
        debug!(
            provider = self.provider,
            status = self.status,
            "provider request finished"
        );
    }
}

/// A provider request failed for a reason an operator should see (timeout, 5xx, throttled,
/// unreadable answer).
pub(crate) struct ProviderRequestError<'a> {
    /// Provider name.
    pub provider: &'static str,
    /// Status label.
    pub status: &'static str,
    /// The error text (never holds a key: provider errors are redacted at the source).
    pub error: &'a str,
}
impl ProviderRequestError<'_> {
    /// Warns, rate-limited per provider and status.
    pub(crate) fn emit(&self, _m: &Metrics) {
        if let Some(suppressed) = warnings().allow_each(self.provider, self.status) {
            warn!(
                provider = self.provider,
                status = self.status,
                error = self.error,
                suppressed,
                "provider request failed"
            );
        }
    }
}

/// A lookup was not made.
pub(crate) struct ProviderSkipped<'a> {
    /// Provider name.
    pub provider: &'a str,
    /// Bounded reason (`budget_day`, `queue_full`, `provider_down`, …).
    pub reason: &'static str,
}
impl ProviderSkipped<'_> {
    /// Counts it.
    pub(crate) fn emit(&self, m: &Metrics) {
        m.handles
            .enrich_skipped
            .with(self.provider, self.reason, |c| c.inc());
    }
}

/// A lookup was answered from the provider's answer cache.
pub(crate) struct ProviderCacheHit<'a> {
    /// Provider name.
    pub provider: &'a str,
}
impl ProviderCacheHit<'_> {
    /// Counts it.
    pub(crate) fn emit(&self, m: &Metrics) {
        m.handles.enrich_cache_hits.with(self.provider, |c| c.inc());
    }
}

/// A provider refused our credentials (401/403): no further requests until restart.
pub(crate) struct ProviderDown<'a> {
    /// Provider name.
    pub provider: &'a str,
    /// Status label (`unauthorized`, `forbidden`).
    pub status: &'static str,
    /// What it said (redacted).
    pub error: &'a str,
}
impl ProviderDown<'_> {
    /// Sets `provider_up` to 0 and logs once at error.
    pub(crate) fn emit(&self, m: &Metrics) {
        // Once per provider and process: not worth a cached handle.
        m.provider_up.with_label_values(&[self.provider]).set(0);
        error!(
            provider = self.provider,
            status = self.status,
            error = self.error,
            "provider refused the credentials; no further requests to it until restart \
             (this says nothing about any address)"
        );
    }
}

/// A provider is configured and usable, or its budget changed.
pub(crate) struct ProviderState<'a> {
    /// Provider name.
    pub provider: &'a str,
    /// Lookups left in its budget (today, else this minute), when it has one.
    pub quota_remaining: Option<u32>,
}
impl ProviderState<'_> {
    /// Sets `provider_up` to 1 and the quota gauge.
    pub(crate) fn emit_up(&self, m: &Metrics) {
        // Once per provider at start-up: not worth a cached handle.
        m.provider_up.with_label_values(&[self.provider]).set(1);
        self.emit_quota(m);
    }

    /// Sets the quota gauge.
    pub(crate) fn emit_quota(&self, m: &Metrics) {
        if let Some(left) = self.quota_remaining {
            m.handles
                .provider_quota_remaining
                .with(self.provider, |g| g.set(i64::from(left)));
        }
    }
}

/// Addresses waiting for remote providers changed.
pub(crate) struct RemoteQueueChanged {
    /// Addresses with at least one lookup outstanding.
    pub depth: i64,
}
impl RemoteQueueChanged {
    /// Sets the gauge.
    pub(crate) fn emit(&self, m: &Metrics) {
        m.remote_queue_depth.set(self.depth);
    }
}

/// An updated record (a new revision) was handed to the producer.
pub(crate) struct RecordRevised<'a> {
    /// Provider whose answer changed the record.
    pub provider: &'a str,
    /// The new revision.
    pub revision: u32,
}
impl RecordRevised<'_> {
    /// Counts it.
    pub(crate) fn emit(&self, m: &Metrics) {
        m.record_revisions.inc();
        debug!(
            provider = self.provider,
            revision = self.revision,
            "record revised by a provider answer"
        );
    }
}

/// A revised record could not be serialised (a bug): logged, nothing published.
pub(crate) struct RevisionNotEncoded<'a> {
    /// Provider whose answer revised the record.
    pub provider: &'a str,
    /// The error.
    pub error: &'a dyn std::error::Error,
}
impl RevisionNotEncoded<'_> {
    /// Logs it.
    pub(crate) fn emit(&self, _m: &Metrics) {
        tracing::error!(
            provider = self.provider,
            error = %self.error,
            "a revised record could not be serialised; nothing published (a bug)"
        );
    }
}

/// A lookup waits for its provider's budget, hold or circuit (one-shot `enrich`, mostly: the
/// daemon's queues wait before they start a lookup).
pub(crate) struct ProviderBudgetWaiting<'a> {
    /// Provider name.
    pub provider: &'static str,
    /// How long.
    pub wait: Duration,
    /// Until when, RFC 3339.
    pub until: &'a str,
}
impl ProviderBudgetWaiting<'_> {
    /// Logs at info when the wait is noticeable (≥ 1 s), at most once per 10 s per provider.
    pub(crate) fn emit(&self, _m: &Metrics) {
        if self.wait < Duration::from_secs(1) {
            return;
        }
        if let Some(suppressed) = warnings().allow_each(self.provider, "budget_wait") {
            info!(
                provider = self.provider,
                wait_secs = self.wait.as_secs(),
                until = self.until,
                suppressed,
                "waiting for the provider's budget"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::events::tests::{metrics, sample};

    #[test]
    fn provider_handles_count_per_provider_and_status() {
        let (registry, m) = metrics();
        for (provider, status) in [("a", "ok"), ("a", "ok"), ("a", "timeout"), ("b", "ok")] {
            ProviderRequested {
                provider,
                status,
                elapsed: Duration::from_millis(20),
            }
            .emit(&m);
        }
        for (provider, reason) in [
            ("a", "queue_full"),
            ("b", "budget_day"),
            ("a", "queue_full"),
        ] {
            ProviderSkipped { provider, reason }.emit(&m);
        }
        ProviderCacheHit { provider: "b" }.emit(&m);
        ProviderCacheHit { provider: "b" }.emit(&m);
        ProviderState {
            provider: "a",
            quota_remaining: Some(9),
        }
        .emit_up(&m);
        ProviderState {
            provider: "a",
            quota_remaining: Some(8),
        }
        .emit_quota(&m);
        let requests = |provider, status| {
            let labels = [("provider", provider), ("status", status)];
            sample(&registry, "enrich_requests_total", &labels)
        };
        assert_eq!(requests("a", "ok"), Some(2.0));
        assert_eq!(requests("a", "timeout"), Some(1.0));
        assert_eq!(requests("b", "ok"), Some(1.0));
        assert_eq!(requests("b", "timeout"), None);
        let observed = |provider| {
            sample(
                &registry,
                "enrich_duration_seconds",
                &[("provider", provider)],
            )
        };
        assert_eq!((observed("a"), observed("b")), (Some(3.0), Some(1.0)));
        let skipped = |provider, reason| {
            let labels = [("provider", provider), ("reason", reason)];
            sample(&registry, "enrich_skipped_total", &labels)
        };
        assert_eq!(skipped("a", "queue_full"), Some(2.0));
        assert_eq!(skipped("b", "budget_day"), Some(1.0));
        let hits = sample(&registry, "enrich_cache_hits_total", &[("provider", "b")]);
        assert_eq!(hits, Some(2.0));
        let quota = sample(&registry, "provider_quota_remaining", &[("provider", "a")]);
        assert_eq!(quota, Some(8.0));
        let up = sample(&registry, "provider_up", &[("provider", "a")]);
        assert_eq!(up, Some(1.0));
    }

    #[test]
    fn feed_events_reach_the_registry() {
        let (registry, m) = metrics();
        FeedMatched { feed: "spamhaus" }.emit(&m);
        FeedMatched { feed: "spamhaus" }.emit(&m);
        FeedLoaded {
            feed: "spamhaus",
            entries: 12,
            skipped_lines: 0,
            first_skipped: None,
        }
        .emit(&m);
        FeedReloadFinished { error: None }.emit(&m);
        let matched = sample(&registry, "feed_matches_total", &[("feed", "spamhaus")]);
        assert_eq!(matched, Some(2.0));
        let entries = sample(&registry, "feed_entries", &[("feed", "spamhaus")]);
        assert_eq!(entries, Some(12.0));
        let ok = sample(&registry, "feed_reloads_total", &[("result", "ok")]);
        assert_eq!(ok, Some(1.0));
    }
}
