//! Shodan InternetDB: `GET {base_url}/{ip}`, no key (reference §5).
//!
//! * 200 → `Found` with facts `ports` (numbers), `tags`, `vulns` (at most [`MAX_VULNS`], with
//!   `vulns_total` when more were listed), `hostnames` and `cpes` (each at most [`MAX_LIST`]),
//!   all always present, possibly empty: an indexed address with nothing listed is still an
//!   answer. A 200 without any of those lists is `invalid_response`. No network facts.
//!   `vulns` are inferred from version banners, not verified.
//! * 404 (`{"detail":"No information available"}`, the normal answer for addresses Shodan has
//!   not indexed) → `NotFound`.
//! * 429 → `rate_limited` (Cloudflare throttling; a ban lasts about an hour). InternetDB has no
//!   credentials, so a JSON 401/403 says only "answered HTTP 401/403", never a key problem.
//!   5xx, HTML (a Cloudflare page) and non-JSON bodies are classified by
//!   [`crate::intel::http::fetch_json`] first.

use std::net::IpAddr;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{Map, Value};

use crate::intel::http::{self, Reply};
use crate::intel::registry::{always_available, no_check, Build, KeyUse, ProviderSpec};
use crate::intel::{Lookup, Provider, ProviderError};
use crate::model::Network;
use crate::settings::{ProviderSettings, SettingsError};

/// Provider name: the `intel` key and metric label.
pub(crate) const NAME: &str = "internetdb";

/// Shodan InternetDB, described for the registry: context (ports, tags), not evidence.
pub(crate) const SPEC: ProviderSpec = ProviderSpec {
    name: NAME,
    display_name: "Shodan InternetDB",
    key: KeyUse::None,
    build: Build::Remote(|s| Ok(std::sync::Arc::new(InternetDb::new(s)?))),
    check: no_check,
    unavailable: always_available,
    weights: &[],
    score: None,
};

/// Most CVE identifiers kept in `vulns`.
pub(crate) const MAX_VULNS: usize = 20;

/// Most entries kept in `ports`, `tags`, `hostnames` and `cpes` (bounds the record size).
pub(crate) const MAX_LIST: usize = 50;

/// The InternetDB client.
#[derive(Debug)]
pub struct InternetDb {
    client: reqwest::Client,
    base_url: String,
    timeout: Duration,
}

impl InternetDb {
    /// A client from the `[providers.internetdb]` settings (base URL checked; no key used).
    pub fn new(settings: &ProviderSettings) -> Result<Self, SettingsError> {
        Ok(InternetDb {
            client: http::client(NAME, settings.timeout)?,
            base_url: http::base_url(NAME, &settings.base_url)?,
            timeout: settings.timeout,
        })
    }

    async fn lookup_ip(&self, ip: IpAddr) -> Result<Lookup, ProviderError> {
        let url = format!("{}/{}", self.base_url, http::path_segment(ip));
        let request = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json");
        let reply = http::fetch_json(request, self.timeout).await?;
        match reply.status {
            200 => host_report(&reply.body),
            404 => Ok(Lookup::NotFound),
            429 => Err(ProviderError::RateLimited(
                format!(
                    "InternetDB throttled the request (sustained use can get the client address \
                     banned for about an hour){}",
                    reply.limits.suffix()
                ),
                reply.limits.wait(),
            )),
            _ => Err(classify_error(&reply)),
        }
    }
}

impl Provider for InternetDb {
    fn name(&self) -> &'static str {
        NAME
    }

    fn sends_credentials(&self) -> bool {
        false
    }

    fn lookup(&self, ip: IpAddr) -> BoxFuture<'_, Result<Lookup, ProviderError>> {
        Box::pin(self.lookup_ip(ip))
    }
}

/// Any other answer, by status, with InternetDB's `detail` when it sent one.
fn classify_error(reply: &Reply) -> ProviderError {
    match reply.body.get("detail").and_then(Value::as_str) {
        Some(detail) if !detail.trim().is_empty() => http::by_status(
            "InternetDB",
            reply,
            &format!(" ({})", http::short_message(detail)),
        ),
        _ => http::by_status("InternetDB", reply, ""),
    }
}

/// The facts of a 200 body.
fn host_report(body: &Map<String, Value>) -> Result<Lookup, ProviderError> {
    const LISTS: [&str; 5] = ["ports", "tags", "vulns", "hostnames", "cpes"];
    if !LISTS
        .iter()
        .any(|key| body.get(*key).is_some_and(Value::is_array))
    {
        return Err(ProviderError::InvalidResponse(
            "InternetDB 200 without any of ports, tags, vulns, hostnames, cpes".to_owned(),
        ));
    }
    let items = |key: &str| {
        body.get(key)
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
    };
    let texts = |key: &str, cap: usize| -> Vec<Value> {
        items(key)
            .iter()
            .filter_map(Value::as_str)
            .map(http::short_message)
            .filter(|s| !s.is_empty())
            .take(cap)
            .map(Value::from)
            .collect()
    };
    let mut facts = Map::new();
    let ports: Vec<Value> = items("ports")
        .iter()
        .filter_map(Value::as_u64)
        .filter(|p| *p <= u64::from(u16::MAX))
        .take(MAX_LIST)
        .map(Value::from)
        .collect();
    facts.insert("ports".into(), ports.into());
    facts.insert("tags".into(), texts("tags", MAX_LIST).into());
    let vulns_total = items("vulns").iter().filter(|v| v.is_string()).count();
    facts.insert("vulns".into(), texts("vulns", MAX_VULNS).into());
    if vulns_total > MAX_VULNS {
        facts.insert("vulns_total".into(), vulns_total.into());
    }
    facts.insert("hostnames".into(), texts("hostnames", MAX_LIST).into());
    facts.insert("cpes".into(), texts("cpes", MAX_LIST).into());
    Ok(Lookup::Found {
        facts,
        network: Network::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn vulns_are_capped_with_the_total_and_odd_items_skipped() {
        let vulns: Vec<String> = (0..30).map(|n| format!("CVE-2024-{n:04}")).collect();
        let body = json!({"ip": "203.0.113.45", "ports": [22, "x", 70000], "tags": [],
                          "vulns": vulns});
        let Ok(Lookup::Found { facts, network }) = host_report(body.as_object().unwrap()) else {
            panic!("expected Found");
        };
        assert_eq!(facts["ports"], json!([22]));
        assert_eq!(facts["vulns"].as_array().unwrap().len(), MAX_VULNS);
        assert_eq!(facts["vulns_total"], json!(30));
        assert_eq!(
            (facts["hostnames"].clone(), facts["cpes"].clone()),
            (json!([]), json!([]))
        );
        assert_eq!(network, Network::default());
        let error = host_report(json!({"ip": "203.0.113.45"}).as_object().unwrap()).unwrap_err();
        assert_eq!(error.kind(), "invalid_response");
    }
}
