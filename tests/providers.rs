//! The VirusTotal and AbuseIPDB clients against local axum mocks serving each API's response
//! shapes and error bodies (reference: providers.md §1, §2, §10 and the mock-server
//! checklist). Every scenario checks the resulting status and detail, what the mock saw
//! (path, query, headers), and that the API key appears in no error text, `Debug` output or
//! `intel` detail.

mod common;
mod mock_api;

use mock_api::*;

use std::time::Duration;

use serde_json::{json, Value};

use threatsift::AbuseIpDb;
use threatsift::VirusTotal;
use threatsift::{intel_entry, Lookup, Provider, ProviderError};
use threatsift::{Network, ProviderStatus};

/// A VirusTotal-looking key (64 hex characters).
const VT_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
/// An AbuseIPDB-looking key (80 characters).
const ABUSE_KEY: &str =
    "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718";

/// Looks `address` up on a VirusTotal mock answering `canned`.
async fn vt(
    canned: Canned,
    key: &str,
    address: &str,
) -> (Result<Lookup, ProviderError>, Vec<Seen>) {
    lookup_once(VirusTotal::new, &VIRUSTOTAL, VT_KEY, canned, key, address).await
}

/// Looks `address` up on an AbuseIPDB mock answering `canned`.
async fn abuse(
    canned: Canned,
    key: &str,
    address: &str,
) -> (Result<Lookup, ProviderError>, Vec<Seen>) {
    lookup_once(AbuseIpDb::new, &ABUSEIPDB, ABUSE_KEY, canned, key, address).await
}

// ---------------------------------------------------------------------------------------------
// VirusTotal

fn vt_full_report() -> Value {
    json!({
      "data": {
        "id": "203.0.113.45",
        "type": "ip_address",
        "links": {"self": "https://www.virustotal.com/api/v3/ip_addresses/203.0.113.45"},
        "attributes": {
          "as_owner": "Example Hosting Ltd",
          "asn": 64500,
          "continent": "EU",
          "country": "NL",
          "network": "203.0.113.0/24",
          "regional_internet_registry": "RIPE NCC",
          "reputation": -11,
          "tags": [],
          "total_votes": {"harmless": 0, "malicious": 3},
          "last_analysis_date": 1767225600,
          "last_modification_date": 1767229200,
          "whois_date": 1765000000,
          "whois": "inetnum: 203.0.113.0 - 203.0.113.255\nnetname: EXAMPLE-NET\ncountry: NL\n",
          "last_analysis_stats": {"harmless": 58, "malicious": 4, "suspicious": 1, "undetected": 31, "timeout": 0},
          "last_analysis_results": {
            "ExampleAV": {"category": "malicious", "engine_name": "ExampleAV", "method": "blacklist", "result": "malware"},
            "SampleIntel": {"category": "harmless", "engine_name": "SampleIntel", "method": "blacklist", "result": "clean"},
            "ThirdEngine": {"category": "undetected", "engine_name": "ThirdEngine", "method": "blacklist", "result": "unrated"},
            "BEngine": {"category": "suspicious", "engine_name": "BEngine", "method": "blacklist", "result": "suspicious"}
          }
        }
      }
    })
}

#[tokio::test]
async fn virustotal_full_report_gives_the_scored_facts_and_network() {
    let (result, seen) = vt(json_answer(200, vt_full_report()), VT_KEY, "203.0.113.45").await;
    let Ok(Lookup::Found { facts, network }) = result else {
        panic!("expected Found, got {result:?}");
    };
    assert_eq!(
        Value::Object(facts),
        json!({
            "last_analysis_stats": {"harmless": 58, "malicious": 4, "suspicious": 1, "undetected": 31, "timeout": 0},
            "reputation": -11,
            "asn": 64500,
            "as_owner": "Example Hosting Ltd",
            "country": "NL",
            "network": "203.0.113.0/24",
            "regional_internet_registry": "RIPE NCC",
            "flagged_by": ["BEngine", "ExampleAV"],
        })
    );
    assert_eq!(
        network,
        Network {
            asn: Some(64500),
            as_org: Some("Example Hosting Ltd".into()),
            country: Some("NL".into()),
            rir: Some("RIPE NCC".into()),
            cidr: Some("203.0.113.0/24".into()),
        }
    );
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path_and_query, "/api/v3/ip_addresses/203.0.113.45");
    assert_eq!(header(&seen[0], "x-apikey"), Some(VT_KEY));
}

