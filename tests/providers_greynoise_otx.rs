//! The GreyNoise Community and AlienVault OTX clients against local axum mocks serving each
//! API's response shapes and error bodies (reference: providers.md §6, §7, §10 and the
//! mock-server checklist). Every scenario checks the resulting status and detail, what the
//! mock saw (path, headers), and that the API key appears in no error text, `Debug` output or
//! `intel` detail.

mod mock_api;

use mock_api::*;

use std::time::Duration;

use serde_json::{json, Value};

use threatsift::GreyNoise;
use threatsift::Otx;
use threatsift::{intel_entry, Lookup, Provider, ProviderError};
use threatsift::{Network, ProviderStatus};

/// A GreyNoise-looking key.
const GN_KEY: &str = "gnK3yAbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefGHIJ";
/// An OTX-looking key (64 hex characters).
const OTX_KEY: &str = "9a8b7c6d5e4f30211203f4e5d6c7b8a99a8b7c6d5e4f30211203f4e5d6c7b8a9";

const NOT_OBSERVED: &str = "IP not observed scanning the internet or contained in RIOT data set.";

/// Looks `address` up on a GreyNoise mock answering `canned`.
async fn greynoise(
    canned: Canned,
    key: &str,
    address: &str,
) -> (Result<Lookup, ProviderError>, Vec<Seen>) {
    lookup_once(GreyNoise::new, &GREYNOISE, GN_KEY, canned, key, address).await
}

/// Looks `address` up on an OTX mock answering `canned`.
async fn otx(
    canned: Canned,
    key: &str,
    address: &str,
) -> (Result<Lookup, ProviderError>, Vec<Seen>) {
    lookup_once(Otx::new, &OTX, OTX_KEY, canned, key, address).await
}

// ---------------------------------------------------------------------------------------------
// GreyNoise

#[tokio::test]
async fn greynoise_noise_malicious_gives_the_scored_facts_and_sends_the_key_header() {
    let body = json!({"ip": "203.0.113.45", "noise": true, "riot": false,
        "classification": "malicious", "name": "unknown",
        "link": "https://viz.greynoise.io/ip/203.0.113.45", "last_seen": "2026-01-04",
        "message": "Success"});
    let (result, seen) = greynoise(json_answer(200, body), GN_KEY, "203.0.113.45").await;
    let entry = intel_entry(&result);
    let (facts, network) = facts_of(result);
    assert_eq!(
        facts,
        json!({"noise": true, "riot": false, "classification": "malicious", "name": "unknown",
               "link": "https://viz.greynoise.io/ip/203.0.113.45", "last_seen": "2026-01-04"})
    );
    assert_eq!(network, Network::default());
    assert_eq!((entry.status, entry.detail), (ProviderStatus::Ok, None));
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path_and_query, "/v3/community/203.0.113.45");
    assert_eq!(header(&seen[0], "key"), Some(GN_KEY));
    assert_eq!(header(&seen[0], "accept"), Some("application/json"));
}

#[tokio::test]
async fn greynoise_riot_benign_is_an_answer() {
    let body = json!({"ip": "198.51.100.53", "noise": false, "riot": true,
        "classification": "benign", "name": "Google Public DNS",
        "link": "https://viz.greynoise.io/riot/198.51.100.53", "last_seen": "2026-01-05",
        "message": "Success"});
    let (result, _) = greynoise(json_answer(200, body), GN_KEY, "198.51.100.53").await;
    let (facts, _) = facts_of(result);
    assert_eq!(facts["riot"], json!(true));
    assert_eq!(facts["classification"], json!("benign"));
    assert_eq!(facts["name"], json!("Google Public DNS"));
}

