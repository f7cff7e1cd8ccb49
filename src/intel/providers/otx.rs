//! AlienVault OTX indicator "general" section: `GET {base_url}/indicators/IPv4/{ip}/general`
//! (base `…/api/v1`), or `…/indicators/IPv6/{ip}/general` for an IPv6 address, with the header
//! `X-OTX-API-KEY` only when a key is configured (many read endpoints answer without one,
//! throttled harder; reference §7, §10).
//!
//! * 200 → `Found` with facts `pulse_count` (`pulse_info.count`, the total: the `pulses` list
//!   may be truncated; scoring reads it), `pulse_names` (distinct, sorted, at most 10),
//!   `validation` (the allow-list entries, `{name, source}`, at most 10; OTX's own warning not to
//!   call the address malicious), `reputation`, `country_code`, and `asn` parsed from OTX's
//!   string form `"AS64500 Example Hosting Ltd"`; each only when sent. Network: `asn`, `as_org`
//!   (the rest of that string), `country`. A 200 without `pulse_info` is not a general section
//!   → `invalid_response`. Zero pulses is an answer (`ok`).
//! * 404 (JSON) → `NotFound`, an answer.
//! * 403 → `unauthorized`: OTX answers 403 for an invalid key (the official SDK raises
//!   `InvalidAPIKey`), so it is a credentials problem, not a privilege one. An HTML 403 (bot
//!   challenge) never gets here: [`crate::intel::http::fetch_json`] makes it `invalid_response`.
//! * 429 → `rate_limited` (OTX publishes no quota and no rate-limit headers; any sent go into
//!   the detail). 400 → `invalid_response`. Anything else by HTTP status; 5xx, timeouts (OTX
//!   is known to hang on some addresses), HTML and non-JSON bodies are classified by
//!   [`crate::intel::http::fetch_json`] first.
//! * An IPv4-mapped IPv6 address is asked as its IPv4 address, under the IPv4 section.

use std::net::IpAddr;

use futures::future::BoxFuture;
use serde_json::{Map, Value};

use crate::intel::http::{self, Reply};
use crate::intel::registry::{
    always_available, capped, no_check, points, Build, KeyUse, ProviderSpec, Weight, Weights,
};
use crate::intel::{Lookup, Provider, ProviderError};
use crate::model::Network;
use crate::settings::{ProviderSettings, Secret, SettingsError};

/// Provider name: the `intel` key and metric label.
pub(crate) const NAME: &str = "otx";

/// AlienVault OTX, described for the registry.
pub(crate) const SPEC: ProviderSpec = ProviderSpec {
    name: NAME,
    display_name: "AlienVault OTX",
    key: KeyUse::Optional,
    build: Build::Remote(|s| Ok(std::sync::Arc::new(Otx::new(s)?))),
    check: no_check,
    unavailable: always_available,
    weights: &[
        Weight {
            key: PER_PULSE,
            default: 5,
            negative: false,
        },
        Weight {
            key: MAX,
            default: 20,
            negative: false,
        },
        Weight {
            key: VALIDATED,
            default: 0,
            negative: true,
        },
    ],
    score: Some(score),
};

const PER_PULSE: &str = "otx_per_pulse";
const MAX: &str = "otx_max";
const VALIDATED: &str = "otx_validated";

/// Points per pulse listing the address (`pulse_count`, or the API's own
/// `pulse_info.count`), at most `otx_max`: honeypot pulses inflate the count of mere scanners.
/// `validation` entries (OTX's own allow-list: a known resolver, CDN, or major service) are
/// a benign fact worth `otx_validated`, which may be negative.
fn score(facts: &serde_json::Map<String, Value>, w: &Weights, add: &mut dyn FnMut(i32, String)) {
    let pulses = facts
        .get("pulse_count")
        .or_else(|| facts.get("pulse_info").and_then(|p| p.get("count")))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let detail = if pulses == 1 {
        "listed in 1 OTX pulse".to_owned()
    } else {
        format!("listed in {pulses} OTX pulses")
    };
    add(points(capped(pulses, w.get(PER_PULSE), w.get(MAX))), detail);
    let validated: Vec<&str> = facts
        .get("validation")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.get("name").or_else(|| v.get("source")))
        .filter_map(Value::as_str)
        .collect();
    if !validated.is_empty() {
        add(
            w.signed(VALIDATED),
            format!("OTX validation: {}", validated.join(", ")),
        );
    }
}

