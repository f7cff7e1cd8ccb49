//! The state record (`threatsift.state/1`): everything the owner of one address knows about it,
//! as written to `<output_topic>.state` keyed by the address text. Pure.
//!
//! * Holds: first/last seen and the sightings count, the last score and verdict, the published
//!   revision (0 when never published) with its score and verdict, the current record
//!   (published or withheld, its `intel` map with `ok`/`not_found` answers and their facts,
//!   `pending` and the other statuses), each answered remote provider's answer expiry
//!   (`until`) and network facts, the local evidence needed to score again (feed matches,
//!   threat, reporter, queue priority), `retry_at`, and the origin of the first record.
//! * Bounded: one address's record and evidence (one entry per provider and per feed);
//!   [`decode`] refuses a payload over [`MAX_STATE_BYTES`].
//! * Times are RFC 3339 (seconds), like the threat record's; `written_ms` (milliseconds since
//!   the epoch) says when the state was written, for operators (the warm start goes by the
//!   topic's order, as compaction does).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::intel::feeds::FeedMatch;
use crate::intel::Lookup;
use crate::model::{rfc3339, Network, Origin, Output, OutputKind, ProviderStatus};
use crate::model::{ThreatRecord, Verdict};
use crate::stages::dedup::{
    intern_format, intern_topic, RestoredSighting, Sighting, SightingContext,
};
use crate::stages::process::Priority;

/// Schema identifier of a state record.
pub(crate) const STATE_SCHEMA: &str = "threatsift.state/1";

/// Largest state payload read back; a bigger one is not a state this version wrote.
pub(crate) const MAX_STATE_BYTES: usize = 256 * 1024;

/// The latest published revision of the address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PublishedRevision {
    /// Revision number; 0 when nothing was published.
    pub revision: u32,
    /// Its score.
    pub score: u32,
    /// Its verdict.
    pub verdict: Verdict,
}

/// A remote provider's answer as the answer cache holds it: the facts are in the record's
/// `intel` entry; the network facts of that answer and its expiry are here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredAnswer {
    /// When the provider's answer cache stops serving it (RFC 3339).
    pub until: String,
    /// The answer's network facts (an `ok` answer's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
}

/// One feed hit, as the scorer needs it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredMatch {
    /// Feed name.
    pub feed: String,
    /// The feed's prefix holding the address.
    pub cidr: String,
    /// A host route.
    pub exact: bool,
}

/// Local evidence and queue order, kept to score again and to queue again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Evidence {
    /// Feed hits.
    pub feed_matches: Vec<StoredMatch>,
    /// The vendor's threat name.
    pub threat: Option<String>,
    /// Product or vendor that reported the event.
    pub reporter: Option<String>,
    /// Suspicious or worse from local intelligence alone.
    pub locally_suspicious: bool,
    /// The device let the traffic through.
    pub allowed: bool,
}

/// The message the first record came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredOrigin {
    /// Input topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// One address's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StateRecord {
    /// Always [`STATE_SCHEMA`].
    pub schema: String,
    /// The address.
    pub ip: IpAddr,
    /// First sighting in the window (RFC 3339).
    pub first_seen: String,
    /// Latest sighting written (RFC 3339; lags by at most half the sightings, see the module).
    pub last_seen: String,
    /// Sightings so far (written when they reach a power of two).
    pub sightings: u64,
    /// The current record's score.
    pub score: u32,
    /// The current record's verdict.
    pub verdict: Verdict,
    /// The latest published revision.
    pub published: PublishedRevision,
    /// The current record, published or withheld.
    pub record: ThreatRecord,
    /// Remote providers with an `ok`/`not_found` answer in `record.intel`: expiry and network.
    #[serde(default)]
    pub answers: BTreeMap<String, StoredAnswer>,
    /// Local evidence and queue order.
    pub evidence: Evidence,
    /// When lookups without an answer may be tried again on the next sighting (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<String>,
    /// The message the first record came from.
    pub origin: StoredOrigin,
    /// When this state was written, in milliseconds since the epoch.
    pub written_ms: u64,
}

/// Why a state record could not be read back.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StateError {
    /// Larger than any state this version writes.
    #[error("state record of {0} bytes (the limit is {MAX_STATE_BYTES})")]
    TooLarge(usize),
    /// Not a state record's JSON.
    #[error("not a state record: {0}")]
    Invalid(#[from] serde_json::Error),
    /// Another schema.
    #[error("schema `{0}` is not {STATE_SCHEMA}")]
    Schema(String),
    /// A time field that is not RFC 3339.
    #[error("`{0}` is not an RFC 3339 time")]
    Time(String),
}

/// What a state is built from: the parts the processor and the remote stage hold.
#[derive(Debug)]
pub(crate) struct StateParts<'a> {
    /// The current record.
    pub record: &'a ThreatRecord,
    /// The dedup window's state of the address.
    pub sighting: &'a Sighting,
    /// Feed hits.
    pub feed_matches: &'a [FeedMatch],
    /// Vendor threat name.
    pub threat: Option<&'a str>,
    /// Reporter.
    pub reporter: Option<&'a str>,
    /// Queue priority.
    pub priority: Priority,
    /// Answers' expiries and networks.
    pub answers: &'a BTreeMap<String, StoredAnswer>,
    /// When lookups may be retried (the job's, else the window's).
    pub retry_at: Option<SystemTime>,
    /// The first record's message.
    pub origin: &'a Origin,
}

