//! Local intelligence: what is known about an address offline, in microseconds. Pure and
//! synchronous.
//!
//! * In: an address.
//! * Out: its blocklist listings (longest prefix first), the first `intel` map of its record
//!   (`feeds`, every local provider's answer, and the configured entry of every other
//!   provider: `disabled` with the reason, or `pending`), and the network facts merged from
//!   the local providers.
//! * Counted: each feed listing (`feed_matches_total{feed}`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::intel::feeds::{FeedMatch, LocalFeeds};
use crate::intel::{intel_entry, LocalProvider, Lookup};
use crate::model::{Network, ProviderIntel, ProviderStatus};
use crate::telemetry::events::FeedMatched;
use crate::telemetry::Metrics;

/// The name of the blocklist feeds' `intel` entry.
pub(crate) const FEEDS_ENTRY: &str = "feeds";

/// The feeds and the local providers (mmdb, the Talos list), asked while a record is built.
#[derive(Debug, Clone)]
pub struct LocalIntel {
    feeds: Arc<LocalFeeds>,
    providers: Vec<Arc<dyn LocalProvider>>,
    /// The first entry of every provider not asked here.
    entries: BTreeMap<String, ProviderIntel>,
}

/// What local intelligence says about one address.
#[derive(Debug, Clone)]
pub struct LocalAnswer {
    /// Blocklist listings.
    pub matches: Vec<FeedMatch>,
    /// The record's first `intel` map.
    pub intel: BTreeMap<String, ProviderIntel>,
    /// Network facts from the local providers.
    pub network: Network,
}

impl LocalIntel {
    /// Local intelligence over `feeds` and `providers`; `entries` are the first statuses of
    /// the providers asked elsewhere.
    pub fn new(
        feeds: Arc<LocalFeeds>,
        providers: Vec<Arc<dyn LocalProvider>>,
        entries: BTreeMap<String, ProviderIntel>,
    ) -> Self {
        LocalIntel {
            feeds,
            providers,
            entries,
        }
    }

    /// Everything known locally about `ip`.
    pub fn lookup(&self, ip: IpAddr, metrics: &Metrics) -> LocalAnswer {
        let feeds = self.feeds.current();
        let matches = feeds.lookup(ip);
        for hit in &matches {
            FeedMatched { feed: &hit.feed }.emit(metrics);
        }
        let mut intel = self.entries.clone();
        intel.insert(
            FEEDS_ENTRY.to_owned(),
            feeds_entry(feeds.feeds().next().is_some(), &matches),
        );
        let mut network = Network::default();
        for provider in &self.providers {
            let result = provider.lookup(ip);
            if let Ok(Lookup::Found { network: found, .. }) = &result {
                merge_network(&mut network, found);
            }
            intel.insert(provider.name().to_owned(), intel_entry(&result));
        }
        LocalAnswer {
            matches,
            intel,
            network,
        }
    }
}

/// The `feeds` entry: `ok` with every listing, or `disabled` when no feed is configured.
pub(crate) fn feeds_entry(configured: bool, matches: &[FeedMatch]) -> ProviderIntel {
    if !configured {
        return ProviderIntel::status(ProviderStatus::Disabled, "no feeds configured");
    }
    let listed: Vec<serde_json::Value> = matches
        .iter()
        .map(|m| {
            serde_json::json!({
                "feed": &*m.feed,
                "cidr": m.cidr.to_string(),
                "match": if m.exact { "exact" } else { "covering" },
            })
        })
        .collect();
    let mut facts = serde_json::Map::new();
    facts.insert("matches".to_owned(), serde_json::Value::Array(listed));
    ProviderIntel {
        status: ProviderStatus::Ok,
        detail: None,
        facts,
    }
}

/// Fills the fields `into` does not know yet; what an earlier source said is kept. The AS
/// number and its organisation go together, from the first source that has a number (an
/// organisation named without a number, like an RDAP registrant, gives way to it), so a
/// record never pairs one source's AS number with another's organisation.
pub(crate) fn merge_network(into: &mut Network, from: &Network) {
    fn fill<T: Clone>(slot: &mut Option<T>, value: &Option<T>) {
        if slot.is_none() {
            slot.clone_from(value);
        }
    }
    if into.asn.is_none() && from.asn.is_some() {
        into.asn = from.asn;
        into.as_org.clone_from(&from.as_org);
    } else if into.asn.is_none() {
        fill(&mut into.as_org, &from.as_org);
    }
    fill(&mut into.country, &from.country);
    fill(&mut into.rir, &from.rir);
    fill(&mut into.cidr, &from.cidr);
}
