//! Publish: what a threat record says beyond its evidence (`id`, `confidence`, `tlp`,
//! `expires_at`) and the shape it is published in (`publish.format`). Pure.
//!
//! * In: a finished [`ThreatRecord`] (first record or revision, its revision number set) and
//!   the [`Publication`] rules built once from the settings.
//! * Out: the record annotated in place, and its payload bytes in the configured format:
//!   `threatsift` (the record itself, schema `threatsift.threat/1`), `ecs` (an Elastic Common
//!   Schema threat-indicator document, [`ecs`]), `ocsf` (an OCSF 1.4 Detection Finding with
//!   the OSINT profile, [`ocsf`]) or `stix` (a STIX 2.1 indicator, [`stix`]). The Kafka key
//!   stays the address in every format.
//! * [`Format`] is the one registration point: a new format is a file here and a variant there.
//!
//! The rules, documented in README "Consuming the output":
//! * `id`: the version-5 UUID of `ip|first_seen|revision`: the same revision of the same
//!   sighting re-published (after a crash, on a replay of the input) has the same id.
//! * `confidence` ([`confidence`]): from the independent sources whose evidence is in the
//!   reasons and the reputation providers that answered without agreeing.
//! * `tlp`: the strictest of `publish.tlp` and the `tlp` of every provider and feed whose
//!   evidence is in the reasons.
//! * `expires_at`: `last_seen` + `dedup.ttl`, or earlier when a provider whose evidence is in
//!   the reasons keeps its answer for less (`providers.<name>.ttl`, from `generated_at`).

pub(crate) mod ecs;
pub(crate) mod ocsf;
pub(crate) mod stix;
pub(crate) mod uuid;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::intel::registry::PROVIDERS;
use crate::model::{rfc3339, ProviderIntel, Reason, ThreatRecord, Tlp};
use crate::settings::Settings;
use crate::stages::score::SIGHTINGS_SOURCE;

/// `publish.format`: the shape records are published in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// The threat record itself (`threatsift.threat/1`).
    #[default]
    Threatsift,
    /// Elastic Common Schema threat-indicator document.
    Ecs,
    /// OCSF Detection Finding with the OSINT profile.
    Ocsf,
    /// STIX 2.1 indicator object.
    Stix,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 4] = [Format::Threatsift, Format::Ecs, Format::Ocsf, Format::Stix];

    /// The label used in configuration.
    pub fn label(self) -> &'static str {
        match self {
            Format::Threatsift => "threatsift",
            Format::Ecs => "ecs",
            Format::Ocsf => "ocsf",
            Format::Stix => "stix",
        }
    }

    /// The record as a JSON value in this format.
    pub fn document(self, record: &ThreatRecord) -> Result<serde_json::Value, serde_json::Error> {
        match self {
            Format::Threatsift => serde_json::to_value(record),
            Format::Ecs => Ok(ecs::document(record)),
            Format::Ocsf => Ok(ocsf::document(record)),
            Format::Stix => Ok(stix::document(record)),
        }
    }

    /// A `threatsift.threat/1` payload in this format (unchanged for `threatsift`).
    pub fn rewrite(self, payload: &[u8]) -> Result<Vec<u8>, serde_json::Error> {
        let record: ThreatRecord = serde_json::from_slice(payload)?;
        self.encode(&record)
    }

    /// The record's payload bytes in this format.
    pub fn encode(self, record: &ThreatRecord) -> Result<Vec<u8>, serde_json::Error> {
        match self {
            // The record serialises straight to bytes, without a Value in between.
            Format::Threatsift => serde_json::to_vec(record),
            _ => serde_json::to_vec(&self.document(record)?),
        }
    }
}

/// How records are annotated and shaped, from the settings.
#[derive(Debug, Clone, Default)]
pub struct Publication {
    /// `publish.format`.
    pub format: Format,
    /// `publish.tlp`: the marking of the daemon's own observations, and the least a record has.
    pub tlp: Tlp,
    /// `providers.<name>.tlp` where set.
    pub provider_tlp: BTreeMap<String, Tlp>,
    /// `feeds[].tlp` where set.
    pub feed_tlp: BTreeMap<String, Tlp>,
    /// `dedup.ttl`.
    pub dedup_ttl: Duration,
    /// `providers.<name>.ttl` of the providers that have one.
    pub provider_ttl: BTreeMap<String, Duration>,
}

impl Publication {
    /// The rules of `settings`.
    pub fn from_settings(settings: &Settings) -> Self {
        let mut provider_tlp = BTreeMap::new();
        let mut provider_ttl = BTreeMap::new();
        for (name, provider) in settings.providers.iter() {
            if let Some(tlp) = provider.tlp {
                provider_tlp.insert(name.to_owned(), tlp);
            }
            if !provider.ttl.is_zero() {
                provider_ttl.insert(name.to_owned(), provider.ttl);
            }
        }
        Publication {
            format: settings.publish.format,
            tlp: settings.publish.tlp,
            provider_tlp,
            feed_tlp: settings
                .feeds
                .iter()
                .filter_map(|feed| feed.tlp.map(|tlp| (feed.name.clone(), tlp)))
                .collect(),
            dedup_ttl: settings.dedup.ttl,
            provider_ttl,
        }
    }

    /// Sets `id`, `confidence`, `tlp` and `expires_at` from the rest of the record.
    pub fn annotate(&self, record: &mut ThreatRecord) {
        record.id = Some(record_id(record));
        record.confidence = Some(confidence(&record.reasons, &record.intel));
        record.tlp = Some(self.tlp_of(record));
        record.expires_at = self.expires_at(record).map(rfc3339);
    }

