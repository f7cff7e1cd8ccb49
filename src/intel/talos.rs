//! Cisco Talos, from a local list file only. Talos has no public API, its web lookups are
//! behind a captcha, and its terms forbid scraping (reference §3), so this provider never makes
//! a network request: it has no HTTP client at all.
//!
//! * **No list file** (`[providers.talos] path` empty): the provider is disabled.
//!   [`Talos::disabled_reason`] returns [`DISABLED_REASON`]; the daemon should then write
//!   `intel.talos = {status: "disabled", detail: <reason>}` and not call [`crate::intel::LocalProvider::lookup`].
//!   If it is called anyway it answers `unavailable` with the same reason (never evidence,
//!   never `not_found`, which would claim Talos was asked).
//! * **List file**: the format of the former Talos IP blocklist (`snort.org` `ip-block-list`),
//!   which the reference describes only as "plain IPs". Parsed by the local-feed parser
//!   ([`super::feeds::Blocklist`]): one address or CIDR per line, IPv4 or IPv6, `#`/`;`
//!   comments, blank lines and anything after the first whitespace ignored. A file with no
//!   usable entry is refused, like any feed.
//! * A listed address → `Found` with facts `reputation: "Poor"` (the worst score name Talos
//!   used, see [`LISTED_REPUTATION`]), `listed_in` (the file name), `cidr` (the longest listed
//!   prefix containing it) and `exact` (true for a host entry). No network facts: the list has
//!   none. An unlisted address → `NotFound`.
//! * The file is re-read by [`Talos::reload_if_changed`] when its modification time, length
//!   or inode changes (same rules as local feeds: blocking I/O, the old list is kept on error).
//!   The `enabled` flag and the HTTP settings are not read here.

use std::net::IpAddr;
use std::path::Path;

use serde_json::{Map, Value};

use super::feeds::{FeedError, FeedSpec, LocalFeeds};
use super::{LocalProvider, Lookup, ProviderError};
use crate::intel::registry::{no_check, points, Build, KeyUse, ProviderSpec, Weight, Weights};
use crate::model::Network;
use crate::settings::{ProviderSettings, SettingsError};

/// Provider name: the `intel` key and metric label.
pub(crate) const NAME: &str = "talos";

/// The Talos list, described for the registry.
pub(crate) const SPEC: ProviderSpec = ProviderSpec {
    name: NAME,
    display_name: "Cisco Talos",
    key: KeyUse::None,
    build: Build::Local(|s| Ok(std::sync::Arc::new(Talos::new(s)?))),
    check: no_check,
    unavailable: without_list,
    weights: &[Weight {
        key: LISTED,
        default: 50,
        negative: false,
    }],
    score: Some(score),
};

const LISTED: &str = "talos_listed";

/// Without a list file Talos is `disabled` with the reason, enabled or not.
fn without_list(settings: &ProviderSettings) -> Option<&'static str> {
    settings.path.trim().is_empty().then_some(DISABLED_REASON)
}

/// Any `ok` entry: the configured list lists the address.
fn score(
    facts: &serde_json::Map<String, serde_json::Value>,
    w: &Weights,
    add: &mut dyn FnMut(i32, String),
) {
    let list = facts
        .get("listed_in")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("the Talos list");
    add(
        points(w.get(LISTED)),
        format!("listed in {list} (Talos reputation Poor)"),
    );
}

/// Why Talos is not queried when no list file is configured.
pub const DISABLED_REASON: &str = "Cisco Talos has no public API; no Talos-format list configured";

/// `reputation` fact of a listed address: the worst reputation name Talos used ("Poor").
pub(crate) const LISTED_REPUTATION: &str = "Poor";

/// The Talos provider: a local list file, or disabled.
#[derive(Debug)]
pub struct Talos {
    list: Option<TalosList>,
}

#[derive(Debug)]
struct TalosList {
    /// File name reported as `listed_in`.
    file_name: String,
    feeds: LocalFeeds,
}