#[tokio::test]
async fn virustotal_sparse_report_without_asn_is_still_an_answer() {
    let body = json!({"data": {"id": "198.51.100.7", "type": "ip_address",
        "attributes": {"last_analysis_stats":
            {"harmless": 0, "malicious": 0, "suspicious": 0, "undetected": 0, "timeout": 0}}}});
    let (result, _) = vt(json_answer(200, body), VT_KEY, "198.51.100.7").await;
    let Ok(Lookup::Found { facts, network }) = &result else {
        panic!("expected Found, got {result:?}");
    };
    assert_eq!(
        Value::Object(facts.clone()),
        json!({"last_analysis_stats":
            {"harmless": 0, "malicious": 0, "suspicious": 0, "undetected": 0, "timeout": 0}})
    );
    assert_eq!(*network, Network::default());
    let entry = intel_entry(&result);
    assert_eq!((entry.status, entry.detail), (ProviderStatus::Ok, None));
}

#[tokio::test]
async fn virustotal_not_found_is_an_answer_not_an_error() {
    let body = json!({"error": {"code": "NotFoundError", "message": "Resource not found."}});
    let (result, _) = vt(json_answer(404, body), VT_KEY, "203.0.113.9").await;
    assert_eq!(result, Ok(Lookup::NotFound));
    assert_eq!(intel_entry(&result).status, ProviderStatus::NotFound);
}

#[tokio::test]
async fn virustotal_error_codes_map_to_statuses_with_their_own_details() {
    // (HTTP status, error.code, message, expected kind, text the detail must contain)
    let cases = [
        (
            401,
            "AuthenticationRequiredError",
            "X-Apikey header is missing",
            "unauthorized",
            "received no API key (AuthenticationRequiredError)",
        ),
        (
            401,
            "WrongCredentialsError",
            "Wrong API key",
            "unauthorized",
            "rejected the configured API key (WrongCredentialsError)",
        ),
        (
            401,
            "UserNotActiveError",
            "User is not active",
            "unauthorized",
            "not activated (UserNotActiveError)",
        ),
        (
            403,
            "ForbiddenError",
            "You are not allowed to perform the requested operation",
            "forbidden",
            "lacks the privilege",
        ),
        (
            429,
            "QuotaExceededError",
            "Quota exceeded",
            "quota_exhausted",
            "resets at 00:00 UTC",
        ),
        (
            429,
            "TooManyRequestsError",
            "Too many requests",
            "rate_limited",
            "TooManyRequestsError",
        ),
        (
            503,
            "TransientError",
            "Transient error, try again",
            "unavailable",
            "HTTP 503",
        ),
        (
            504,
            "DeadlineExceededError",
            "Deadline exceeded",
            "unavailable",
            "HTTP 504",
        ),
        (
            400,
            "InvalidArgumentError",
            "Invalid IP address",
            "invalid_response",
            "HTTP 400 (InvalidArgumentError: Invalid IP address)",
        ),
        (
            418,
            "SomethingNewError",
            "",
            "invalid_response",
            "HTTP 418 (SomethingNewError)",
        ),
    ];
    let mut unauthorized_details = Vec::new();
    for (status, code, message, kind, expected) in cases {
        let body = json!({"error": {"code": code, "message": message}});
        let (result, seen) = vt(json_answer(status, body), VT_KEY, "203.0.113.45").await;
        let entry = intel_entry(&result);
        let error = error_of(result);
        assert_eq!(error.kind(), kind, "{code}: {error}");
        let detail = entry.detail.unwrap();
        assert!(detail.contains(expected), "{code}: {detail}");
        assert!(
            !detail.contains("no API key is configured"),
            "{code}: {detail}"
        );
        assert_eq!(header(&seen[0], "x-apikey"), Some(VT_KEY));
        if kind == "unauthorized" {
            unauthorized_details.push(detail);
        }
    }
    unauthorized_details.dedup();
    assert_eq!(unauthorized_details.len(), 3, "{unauthorized_details:?}");
}

