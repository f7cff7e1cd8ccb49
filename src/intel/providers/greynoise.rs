//! GreyNoise Community API: `GET {base_url}/{ip}` (base `…/v3/community`), with the header
//! `key` only when a key is configured: the key is optional, and keyless calls are served
//! under the tiny `unauthenticated` plan (reference §6, §10).
//!
//! * 200 → `Found` with facts `noise`, `riot`, `classification` (lower-cased; scoring reads
//!   it), `name`, `link`, `last_seen`, each only when sent. A 200 with `noise` and `riot` both
//!   false and no classification is the "not observed" answer in another envelope → `NotFound`.
//!   A 200 with neither `noise` nor `riot` is not a GreyNoise answer → `invalid_response`.
//! * 404 "IP not observed scanning the internet or contained in RIOT data set." → `NotFound`
//!   (an answer). A 404 that is not that answer (no `noise`/`riot`/`ip` echo, no "not
//!   observed" message: a wrong `base_url`) is `invalid_response`, so it is never cached as an
//!   answer.
//! * 400 (address refused as not routable) → `invalid_response`: addresses are filtered
//!   before lookup, so it means we sent what GreyNoise does not take; it is not evidence.
//! * 401 → `unauthorized` (key rejected; or, with no key sent, an unexpected refusal).
//! * 429 with the plan body (`plan`, `rate-limit`) → `quota_exhausted` (the community
//!   allowances are per day/week); a 429 without it → `rate_limited`.
//! * Coverage: GreyNoise observes routable IPv4 only. An IPv4-mapped IPv6 address is asked as
//!   its IPv4 address; any other IPv6 address is not sent (it would spend a lookup of a ~10/day
//!   allowance on a certain 400) and is `NotFound`: GreyNoise has no data about it by
//!   definition. [`GreyNoise::covers`] lets a caller record `skipped` instead.
//! * Anything else by HTTP status; 5xx, HTML and non-JSON bodies are classified by
//!   [`crate::intel::http::fetch_json`] first.

use std::net::IpAddr;

use futures::future::BoxFuture;
use serde_json::{Map, Value};

use crate::intel::http::{self, Reply};
use crate::intel::registry::{
    always_available, no_check, points, Build, KeyUse, ProviderSpec, Weight, Weights,
};
use crate::intel::{Lookup, Provider, ProviderError};
use crate::model::Network;
use crate::settings::{ProviderSettings, Secret, SettingsError};

/// Provider name: the `intel` key and metric label.
pub(crate) const NAME: &str = "greynoise";

/// GreyNoise, described for the registry.
pub(crate) const SPEC: ProviderSpec = ProviderSpec {
    name: NAME,
    display_name: "GreyNoise",
    key: KeyUse::Optional,
    build: Build::Remote(|s| Ok(std::sync::Arc::new(GreyNoise::new(s)?))),
    check: no_check,
    unavailable: always_available,
    weights: &[
        Weight {
            key: MALICIOUS,
            default: 30,
            negative: false,
        },
        Weight {
            key: SUSPICIOUS,
            default: 10,
            negative: false,
        },
        Weight {
            key: BENIGN,
            default: 0,
            negative: true,
        },
        Weight {
            key: RIOT,
            default: 0,
            negative: true,
        },
    ],
    score: Some(score),
};

const MALICIOUS: &str = "greynoise_malicious";
const SUSPICIOUS: &str = "greynoise_suspicious";
const BENIGN: &str = "greynoise_benign";
const RIOT: &str = "greynoise_riot";

