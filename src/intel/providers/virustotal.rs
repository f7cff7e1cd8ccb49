//! VirusTotal API v3 IP address report: `GET {base_url}/ip_addresses/{ip}` with `x-apikey`.
//!
//! * 200 → `Found` with facts `last_analysis_stats` (the five counts, missing ones 0),
//!   `reputation` (signed), `asn`, `as_owner`, `country`, `network`,
//!   `regional_internet_registry` and `flagged_by` (engines whose category is malicious or
//!   suspicious, sorted, at most 20), each only when VirusTotal sent it; `network` from the same
//!   attributes. A sparse object (all-zero stats) is still an answer.
//! * Errors by the JSON `error.code` (reference §1, §10): `AuthenticationRequiredError`,
//!   `WrongCredentialsError`, `UserNotActiveError` → `unauthorized`, each with its own detail;
//!   `ForbiddenError` → `forbidden`; `QuotaExceededError` → `quota_exhausted`;
//!   `TooManyRequestsError` → `rate_limited`; `NotFoundError` → `NotFound` (an answer, not an
//!   error); anything else by HTTP status. 5xx, HTML and non-JSON bodies are classified by
//!   [`crate::intel::http::fetch_json`] first.
//! * With no key configured the request is still sent (without the header), so the status says
//!   what VirusTotal answered; the detail says no key was configured.

use std::net::IpAddr;
use std::time::Duration;

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
pub(crate) const NAME: &str = "virustotal";

/// VirusTotal, described for the registry.
pub(crate) const SPEC: ProviderSpec = ProviderSpec {
    name: NAME,
    display_name: "VirusTotal",
    key: KeyUse::Required,
    build: Build::Remote(|s| Ok(std::sync::Arc::new(VirusTotal::new(s)?))),
    check: no_check,
    unavailable: always_available,
    weights: &[
        Weight {
            key: PER_MALICIOUS_ENGINE,
            default: 5,
            negative: false,
        },
        Weight {
            key: PER_SUSPICIOUS_ENGINE,
            default: 2,
            negative: false,
        },
        Weight {
            key: MAX,
            default: 60,
            negative: false,
        },
        Weight {
            key: NEGATIVE_REPUTATION,
            default: 10,
            negative: false,
        },
    ],
    score: Some(score),
};

const PER_MALICIOUS_ENGINE: &str = "virustotal_per_malicious_engine";
const PER_SUSPICIOUS_ENGINE: &str = "virustotal_per_suspicious_engine";
const MAX: &str = "virustotal_max";
const NEGATIVE_REPUTATION: &str = "virustotal_negative_reputation";

/// `last_analysis_stats`: points per engine flagging the address malicious and per engine
/// flagging it suspicious, together at most `virustotal_max`; a negative community
/// `reputation` is a reason of its own.
fn score(facts: &serde_json::Map<String, Value>, w: &Weights, add: &mut dyn FnMut(i32, String)) {
    if let Some(stats) = facts.get("last_analysis_stats") {
        let count = |key: &str| stats.get(key).and_then(Value::as_u64).unwrap_or(0);
        let (malicious, suspicious) = (count("malicious"), count("suspicious"));
        let engines: u64 = [
            "malicious",
            "suspicious",
            "undetected",
            "harmless",
            "timeout",
        ]
        .iter()
        .map(|k| count(k))
        .fold(0, u64::saturating_add);
        let engines_points = capped(malicious, w.get(PER_MALICIOUS_ENGINE), u32::MAX)
            .saturating_add(capped(suspicious, w.get(PER_SUSPICIOUS_ENGINE), u32::MAX))
            .min(w.get(MAX));
        let detail = match (malicious, suspicious) {
            (0, s) => format!("{s} of {engines} engines flag it suspicious"),
            (m, 0) => format!("{m} of {engines} engines flag it malicious"),
            (m, s) => format!("{m} of {engines} engines flag it malicious, {s} suspicious"),
        };
        add(self::points(engines_points), detail);
    }
    if let Some(reputation) = facts.get("reputation").and_then(Value::as_i64) {
        if reputation < 0 {
            add(
                points(w.get(NEGATIVE_REPUTATION)),
                format!("community reputation {reputation}"),
            );
        }
    }
}

