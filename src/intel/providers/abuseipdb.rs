//! AbuseIPDB API v2 CHECK: `GET {base_url}/check?ipAddress=…&maxAgeInDays=90` with
//! headers `Key` and `Accept: application/json` (without `Accept`, errors come back as HTML).
//! Never `&verbose`: it adds only `countryName` and the `reports` list, which nothing here
//! reads and which, for the most-reported addresses (the ones that matter), overflows the
//! body cap and loses the answer.
//!
//! * 200 → `Found` with facts `abuse_confidence_score`, `total_reports`, `num_distinct_users`,
//!   `usage_type`, `isp`, `domain`, `is_tor`, `is_whitelisted`, `last_reported_at`,
//!   `country_code` (each only when sent and not null), plus `is_public` and `max_age_in_days`
//!   (the score depends on the window, reference §2). Network: `country` only.
//! * "Not found": `/check` has no such answer (reference §2 summary: 404 is not typical). An
//!   address nobody reported is a 200 with zero reports, which is an answer (`ok`) and stays
//!   one; a private address (`isPublic: false`) likewise.
//! * 401: AbuseIPDB sends the same body for a missing, wrong or revoked key, so the detail
//!   comes from whether a `Key` header was sent (reference §10).
//! * 429: `quota_exhausted` when the daily limit is spent (`X-RateLimit-Remaining: 0` or the
//!   documented "Daily rate limit … exceeded" detail), else `rate_limited`; `Retry-After` and
//!   `X-RateLimit-*` go into the detail.
//! * 422 (the address refused as invalid): `invalid_response`. Addresses are parsed locally
//!   before the request, so a 422 means the request we built was not what AbuseIPDB expects;
//!   it is not evidence, and retrying will not help.
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
pub(crate) const NAME: &str = "abuseipdb";

/// AbuseIPDB, described for the registry.
pub(crate) const SPEC: ProviderSpec = ProviderSpec {
    name: NAME,
    display_name: "AbuseIPDB",
    key: KeyUse::Required,
    build: Build::Remote(|s| Ok(std::sync::Arc::new(AbuseIpDb::new(s)?))),
    check: no_check,
    unavailable: always_available,
    weights: &[
        Weight {
            key: CONFIDENCE_PERCENT,
            default: 50,
            negative: false,
        },
        Weight {
            key: PER_10_REPORTS,
            default: 1,
            negative: false,
        },
        Weight {
            key: MAX,
            default: 50,
            negative: false,
        },
        Weight {
            key: WHITELISTED,
            default: 0,
            negative: true,
        },
    ],
    score: Some(score),
};

const CONFIDENCE_PERCENT: &str = "abuseipdb_confidence_percent";
const PER_10_REPORTS: &str = "abuseipdb_per_10_reports";
const MAX: &str = "abuseipdb_max";
const WHITELISTED: &str = "abuseipdb_whitelisted";

/// `abuse_confidence_score`: this percentage of it counts as points, plus points per 10
/// `total_reports`, at most `abuseipdb_max`. `is_whitelisted` (AbuseIPDB's own allow-list of
/// known-good networks) is a benign fact worth `abuseipdb_whitelisted`, which may be negative.
fn score(facts: &serde_json::Map<String, Value>, w: &Weights, add: &mut dyn FnMut(i32, String)) {
    if facts.get("is_whitelisted").and_then(Value::as_bool) == Some(true) {
        add(
            w.signed(WHITELISTED),
            "AbuseIPDB lists it as whitelisted".to_owned(),
        );
    }
    let Some(confidence) = facts.get("abuse_confidence_score").and_then(Value::as_u64) else {
        return;
    };
    let confidence = confidence.min(100);
    let reports = facts
        .get("total_reports")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let evidence = (confidence * u64::from(w.get(CONFIDENCE_PERCENT)) / 100)
        .saturating_add((reports / 10).saturating_mul(u64::from(w.get(PER_10_REPORTS))))
        .min(u64::from(w.get(MAX)));
    let detail = match facts.get("total_reports").and_then(Value::as_u64) {
        Some(1) => format!("abuse confidence {confidence}%, 1 report"),
        Some(n) => format!("abuse confidence {confidence}%, {n} reports"),
        None => format!("abuse confidence {confidence}%"),
    };
    add(self::points(u32::try_from(evidence).unwrap_or(0)), detail);
}

/// Report window in days; the confidence score depends on it.
pub(crate) const MAX_AGE_IN_DAYS: u32 = 90;

/// The AbuseIPDB v2 client.
#[derive(Debug)]
pub struct AbuseIpDb {
    endpoint: http::Endpoint,
}

impl AbuseIpDb {
    /// A client from the `[providers.abuseipdb]` settings (base URL checked, key resolved).
    pub fn new(settings: &ProviderSettings) -> Result<Self, SettingsError> {
        Ok(AbuseIpDb {
            endpoint: http::Endpoint::new(NAME, settings)?,
        })
    }

