//! Withdrawals and feed-reload re-evaluation (ef-withdraw).
//!
//! * A **withdrawal** is a revision of an address's record under the same key with the next
//!   revision number, `revoked: true` and a `revocation_reason`; it is published when a
//!   published verdict ends: its expiry passed ([`Withdrawals::sweep_expired`], run with the
//!   feeds' reload), a feed reload removed the listing it rested on and the address scored
//!   again falls below `publish.min_verdict` ([`Withdrawals::feeds_changed`]), or a caller
//!   withdraws it ([`Withdrawals::withdraw`], the allow-list's hook). Only addresses in the
//!   published index (see `stages::published`) can be withdrawn.
//! * **Re-evaluation**: when a reload changes the feeds, every address of the dedup window and
//!   of the published index whose listing changed is scored again: with the new feed matches,
//!   the local providers, the remote providers' cached answers and its sightings. A record
//!   published before keeps its context and its remote answers, and its vendor threat reason;
//!   an address never published is built from the dedup window's context (format, input
//!   message, roles: not the vendor, product, action, rule, peer or threat name). A verdict
//!   that reaches `publish.min_verdict` is published as a revision; a published score that
//!   changes is a revision; a published verdict that falls below it is withdrawn.
//! * Withdrawals and re-evaluations run one at a time (a mutex); each publishes through the
//!   revision publisher, which feeds the index, so the index then forgets a withdrawn address.
//! * Counted (`withdrawals_total{reason}`, `reevaluations_total{outcome}`) and logged.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use crate::intel::feeds::FeedSet;
use crate::model::{
    rfc3339, Observed, Origin, ProviderIntel, ProviderStatus, ThreatRecord, Verdict, THREAT_SCHEMA,
};
use crate::remote::{RemoteStage, RevisionSink};
use crate::stages::dedup::{DedupCache, Sighting};
use crate::stages::local::{merge_network, LocalIntel, FEEDS_ENTRY};
use crate::stages::published::{PublishedEntry, PublishedIndex};
use crate::stages::record;
use crate::stages::score::{EvidenceInput, ScoringModel, VENDOR_SOURCE};
use crate::telemetry::events::{
    AddressReevaluated, ReevaluationFinished, WithdrawMetrics, WithdrawalNotEncoded,
    WithdrawalPublished,
};
use crate::telemetry::Metrics;

/// Why a verdict was withdrawn (the record's `revocation_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(test), allow(dead_code))] // `Allowlisted`: the allow-list hook, wired at the merge
pub(crate) enum WithdrawReason {
    /// Its expiry (`expires_at`, else published + `dedup.ttl`) passed.
    Expired,
    /// A feed reload removed the listing it rested on.
    FeedRemoved,
    /// An allow-list entry now covers the address.
    Allowlisted,
}

impl WithdrawReason {
    /// The `revocation_reason` and the metric label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            WithdrawReason::Expired => "expired",
            WithdrawReason::FeedRemoved => "feed_removed",
            WithdrawReason::Allowlisted => "allowlisted",
        }
    }
}

/// The withdrawal of `record`: the same record (or the re-scored one) with `revision`,
/// `revoked: true`, the reason, and `now` as its time. Pure.
pub(crate) fn withdrawal_record(
    record: &ThreatRecord,
    revision: u32,
    reason: WithdrawReason,
    now: SystemTime,
) -> ThreatRecord {
    let mut withdrawn = record.clone();
    withdrawn.revision = revision;
    withdrawn.revoked = true;
    withdrawn.revocation_reason = Some(reason.label().to_owned());
    withdrawn.generated_at = rfc3339(now);
    withdrawn
}