/// Most engine names kept in `flagged_by`.
pub(crate) const MAX_FLAGGED_BY: usize = 20;

/// The VirusTotal v3 client.
#[derive(Debug)]
pub struct VirusTotal {
    endpoint: http::Endpoint,
}

impl VirusTotal {
    /// A client from the `[providers.virustotal]` settings (base URL checked, key resolved).
    pub fn new(settings: &ProviderSettings) -> Result<Self, SettingsError> {
        Ok(VirusTotal {
            endpoint: http::Endpoint::new(NAME, settings)?,
        })
    }

    async fn lookup_ip(&self, ip: IpAddr) -> Result<Lookup, ProviderError> {
        let url = format!(
            "{}/ip_addresses/{}",
            self.endpoint.base_url,
            http::path_segment(ip)
        );
        let reply = self.endpoint.get_json(url, "x-apikey").await?;
        if reply.status == 200 {
            return ip_report(&reply.body);
        }
        classify_error(&reply, &self.endpoint.key)
    }
}

impl Provider for VirusTotal {
    fn name(&self) -> &'static str {
        NAME
    }

    fn lookup(&self, ip: IpAddr) -> BoxFuture<'_, Result<Lookup, ProviderError>> {
        Box::pin(async move {
            self.lookup_ip(ip)
                .await
                .map_err(|e| http::redact(e, &self.endpoint.key))
        })
    }
}