#[tokio::test]
async fn greynoise_not_observed_is_an_answer_not_an_error() {
    let body =
        json!({"ip": "198.51.100.7", "noise": false, "riot": false, "message": NOT_OBSERVED});
    let (result, seen) = greynoise(json_answer(404, body.clone()), GN_KEY, "198.51.100.7").await;
    assert_eq!(result, Ok(Lookup::NotFound));
    assert_eq!(intel_entry(&result).status, ProviderStatus::NotFound);
    assert_eq!(seen.len(), 1);
    // The same answer with a 200 status is still "not observed".
    let (result, _) = greynoise(json_answer(200, body), GN_KEY, "198.51.100.7").await;
    assert_eq!(result, Ok(Lookup::NotFound));
}

#[tokio::test]
async fn greynoise_404_that_is_not_its_answer_is_an_invalid_response() {
    // What a wrong base_url gets: never cached as "nothing known".
    let (result, _) = greynoise(
        json_answer(404, json!({"detail": "Not Found"})),
        GN_KEY,
        "198.51.100.7",
    )
    .await;
    let error = error_of(result);
    assert_eq!(error.kind(), "invalid_response");
    assert!(error.to_string().contains("check base_url"), "{error}");
}

#[tokio::test]
async fn greynoise_400_non_routable_is_an_invalid_response_with_its_message() {
    let body = json!({"message": "Request is not a valid routable IPv4 address"});
    let error = error_of(
        greynoise(json_answer(400, body), GN_KEY, "203.0.113.45")
            .await
            .0,
    );
    assert_eq!(
        error.to_string(),
        "invalid response: GreyNoise refused the address (HTTP 400): Request is not a valid routable IPv4 address"
    );
}

#[tokio::test]
async fn greynoise_401_is_unauthorized_and_says_whether_a_key_was_sent() {
    let body = json!({"message": "Forbidden"});
    let (sent, seen) = greynoise(json_answer(401, body.clone()), GN_KEY, "203.0.113.45").await;
    assert_eq!(header(&seen[0], "key"), Some(GN_KEY));
    let sent = error_of(sent);
    assert_eq!(sent.kind(), "unauthorized");
    assert_eq!(
        sent.to_string(),
        "unauthorized: GreyNoise rejected the configured API key (HTTP 401); check the key"
    );
    let (unsent, seen) = greynoise(json_answer(401, body), "", "203.0.113.45").await;
    assert_eq!(header(&seen[0], "key"), None);
    let unsent = error_of(unsent);
    assert_eq!(unsent.kind(), "unauthorized");
    assert!(
        unsent.to_string().contains("no API key is configured"),
        "{unsent}"
    );
}

#[tokio::test]
async fn greynoise_429_with_the_plan_body_is_quota_exhausted() {
    let body = json!({"plan": "unauthenticated", "rate-limit": "10 IP lookups/day",
        "plan_url": "https://greynoise.io/pricing",
        "message": "You have hit your daily rate limit of 10 requests per day. Please create a free account or upgrade your plan at https://greynoise.io/pricing."});
    let (result, seen) = greynoise(json_answer(429, body), "", "203.0.113.45").await;
    assert_eq!(header(&seen[0], "key"), None);
    let entry = intel_entry(&result);
    let error = error_of(result);
    assert_eq!(entry.status, ProviderStatus::QuotaExhausted);
    assert_eq!(
        error.to_string(),
        "quota exhausted: GreyNoise lookup allowance of the unauthenticated plan spent \
         (10 IP lookups/day); no API key is configured"
    );

    let mut throttle = json_answer(429, json!({"message": "Too Many Requests"}));
    throttle.headers = vec![("retry-after", "30")];
    let error = error_of(greynoise(throttle, GN_KEY, "203.0.113.45").await.0);
    assert_eq!(
        error.to_string(),
        "rate limited: GreyNoise throttled the request (HTTP 429); retry after 30 s"
    );
}