/// Scores `record` again with `feed_matches` (the reloaded feeds') and `sightings`, keeping a
/// vendor threat reason it had (the threat name is not kept anywhere else). Pure.
pub(crate) fn rescore(
    record: &mut ThreatRecord,
    scoring: &ScoringModel,
    feed_matches: &[crate::intel::feeds::FeedMatch],
    sightings: u64,
) {
    let vendor: Vec<_> = record
        .reasons
        .iter()
        .filter(|r| r.source == VENDOR_SOURCE)
        .cloned()
        .collect();
    let mut reasons = vendor.clone();
    reasons.extend(scoring.evidence(&EvidenceInput {
        feed_matches,
        intel: &record.intel,
        threat: None,
        reporter: None,
        sightings,
    }));
    let assessment = scoring.assess(&reasons);
    record.score = assessment.score;
    record.verdict = assessment.verdict;
    record.severity = assessment.severity;
    if vendor.is_empty() {
        record.indicator = assessment.indicator;
    }
    record.reasons = reasons;
    record.sightings = sightings;
}

/// Publishes withdrawals and re-evaluations.
pub(crate) struct Withdrawals {
    index: PublishedIndex,
    dedup: DedupCache,
    sink: Arc<dyn RevisionSink>,
    scoring: ScoringModel,
    min_verdict: Verdict,
    local: LocalIntel,
    remote: Option<Arc<RemoteStage>>,
    metrics: Arc<Metrics>,
    counters: WithdrawMetrics,
    tombstones: bool,
    /// How records are annotated (id, TLP, confidence, expiry) before they are published.
    publication: Arc<crate::publish::Publication>,
    /// One withdrawal or re-evaluation pass at a time.
    turn: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Withdrawals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Withdrawals")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// What a withdrawal needs besides the index and the window.
pub(crate) struct WithdrawalParts {
    pub(crate) sink: Arc<dyn RevisionSink>,
    pub(crate) scoring: ScoringModel,
    pub(crate) min_verdict: Verdict,
    pub(crate) local: LocalIntel,
    pub(crate) remote: Option<Arc<RemoteStage>>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) counters: WithdrawMetrics,
    /// `publish.tombstones`: a tombstone after each withdrawal.
    pub(crate) tombstones: bool,
    /// Record annotation (`publish.tlp`, expiry, ids).
    pub(crate) publication: Arc<crate::publish::Publication>,
}

impl Withdrawals {
    pub(crate) fn new(index: PublishedIndex, dedup: DedupCache, parts: WithdrawalParts) -> Self {
        Withdrawals {
            index,
            dedup,
            sink: parts.sink,
            scoring: parts.scoring,
            min_verdict: parts.min_verdict,
            local: parts.local,
            remote: parts.remote,
            metrics: parts.metrics,
            counters: parts.counters,
            tombstones: parts.tombstones,
            publication: parts.publication,
            turn: tokio::sync::Mutex::new(()),
        }
    }

    /// The published index.
    pub(crate) fn index(&self) -> &PublishedIndex {
        &self.index
    }

    /// The withdrawal metrics.
    pub(crate) fn counters(&self) -> &WithdrawMetrics {
        &self.counters
    }

    /// Withdraws `ip`'s published verdict for `reason` (the allow-list reload's hook calls it
    /// for each newly allow-listed address); false when it has none.
    pub(crate) async fn withdraw(
        &self,
        ip: IpAddr,
        reason: WithdrawReason,
        now: SystemTime,
    ) -> bool {
        let _turn = self.turn.lock().await;
        let Some(entry) = self.index.get(ip) else {
            return false;
        };
        self.publish_withdrawal(ip, &entry, entry.record.clone(), reason, now)
            .await
    }

    /// Withdraws every published verdict whose expiry passed by `now`; returns how many.
    pub(crate) async fn sweep_expired(&self, now: SystemTime) -> usize {
        let _turn = self.turn.lock().await;
        let mut withdrawn = 0;
        for (ip, entry) in self.index.expired(now) {
            let record = entry.record.clone();
            if self
                .publish_withdrawal(ip, &entry, record, WithdrawReason::Expired, now)
                .await
            {
                withdrawn += 1;
            }
        }
        withdrawn
    }