#[tokio::test]
async fn virustotal_without_a_key_sends_no_header_and_says_none_is_configured() {
    let body = json!({"error": {"code": "AuthenticationRequiredError", "message": "X-Apikey header is missing"}});
    let (result, seen) = vt(json_answer(401, body), "", "203.0.113.45").await;
    let error = error_of(result);
    assert_eq!(error.kind(), "unauthorized");
    assert_eq!(
        error.to_string(),
        "unauthorized: VirusTotal received no API key (AuthenticationRequiredError); no API key is configured"
    );
    assert_eq!(header(&seen[0], "x-apikey"), None);
}

#[tokio::test]
async fn virustotal_ipv6_stays_one_path_segment_with_literal_colons() {
    // VirusTotal's IP object for an IPv6 address: the same shape, an IPv6 id and network.
    let body = json!({"data": {"id": "2001:db8::45", "type": "ip_address",
        "links": {"self": "https://www.virustotal.com/api/v3/ip_addresses/2001:db8::45"},
        "attributes": {"as_owner": "Example IPv6 Net", "asn": 64501, "country": "DE",
            "network": "2001:db8::/32", "regional_internet_registry": "RIPE NCC",
            "reputation": 0, "tags": [],
            "last_analysis_stats": {"harmless": 60, "malicious": 1, "suspicious": 0, "undetected": 30, "timeout": 0},
            "last_analysis_results": {
                "ExampleAV": {"category": "malicious", "engine_name": "ExampleAV", "method": "blacklist", "result": "malware"},
                "SampleIntel": {"category": "harmless", "engine_name": "SampleIntel", "method": "blacklist", "result": "clean"}}}}});
    let (result, seen) = vt(json_answer(200, body), VT_KEY, "2001:db8::45").await;
    let Ok(Lookup::Found { facts, network }) = result else {
        panic!("expected Found, got {result:?}");
    };
    assert_eq!(
        Value::Object(facts),
        json!({
            "last_analysis_stats": {"harmless": 60, "malicious": 1, "suspicious": 0, "undetected": 30, "timeout": 0},
            "reputation": 0,
            "asn": 64501,
            "as_owner": "Example IPv6 Net",
            "country": "DE",
            "network": "2001:db8::/32",
            "regional_internet_registry": "RIPE NCC",
            "flagged_by": ["ExampleAV"],
        })
    );
    assert_eq!(network.cidr.as_deref(), Some("2001:db8::/32"));
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path_and_query, "/api/v3/ip_addresses/2001:db8::45");
}

// ---------------------------------------------------------------------------------------------
// AbuseIPDB

/// The `/check` answer without `verbose` (no `countryName`, no `reports`).
fn abuse_check_report() -> Value {
    json!({
      "data": {
        "ipAddress": "203.0.113.45",
        "isPublic": true,
        "ipVersion": 4,
        "isWhitelisted": null,
        "abuseConfidenceScore": 87,
        "countryCode": "NL",
        "usageType": "Data Center/Web Hosting/Transit",
        "isp": "Example Hosting Ltd",
        "domain": "example-hosting.test",
        "hostnames": ["vps45.example-hosting.test"],
        "isTor": false,
        "totalReports": 142,
        "numDistinctUsers": 37,
        "lastReportedAt": "2026-01-04T21:37:02+00:00"
      }
    })
}

#[tokio::test]
async fn abuseipdb_check_report_gives_the_scored_facts_and_sends_key_and_accept() {
    let mut canned = json_answer(200, abuse_check_report());
    canned.headers = vec![
        ("x-ratelimit-limit", "1000"),
        ("x-ratelimit-remaining", "999"),
    ];
    let (result, seen) = abuse(canned, ABUSE_KEY, "203.0.113.45").await;
    let Ok(Lookup::Found { facts, network }) = result else {
        panic!("expected Found, got {result:?}");
    };
    assert_eq!(
        Value::Object(facts),
        json!({
            "abuse_confidence_score": 87,
            "total_reports": 142,
            "num_distinct_users": 37,
            "usage_type": "Data Center/Web Hosting/Transit",
            "isp": "Example Hosting Ltd",
            "domain": "example-hosting.test",
            "is_tor": false,
            "last_reported_at": "2026-01-04T21:37:02+00:00",
            "country_code": "NL",
            "is_public": true,
            "max_age_in_days": 90,
        })
    );
    assert_eq!(network.country.as_deref(), Some("NL"));
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].path_and_query,
        "/api/v2/check?ipAddress=203.0.113.45&maxAgeInDays=90"
    );
    assert_eq!(header(&seen[0], "key"), Some(ABUSE_KEY));
    assert_eq!(header(&seen[0], "accept"), Some("application/json"));
}