#[tokio::test]
async fn greynoise_without_a_key_sends_no_key_header_and_still_answers() {
    let body = json!({"ip": "203.0.113.45", "noise": true, "riot": false,
        "classification": "benign", "name": "Example Research Scanner",
        "link": "https://viz.greynoise.io/ip/203.0.113.45", "last_seen": "2026-01-04",
        "message": "Success"});
    let (result, seen) = greynoise(json_answer(200, body), "", "203.0.113.45").await;
    assert_eq!(facts_of(result).0["classification"], json!("benign"));
    assert_eq!(header(&seen[0], "key"), None);
    assert_eq!(seen[0].path_and_query, "/v3/community/203.0.113.45");
}

#[tokio::test]
async fn greynoise_ipv6_is_not_sent_and_mapped_ipv4_is_asked_as_ipv4() {
    let body = json!({"ip": "203.0.113.45", "noise": true, "riot": false,
        "classification": "malicious"});
    let (result, seen) = greynoise(json_answer(200, body.clone()), GN_KEY, "2001:db8::45").await;
    assert_eq!(result, Ok(Lookup::NotFound));
    assert!(
        seen.is_empty(),
        "an IPv6 lookup reached GreyNoise: {seen:?}"
    );
    assert!(!GreyNoise::covers(ip("2001:db8::45")));

    let (result, seen) = greynoise(json_answer(200, body), GN_KEY, "::ffff:203.0.113.45").await;
    assert_eq!(facts_of(result).0["classification"], json!("malicious"));
    assert_eq!(seen[0].path_and_query, "/v3/community/203.0.113.45");
}

#[tokio::test]
async fn greynoise_html_and_5xx_are_not_answers() {
    let error = error_of(greynoise(html_answer(200), GN_KEY, "203.0.113.45").await.0);
    assert_eq!(error.kind(), "invalid_response");
    // A bot-challenge 403 is not a key problem.
    let error = error_of(greynoise(html_answer(403), GN_KEY, "203.0.113.45").await.0);
    assert_eq!(error.kind(), "invalid_response");
    let error = error_of(
        greynoise(
            json_answer(503, json!({"message": "upstream"})),
            GN_KEY,
            "203.0.113.45",
        )
        .await
        .0,
    );
    assert_eq!(error.to_string(), "unavailable: HTTP 503");
    // A JSON 200 that is not a community answer.
    let error = error_of(
        greynoise(
            json_answer(200, json!({"data": []})),
            GN_KEY,
            "203.0.113.45",
        )
        .await
        .0,
    );
    assert_eq!(
        error.to_string(),
        "invalid response: GreyNoise 200 without noise or riot flags"
    );
}

// ---------------------------------------------------------------------------------------------
// OTX

fn otx_pulse(name: &str) -> Value {
    json!({"id": "65a1b2c3d4e5f60718293a4b", "name": name,
        "description": "IPs seen brute-forcing SSH honeypots.", "created": "2026-01-02T08:15:00.123000",
        "modified": "2026-01-04T22:00:10.456000", "tags": ["honeypot", "ssh", "bruteforce"],
        "references": [], "TLP": "white", "adversary": "", "targeted_countries": [],
        "malware_families": [], "attack_ids": [
            {"id": "T1110", "name": "Brute Force", "display_name": "T1110 - Brute Force"}],
        "industries": [], "author": {"username": "example-honeypot", "id": "4242", "avatar_url": "",
            "is_subscribed": false, "is_following": false},
        "indicator_count": 812})
}