    /// After a reload from `old` to `new`: scores again every address of the dedup window
    /// and of the published index whose listing changed, and publishes what follows.
    pub(crate) async fn feeds_changed(&self, old: &FeedSet, new: &FeedSet, now: SystemTime) {
        let _turn = self.turn.lock().await;
        let mut scanned = 0u64;
        let mut changed: Vec<(IpAddr, Option<Arc<Sighting>>)> = Vec::new();
        // One pass over the window, then the published addresses the window forgot.
        for (ip, sighting) in self.dedup.addresses() {
            scanned += 1;
            if old.lookup(ip) != new.lookup(ip) {
                changed.push((ip, Some(sighting)));
            }
        }
        for (ip, _) in self.index.entries() {
            if self.dedup.get(ip).is_some() {
                continue;
            }
            scanned += 1;
            if old.lookup(ip) != new.lookup(ip) {
                changed.push((ip, None));
            }
        }
        ReevaluationFinished {
            scanned,
            changed: changed.len() as u64,
        }
        .emit();
        for (ip, sighting) in changed {
            self.reevaluate(ip, sighting.as_deref(), now).await;
        }
    }

    /// Scores `ip` again with the current feeds and publishes a revision or a withdrawal.
    async fn reevaluate(&self, ip: IpAddr, sighting: Option<&Sighting>, now: SystemTime) {
        let local = self.local.lookup(ip, &self.metrics);
        let entry = self.index.get(ip);
        let mut record = match (&entry, sighting) {
            (Some(entry), _) => {
                let mut record = entry.record.clone();
                if let Some(feeds) = local.intel.get(FEEDS_ENTRY) {
                    record.intel.insert(FEEDS_ENTRY.to_owned(), feeds.clone());
                }
                record
            }
            (None, Some(sighting)) => self.fresh_record(ip, sighting, &local, now).await,
            (None, None) => return,
        };
        let sightings = sighting.map_or(record.sightings, Sighting::count);
        rescore(&mut record, &self.scoring, &local.matches, sightings);
        if let Some(sighting) = sighting {
            record.last_seen = rfc3339(sighting.last_seen());
        }
        record.generated_at = rfc3339(now);
        let ip_text = ip.to_string();
        let reached = record.verdict >= self.min_verdict;
        let outcome = match &entry {
            Some(entry) if !reached => {
                self.publish_withdrawal(
                    ip,
                    entry,
                    record.clone(),
                    WithdrawReason::FeedRemoved,
                    now,
                )
                .await;
                "withdrawn"
            }
            Some(entry) if record.score == entry.record.score => "unchanged",
            Some(entry) => {
                record.revision = self.next_revision(ip, entry.record.revision, &record);
                self.publish(&record).await;
                "revised"
            }
            None if reached => {
                record.revision = self.next_revision(ip, 0, &record);
                self.publish(&record).await;
                "flagged"
            }
            None => "unchanged",
        };
        AddressReevaluated {
            ip: &ip_text,
            outcome,
            score: record.score,
        }
        .emit(&self.counters);
    }