#[tokio::test]
async fn abuseipdb_plain_and_private_answers_are_answers() {
    let plain = json!({"data": {"ipAddress": "198.51.100.7", "isPublic": true, "ipVersion": 4,
        "isWhitelisted": true, "abuseConfidenceScore": 0, "countryCode": "US",
        "usageType": "Fixed Line ISP", "isp": "Example ISP", "domain": null, "hostnames": [],
        "isTor": false, "totalReports": 0, "numDistinctUsers": 0, "lastReportedAt": null}});
    let (result, _) = abuse(json_answer(200, plain), ABUSE_KEY, "198.51.100.7").await;
    let Ok(Lookup::Found { facts, .. }) = &result else {
        panic!("expected Found, got {result:?}");
    };
    assert_eq!(facts["is_whitelisted"], json!(true));
    assert_eq!(facts["total_reports"], json!(0));
    assert!(!facts.contains_key("domain") && !facts.contains_key("last_reported_at"));
    assert_eq!(intel_entry(&result).status, ProviderStatus::Ok);

    let private = json!({"data": {"ipAddress": "10.0.0.1", "isPublic": false, "ipVersion": 4,
        "isWhitelisted": null, "abuseConfidenceScore": 0, "countryCode": null,
        "usageType": "Reserved", "isp": "Private IP Address LAN", "domain": null,
        "hostnames": [], "isTor": false, "totalReports": 0, "numDistinctUsers": 0,
        "lastReportedAt": null}});
    let (result, _) = abuse(json_answer(200, private), ABUSE_KEY, "10.0.0.1").await;
    let Ok(Lookup::Found { facts, network }) = result else {
        panic!("expected Found");
    };
    assert_eq!(
        (
            facts["is_public"].clone(),
            facts["abuse_confidence_score"].clone()
        ),
        (json!(false), json!(0))
    );
    assert_eq!(network, Network::default());
}

const ABUSE_401: &str = "Authentication failed. Your API key is either missing, incorrect, or revoked. Note: The APIv2 key differs from the APIv1 key.";

#[tokio::test]
async fn abuseipdb_401_says_whether_a_key_was_sent() {
    let body = json!({"errors": [{"detail": ABUSE_401, "status": 401}]});
    let (sent, seen_sent) = abuse(json_answer(401, body.clone()), ABUSE_KEY, "203.0.113.45").await;
    let (unsent, seen_unsent) = abuse(json_answer(401, body), "", "203.0.113.45").await;
    assert_eq!(header(&seen_sent[0], "key"), Some(ABUSE_KEY));
    assert_eq!(header(&seen_unsent[0], "key"), None);
    assert_eq!(header(&seen_unsent[0], "accept"), Some("application/json"));
    let (sent, unsent) = (error_of(sent), error_of(unsent));
    assert_eq!(
        (sent.kind(), unsent.kind()),
        ("unauthorized", "unauthorized")
    );
    assert!(
        sent.to_string().contains("rejected the configured API key"),
        "{sent}"
    );
    assert_eq!(
        unsent.to_string(),
        "unauthorized: no API key is configured and AbuseIPDB requires one"
    );
}

#[tokio::test]
async fn abuseipdb_422_is_an_invalid_response() {
    let body = json!({"errors": [{"detail": "The ip address must be a valid IPv4 or IPv6 address (e.g. 8.8.8.8 or 2001:4860:4860::8888).",
        "status": 422, "source": {"parameter": "ipAddress"}}]});
    let error = error_of(
        abuse(json_answer(422, body), ABUSE_KEY, "203.0.113.45")
            .await
            .0,
    );
    assert_eq!(error.kind(), "invalid_response");
    assert!(error.to_string().starts_with("invalid response: AbuseIPDB refused the address as invalid (HTTP 422): The ip address must be"), "{error}");
}