fn otx_general(pulses: Vec<Value>, count: u64, validation: Value) -> Value {
    json!({
      "indicator": "203.0.113.45", "type": "IPv4", "type_title": "IPv4",
      "sections": ["general", "geo", "reputation", "url_list", "passive_dns", "malware", "nids_list", "http_scans"],
      "base_indicator": {"id": 3100000001u64, "indicator": "203.0.113.45", "type": "IPv4", "title": "",
                         "description": "", "content": "", "access_type": "public", "access_reason": ""},
      "pulse_info": {
        "count": count,
        "pulses": pulses,
        "references": [],
        "related": {"alienvault": {"adversary": [], "malware_families": [], "industries": []},
                    "other": {"adversary": [], "malware_families": [], "industries": []}}
      },
      "false_positive": [], "validation": validation, "reputation": 0,
      "asn": "AS64500 Example Hosting Ltd", "country_code": "NL", "country_code3": "NLD",
      "country_name": "Netherlands", "continent_code": "EU", "city": "Amsterdam", "region": "NH",
      "latitude": 52.37, "longitude": 4.89, "accuracy_radius": 100,
      "flag_url": "/assets/images/flags/nl.png", "flag_title": "Netherlands",
      "whois": "http://whois.domaintools.com/203.0.113.45"
    })
}

#[tokio::test]
async fn otx_pulses_give_the_scored_facts_asn_from_its_string_and_send_the_key_header() {
    // `count` is the total; the pulse list is truncated relative to it.
    let body = otx_general(
        vec![
            otx_pulse("SSH honeypot attackers - January 2026"),
            otx_pulse("Brute force sources"),
        ],
        7,
        json!([]),
    );
    let (result, seen) = otx(json_answer(200, body), OTX_KEY, "203.0.113.45").await;
    let (facts, network) = facts_of(result);
    assert_eq!(
        facts,
        json!({
            "pulse_count": 7,
            "pulse_names": ["Brute force sources", "SSH honeypot attackers - January 2026"],
            "validation": [],
            "reputation": 0,
            "country_code": "NL",
            "asn": 64500,
        })
    );
    assert_eq!(
        network,
        Network {
            asn: Some(64500),
            as_org: Some("Example Hosting Ltd".into()),
            country: Some("NL".into()),
            rir: None,
            cidr: None,
        }
    );
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].path_and_query,
        "/api/v1/indicators/IPv4/203.0.113.45/general"
    );
    assert_eq!(header(&seen[0], "x-otx-api-key"), Some(OTX_KEY));
    assert_eq!(header(&seen[0], "accept"), Some("application/json"));
}

#[tokio::test]
async fn otx_pulse_names_are_distinct_sorted_and_capped() {
    let mut pulses: Vec<Value> = (0..15)
        .rev()
        .map(|i| otx_pulse(&format!("Pulse {i:02}")))
        .collect();
    pulses.push(otx_pulse("Pulse 03"));
    let (result, _) = otx(
        json_answer(200, otx_general(pulses, 16, json!([]))),
        OTX_KEY,
        "203.0.113.45",
    )
    .await;
    let (facts, _) = facts_of(result);
    let expected: Vec<String> = (0..10).map(|i| format!("Pulse {i:02}")).collect();
    assert_eq!(facts["pulse_names"], json!(expected));
    assert_eq!(facts["pulse_count"], json!(16));
}

#[tokio::test]
async fn otx_validation_whitelist_entry_is_kept_with_no_pulses() {
    let validation = json!([{"source": "whitelist", "message": "contained in whitelisted prefix",
                             "name": "Whitelisted IP"}]);
    let (result, _) = otx(
        json_answer(200, otx_general(vec![], 0, validation)),
        OTX_KEY,
        "203.0.113.45",
    )
    .await;
    let entry = intel_entry(&result);
    assert_eq!(entry.status, ProviderStatus::Ok);
    let (facts, _) = facts_of(result);
    assert_eq!(
        facts["validation"],
        json!([{"name": "Whitelisted IP", "source": "whitelist"}])
    );
    assert_eq!(
        (facts["pulse_count"].clone(), facts["pulse_names"].clone()),
        (json!(0), json!([]))
    );
}

