//! Threat intelligence: local feeds (in [`feeds`]) and the seam remote providers plug into.
//!
//! A provider is one file describing itself (a [`registry::ProviderSpec`]: name, display name,
//! key, how it is built, its `[scoring]` weights and score rule) plus one line in
//! [`registry::PROVIDERS`]. A remote one implements [`Provider`] (asked in the background
//! queues); a local one [`LocalProvider`] (asked synchronously while the record is built). Its
//! answer becomes the provider's `intel` entry. Scoring
//! derives reasons from the facts of `ok` entries only. Errors map to a status (design §3) and
//! are never evidence.
//!
//! Remote: [`virustotal`], [`abuseipdb`], [`greynoise`], [`otx`], [`internetdb`] and [`rdap`],
//! on the shared client code in [`http`] (RDAP follows redirects, keyed providers never do),
//! each asked through a provider slot in `remote` (budget, breaker,
//! answer cache) from the remote stage's queues. Local, asked while the record is built: [`mmdb`] (GeoLite2/DB-IP
//! files) and [`talos`] (a Talos-format list file only: Talos has no public API).

pub(crate) mod feeds;
pub(crate) mod http;
pub(crate) mod mmdb;
pub(crate) mod providers;
pub(crate) mod registry;
pub(crate) mod talos;

use std::collections::BTreeMap;
use std::net::IpAddr;

use futures::future::BoxFuture;

use std::sync::Arc;

use crate::model::{Network, ProviderIntel, ProviderStatus};
use crate::settings::{ProviderSettings, Settings, SettingsError};
use registry::Build;

/// A provider's answer about one address.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// The provider knows the address.
    Found {
        /// Facts for the record's `intel.<provider>` entry; scoring reads them.
        facts: serde_json::Map<String, serde_json::Value>,
        /// Network facts, where the provider has them.
        network: Network,
    },
    /// The provider answered that it knows nothing about the address.
    NotFound,
}

/// Why a provider gave no answer. None of these is evidence about the address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// 401: credentials missing or rejected.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// 403: not allowed for this account.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// 429: throttled; the wait the provider asked for (`Retry-After`, `X-RateLimit-Reset`).
    #[error("rate limited: {0}")]
    RateLimited(String, Option<std::time::Duration>),
    /// Daily or monthly budget spent; the wait until the provider's reset, when it said.
    #[error("quota exhausted: {0}")]
    QuotaExhausted(String, Option<std::time::Duration>),
    /// No answer in time.
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// 5xx or connection failure.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// An answer that could not be read (HTML challenge, bad JSON).
    #[error("invalid response: {0}")]
    InvalidResponse(String),
}

impl ProviderError {
    /// Bounded label.
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderError::Unauthorized(_) => "unauthorized",
            ProviderError::Forbidden(_) => "forbidden",
            ProviderError::RateLimited(..) => "rate_limited",
            ProviderError::QuotaExhausted(..) => "quota_exhausted",
            ProviderError::Timeout(_) => "timeout",
            ProviderError::Unavailable(_) => "unavailable",
            ProviderError::InvalidResponse(_) => "invalid_response",
        }
    }

    /// The same error with its text passed through `edit` (redaction, a prefix).
    pub fn map_text(self, edit: impl Fn(String) -> String) -> ProviderError {
        match self {
            ProviderError::Unauthorized(t) => ProviderError::Unauthorized(edit(t)),
            ProviderError::Forbidden(t) => ProviderError::Forbidden(edit(t)),
            ProviderError::RateLimited(t, wait) => ProviderError::RateLimited(edit(t), wait),
            ProviderError::QuotaExhausted(t, wait) => ProviderError::QuotaExhausted(edit(t), wait),
            ProviderError::Timeout(d) => ProviderError::Timeout(d),
            ProviderError::Unavailable(t) => ProviderError::Unavailable(edit(t)),
            ProviderError::InvalidResponse(t) => ProviderError::InvalidResponse(edit(t)),
        }
    }

    /// The record status this error is reported as.
    pub fn status(&self) -> ProviderStatus {
        match self {
            ProviderError::Unauthorized(_) => ProviderStatus::Unauthorized,
            ProviderError::Forbidden(_) => ProviderStatus::Forbidden,
            ProviderError::RateLimited(..) => ProviderStatus::RateLimited,
            ProviderError::QuotaExhausted(..) => ProviderStatus::QuotaExhausted,
            ProviderError::Timeout(_) => ProviderStatus::Timeout,
            ProviderError::Unavailable(_) => ProviderStatus::Unavailable,
            ProviderError::InvalidResponse(_) => ProviderStatus::InvalidResponse,
        }
    }
}

/// A source of intelligence about an address.
pub trait Provider: Send + Sync + std::fmt::Debug {
    /// Name used as the `intel` key and metric label.
    fn name(&self) -> &'static str;
    /// Looks one address up.
    fn lookup(&self, ip: IpAddr) -> BoxFuture<'_, Result<Lookup, ProviderError>>;
    /// Whether a 401/403 from this provider is about our credentials (then the provider is
    /// marked down until restart). Providers that take no key, or have none configured, say
    /// no: for them it is a block (an address ban, keyless use refused), held for an hour.
    fn sends_credentials(&self) -> bool {
        true
    }
    /// `None` when the provider can know about `ip`; otherwise why not (the lookup is then
    /// `skipped` without spending budget).
    fn not_covered(&self, _ip: IpAddr) -> Option<&'static str> {
        None
    }
}