    /// A record for an address never published: the dedup window's context, local intel and
    /// the remote providers' cached answers.
    async fn fresh_record(
        &self,
        ip: IpAddr,
        sighting: &Sighting,
        local: &crate::stages::local::LocalAnswer,
        now: SystemTime,
    ) -> ThreatRecord {
        let context = *sighting.context();
        let mut intel: BTreeMap<String, ProviderIntel> = local.intel.clone();
        let mut network = local.network.clone();
        if let Some(remote) = &self.remote {
            for (name, entry) in remote.known_statuses(ip, now) {
                intel.insert(name.to_owned(), entry);
            }
            for slot in remote.slots() {
                if let Some(outcome) = slot.cached(ip).await {
                    if let Some(found) = &outcome.network {
                        merge_network(&mut network, found);
                    }
                    intel.insert(slot.name().to_owned(), outcome.intel);
                } else if intel
                    .get(slot.name())
                    .is_some_and(|e| e.status == ProviderStatus::Pending)
                {
                    intel.insert(
                        slot.name().to_owned(),
                        ProviderIntel::status(
                            ProviderStatus::Skipped,
                            "no cached answer when a feed reload scored it again",
                        ),
                    );
                }
            }
        }
        ThreatRecord {
            schema: THREAT_SCHEMA.to_owned(),
            ip: ip.to_string(),
            ip_version: if ip.is_ipv4() { 4 } else { 6 },
            verdict: Verdict::Unknown,
            severity: crate::model::Severity::Info,
            score: 0,
            reasons: Vec::new(),
            indicator: String::new(),
            first_seen: rfc3339(sighting.first_seen()),
            last_seen: rfc3339(sighting.last_seen()),
            sightings: sighting.count(),
            roles: context.roles(),
            observed: Observed {
                format: context.format.to_owned(),
                topic: context.topic.name().to_string(),
                partition: context.partition,
                offset: context.offset,
                ..Observed::default()
            },
            network,
            intel,
            revision: 1,
            generated_at: rfc3339(now),
            id: None,
            event_time: None,
            confidence: None,
            tlp: None,
            expires_at: None,
            revoked: false,
            revocation_reason: None,
        }
    }

    /// The next revision of `ip` after `published` (the index's), kept in step with the
    /// dedup window's counter, which remembers `record`'s score and verdict.
    fn next_revision(&self, ip: IpAddr, published: u32, record: &ThreatRecord) -> u32 {
        match self.dedup.get(ip) {
            Some(sighting) => sighting.next_revision_after(published, record.score, record.verdict),
            None => published + 1,
        }
    }

    /// Publishes the withdrawal of `record` (the published one, or the re-scored one).
    async fn publish_withdrawal(
        &self,
        ip: IpAddr,
        entry: &PublishedEntry,
        record: ThreatRecord,
        reason: WithdrawReason,
        now: SystemTime,
    ) -> bool {
        // An allow-listed address must not come back with the next
        // remote answer in this window: the window remembers the highest score, so no
        // revision rises above it. After an expiry or a feed removal, new evidence may
        // publish it again.
        let remembered = match reason {
            WithdrawReason::Allowlisted => 100,
            WithdrawReason::Expired | WithdrawReason::FeedRemoved => record.score,
        };
        let revision = match self.dedup.get(ip) {
            Some(sighting) => {
                sighting.next_revision_after(entry.record.revision, remembered, record.verdict)
            }
            None => entry.record.revision + 1,
        };
        let withdrawn = withdrawal_record(&record, revision, reason, now);
        if !self.publish(&withdrawn).await {
            return false;
        }
        if self.tombstones {
            // After the withdrawal, in order: compaction keeps the latest, the deletion.
            let tombstone = crate::model::Output {
                kind: crate::model::OutputKind::Tombstone,
                key: Some(withdrawn.ip.clone().into_bytes()),
                payload: Vec::new(),
            };
            self.sink.publish(tombstone, origin_of(&withdrawn)).await;
        }
        // The index forgets it when the delivery is noted; forgotten here too, in case the
        // delivery was given up.
        self.index.remove(ip);
        WithdrawalPublished {
            ip: &withdrawn.ip,
            reason: reason.label(),
            revision,
        }
        .emit(&self.counters);
        true
    }

    /// Publishes `record` through the revision publisher (which feeds the index and the
    /// scheduled report); false when it could not be encoded.
    async fn publish(&self, record: &ThreatRecord) -> bool {
        let mut record = record.clone();
        match record::encode(&mut record, &self.publication) {
            Ok(output) => {
                self.sink.publish(output, origin_of(&record)).await;
                true
            }
            Err(error) => {
                WithdrawalNotEncoded { error: &error }.emit();
                false
            }
        }
    }
}