/// `classification`: `malicious` and `suspicious` weigh as evidence; `benign` (known scanners,
/// business services) is a benign fact worth `greynoise_benign`, and `riot` (the address is a
/// common business service: RIOT) one worth `greynoise_riot`, both of which may be negative;
/// `unknown` is nothing.
fn score(facts: &serde_json::Map<String, Value>, w: &Weights, add: &mut dyn FnMut(i32, String)) {
    let classification = facts.get("classification").and_then(Value::as_str);
    let weight = match classification {
        Some("malicious") => points(w.get(MALICIOUS)),
        Some("suspicious") => points(w.get(SUSPICIOUS)),
        Some("benign") => w.signed(BENIGN),
        _ => 0,
    };
    if let Some(classification) = classification {
        add(weight, format!("GreyNoise classifies it {classification}"));
    }
    if facts.get("riot").and_then(Value::as_bool) == Some(true) {
        let detail = match facts.get("name").and_then(Value::as_str) {
            Some(name) => format!("GreyNoise RIOT: a common business service ({name})"),
            None => "GreyNoise RIOT: a common business service".to_owned(),
        };
        add(w.signed(RIOT), detail);
    }
}

/// The GreyNoise Community client.
#[derive(Debug)]
pub struct GreyNoise {
    endpoint: http::Endpoint,
}

impl GreyNoise {
    /// A client from the `[providers.greynoise]` settings (base URL checked, key resolved; an
    /// empty key is allowed).
    pub fn new(settings: &ProviderSettings) -> Result<Self, SettingsError> {
        Ok(GreyNoise {
            endpoint: http::Endpoint::new(NAME, settings)?,
        })
    }

    /// Whether GreyNoise can know anything about `ip`: IPv4, or IPv6 that maps an IPv4 address.
    pub fn covers(ip: IpAddr) -> bool {
        ip.to_canonical().is_ipv4()
    }

    async fn lookup_ip(&self, ip: IpAddr) -> Result<Lookup, ProviderError> {
        let ip = ip.to_canonical();
        if !Self::covers(ip) {
            return Ok(Lookup::NotFound);
        }
        let url = format!("{}/{}", self.endpoint.base_url, http::path_segment(ip));
        let reply = self.endpoint.get_json(url, "key").await?;
        match reply.status {
            200 => community_answer(&reply.body),
            404 if is_not_observed(&reply.body) => Ok(Lookup::NotFound),
            _ => Err(classify_error(&reply, &self.endpoint.key)),
        }
    }
}

impl Provider for GreyNoise {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Without a key a 401/403 is GreyNoise refusing keyless use for now, not a bad key.
    fn sends_credentials(&self) -> bool {
        self.endpoint.has_key()
    }

    fn not_covered(&self, ip: IpAddr) -> Option<&'static str> {
        (!Self::covers(ip)).then_some("the GreyNoise community API covers IPv4 only")
    }

    fn lookup(&self, ip: IpAddr) -> BoxFuture<'_, Result<Lookup, ProviderError>> {
        Box::pin(async move {
            self.lookup_ip(ip)
                .await
                .map_err(|e| http::redact(e, &self.endpoint.key))
        })
    }
}

/// GreyNoise's "not observed" answer: the `noise`/`riot` flags or the `ip` echo, or its
/// message. Anything else on a 404 is not GreyNoise speaking about the address.
fn is_not_observed(body: &Map<String, Value>) -> bool {
    let message = body
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_lowercase();
    body.get("noise").is_some_and(Value::is_boolean)
        || body.get("riot").is_some_and(Value::is_boolean)
        || body.get("ip").is_some_and(Value::is_string)
        || message.contains("not observed")
}