    /// Annotates `record` and returns its `threatsift.threat/1` payload. Inside the daemon a
    /// record stays in that shape (the published index, the scheduled report and the state read
    /// it back); the publisher maps it to `publish.format` as it goes out ([`Format::rewrite`]).
    pub fn encode(&self, record: &mut ThreatRecord) -> Result<Vec<u8>, serde_json::Error> {
        self.annotate(record);
        Format::Threatsift.encode(record)
    }

    /// The strictest marking of `publish.tlp` and the sources whose evidence is in the reasons.
    fn tlp_of(&self, record: &ThreatRecord) -> Tlp {
        let mut tlp = self.tlp;
        for source in contributing(&record.reasons) {
            if source == "feeds" {
                for feed in matched_feeds(&record.intel) {
                    tlp = tlp.max(self.feed_tlp.get(feed).copied().unwrap_or(self.tlp));
                }
            } else if let Some(marking) = self.provider_tlp.get(source) {
                tlp = tlp.max(*marking);
            }
        }
        tlp
    }

    /// `last_seen` + `dedup.ttl`, or the earlier end of a contributing provider's answer.
    fn expires_at(&self, record: &ThreatRecord) -> Option<SystemTime> {
        let last_seen = humantime::parse_rfc3339(&record.last_seen).ok()?;
        let mut until = last_seen.checked_add(self.dedup_ttl)?;
        if let Ok(generated) = humantime::parse_rfc3339(&record.generated_at) {
            for source in contributing(&record.reasons) {
                let answer_end = self
                    .provider_ttl
                    .get(source)
                    .and_then(|ttl| generated.checked_add(*ttl));
                if let Some(end) = answer_end {
                    until = until.min(end);
                }
            }
        }
        Some(until)
    }
}

/// Namespace of record ids: the v5 UUID of `https://threatsift.invalid/ns/record` in the URL
/// namespace (`56076b0e-bbe4-538a-8b77-3b67977673f3`; a unit test derives it again).
pub(crate) const RECORD_NAMESPACE: [u8; 16] = [
    0x56, 0x07, 0x6b, 0x0e, 0xbb, 0xe4, 0x53, 0x8a, 0x8b, 0x77, 0x3b, 0x67, 0x97, 0x76, 0x73, 0xf3,
];

/// The stable id of this revision of this sighting: v5 UUID of `ip|first_seen|revision`.
pub(crate) fn record_id(record: &ThreatRecord) -> String {
    let name = format!("{}|{}|{}", record.ip, record.first_seen, record.revision);
    uuid::v5(&RECORD_NAMESPACE, name.as_bytes())
}

/// The id every revision of one sighting shares: v5 UUID of `ip|first_seen` (STIX versions
/// one object by keeping its id and moving `modified`).
pub(crate) fn series_id(record: &ThreatRecord) -> String {
    let name = format!("{}|{}", record.ip, record.first_seen);
    uuid::v5(&RECORD_NAMESPACE, name.as_bytes())
}

/// Confidence no evidence gives: low, never zero (the record exists because it was seen).
pub(crate) const CONFIDENCE_FLOOR: u8 = 10;
/// Points each independent source with evidence adds.
pub(crate) const CONFIDENCE_PER_SOURCE: u8 = 30;
/// Points each reputation provider that answered without evidence takes away.
pub(crate) const CONFIDENCE_PER_DISSENT: u8 = 15;
/// The most any number of sources gives: automated evidence is never certain.
pub(crate) const CONFIDENCE_CEILING: u8 = 95;

/// 0–100 from the evidence: 10 + 30 per independent source with evidence in `reasons` (the
/// device's own threat report, the feeds, each provider; repeat sightings are not a source)
/// − 15 per reputation provider that answered (`ok`/`not_found`) without evidence, kept
/// within 10..=95. No source with evidence: 10.
pub(crate) fn confidence(reasons: &[Reason], intel: &BTreeMap<String, ProviderIntel>) -> u8 {
    let sources = contributing(reasons);
    if sources.is_empty() {
        return CONFIDENCE_FLOOR;
    }
    let dissenting = PROVIDERS
        .iter()
        .filter(|spec| spec.score.is_some() && !sources.contains(&spec.name))
        .filter(|spec| intel.get(spec.name).is_some_and(|e| e.status.is_answer()))
        .count();
    let agreeing = sources.len().min(usize::from(u8::MAX)) as i32;
    let dissenting = dissenting.min(usize::from(u8::MAX)) as i32;
    let value = i32::from(CONFIDENCE_FLOOR) + agreeing * i32::from(CONFIDENCE_PER_SOURCE)
        - dissenting * i32::from(CONFIDENCE_PER_DISSENT);
    value.clamp(i32::from(CONFIDENCE_FLOOR), i32::from(CONFIDENCE_CEILING)) as u8
}

/// The distinct sources whose evidence is in the reasons, repeat sightings left out.
fn contributing(reasons: &[Reason]) -> Vec<&str> {
    let mut sources: Vec<&str> = reasons
        .iter()
        .filter(|r| r.weight > 0 && r.source != SIGHTINGS_SOURCE)
        .map(|r| r.source.as_str())
        .collect();
    sources.sort_unstable();
    sources.dedup();
    sources
}

/// The names of the feeds that listed the address (`intel.feeds.matches[].feed`).
pub(crate) fn matched_feeds(intel: &BTreeMap<String, ProviderIntel>) -> Vec<&str> {
    let mut feeds: Vec<&str> = intel
        .get("feeds")
        .and_then(|entry| entry.facts.get("matches"))
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("feed").and_then(serde_json::Value::as_str))
        .collect();
    feeds.sort_unstable();
    feeds.dedup();
    feeds
}

#[cfg(test)]
pub(crate) mod tests;