/// A provider answered from local data (a memory-mapped file, an in-memory list): asked
/// synchronously while a record is built, in microseconds.
pub trait LocalProvider: Send + Sync + std::fmt::Debug {
    /// Stable name (the `intel` key and the metrics label).
    fn name(&self) -> &'static str;
    /// What the local data says about `ip`.
    fn lookup(&self, ip: IpAddr) -> Result<Lookup, ProviderError>;
    /// Re-reads the local data when its files changed (housekeeping); `Ok(true)` when it did.
    /// On error the old data stays in use.
    fn reload_if_changed(&self) -> Result<bool, String> {
        Ok(false)
    }
}

/// Turns a lookup result into the record's `intel` entry. Only `ok` carries facts; an error
/// carries its status and a short detail.
pub fn intel_entry(result: &Result<Lookup, ProviderError>) -> ProviderIntel {
    match result {
        Ok(Lookup::Found { facts, .. }) => ProviderIntel {
            status: ProviderStatus::Ok,
            detail: None,
            facts: facts.clone(),
        },
        Ok(Lookup::NotFound) => ProviderIntel::status(
            ProviderStatus::NotFound,
            "no information about this address",
        ),
        Err(error) => ProviderIntel::status(error.status(), error.to_string()),
    }
}

/// `detail` of a remote provider's first status: it is asked after the record is published.
pub const PENDING_DETAIL: &str =
    "asked after the first record was published; an updated revision follows if the answer \
     raises the score";

/// The providers the configuration enables, built and checked.
#[derive(Debug, Default)]
pub struct ConfiguredProviders {
    /// The first `intel` entry of every provider that is not asked locally: `disabled` with
    /// the reason, or `pending` for the remote ones.
    pub entries: BTreeMap<String, ProviderIntel>,
    /// Asked synchronously while the record is built (mmdb, the Talos list).
    pub local: Vec<Arc<dyn LocalProvider>>,
    /// Asked in the background queue, with their settings.
    pub remote: Vec<(Arc<dyn Provider>, ProviderSettings)>,
}

impl ConfiguredProviders {
    /// Checks `[providers.*]` and the provider weights against the registry, then builds
    /// every enabled provider: base URLs checked, keys read, local files loaded. Errors name
    /// the key.
    pub fn build(settings: &Settings) -> Result<Self, SettingsError> {
        registry::validate(settings)?;
        let mut built = ConfiguredProviders::default();
        for spec in registry::PROVIDERS {
            let Some(provider) = settings.providers.get(spec.name) else {
                built.disabled(spec.name, "not in the configuration");
                continue;
            };
            // Unusable whatever `enabled` says (Talos without a list file): `disabled` with
            // the reason, and nothing is read.
            if let Some(reason) = (spec.unavailable)(provider) {
                built.disabled(spec.name, reason);
                continue;
            }
            if !provider.enabled {
                built.disabled(spec.name, "not enabled in the configuration");
                continue;
            }
            match spec.build {
                Build::Local(build) => built.local.push(build(provider)?),
                Build::Remote(build) => {
                    built.entries.insert(
                        spec.name.to_owned(),
                        ProviderIntel::status(ProviderStatus::Pending, PENDING_DETAIL),
                    );
                    built.remote.push((build(provider)?, provider.clone()));
                }
            }
        }
        Ok(built)
    }

    fn disabled(&mut self, name: &str, reason: &str) {
        self.entries.insert(
            name.to_owned(),
            ProviderIntel::status(ProviderStatus::Disabled, reason),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_never_evidence() {
        let errors = [
            ProviderError::Unauthorized("401".into()),
            ProviderError::Forbidden("403".into()),
            ProviderError::RateLimited("429".into(), None),
            ProviderError::QuotaExhausted("daily".into(), None),
            ProviderError::Timeout(std::time::Duration::from_secs(1)),
            ProviderError::Unavailable("503".into()),
            ProviderError::InvalidResponse("html".into()),
        ];
        for error in errors {
            let entry = intel_entry(&Err(error.clone()));
            assert!(entry.facts.is_empty());
            assert_eq!(entry.status, error.status());
            assert_eq!(entry.detail, Some(error.to_string()));
            assert!(!entry.status.is_answer());
            assert_eq!(error.kind(), serde_json::to_value(error.status()).unwrap());
        }
        let entry = intel_entry(&Ok(Lookup::NotFound));
        assert_eq!(
            (entry.status, entry.facts.len()),
            (ProviderStatus::NotFound, 0)
        );
    }

    #[test]
    fn found_carries_the_facts_and_no_detail() {
        let mut facts = serde_json::Map::new();
        facts.insert("reputation".into(), serde_json::json!(-11));
        let entry = intel_entry(&Ok(Lookup::Found {
            facts: facts.clone(),
            network: Network::default(),
        }));
        assert_eq!(entry.status, ProviderStatus::Ok);
        assert_eq!(entry.detail, None);
        assert_eq!(entry.facts, facts);
    }
}