/// Most pulse names kept in `pulse_names`.
pub(crate) const MAX_PULSE_NAMES: usize = 10;

/// Most entries kept in `validation`.
pub(crate) const MAX_VALIDATION_ENTRIES: usize = 10;

/// The AlienVault OTX client.
#[derive(Debug)]
pub struct Otx {
    endpoint: http::Endpoint,
}

impl Otx {
    /// A client from the `[providers.otx]` settings (base URL checked, key resolved; an empty
    /// key is allowed).
    pub fn new(settings: &ProviderSettings) -> Result<Self, SettingsError> {
        Ok(Otx {
            endpoint: http::Endpoint::new(NAME, settings)?,
        })
    }

    async fn lookup_ip(&self, ip: IpAddr) -> Result<Lookup, ProviderError> {
        let url = general_url(&self.endpoint.base_url, ip);
        let reply = self.endpoint.get_json(url, "X-OTX-API-KEY").await?;
        match reply.status {
            200 => general_section(&reply.body),
            404 => Ok(Lookup::NotFound),
            _ => Err(classify_error(&reply, &self.endpoint.key)),
        }
    }
}

impl Provider for Otx {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Without a key a 403 is OTX refusing keyless use for now, not a bad key.
    fn sends_credentials(&self) -> bool {
        self.endpoint.has_key()
    }

    fn lookup(&self, ip: IpAddr) -> BoxFuture<'_, Result<Lookup, ProviderError>> {
        Box::pin(async move {
            self.lookup_ip(ip)
                .await
                .map_err(|e| http::redact(e, &self.endpoint.key))
        })
    }
}

/// The general-section URL, in the section of the address's family.
fn general_url(base_url: &str, ip: IpAddr) -> String {
    let ip = ip.to_canonical();
    let family = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
    format!(
        "{base_url}/indicators/{family}/{}/general",
        http::path_segment(ip)
    )
}

/// Maps a non-200, non-404 answer.
fn classify_error(reply: &Reply, key: &Secret) -> ProviderError {
    let detail = reply
        .body
        .get("detail")
        .and_then(Value::as_str)
        .map(|d| http::provider_text(d, key))
        .filter(|d| !d.is_empty());
    let limits = reply.limits.suffix();
    let no_key = if key.is_empty() {
        "; no API key is configured"
    } else {
        ""
    };
    match reply.status {
        403 if !key.is_empty() => ProviderError::Unauthorized(
            "OTX rejected the configured API key (HTTP 403); check the key".to_owned(),
        ),
        403 => ProviderError::Unauthorized(
            "OTX refused the request without an API key (HTTP 403); no API key is configured"
                .to_owned(),
        ),
        429 => ProviderError::RateLimited(
            format!("OTX throttled the request (HTTP 429){no_key}{limits}"),
            reply.limits.wait(),
        ),
        _ => match detail {
            Some(d) => http::by_status("OTX", reply, &format!(" ({d})")),
            None => http::by_status("OTX", reply, ""),
        },
    }
}

/// The facts and network of a 200 general section.
fn general_section(body: &Map<String, Value>) -> Result<Lookup, ProviderError> {
    let pulse_info = body
        .get("pulse_info")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            ProviderError::InvalidResponse("OTX 200 without a pulse_info object".to_owned())
        })?;
    let pulses = pulse_info
        .get("pulses")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let pulse_count = pulse_info
        .get("count")
        .and_then(Value::as_u64)
        .unwrap_or(pulses.len() as u64);
    let text = |field: &str| {
        body.get(field)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(http::short_message)
    };
    let (asn, as_org) = match body.get("asn") {
        Some(Value::String(text)) => parse_asn(text),
        Some(number) => (number.as_u64().and_then(|n| u32::try_from(n).ok()), None),
        None => (None, None),
    };
    let mut facts = Map::new();
    facts.insert("pulse_count".into(), pulse_count.into());
    facts.insert("pulse_names".into(), pulse_names(pulses).into());
    if let Some(entries) = body.get("validation").and_then(Value::as_array) {
        facts.insert("validation".into(), validation(entries).into());
    }
    if let Some(reputation) = body.get("reputation").and_then(Value::as_i64) {
        facts.insert("reputation".into(), reputation.into());
    }
    if let Some(country) = text("country_code") {
        facts.insert("country_code".into(), country.into());
    }
    if let Some(asn) = asn {
        facts.insert("asn".into(), asn.into());
    }
    let network = Network {
        asn,
        as_org,
        country: text("country_code"),
        ..Network::default()
    };
    Ok(Lookup::Found { facts, network })
}