#[tokio::test]
async fn otx_403_is_a_rejected_key_and_says_whether_one_was_sent() {
    let body = json!({"detail": "Authentication credentials were not provided."});
    let (sent, seen) = otx(json_answer(403, body.clone()), OTX_KEY, "203.0.113.45").await;
    assert_eq!(header(&seen[0], "x-otx-api-key"), Some(OTX_KEY));
    let sent = error_of(sent);
    assert_eq!(sent.kind(), "unauthorized");
    assert_eq!(
        sent.to_string(),
        "unauthorized: OTX rejected the configured API key (HTTP 403); check the key"
    );
    let (unsent, seen) = otx(json_answer(403, body), "", "203.0.113.45").await;
    assert_eq!(header(&seen[0], "x-otx-api-key"), None);
    let unsent = error_of(unsent);
    assert_eq!(unsent.kind(), "unauthorized");
    assert!(
        unsent.to_string().contains("no API key is configured"),
        "{unsent}"
    );
}

#[tokio::test]
async fn otx_404_is_an_answer_not_an_error() {
    let (result, _) = otx(
        json_answer(404, json!({"detail": "Not found."})),
        OTX_KEY,
        "203.0.113.45",
    )
    .await;
    assert_eq!(result, Ok(Lookup::NotFound));
    assert_eq!(intel_entry(&result).status, ProviderStatus::NotFound);
}

#[tokio::test]
async fn otx_429_is_rate_limited_with_any_hint_sent() {
    let mut throttled = json_answer(
        429,
        json!({"detail": "Request was throttled. Expected available in 60 seconds."}),
    );
    throttled.headers = vec![("retry-after", "60")];
    let (result, _) = otx(throttled, OTX_KEY, "203.0.113.45").await;
    let entry = intel_entry(&result);
    assert_eq!(entry.status, ProviderStatus::RateLimited);
    assert_eq!(
        error_of(result).to_string(),
        "rate limited: OTX throttled the request (HTTP 429); retry after 60 s"
    );
    let error = error_of(otx(json_answer(429, json!({})), "", "203.0.113.45").await.0);
    assert_eq!(
        error.to_string(),
        "rate limited: OTX throttled the request (HTTP 429); no API key is configured"
    );
}

#[tokio::test]
async fn otx_ipv6_uses_the_ipv6_section_and_mapped_ipv4_the_ipv4_one() {
    let body = otx_general(vec![otx_pulse("v6 scanners")], 1, json!([]));
    // Each answer names the address asked.
    let mut v6_body = body.clone();
    v6_body["indicator"] = json!("2001:db8::45");
    v6_body["type"] = json!("IPv6");
    let (result, seen) = otx(json_answer(200, v6_body), OTX_KEY, "2001:db8::45").await;
    assert_eq!(facts_of(result).0["pulse_count"], json!(1));
    assert_eq!(
        seen[0].path_and_query,
        "/api/v1/indicators/IPv6/2001:db8::45/general"
    );
    let (_, seen) = otx(json_answer(200, body), OTX_KEY, "::ffff:203.0.113.45").await;
    assert_eq!(
        seen[0].path_and_query,
        "/api/v1/indicators/IPv4/203.0.113.45/general"
    );
}

#[tokio::test]
async fn otx_without_a_key_sends_no_key_header_and_odd_asns_are_left_out() {
    let mut body = otx_general(vec![], 0, json!([]));
    body["asn"] = json!("unknown");
    body["country_code"] = Value::Null;
    let (result, seen) = otx(json_answer(200, body), "", "203.0.113.45").await;
    assert_eq!(header(&seen[0], "x-otx-api-key"), None);
    let (facts, network) = facts_of(result);
    assert!(!facts.as_object().unwrap().contains_key("asn"), "{facts}");
    assert!(!facts.as_object().unwrap().contains_key("country_code"));
    assert_eq!(network, Network::default());
}

