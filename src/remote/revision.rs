//! Revisions: an address's record while remote answers come in, and how one answer is folded
//! into it. Pure apart from the sighting's revision counter.
//!
//! * In: a provider's [`Outcome`] for an address whose record is [`Tracked`].
//! * Out: the revised record for the output topic when an `ok` answer raises the score above
//!   the last published revision's and the verdict reaches `publish.min_verdict`; nothing for
//!   any other status (a provider failure is never evidence). Once every provider is done with
//!   the address, a published record that benign facts alone lowered is published again with
//!   the lower score ([`lowered_by_benign_facts`]).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use futures::future::BoxFuture;

use crate::intel::feeds::{FeedMatch, LocalFeeds};
use crate::model::{rfc3339, Origin, Output, ProviderStatus, ThreatRecord, Verdict};
use crate::remote::slot::Outcome;
use crate::stages::dedup::Sighting;
use crate::stages::local::{feeds_entry, merge_network, FEEDS_ENTRY};
use crate::stages::process::{LookupRequest, Priority};
use crate::stages::record::{self, EncodeError};
use crate::stages::score::{EvidenceInput, ScoringModel};
use crate::state::StoredAnswer;

/// Where revised records go.
pub trait RevisionSink: Send + Sync {
    /// Publishes one revised record; returns when it is delivered (or given up as the producer
    /// decides), so that revisions of one address go out in order.
    fn publish(&self, output: Output, origin: Origin) -> BoxFuture<'_, ()>;

    /// Whether the address's state is kept in the state changelog (`[scale] changelog`, scaled
    /// mode); when false, no state is built (s2-state).
    fn keeps_state(&self) -> bool {
        false
    }