impl StateRecord {
    /// The state of `ip` from its parts, written at `now`.
    pub(crate) fn build(ip: IpAddr, parts: StateParts<'_>, now: SystemTime) -> StateRecord {
        let sighting = parts.sighting;
        let published =
            sighting
                .published()
                .map_or_else(PublishedRevision::default, |(score, verdict)| {
                    PublishedRevision {
                        revision: sighting.revision(),
                        score,
                        verdict,
                    }
                });
        StateRecord {
            schema: STATE_SCHEMA.to_owned(),
            ip,
            first_seen: rfc3339(sighting.first_seen()),
            last_seen: rfc3339(sighting.last_seen()),
            sightings: sighting.count(),
            score: parts.record.score,
            verdict: parts.record.verdict,
            published,
            record: parts.record.clone(),
            answers: parts.answers.clone(),
            evidence: Evidence {
                feed_matches: parts
                    .feed_matches
                    .iter()
                    .map(|m| StoredMatch {
                        feed: m.feed.to_string(),
                        cidr: m.cidr.to_string(),
                        exact: m.exact,
                    })
                    .collect(),
                threat: parts.threat.map(str::to_owned),
                reporter: parts.reporter.map(str::to_owned),
                locally_suspicious: parts.priority.locally_suspicious,
                allowed: parts.priority.allowed,
            },
            retry_at: parts.retry_at.or_else(|| sighting.retry_at()).map(rfc3339),
            origin: StoredOrigin {
                topic: parts.origin.topic.to_string(),
                partition: parts.origin.partition,
                offset: parts.origin.offset,
            },
            written_ms: millis(now),
        }
    }

    /// The state as a message for the state topic, keyed by the address text.
    pub(crate) fn encode(&self) -> Result<Output, serde_json::Error> {
        Ok(Output {
            kind: OutputKind::State,
            key: Some(self.ip.to_string().into_bytes()),
            payload: serde_json::to_vec(self)?,
        })
    }

    /// The window state to restore.
    pub(crate) fn sighting(&self) -> Result<RestoredSighting, StateError> {
        Ok(RestoredSighting {
            first_seen: parse_time(&self.first_seen)?,
            last_seen: parse_time(&self.last_seen)?,
            count: self.sightings.max(1),
            published: (self.published.revision > 0).then_some((
                self.published.revision,
                self.published.score,
                self.published.verdict,
            )),
            retry_at: self.retry_at.as_deref().map(parse_time).transpose()?,
            // The first event's context, for a record made again at a feed reload.
            context: SightingContext {
                format: intern_format(&self.record.observed.format),
                offset: self.record.observed.offset,
                partition: self.record.observed.partition,
                topic: intern_topic(&Arc::from(self.record.observed.topic.as_str())),
                roles: SightingContext::role_bits(self.record.roles.iter().copied()),
            },
        })
    }

    /// The answers to put back in the providers' caches: provider, answer and expiry. Only
    /// `ok` and `not_found` entries are answers; an `ok` one carries its facts back.
    pub(crate) fn answers(&self) -> Vec<(&str, Lookup, SystemTime)> {
        self.answers
            .iter()
            .filter_map(|(provider, stored)| {
                let intel = self.record.intel.get(provider)?;
                let lookup = match intel.status {
                    ProviderStatus::Ok => Lookup::Found {
                        facts: intel.facts.clone(),
                        network: stored.network.clone().unwrap_or_default(),
                    },
                    ProviderStatus::NotFound => Lookup::NotFound,
                    _ => return None,
                };
                Some((provider.as_str(), lookup, parse_time(&stored.until).ok()?))
            })
            .collect()
    }

    /// Providers whose lookup was still `pending`.
    pub(crate) fn pending(&self) -> impl Iterator<Item = &str> {
        self.record
            .intel
            .iter()
            .filter(|(_, intel)| intel.status == ProviderStatus::Pending)
            .map(|(name, _)| name.as_str())
    }

    /// Feed hits to score again with (a prefix that no longer parses is left out).
    pub(crate) fn feed_matches(&self) -> Vec<FeedMatch> {
        self.evidence
            .feed_matches
            .iter()
            .filter_map(|m| {
                Some(FeedMatch {
                    feed: Arc::from(m.feed.as_str()),
                    cidr: m.cidr.parse().ok()?,
                    exact: m.exact,
                })
            })
            .collect()
    }

    /// The queue priority it had (its sightings order from the count).
    pub(crate) fn priority(&self) -> Priority {
        Priority {
            locally_suspicious: self.evidence.locally_suspicious,
            sightings_order: Priority::sightings_order(self.sightings),
            allowed: self.evidence.allowed,
        }
    }

    /// The first record's message.
    pub(crate) fn origin(&self) -> Origin {
        Origin {
            topic: Arc::from(self.origin.topic.as_str()),
            partition: self.origin.partition,
            offset: self.origin.offset,
        }
    }
}

/// Reads a state record back.
pub(crate) fn decode(payload: &[u8]) -> Result<StateRecord, StateError> {
    if payload.len() > MAX_STATE_BYTES {
        return Err(StateError::TooLarge(payload.len()));
    }
    let state: StateRecord = serde_json::from_slice(payload)?;
    if state.schema != STATE_SCHEMA {
        return Err(StateError::Schema(state.schema));
    }
    Ok(state)
}

/// An RFC 3339 time of a state record.
pub(crate) fn parse_time(text: &str) -> Result<SystemTime, StateError> {
    humantime::parse_rfc3339(text).map_err(|_| StateError::Time(text.to_owned()))
}

/// `time` in milliseconds since the epoch.
pub(crate) fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
#[path = "record_tests.rs"]
pub(crate) mod tests;