#[tokio::test]
async fn abuseipdb_429_is_quota_when_the_daily_limit_is_spent_else_rate_limited() {
    let mut daily = json_answer(
        429,
        json!({"errors": [{"detail": "Daily rate limit of 1000 requests exceeded for this endpoint. See headers for additional details.", "status": 429}]}),
    );
    daily.headers = vec![
        ("retry-after", "29241"),
        ("x-ratelimit-limit", "1000"),
        ("x-ratelimit-remaining", "0"),
        ("x-ratelimit-reset", "1545973200"),
    ];
    let error = error_of(abuse(daily, ABUSE_KEY, "203.0.113.45").await.0);
    assert_eq!(error.kind(), "quota_exhausted");
    assert_eq!(
        error.to_string(),
        "quota exhausted: AbuseIPDB daily check limit spent; retry after 29241 s; 0 of 1000 left; resets 2018-12-28T05:00:00Z"
    );

    let mut burst = json_answer(
        429,
        json!({"errors": [{"detail": "Too Many Attempts.", "status": 429}]}),
    );
    burst.headers = vec![("retry-after", "60"), ("x-ratelimit-remaining", "412")];
    let error = error_of(abuse(burst, ABUSE_KEY, "203.0.113.45").await.0);
    assert_eq!(error.kind(), "rate_limited");
    assert_eq!(
        error.to_string(),
        "rate limited: AbuseIPDB throttled the request; retry after 60 s; 412 left"
    );
}

#[tokio::test]
async fn abuseipdb_ipv6_is_url_encoded_in_the_query() {
    // AbuseIPDB's check answer for an IPv6 address: ipVersion 6, the address echoed.
    let body = json!({"data": {"ipAddress": "2001:db8::45", "isPublic": true, "ipVersion": 6,
        "isWhitelisted": false, "abuseConfidenceScore": 12, "countryCode": "DE",
        "countryName": "Germany", "usageType": "Data Center/Web Hosting/Transit",
        "isp": "Example IPv6 Net", "domain": "example-v6.test", "hostnames": [],
        "isTor": false, "totalReports": 3, "numDistinctUsers": 2,
        "lastReportedAt": "2026-01-02T08:00:00+00:00", "reports": []}});
    let (result, seen) = abuse(json_answer(200, body), ABUSE_KEY, "2001:db8::45").await;
    let Ok(Lookup::Found { facts, network }) = result else {
        panic!("expected Found, got {result:?}");
    };
    assert_eq!(
        Value::Object(facts),
        json!({
            "abuse_confidence_score": 12,
            "total_reports": 3,
            "num_distinct_users": 2,
            "usage_type": "Data Center/Web Hosting/Transit",
            "isp": "Example IPv6 Net",
            "domain": "example-v6.test",
            "is_tor": false,
            "last_reported_at": "2026-01-02T08:00:00+00:00",
            "country_code": "DE",
            "is_public": true,
            "is_whitelisted": false,
            "max_age_in_days": 90,
        })
    );
    assert_eq!(network.country.as_deref(), Some("DE"));
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].path_and_query,
        "/api/v2/check?ipAddress=2001%3Adb8%3A%3A45&maxAgeInDays=90"
    );
}

#[tokio::test]
async fn abuseipdb_html_5xx_is_unavailable() {
    let error = error_of(abuse(html_answer(502), ABUSE_KEY, "203.0.113.45").await.0);
    assert_eq!(error.kind(), "unavailable");
    assert_eq!(error.to_string(), "unavailable: HTTP 502 (HTML page)");
}

// ---------------------------------------------------------------------------------------------
// Both

#[tokio::test]
async fn html_200_is_an_invalid_response_not_an_answer() {
    let vt_error = error_of(vt(html_answer(200), VT_KEY, "203.0.113.45").await.0);
    let abuse_error = error_of(abuse(html_answer(200), ABUSE_KEY, "203.0.113.45").await.0);
    for error in [vt_error, abuse_error] {
        assert_eq!(error.kind(), "invalid_response");
        assert!(
            error
                .to_string()
                .contains("HTML page where JSON was expected"),
            "{error}"
        );
    }
    // An HTML 403 (bot challenge) is not a key problem either.
    let error = error_of(vt(html_answer(403), VT_KEY, "203.0.113.45").await.0);
    assert_eq!(error.kind(), "invalid_response");
    // JSON content type but not JSON.
    let mut garbage = json_answer(200, json!(null));
    garbage.body = "{not json".to_owned();
    let error = error_of(abuse(garbage, ABUSE_KEY, "203.0.113.45").await.0);
    assert_eq!(
        error.to_string(),
        "invalid response: HTTP 200 with a body that is not JSON"
    );
}