    /// Writes an address's state (`OutputKind::State`); returns when it is delivered, so the
    /// states of one address go out in order (s2-state).
    fn state(&self, _output: Output, _origin: Origin) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// A sink that publishes nothing (one-shot `enrich`, which prints the final record).
#[derive(Debug, Default)]
pub struct NoRevisions;

impl RevisionSink for NoRevisions {
    fn publish(&self, _output: Output, _origin: Origin) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// An address's record while remote answers come in.
#[derive(Debug)]
pub struct Tracked {
    /// The current record (the revision last built, published or not).
    pub record: ThreatRecord,
    /// Local evidence, kept to score again as answers arrive.
    pub feed_matches: Vec<FeedMatch>,
    /// The vendor's threat name, when the event was a detection.
    pub threat: Option<String>,
    /// Product or vendor that reported the event.
    pub reporter: Option<String>,
    /// The dedup window's state of the address (sightings, revisions).
    pub sighting: Arc<Sighting>,
    /// The message the first record came from (for a DLQ entry if a revision is refused).
    pub origin: Origin,
    pub(crate) outstanding: usize,
    pub(crate) retry_at: Option<SystemTime>,
    /// Remote answers' expiry and network facts, for the state changelog (s2-state).
    pub(crate) answers: BTreeMap<String, StoredAnswer>,
}

impl Tracked {
    /// A record waiting for remote answers.
    pub fn new(
        record: ThreatRecord,
        feed_matches: Vec<FeedMatch>,
        threat: Option<String>,
        reporter: Option<String>,
        sighting: Arc<Sighting>,
        origin: Origin,
    ) -> Self {
        Tracked {
            record,
            feed_matches,
            threat,
            reporter,
            sighting,
            origin,
            outstanding: 0,
            retry_at: None,
            answers: BTreeMap::new(),
        }
    }
}

/// One address waiting for remote providers.
#[derive(Debug, Clone)]
pub struct RemoteJob {
    /// The address.
    pub ip: IpAddr,
    /// Its place in the queues.
    pub priority: Priority,
    /// Its record, shared by every provider's lookup.
    pub tracked: Arc<tokio::sync::Mutex<Tracked>>,
}

impl From<LookupRequest> for RemoteJob {
    fn from(request: LookupRequest) -> Self {
        RemoteJob {
            ip: request.ip,
            priority: request.priority,
            tracked: Arc::new(tokio::sync::Mutex::new(Tracked::new(
                request.record,
                request.feed_matches,
                request.threat,
                request.reporter,
                request.sighting,
                request.origin,
            ))),
        }
    }
}

/// Scoring and publishing rules the stage applies to every answer.
#[derive(Debug, Clone)]
pub struct RevisionRules {
    /// The scoring model (the same one the processor uses).
    pub scoring: ScoringModel,
    /// Lowest verdict published.
    pub min_verdict: Verdict,
    /// How records are annotated and shaped (`publish.format`, TLP, expiry).
    pub publication: std::sync::Arc<crate::publish::Publication>,
    /// The feeds as they are now (ef-withdraw): an answer is scored with the address's
    /// current listing, which a reload may have changed since its first sighting (so an
    /// answer cannot bring back a listing a reload removed). `None`: the first sighting's.
    pub feeds: Option<Arc<LocalFeeds>>,
}

/// Folds one provider's outcome into the record. An `ok` answer is scored again (with the
/// sightings so far); the revised record is returned for publishing when its score is higher
/// than the last published revision's and the verdict reaches the publish threshold.
/// Any other status is recorded and publishes nothing. Pure apart from the sighting's
/// revision counter. A revision that cannot be serialised is returned as the error, for the
/// caller to log; the revision number is spent.
pub fn apply_outcome(
    tracked: &mut Tracked,
    provider: &str,
    outcome: Outcome,
    rules: &RevisionRules,
    now: SystemTime,
) -> Option<Result<Output, EncodeError>> {
    if let Some(network) = &outcome.network {
        merge_network(&mut tracked.record.network, network);
    }
    if let Some(at) = outcome.retry_at {
        tracked.retry_at = Some(tracked.retry_at.map_or(at, |t| t.min(at)));
    }
    let answered = outcome.intel.status == ProviderStatus::Ok;
    tracked
        .record
        .intel
        .insert(provider.to_owned(), outcome.intel);
    if !answered {
        // Not evidence: the status is kept for the next revision, and nothing is scored or
        // published because of it (not even new sightings).
        return None;
    }
    if let Some(feeds) = &rules.feeds {
        follow_reloads(tracked, feeds);
    }
    let sighting = &tracked.sighting;
    let scored = rules.scoring.score(&EvidenceInput {
        feed_matches: &tracked.feed_matches,
        intel: &tracked.record.intel,
        threat: tracked.threat.as_deref(),
        reporter: tracked.reporter.as_deref(),
        sightings: sighting.count(),
    });
    let record = &mut tracked.record;
    record::assess(record, scored, sighting);
    // Published only when the evidence grew past what consumers last saw: a retry job starts
    // from the local evidence again, and its first answers must not publish a lower score.
    let rises = sighting
        .published()
        .is_none_or(|(score, _)| record.score > score);
    if record.verdict < rules.min_verdict || !rises {
        return None;
    }
    record.revision = sighting.next_revision(record.score, record.verdict);
    record.generated_at = rfc3339(now);
    Some(record::encode(record, &rules.publication))
}

/// Replaces the first sighting's feed matches (and the record's `feeds` entry) with the
/// current feeds' listing of the address, when a reload changed it.
fn follow_reloads(tracked: &mut Tracked, feeds: &LocalFeeds) {
    let Ok(ip) = tracked.record.ip.parse::<IpAddr>() else {
        return;
    };
    let current = feeds.current();
    let matches = current.lookup(ip);
    if matches != tracked.feed_matches {
        let configured = current.feeds().next().is_some();
        tracked
            .record
            .intel
            .insert(FEEDS_ENTRY.to_owned(), feeds_entry(configured, &matches));
        tracked.feed_matches = matches;
    }
}

/// Once every provider is done with the address: the record again, under the next revision,
/// when benign facts (negative weights: GreyNoise RIOT, an AbuseIPDB whitelisting, …) brought
/// its score below the last published revision's, whatever the verdict now (consumers must
/// see the downgrade of what they were given). Not when the evidence itself shrank (a provider
/// that answered before failed this time): the positive weights alone must still reach the
/// published score, since a gap in our data is never news about the address.
pub(crate) fn lowered_by_benign_facts(
    tracked: &mut Tracked,
    rules: &RevisionRules,
    now: SystemTime,
) -> Option<Result<Output, EncodeError>> {
    let (published, _) = tracked.sighting.published()?;
    let record = &mut tracked.record;
    if record.score >= published || record.reasons.iter().all(|r| r.weight >= 0) {
        return None;
    }
    let evidence: i64 = record
        .reasons
        .iter()
        .map(|r| i64::from(r.weight.max(0)))
        .sum();
    if evidence.min(100) < i64::from(published) {
        return None;
    }
    record.revision = tracked.sighting.next_revision(record.score, record.verdict);
    record.generated_at = rfc3339(now);
    Some(record::encode(record, &rules.publication))
}