/// Maps a non-200 answer by VirusTotal's `error.code`, else by HTTP status.
fn classify_error(reply: &Reply, key: &Secret) -> Result<Lookup, ProviderError> {
    let error = reply.body.get("error");
    let code = error
        .and_then(|e| e.get("code"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let message = error
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .map(|m| http::provider_text(m, key))
        .unwrap_or_default();
    let limits = reply.limits.suffix();
    let no_key = if !key.is_empty() {
        ""
    } else {
        "; no API key is configured"
    };
    Err(match code {
        "NotFoundError" => return Ok(Lookup::NotFound),
        "AuthenticationRequiredError" => ProviderError::Unauthorized(format!(
            "VirusTotal received no API key (AuthenticationRequiredError){no_key}"
        )),
        "WrongCredentialsError" => ProviderError::Unauthorized(
            "VirusTotal rejected the configured API key (WrongCredentialsError); check the key"
                .to_owned(),
        ),
        "UserNotActiveError" => ProviderError::Unauthorized(
            "VirusTotal account of this key is not activated (UserNotActiveError)".to_owned(),
        ),
        "ForbiddenError" => ProviderError::Forbidden(
            "the key lacks the privilege for IP reports (ForbiddenError)".to_owned(),
        ),
        // Reference §10: QuotaExceededError is a spent minute/daily/monthly quota.
        // The same code covers the minute, daily and monthly quotas and VirusTotal sends no
        // reset time: held a minute, which a spent minute quota needs and a spent daily quota
        // costs one refused request a minute (refusals spend no quota).
        "QuotaExceededError" => ProviderError::QuotaExhausted(
            format!(
                "VirusTotal quota exceeded (QuotaExceededError: minute, daily or monthly quota; \
                 the daily quota resets at 00:00 UTC){limits}"
            ),
            reply.limits.wait().or(Some(Duration::from_secs(60))),
        ),
        "TooManyRequestsError" => ProviderError::RateLimited(
            format!("VirusTotal throttled the request (TooManyRequestsError){limits}"),
            reply.limits.wait(),
        ),
        "" => http::by_status("VirusTotal", reply, " without an error code"),
        code => {
            let what = if message.is_empty() {
                format!(" ({})", http::provider_text(code, key))
            } else {
                format!(" ({}: {message})", http::provider_text(code, key))
            };
            http::by_status("VirusTotal", reply, &what)
        }
    })
}

/// The facts and network of a 200 IP object.
fn ip_report(body: &Map<String, Value>) -> Result<Lookup, ProviderError> {
    let attributes = body
        .get("data")
        .and_then(|d| d.get("attributes"))
        .and_then(Value::as_object)
        .ok_or_else(|| {
            ProviderError::InvalidResponse("VirusTotal 200 without data.attributes".to_owned())
        })?;
    let text = |key: &str| {
        attributes
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(http::short_message)
    };
    let asn = attributes
        .get("asn")
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok());
    let mut facts = Map::new();
    if let Some(stats) = attributes
        .get("last_analysis_stats")
        .and_then(Value::as_object)
    {
        let count = |key: &str| stats.get(key).and_then(Value::as_u64).unwrap_or(0);
        facts.insert(
            "last_analysis_stats".into(),
            serde_json::json!({
                "malicious": count("malicious"),
                "suspicious": count("suspicious"),
                "undetected": count("undetected"),
                "harmless": count("harmless"),
                "timeout": count("timeout"),
            }),
        );
    }
    if let Some(reputation) = attributes.get("reputation").and_then(Value::as_i64) {
        facts.insert("reputation".into(), reputation.into());
    }
    if let Some(asn) = asn {
        facts.insert("asn".into(), asn.into());
    }
    for key in [
        "as_owner",
        "country",
        "network",
        "regional_internet_registry",
    ] {
        if let Some(value) = text(key) {
            facts.insert(key.into(), value.into());
        }
    }
    if let Some(results) = attributes
        .get("last_analysis_results")
        .and_then(Value::as_object)
    {
        facts.insert("flagged_by".into(), flagged_by(results).into());
    }
    let network = Network {
        asn,
        as_org: text("as_owner"),
        country: text("country"),
        rir: text("regional_internet_registry"),
        cidr: text("network"),
    };
    Ok(Lookup::Found { facts, network })
}

/// Names of the engines whose category is malicious or suspicious, sorted, at most 20.
fn flagged_by(results: &Map<String, Value>) -> Vec<String> {
    let mut names: Vec<String> = results
        .iter()
        .filter(|(_, result)| {
            matches!(
                result.get("category").and_then(Value::as_str),
                Some("malicious" | "suspicious")
            )
        })
        .map(|(engine, _)| http::short_message(engine))
        .collect();
    names.sort();
    names.truncate(MAX_FLAGGED_BY);
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reply(status: u16, body: Value) -> Reply {
        Reply {
            status,
            limits: http::RateLimitHints::default(),
            body: body.as_object().cloned().unwrap(),
        }
    }

    #[test]
    fn flagged_by_is_sorted_and_capped() {
        let mut results = Map::new();
        for i in (0..30).rev() {
            results.insert(format!("Engine{i:02}"), json!({"category": "malicious"}));
        }
        results.insert("Clean".into(), json!({"category": "harmless"}));
        results.insert("Aaa".into(), json!({"category": "suspicious"}));
        let names = flagged_by(&results);
        assert_eq!(names.len(), MAX_FLAGGED_BY);
        assert_eq!(names[0], "Aaa");
        assert_eq!(names[1], "Engine00");
        assert!(!names.contains(&"Clean".to_owned()));
    }

    #[test]
    fn missing_attributes_are_invalid_and_unknown_codes_go_by_status() {
        assert_eq!(
            ip_report(&reply(200, json!({"data": {}})).body)
                .unwrap_err()
                .kind(),
            "invalid_response"
        );
        let bad = reply(
            400,
            json!({"error": {"code": "InvalidArgumentError", "message": "bad ip"}}),
        );
        let error = classify_error(&bad, &Secret::new("k")).unwrap_err();
        assert_eq!(error.kind(), "invalid_response");
        assert!(
            error.to_string().contains("InvalidArgumentError: bad ip"),
            "{error}"
        );
        let html_less_404 = reply(404, json!({}));
        assert_eq!(
            classify_error(&html_less_404, &Secret::new("k"))
                .unwrap_err()
                .kind(),
            "invalid_response"
        );
    }
}