#[tokio::test]
async fn a_provider_that_never_answers_ends_at_the_configured_timeout() {
    let timeout = Duration::from_millis(300);
    let vt_mock = Mock::start(&VIRUSTOTAL, no_answer()).await;
    let abuse_mock = Mock::start(&ABUSEIPDB, no_answer()).await;
    let vt = VirusTotal::new(&settings(&vt_mock.base_url(&VIRUSTOTAL), VT_KEY, timeout)).unwrap();
    let abuse = AbuseIpDb::new(&settings(
        &abuse_mock.base_url(&ABUSEIPDB),
        ABUSE_KEY,
        timeout,
    ))
    .unwrap();
    // The mocks hold every request open: only the client's own timeout can end these lookups.
    // The deadline is only there so a client without one fails instead of hanging.
    let (vt_result, abuse_result) = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::join!(
            vt.lookup(ip("203.0.113.45")),
            abuse.lookup(ip("203.0.113.45"))
        )
    })
    .await
    .expect("a lookup against a mock that never answers did not end: timeout not applied");
    for result in [vt_result, abuse_result] {
        let entry = intel_entry(&result);
        assert_eq!(error_of(result), ProviderError::Timeout(timeout));
        assert_eq!(entry.status, ProviderStatus::Timeout);
    }
}

#[tokio::test]
async fn connection_refused_is_unavailable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let vt = VirusTotal::new(&settings(&url, VT_KEY, Duration::from_secs(2))).unwrap();
    let abuse = AbuseIpDb::new(&settings(&url, ABUSE_KEY, Duration::from_secs(2))).unwrap();
    for result in [
        vt.lookup(ip("203.0.113.45")).await,
        abuse.lookup(ip("203.0.113.45")).await,
    ] {
        let error = error_of(result);
        assert_eq!(
            error,
            ProviderError::Unavailable("connection failed".into())
        );
    }
}

#[tokio::test]
async fn a_key_echoed_by_the_server_is_redacted() {
    let vt_body =
        json!({"error": {"code": "BadRequestError", "message": format!("key {VT_KEY} is odd")}});
    let error = error_of(
        vt(json_answer(400, vt_body), VT_KEY, "203.0.113.45")
            .await
            .0,
    );
    assert!(error.to_string().contains("<redacted>"), "{error}");

    let abuse_body =
        json!({"errors": [{"detail": format!("key {ABUSE_KEY} is odd"), "status": 418}]});
    let error = error_of(
        abuse(json_answer(418, abuse_body), ABUSE_KEY, "203.0.113.45")
            .await
            .0,
    );
    assert!(error.to_string().contains("<redacted>"), "{error}");

    // A key straddling the 120-character cut: redaction runs before the cut, so no part of
    // the key survives it.
    let long = format!("{}{ABUSE_KEY}", "x".repeat(100));
    let abuse_body = json!({"errors": [{"detail": long, "status": 418}]});
    let error = error_of(
        abuse(json_answer(418, abuse_body), ABUSE_KEY, "203.0.113.45")
            .await
            .0,
    );
    assert!(!error.to_string().contains(&ABUSE_KEY[..8]), "{error}");
}