    async fn lookup_ip(&self, ip: IpAddr) -> Result<Lookup, ProviderError> {
        let url = format!(
            "{}/check?ipAddress={}&maxAgeInDays={MAX_AGE_IN_DAYS}",
            self.endpoint.base_url,
            http::query_value(ip)
        );
        let reply = self.endpoint.get_json(url, "Key").await?;
        if reply.status == 200 {
            return check_report(&reply.body);
        }
        Err(classify_error(&reply, &self.endpoint.key))
    }
}

impl Provider for AbuseIpDb {
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

/// Maps a non-200 answer.
fn classify_error(reply: &Reply, key: &Secret) -> ProviderError {
    let detail = first_error_detail(&reply.body, key);
    let limits = reply.limits.suffix();
    match reply.status {
        401 if !key.is_empty() => ProviderError::Unauthorized(
            "AbuseIPDB rejected the configured API key (incorrect or revoked; APIv1 keys do not \
             work with APIv2)"
                .to_owned(),
        ),
        401 => ProviderError::Unauthorized(
            "no API key is configured and AbuseIPDB requires one".to_owned(),
        ),
        429 if daily_limit_spent(reply, &detail) => ProviderError::QuotaExhausted(
            format!("AbuseIPDB daily check limit spent{limits}"),
            reply.limits.wait(),
        ),
        429 => ProviderError::RateLimited(
            format!("AbuseIPDB throttled the request{limits}"),
            reply.limits.wait(),
        ),
        422 => ProviderError::InvalidResponse(format!(
            "AbuseIPDB refused the address as invalid (HTTP 422){}",
            if detail.is_empty() {
                String::new()
            } else {
                format!(": {detail}")
            }
        )),
        _ if detail.is_empty() => http::by_status("AbuseIPDB", reply, ""),
        _ => http::by_status("AbuseIPDB", reply, &format!(" ({detail})")),
    }
}

/// The daily limit is spent when the headers say nothing remains or the body says so.
fn daily_limit_spent(reply: &Reply, detail: &str) -> bool {
    reply.limits.remaining == Some(0) || detail.to_ascii_lowercase().contains("daily rate limit")
}

/// `errors[0].detail`, made short; empty when absent.
fn first_error_detail(body: &Map<String, Value>, key: &Secret) -> String {
    body.get("errors")
        .and_then(|e| e.get(0))
        .and_then(|e| e.get("detail"))
        .and_then(Value::as_str)
        .map(|d| http::provider_text(d, key))
        .unwrap_or_default()
}

/// The facts and network of a 200 `data` object.
fn check_report(body: &Map<String, Value>) -> Result<Lookup, ProviderError> {
    let data = body.get("data").and_then(Value::as_object).ok_or_else(|| {
        ProviderError::InvalidResponse("AbuseIPDB 200 without a data object".to_owned())
    })?;
    let score = data
        .get("abuseConfidenceScore")
        .and_then(Value::as_u64)
        .ok_or_else(|| {
            ProviderError::InvalidResponse(
                "AbuseIPDB 200 without a numeric abuseConfidenceScore".to_owned(),
            )
        })?;
    let mut facts = Map::new();
    facts.insert("abuse_confidence_score".into(), score.min(100).into());
    for (from, to) in [
        ("totalReports", "total_reports"),
        ("numDistinctUsers", "num_distinct_users"),
    ] {
        if let Some(n) = data.get(from).and_then(Value::as_u64) {
            facts.insert(to.into(), n.into());
        }
    }
    for (from, to) in [
        ("usageType", "usage_type"),
        ("isp", "isp"),
        ("domain", "domain"),
        ("lastReportedAt", "last_reported_at"),
        ("countryCode", "country_code"),
    ] {
        if let Some(text) = data
            .get(from)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            facts.insert(to.into(), http::short_message(text).into());
        }
    }
    for (from, to) in [
        ("isTor", "is_tor"),
        ("isWhitelisted", "is_whitelisted"),
        ("isPublic", "is_public"),
    ] {
        if let Some(flag) = data.get(from).and_then(Value::as_bool) {
            facts.insert(to.into(), flag.into());
        }
    }
    facts.insert("max_age_in_days".into(), MAX_AGE_IN_DAYS.into());
    let network = Network {
        country: data
            .get("countryCode")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        ..Network::default()
    };
    Ok(Lookup::Found { facts, network })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_200_without_a_score_is_invalid_and_nulls_are_left_out() {
        let body = json!({"data": {"ipAddress": "203.0.113.7"}});
        let error = check_report(body.as_object().unwrap()).unwrap_err();
        assert_eq!(error.kind(), "invalid_response");
        let body = json!({"data": {"abuseConfidenceScore": 0, "isWhitelisted": null,
                                   "countryCode": null, "isPublic": false, "totalReports": 0}});
        let Ok(Lookup::Found { facts, network }) = check_report(body.as_object().unwrap()) else {
            panic!("expected Found");
        };
        assert_eq!(
            Value::Object(facts),
            json!({"abuse_confidence_score": 0, "total_reports": 0, "is_public": false,
                   "max_age_in_days": 90})
        );
        assert_eq!(network, Network::default());
    }
}