#[tokio::test]
async fn otx_unreadable_answers_are_invalid_or_unavailable() {
    let error = error_of(otx(html_answer(200), OTX_KEY, "203.0.113.45").await.0);
    assert_eq!(error.kind(), "invalid_response");
    let error = error_of(otx(html_answer(403), OTX_KEY, "203.0.113.45").await.0);
    assert_eq!(error.kind(), "invalid_response");
    let error = error_of(otx(html_answer(502), OTX_KEY, "203.0.113.45").await.0);
    assert_eq!(error.to_string(), "unavailable: HTTP 502 (HTML page)");
    let error = error_of(
        otx(
            json_answer(200, json!({"indicator": "203.0.113.45"})),
            OTX_KEY,
            "203.0.113.45",
        )
        .await
        .0,
    );
    assert_eq!(
        error.to_string(),
        "invalid response: OTX 200 without a pulse_info object"
    );
    let error = error_of(
        otx(
            json_answer(400, json!({"detail": "Invalid indicator"})),
            OTX_KEY,
            "203.0.113.45",
        )
        .await
        .0,
    );
    assert_eq!(
        error.to_string(),
        "invalid response: OTX answered HTTP 400 (Invalid indicator)"
    );
}

// ---------------------------------------------------------------------------------------------
// Both

#[tokio::test]
async fn a_provider_that_never_answers_ends_at_the_configured_timeout() {
    let timeout = Duration::from_millis(300);
    let gn_mock = Mock::start(&GREYNOISE, no_answer()).await;
    let otx_mock = Mock::start(&OTX, no_answer()).await;
    let gn = GreyNoise::new(&settings(&gn_mock.base_url(&GREYNOISE), GN_KEY, timeout)).unwrap();
    let otx = Otx::new(&settings(&otx_mock.base_url(&OTX), OTX_KEY, timeout)).unwrap();
    // The mocks hold every request open: only the client's own timeout can end these lookups.
    // The deadline is only there so a client without one fails instead of hanging.
    let (gn_result, otx_result) = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::join!(
            gn.lookup(ip("203.0.113.45")),
            otx.lookup(ip("203.0.113.45"))
        )
    })
    .await
    .expect("a lookup against a mock that never answers did not end: timeout not applied");
    for result in [gn_result, otx_result] {
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
    let gn = GreyNoise::new(&settings(&url, GN_KEY, Duration::from_secs(2))).unwrap();
    let otx = Otx::new(&settings(&url, OTX_KEY, Duration::from_secs(2))).unwrap();
    for result in [
        gn.lookup(ip("203.0.113.45")).await,
        otx.lookup(ip("203.0.113.45")).await,
    ] {
        assert_eq!(
            error_of(result),
            ProviderError::Unavailable("connection failed".into())
        );
    }
}

#[tokio::test]
async fn a_key_echoed_by_the_server_is_redacted() {
    let body = json!({"message": format!("key {GN_KEY} is odd")});
    let error = error_of(
        greynoise(json_answer(418, body), GN_KEY, "203.0.113.45")
            .await
            .0,
    );
    assert!(error.to_string().contains("<redacted>"), "{error}");

    let body = json!({"plan": format!("plan-{GN_KEY}"), "rate-limit": GN_KEY});
    let error = error_of(
        greynoise(json_answer(429, body), GN_KEY, "203.0.113.45")
            .await
            .0,
    );
    assert_eq!(error.kind(), "quota_exhausted");
    assert!(error.to_string().contains("<redacted>"), "{error}");

    let body = json!({"detail": format!("key {OTX_KEY} is odd")});
    let error = error_of(otx(json_answer(418, body), OTX_KEY, "203.0.113.45").await.0);
    assert!(error.to_string().contains("<redacted>"), "{error}");

    // A key straddling the 120-character cut leaves no part behind.
    let body = json!({"detail": format!("{}{OTX_KEY}", "x".repeat(100))});
    let error = error_of(otx(json_answer(400, body), OTX_KEY, "203.0.113.45").await.0);
    assert!(!error.to_string().contains(&OTX_KEY[..8]), "{error}");
}