#[tokio::test]
async fn redirects_are_not_followed_so_the_key_never_travels() {
    let (elsewhere, seen_elsewhere) = mock(&VIRUSTOTAL, json_answer(200, vt_full_report())).await;
    let location: &'static str =
        Box::leak(format!("{elsewhere}/api/v3/ip_addresses/203.0.113.45").into_boxed_str());
    let mut redirect = json_answer(302, json!({}));
    redirect.headers = vec![("location", location)];
    let error = error_of(vt(redirect.clone(), VT_KEY, "203.0.113.45").await.0);
    assert_eq!(
        error.to_string(),
        "invalid response: HTTP 302 redirect, not followed (the API key is never sent elsewhere)"
    );
    let error = error_of(abuse(redirect, ABUSE_KEY, "203.0.113.45").await.0);
    assert_eq!(error.kind(), "invalid_response");
    assert!(seen_elsewhere.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_bad_base_url_is_a_settings_error_naming_the_key() {
    let error =
        VirusTotal::new(&settings("ftp://127.0.0.1", VT_KEY, Duration::from_secs(1))).unwrap_err();
    assert!(
        error.to_string().contains("providers.virustotal.base_url"),
        "{error}"
    );
    let error =
        AbuseIpDb::new(&settings("not a url", ABUSE_KEY, Duration::from_secs(1))).unwrap_err();
    assert!(
        error.to_string().contains("providers.abuseipdb.base_url"),
        "{error}"
    );
}

// ---------------------------------------------------------------------------------------------
// The shared mock itself: strict about method and path, so a wrong URL cannot pass a test.

#[tokio::test]
async fn the_mock_serves_only_its_route_and_fails_the_test_on_anything_else() {
    let vt = Mock::start(&VIRUSTOTAL, json_answer(200, vt_full_report())).await;
    let abuse = Mock::start(&ABUSEIPDB, json_answer(200, abuse_check_report())).await;
    let client = reqwest::Client::new();
    let status = |request: reqwest::RequestBuilder| async move {
        request
            .send()
            .await
            .expect("the mock answers")
            .status()
            .as_u16()
    };
    let vt_get = |path: &str| client.get(format!("{}{path}", vt.url));
    assert_eq!(
        status(vt_get("/api/v3/ip_addresses/203.0.113.45")).await,
        200
    );
    assert_eq!(
        status(vt_get("/api/v3/ip_addresses/2001:db8::45")).await,
        200
    );
    // Another path, an address not in canonical text, another method.
    assert_eq!(status(vt_get("/api/v3/ip_address/203.0.113.45")).await, 404);
    assert_eq!(
        status(vt_get("/api/v3/ip_addresses/2001:0db8::45")).await,
        404
    );
    assert_eq!(
        status(vt_get("/api/v3/ip_addresses/2001%3Adb8%3A%3A45")).await,
        404
    );
    let post = client.post(format!("{}/api/v3/ip_addresses/203.0.113.45", vt.url));
    assert_eq!(status(post).await, 405);
    // AbuseIPDB's address is a query parameter; without it the request is not the API's.
    let abuse_get = |path: &str| client.get(format!("{}{path}", abuse.url));
    let check = "/api/v2/check?ipAddress=2001%3Adb8%3A%3A45&maxAgeInDays=90";
    assert_eq!(status(abuse_get(check)).await, 200);
    assert_eq!(
        status(abuse_get("/api/v2/check?maxAgeInDays=90")).await,
        404
    );

    assert_eq!(vt.asked(), ["203.0.113.45", "2001:db8::45"]);
    assert_eq!(abuse.asked(), ["2001:db8::45"]);
    assert_eq!(
        vt.seen.unexpected(),
        [
            "GET /api/v3/ip_address/203.0.113.45",
            "GET /api/v3/ip_addresses/2001:0db8::45",
            "GET /api/v3/ip_addresses/2001%3Adb8%3A%3A45",
            "POST /api/v3/ip_addresses/203.0.113.45",
        ]
    );
    assert_eq!(
        abuse.seen.unexpected(),
        ["GET /api/v2/check?maxAgeInDays=90"]
    );
    // Dropping the log at the end of a test fails it, naming the stray requests.
    for mock in [vt, abuse] {
        let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(mock)));
        let message = *dropped
            .expect_err("the drop let stray requests pass")
            .downcast::<String>()
            .unwrap();
        assert!(message.contains("serves only"), "{message}");
    }
}

#[tokio::test]
async fn the_mock_asks_otx_for_the_family_of_the_address() {
    let otx = Mock::start(&OTX, json_answer(200, json!({}))).await;
    let client = reqwest::Client::new();
    for (path, status) in [
        ("/api/v1/indicators/IPv4/203.0.113.45/general", 200),
        ("/api/v1/indicators/IPv6/2001:db8::45/general", 200),
        ("/api/v1/indicators/IPv6/203.0.113.45/general", 404),
        ("/api/v1/indicators/IPv4/2001:db8::45/general", 404),
    ] {
        let response = client.get(format!("{}{path}", otx.url)).send().await;
        assert_eq!(response.unwrap().status().as_u16(), status, "{path}");
    }
    assert_eq!(otx.asked(), ["203.0.113.45", "2001:db8::45"]);
    // Sent on purpose here; left in the log they would fail the test.
    assert_eq!(otx.seen.take_unexpected().len(), 2);
}