/// Maps a non-200 answer other than "not observed".
fn classify_error(reply: &Reply, key: &Secret) -> ProviderError {
    let text = |field: &str| {
        reply
            .body
            .get(field)
            .and_then(Value::as_str)
            .map(|m| http::provider_text(m, key))
            .filter(|m| !m.is_empty())
    };
    let message = text("message");
    let limits = reply.limits.suffix();
    let no_key = if key.is_empty() {
        "; no API key is configured"
    } else {
        ""
    };
    match reply.status {
        401 if !key.is_empty() => ProviderError::Unauthorized(
            "GreyNoise rejected the configured API key (HTTP 401); check the key".to_owned(),
        ),
        401 => ProviderError::Unauthorized(
            "GreyNoise answered HTTP 401 though no key was sent; no API key is configured"
                .to_owned(),
        ),
        429 if text("plan").is_some() || text("rate-limit").is_some() => {
            let plan = text("plan").unwrap_or_else(|| "unknown".to_owned());
            let allowance = text("rate-limit")
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            ProviderError::QuotaExhausted(
                format!(
                    "GreyNoise lookup allowance of the {plan} plan spent{allowance}{no_key}{limits}"
                ),
                reply.limits.wait(),
            )
        }
        429 => ProviderError::RateLimited(
            format!("GreyNoise throttled the request (HTTP 429){no_key}{limits}"),
            reply.limits.wait(),
        ),
        400 => ProviderError::InvalidResponse(format!(
            "GreyNoise refused the address (HTTP 400){}",
            message.map(|m| format!(": {m}")).unwrap_or_default()
        )),
        404 => ProviderError::InvalidResponse(
            "GreyNoise answered HTTP 404 without its 'not observed' answer (check base_url)"
                .to_owned(),
        ),
        _ => match message {
            Some(m) => http::by_status("GreyNoise", reply, &format!(" ({m})")),
            None => http::by_status("GreyNoise", reply, ""),
        },
    }
}

/// The facts of a 200 community answer.
fn community_answer(body: &Map<String, Value>) -> Result<Lookup, ProviderError> {
    let flag = |field: &str| body.get(field).and_then(Value::as_bool);
    let text = |field: &str| {
        body.get(field)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(http::short_message)
    };
    let (noise, riot) = (flag("noise"), flag("riot"));
    if noise.is_none() && riot.is_none() {
        return Err(ProviderError::InvalidResponse(
            "GreyNoise 200 without noise or riot flags".to_owned(),
        ));
    }
    let classification = text("classification").map(|c| c.to_ascii_lowercase());
    if noise != Some(true) && riot != Some(true) && classification.is_none() {
        return Ok(Lookup::NotFound);
    }
    let mut facts = Map::new();
    if let Some(noise) = noise {
        facts.insert("noise".into(), noise.into());
    }
    if let Some(riot) = riot {
        facts.insert("riot".into(), riot.into());
    }
    if let Some(classification) = classification {
        facts.insert("classification".into(), classification.into());
    }
    for field in ["name", "link", "last_seen"] {
        if let Some(value) = text(field) {
            facts.insert(field.into(), value.into());
        }
    }
    Ok(Lookup::Found {
        facts,
        network: Network::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn a_200_without_flags_is_invalid_and_one_with_both_false_is_not_found() {
        let error = community_answer(&body(json!({"message": "Success"}))).unwrap_err();
        assert_eq!(error.kind(), "invalid_response");
        let quiet = json!({"ip": "203.0.113.7", "noise": false, "riot": false,
            "message": "IP not observed scanning the internet or contained in RIOT data set."});
        assert_eq!(community_answer(&body(quiet)), Ok(Lookup::NotFound));
        let Ok(Lookup::Found { facts, .. }) = community_answer(&body(
            json!({"noise": false, "classification": "Malicious"}),
        )) else {
            panic!("expected Found");
        };
        assert_eq!(
            Value::Object(facts),
            json!({"noise": false, "classification": "malicious"})
        );
    }

    #[test]
    fn not_observed_needs_greynoise_shape() {
        assert!(is_not_observed(&body(
            json!({"message": "IP not observed scanning the internet or contained in RIOT data set."})
        )));
        assert!(is_not_observed(&body(
            json!({"ip": "203.0.113.7", "noise": false})
        )));
        assert!(!is_not_observed(&body(json!({"detail": "Not Found"}))));
        assert!(!is_not_observed(&body(json!({}))));
    }

    #[test]
    fn coverage_is_ipv4_and_mapped_ipv4() {
        for (text, covered) in [
            ("203.0.113.7", true),
            ("::ffff:203.0.113.7", true),
            ("2001:db8::1", false),
        ] {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(GreyNoise::covers(ip), covered, "{text}");
        }
    }
}