#[tokio::test]
async fn redirects_are_not_followed_so_the_key_never_travels() {
    // Serves nothing: any request that reaches it fails the test.
    let elsewhere = Mock::serve(&[], |_| json_answer(200, json!({}))).await;
    let location: &'static str = Box::leak(format!("{}/anywhere", elsewhere.url).into_boxed_str());
    let mut redirect = json_answer(302, json!({}));
    redirect.headers = vec![("location", location)];
    let error = error_of(greynoise(redirect.clone(), GN_KEY, "203.0.113.45").await.0);
    assert_eq!(error.kind(), "invalid_response");
    let error = error_of(otx(redirect, OTX_KEY, "203.0.113.45").await.0);
    assert_eq!(error.kind(), "invalid_response");
    elsewhere.seen.assert_only_expected();
}

#[tokio::test]
async fn a_bad_base_url_is_a_settings_error_naming_the_key() {
    let error =
        GreyNoise::new(&settings("ftp://127.0.0.1", GN_KEY, Duration::from_secs(1))).unwrap_err();
    assert!(
        error.to_string().contains("providers.greynoise.base_url"),
        "{error}"
    );
    let error = Otx::new(&settings("not a url", OTX_KEY, Duration::from_secs(1))).unwrap_err();
    assert!(
        error.to_string().contains("providers.otx.base_url"),
        "{error}"
    );
}

#[tokio::test]
async fn default_settings_reach_the_documented_paths_and_scoring_reads_the_facts() {
    use std::collections::BTreeMap;
    use threatsift::Settings;
    use threatsift::{EvidenceInput, ScoringModel};

    let mut settings = Settings::from_toml_overrides("").unwrap();
    assert_eq!(
        settings.providers.get("greynoise").unwrap().base_url,
        "https://api.greynoise.io/v3/community"
    );
    assert_eq!(
        settings.providers.get("otx").unwrap().base_url,
        "https://otx.alienvault.com/api/v1"
    );
    let gn_body = json!({"ip": "203.0.113.45", "noise": true, "riot": false,
        "classification": "malicious", "last_seen": "2026-01-04", "message": "Success"});
    let (gn_url, gn_seen) = mock(&GREYNOISE, json_answer(200, gn_body)).await;
    let otx_body = otx_general(vec![otx_pulse("SSH honeypot attackers")], 7, json!([]));
    let (otx_url, otx_seen) = mock(&OTX, json_answer(200, otx_body)).await;
    settings.providers.get_mut("greynoise").unwrap().base_url = format!("{gn_url}/v3/community");
    settings.providers.get_mut("otx").unwrap().base_url = format!("{otx_url}/api/v1");
    let gn = GreyNoise::new(settings.providers.get("greynoise").unwrap()).unwrap();
    let otx = Otx::new(settings.providers.get("otx").unwrap()).unwrap();

    let address = ip("203.0.113.45");
    let mut intel = BTreeMap::new();
    intel.insert(
        "greynoise".to_owned(),
        intel_entry(&gn.lookup(address).await),
    );
    intel.insert("otx".to_owned(), intel_entry(&otx.lookup(address).await));
    assert_eq!(
        gn_seen.lock().unwrap()[0].path_and_query,
        "/v3/community/203.0.113.45"
    );
    assert_eq!(
        otx_seen.lock().unwrap()[0].path_and_query,
        "/api/v1/indicators/IPv4/203.0.113.45/general"
    );

    let model = ScoringModel::new(&settings.scoring, &settings.feeds);
    let reasons = model.evidence(&EvidenceInput {
        feed_matches: &[],
        intel: &intel,
        threat: None,
        reporter: None,
        sightings: 1,
    });
    let reasons: Vec<(&str, &str)> = reasons
        .iter()
        .map(|r| (r.source.as_str(), r.detail.as_str()))
        .collect();
    assert!(
        reasons.contains(&("greynoise", "GreyNoise classifies it malicious")),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&("otx", "listed in 7 OTX pulses")),
        "{reasons:?}"
    );
}