/// The input message `record` was first seen in (for a DLQ entry if its publication fails).
fn origin_of(record: &ThreatRecord) -> Origin {
    Origin {
        topic: Arc::from(record.observed.topic.as_str()),
        partition: record.observed.partition,
        offset: record.observed.offset,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Network, Reason, Severity};
    use std::time::UNIX_EPOCH;

    fn published() -> ThreatRecord {
        ThreatRecord {
            schema: THREAT_SCHEMA.to_owned(),
            ip: "198.51.100.5".into(),
            ip_version: 4,
            verdict: Verdict::Malicious,
            severity: Severity::High,
            score: 70,
            reasons: vec![Reason {
                source: "feeds".into(),
                detail: "listed by feed f".into(),
                weight: 70,
            }],
            indicator: "Malicious IP Detected".into(),
            first_seen: rfc3339(UNIX_EPOCH),
            last_seen: rfc3339(UNIX_EPOCH),
            sightings: 1,
            roles: vec![crate::model::Role::Source],
            observed: Observed {
                format: "ecs_json".into(),
                topic: "fw".into(),
                ..Observed::default()
            },
            network: Network::default(),
            intel: BTreeMap::new(),
            revision: 3,
            generated_at: rfc3339(UNIX_EPOCH),
            id: None,
            event_time: None,
            confidence: None,
            tlp: None,
            expires_at: None,
            revoked: false,
            revocation_reason: None,
        }
    }

    #[test]
    fn a_withdrawal_is_the_record_revoked_with_its_reason() {
        let now = UNIX_EPOCH + std::time::Duration::from_secs(3600);
        let w = withdrawal_record(&published(), 4, WithdrawReason::FeedRemoved, now);
        assert!(w.revoked);
        assert_eq!(w.revocation_reason.as_deref(), Some("feed_removed"));
        assert_eq!(w.revision, 4);
        assert_eq!(w.generated_at, rfc3339(now));
        let json = serde_json::to_value(&w).unwrap();
        assert_eq!(json["revoked"], true);
        // An ordinary record says nothing of revocation.
        let plain = serde_json::to_value(published()).unwrap();
        assert!(plain.get("revoked").is_none() && plain.get("revocation_reason").is_none());
    }

    /// A revision sink that keeps what it was given.
    #[derive(Default)]
    struct Kept(std::sync::Mutex<Vec<ThreatRecord>>);

    impl RevisionSink for Kept {
        fn publish(
            &self,
            output: crate::model::Output,
            _origin: Origin,
        ) -> futures::future::BoxFuture<'_, ()> {
            // Every record a withdrawal publishes is checked against the schema.
            let record = serde_json::from_value(crate::model::schema_check::valid_record_payload(
                &output.payload,
            ))
            .unwrap();
            self.0.lock().unwrap().push(record);
            Box::pin(async {})
        }
    }

    fn withdrawals(sink: Arc<Kept>, ttl: std::time::Duration) -> Withdrawals {
        let registry = prometheus::Registry::new();
        let feeds = Arc::new(crate::intel::feeds::LocalFeeds::load(Vec::new()).unwrap());
        let settings = crate::settings::Settings::from_toml_overrides("").unwrap();
        Withdrawals::new(
            PublishedIndex::new(100, 1 << 20, ttl),
            DedupCache::new(std::time::Duration::from_secs(3600), 100),
            WithdrawalParts {
                sink,
                scoring: ScoringModel::new(&settings.scoring, &[]),
                min_verdict: Verdict::Suspicious,
                local: LocalIntel::new(feeds, Vec::new(), BTreeMap::new()),
                remote: None,
                metrics: Arc::new(Metrics::new(&registry).unwrap()),
                counters: WithdrawMetrics::new(&registry).unwrap(),
                tombstones: false,
                publication: Arc::new(crate::publish::Publication::from_settings(&settings)),
            },
        )
    }

    #[tokio::test]
    async fn the_allowlist_hook_withdraws_once_with_the_next_revision_and_holds_the_window() {
        let sink = Arc::new(Kept::default());
        let w = withdrawals(sink.clone(), std::time::Duration::from_secs(3600));
        let ip: IpAddr = "198.51.100.5".parse().unwrap();
        let now = UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        // Revisions 1 to 3 went out in this window; the index holds the third.
        let seen = w.dedup.observe(ip, now);
        for _ in 0..3 {
            seen.sighting.next_revision(70, Verdict::Malicious);
        }
        w.index
            .record_delivered(&serde_json::to_vec(&published()).unwrap(), now);
        assert!(w.withdraw(ip, WithdrawReason::Allowlisted, now).await);
        let kept = sink.0.lock().unwrap().clone();
        assert_eq!(kept.len(), 1);
        assert!(kept[0].revoked);
        assert_eq!(kept[0].revocation_reason.as_deref(), Some("allowlisted"));
        assert_eq!(kept[0].revision, 4);
        assert_eq!(seen.sighting.revision(), 4, "the window's counter in step");
        // No later remote answer can rise above what the window now remembers.
        assert_eq!(seen.sighting.published().map(|(score, _)| score), Some(100));
        assert!(w.index.get(ip).is_none());
        assert!(
            !w.withdraw(ip, WithdrawReason::Allowlisted, now).await,
            "only once"
        );
        assert_eq!(sink.0.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn the_sweep_withdraws_what_expired_by_now_and_nothing_else() {
        let sink = Arc::new(Kept::default());
        let ttl = std::time::Duration::from_secs(600);
        let w = withdrawals(sink.clone(), ttl);
        let t0 = UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        let mut early = published();
        early.ip = "198.51.100.6".into();
        w.index
            .record_delivered(&serde_json::to_vec(&early).unwrap(), t0);
        let later = t0 + std::time::Duration::from_secs(60);
        w.index
            .record_delivered(&serde_json::to_vec(&published()).unwrap(), later);
        // Not yet: a second before the first expiry.
        assert_eq!(
            w.sweep_expired(t0 + ttl - std::time::Duration::from_secs(1))
                .await,
            0
        );
        assert_eq!(w.sweep_expired(t0 + ttl).await, 1);
        let kept = sink.0.lock().unwrap().clone();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].ip, "198.51.100.6");
        assert_eq!(kept[0].revocation_reason.as_deref(), Some("expired"));
        // Outside the window: the index's revision + 1.
        assert_eq!(kept[0].revision, 4);
        assert_eq!(w.sweep_expired(later + ttl).await, 1);
        assert_eq!(sink.0.lock().unwrap().len(), 2);
    }

    #[test]
    fn the_schema_wants_revoked_and_its_reason_together() {
        let now = UNIX_EPOCH + std::time::Duration::from_secs(3600);
        let valid = withdrawal_record(&published(), 4, WithdrawReason::Expired, now);
        crate::model::schema_check::valid_record_payload(&serde_json::to_vec(&valid).unwrap());
        let mut without_reason = valid.clone();
        without_reason.revocation_reason = None;
        let mut unknown_reason = valid;
        unknown_reason.revocation_reason = Some("because".into());
        for bad in [without_reason, unknown_reason] {
            let payload = serde_json::to_vec(&bad).unwrap();
            let checked = std::panic::catch_unwind(|| {
                crate::model::schema_check::valid_record_payload(&payload)
            });
            assert!(checked.is_err(), "the schema let through {bad:?}");
        }
    }

    #[test]
    fn rescoring_without_the_feed_keeps_the_vendor_reason() {
        let scoring = ScoringModel::new(
            &crate::settings::Settings::from_toml_overrides("")
                .unwrap()
                .scoring,
            &[],
        );
        let mut record = published();
        record.reasons.push(Reason {
            source: VENDOR_SOURCE.into(),
            detail: "EdgeFW reported threat \"X\"".into(),
            weight: 30,
        });
        record.indicator = "X".into();
        rescore(&mut record, &scoring, &[], 1);
        assert_eq!(record.score, 30);
        assert_eq!(record.reasons.len(), 1);
        assert_eq!(record.reasons[0].source, VENDOR_SOURCE);
        assert_eq!(
            record.indicator, "X",
            "the vendor's threat name stays the title"
        );
    }
}