#[test]
fn the_mocked_apis_sit_under_the_shipped_base_urls() {
    let defaults = threatsift::Settings::from_toml_overrides("").unwrap();
    for api in [VIRUSTOTAL, ABUSEIPDB, GREYNOISE, OTX, INTERNETDB] {
        let base = &defaults.providers.get(api.name).unwrap().base_url;
        let url = reqwest::Url::parse(base).unwrap();
        assert_eq!(
            url.path().trim_end_matches('/'),
            api.base_path,
            "{}",
            api.name
        );
        assert!(api.route.path.starts_with(api.base_path), "{}", api.name);
    }
}

// ---------------------------------------------------------------------------------------------
// Through the binary: each address gets its own answers, in a record valid against the schema.

/// VirusTotal's report on `ip`: `malicious` engines flag it.
fn vt_report_on(ip: std::net::IpAddr, malicious: u64) -> Value {
    let mut report = vt_full_report();
    report["data"]["id"] = json!(ip.to_string());
    report["data"]["links"]["self"] = json!(format!(
        "https://www.virustotal.com/api/v3/ip_addresses/{ip}"
    ));
    report["data"]["attributes"]["last_analysis_stats"]["malicious"] = json!(malicious);
    report
}

/// AbuseIPDB's report on `ip` with this confidence score.
fn abuse_report_on(ip: std::net::IpAddr, confidence: u64) -> Value {
    let mut report = abuse_check_report();
    report["data"]["ipAddress"] = json!(ip.to_string());
    report["data"]["abuseConfidenceScore"] = json!(confidence);
    report
}

#[test]
fn enrich_gives_each_address_its_own_answers_in_a_valid_record() {
    // (address, VirusTotal engines flagging it, AbuseIPDB confidence)
    const ANSWERS: [(&str, u64, u64); 2] = [("203.0.113.45", 9, 12), ("198.51.100.7", 2, 96)];
    let answer = |ip: std::net::IpAddr| {
        ANSWERS
            .iter()
            .find(|(a, _, _)| ip.to_string() == *a)
            .copied()
            .unwrap_or_else(|| panic!("{ip} was not asked for"))
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let vt = runtime.block_on(Mock::by_address(&VIRUSTOTAL, move |ip| {
        json_answer(200, vt_report_on(ip, answer(ip).1))
    }));
    let abuse = runtime.block_on(Mock::by_address(&ABUSEIPDB, move |ip| {
        json_answer(200, abuse_report_on(ip, answer(ip).2))
    }));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("enrich.toml");
    std::fs::write(
        &config,
        format!(
            "feeds = []\n[filter]\nallow_documentation_ranges = true\n\
             [providers.virustotal]\nenabled = true\nbase_url = \"{}\"\napi_key = \"{VT_KEY}\"\n\
             [providers.abuseipdb]\nenabled = true\nbase_url = \"{}\"\napi_key = \"{ABUSE_KEY}\"\n",
            vt.base_url(&VIRUSTOTAL),
            abuse.base_url(&ABUSEIPDB),
        ),
    )
    .unwrap();
    let mut args = vec!["enrich", "--config", config.to_str().unwrap()];
    args.extend(ANSWERS.iter().map(|(a, _, _)| *a));
    let out = common::threatsift(&args, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let records = common::output_records(&stdout);
    assert_eq!(records.len(), ANSWERS.len(), "{stdout}");
    for (record, (address, engines, confidence)) in records.iter().zip(ANSWERS) {
        assert_eq!(record["ip"], address);
        let intel = &record["intel"];
        assert_eq!(intel["virustotal"]["status"], "ok", "{record:#}");
        assert_eq!(
            intel["virustotal"]["last_analysis_stats"]["malicious"], engines,
            "{record:#}"
        );
        assert_eq!(intel["abuseipdb"]["status"], "ok", "{record:#}");
        assert_eq!(
            intel["abuseipdb"]["abuse_confidence_score"], confidence,
            "{record:#}"
        );
    }
    let mut asked = vt.asked();
    asked.sort();
    assert_eq!(asked, ["198.51.100.7", "203.0.113.45"]);
    let mut asked = abuse.asked();
    asked.sort();
    assert_eq!(asked, ["198.51.100.7", "203.0.113.45"]);

    // The helper lets no record through that the schema refuses (a score above 100).
    let mut broken = records[0].clone();
    broken["score"] = json!(101);
    let refused = std::panic::catch_unwind(|| common::output_records(&broken.to_string()));
    assert!(refused.is_err(), "a record scoring 101 passed: {broken}");
}