impl Talos {
    /// The provider from the `[providers.talos]` settings: disabled when `path` is empty,
    /// otherwise the list file is loaded now (unreadable or empty → an error naming the path).
    pub fn new(settings: &ProviderSettings) -> Result<Self, SettingsError> {
        let path = settings.path.trim();
        if path.is_empty() {
            return Ok(Talos { list: None });
        }
        let file_name = Path::new(path)
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.to_owned());
        let spec = FeedSpec {
            name: file_name.clone(),
            path: path.into(),
        };
        let feeds = LocalFeeds::load(vec![spec]).map_err(|e| SettingsError::Unusable {
            key: "providers.talos.path".to_owned(),
            source: Box::new(e),
        })?;
        Ok(Talos {
            list: Some(TalosList { file_name, feeds }),
        })
    }

    /// `Some(reason)` when no list file is configured: report `disabled` with this detail
    /// instead of looking addresses up.
    pub fn disabled_reason(&self) -> Option<&'static str> {
        match self.list {
            None => Some(DISABLED_REASON),
            Some(_) => None,
        }
    }

    /// Re-reads the list file when it changed (see [`LocalFeeds::reload_if_changed`]):
    /// `Ok(true)` when a new list is in use, `Ok(false)` when nothing changed or the provider
    /// is disabled; on error the old list stays in use. Blocking I/O.
    pub fn reload_if_changed(&self) -> Result<bool, FeedError> {
        match &self.list {
            Some(list) => list.feeds.reload_if_changed(),
            None => Ok(false),
        }
    }

    fn lookup_ip(&self, ip: IpAddr) -> Result<Lookup, ProviderError> {
        let Some(list) = &self.list else {
            return Err(ProviderError::Unavailable(DISABLED_REASON.to_owned()));
        };
        let current = list.feeds.current();
        let Some(hit) = current.lookup(ip).into_iter().next() else {
            return Ok(Lookup::NotFound);
        };
        let mut facts = Map::new();
        facts.insert("reputation".into(), LISTED_REPUTATION.into());
        facts.insert("listed_in".into(), list.file_name.clone().into());
        facts.insert("cidr".into(), hit.cidr.to_string().into());
        facts.insert("exact".into(), Value::Bool(hit.exact));
        Ok(Lookup::Found {
            facts,
            network: Network::default(),
        })
    }
}

impl LocalProvider for Talos {
    fn name(&self) -> &'static str {
        NAME
    }

    fn lookup(&self, ip: IpAddr) -> Result<Lookup, ProviderError> {
        self.lookup_ip(ip)
    }

    fn reload_if_changed(&self) -> Result<bool, String> {
        Talos::reload_if_changed(self).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The entry the README promises for Talos without a list file, word for word.
    fn readme_disabled_entry() -> serde_json::Value {
        serde_json::json!({
            "status": "disabled",
            "detail": "Cisco Talos has no public API; no Talos-format list configured"
        })
    }

    fn talos_entry(overrides: &str) -> serde_json::Value {
        let settings = crate::settings::Settings::from_toml_overrides(overrides).expect("settings");
        let built = crate::intel::ConfiguredProviders::build(&settings).expect("build");
        assert!(
            built.local.iter().all(|p| p.name() != NAME),
            "Talos without a list file must not be asked"
        );
        serde_json::to_value(built.entries.get(NAME).expect("a talos entry")).unwrap()
    }

    #[test]
    fn without_a_list_file_the_entry_is_the_readme_disabled_entry() {
        assert_eq!(talos_entry(""), readme_disabled_entry());
    }

    #[test]
    fn enabled_without_a_list_file_is_still_the_readme_disabled_entry() {
        // `enabled` cannot make Talos usable: there is nothing to read.
        assert_eq!(
            talos_entry("[providers.talos]\nenabled = true\n"),
            readme_disabled_entry()
        );
    }
}