/// Distinct pulse names, sorted, at most [`MAX_PULSE_NAMES`].
fn pulse_names(pulses: &[Value]) -> Vec<String> {
    let mut names: Vec<String> = pulses
        .iter()
        .filter_map(|p| p.get("name").and_then(Value::as_str))
        .map(http::short_message)
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    names.dedup();
    names.truncate(MAX_PULSE_NAMES);
    names
}

/// The allow-list entries as `{name, source}` (each only when sent), at most
/// [`MAX_VALIDATION_ENTRIES`].
fn validation(entries: &[Value]) -> Vec<Value> {
    entries
        .iter()
        .filter_map(|entry| {
            let mut kept = Map::new();
            for field in ["name", "source"] {
                if let Some(text) = entry
                    .get(field)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                {
                    kept.insert(field.into(), http::short_message(text).into());
                }
            }
            (!kept.is_empty()).then_some(Value::Object(kept))
        })
        .take(MAX_VALIDATION_ENTRIES)
        .collect()
}

/// `"AS64500 Example Hosting Ltd"` → `(Some(64500), Some("Example Hosting Ltd"))`; a bare
/// number is accepted too. Anything else gives no ASN.
fn parse_asn(text: &str) -> (Option<u32>, Option<String>) {
    let text = text.trim();
    let (number, org) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let digits = number
        .strip_prefix("AS")
        .or_else(|| number.strip_prefix("as"))
        .unwrap_or(number);
    match digits.parse::<u32>() {
        Ok(asn) => {
            let org = org.trim();
            (
                Some(asn),
                (!org.is_empty()).then(|| http::short_message(org)),
            )
        }
        Err(_) => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn asn_is_parsed_from_otx_strings() {
        assert_eq!(
            parse_asn("AS64500 Example Hosting Ltd"),
            (Some(64500), Some("Example Hosting Ltd".to_owned()))
        );
        assert_eq!(parse_asn("AS64501"), (Some(64501), None));
        assert_eq!(
            parse_asn(" 64502  Org "),
            (Some(64502), Some("Org".to_owned()))
        );
        for bad in ["", "ASX Org", "unknown", "AS99999999999 Big"] {
            assert_eq!(parse_asn(bad), (None, None), "{bad}");
        }
    }

    #[test]
    fn urls_use_the_family_section_and_mapped_addresses_are_ipv4() {
        let base = "http://otx.test/api/v1";
        for (ip, url) in [
            (
                "203.0.113.7",
                "http://otx.test/api/v1/indicators/IPv4/203.0.113.7/general",
            ),
            (
                "::ffff:203.0.113.7",
                "http://otx.test/api/v1/indicators/IPv4/203.0.113.7/general",
            ),
            (
                "2001:db8::7",
                "http://otx.test/api/v1/indicators/IPv6/2001:db8::7/general",
            ),
        ] {
            assert_eq!(general_url(base, ip.parse().unwrap()), url);
        }
    }

    #[test]
    fn a_200_without_pulse_info_is_invalid_and_a_missing_count_uses_the_list() {
        let body = json!({"indicator": "203.0.113.7"});
        let error = general_section(body.as_object().unwrap()).unwrap_err();
        assert_eq!(error.kind(), "invalid_response");
        let body = json!({"pulse_info": {"pulses": [{"name": "b"}, {"name": "a"}, {"name": "a"}]},
                          "asn": 64500, "validation": [{"source": "", "message": "m"}]});
        let Ok(Lookup::Found { facts, network }) = general_section(body.as_object().unwrap())
        else {
            panic!("expected Found");
        };
        assert_eq!(
            Value::Object(facts),
            json!({"pulse_count": 3, "pulse_names": ["a", "b"], "validation": [], "asn": 64500})
        );
        assert_eq!(network.asn, Some(64500));
    }
}
