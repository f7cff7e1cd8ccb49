//! The RDAP and Shodan InternetDB clients against the shared strict mocks (reference:
//! providers.md §4a–4c, §5 and the mock-server checklist): a mock IANA bootstrap and two mock
//! registries, one redirecting to the other, and an InternetDB mock. Each serves only its
//! API's routes, so a request to any other URL fails the test. Every scenario checks the
//! resulting status and facts and what the mocks saw.

mod mock_api;

use mock_api::{html_answer, ip, json_answer, no_answer, Canned, Mock, Route, INTERNETDB};

use std::time::Duration;

use serde_json::{json, Value};

use threatsift::InternetDb;
use threatsift::ProviderSettings;
use threatsift::Rdap;
use threatsift::{intel_entry, Lookup, Provider, ProviderError};
use threatsift::{Network, ProviderStatus};

fn rdap_answer(status: u16, body: Value) -> Canned {
    Canned {
        content_type: "application/rdap+json",
        ..json_answer(status, body)
    }
}

fn redirect(status: u16, location: String) -> Canned {
    Canned {
        status,
        content_type: "text/plain",
        body: String::new(),
        headers: vec![("location", Box::leak(location.into_boxed_str()))],
        delay: Duration::ZERO,
        gate: None,
    }
}

fn rdap_not_found() -> Canned {
    rdap_answer(
        404,
        json!({"errorCode": 404, "title": "Not Found",
               "description": ["No registration found for this address"]}),
    )
}

fn settings(base_url: &str, timeout: Duration) -> ProviderSettings {
    ProviderSettings {
        per_minute: threatsift::Allowance::Requests(60),
        ttl: Duration::from_secs(604_800),
        not_found_ttl: Duration::from_secs(86_400),
        ..mock_api::settings(base_url, "", timeout)
    }
}

/// The paths a mock was asked, in order.
fn paths(mock: &Mock) -> Vec<String> {
    mock.seen().iter().map(|s| s.path().to_owned()).collect()
}

fn error_of(result: Result<Lookup, ProviderError>) -> ProviderError {
    match result {
        Err(error) => error,
        Ok(answer) => panic!("expected an error, got {answer:?}"),
    }
}

fn found(result: Result<Lookup, ProviderError>) -> (Value, Network) {
    match result {
        Ok(Lookup::Found { facts, network }) => (Value::Object(facts), network),
        other => panic!("expected Found, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// RDAP

/// ARIN-style network: `cidr0_cidrs`, no country, abuse nested inside the registrant.
fn arin_network() -> Value {
    json!({
      "rdapConformance": ["nro_rdap_profile_0", "rdap_level_0", "cidr0", "arin_originas0"],
      "objectClassName": "ip network",
      "handle": "NET-203-0-113-0-1",
      "startAddress": "203.0.113.0",
      "endAddress": "203.0.113.255",
      "ipVersion": "v4",
      "name": "EXAMPLE-NET",
      "type": "DIRECT ALLOCATION",
      "parentHandle": "NET-203-0-0-0-0",
      "status": ["active"],
      "port43": "whois.arin.net",
      "cidr0_cidrs": [{"v4prefix": "203.0.113.0", "length": 24}],
      "arin_originas0_originautnums": [64500],
      "entities": [{
        "objectClassName": "entity", "handle": "EXH-1", "roles": ["registrant"],
        "vcardArray": ["vcard", [["version", {}, "text", "4.0"],
                                 ["fn", {}, "text", "Example Hosting Ltd"],
                                 ["kind", {}, "text", "org"],
                                 ["adr", {"label": "1 Example Way\nAmsterdam\nNL"}, "text",
                                  ["", "", "", "", "", "", ""]]]],
        "entities": [{
          "objectClassName": "entity", "handle": "ABUSE42-ARIN", "roles": ["abuse"],
          "vcardArray": ["vcard", [["version", {}, "text", "4.0"],
                                   ["fn", {}, "text", "Abuse Desk"],
                                   ["kind", {}, "text", "group"],
                                   ["email", {}, "text", "abuse@example-hosting.test"],
                                   ["tel", {"type": ["work", "voice"]}, "text", "+31-20-555-0100"]]]
        }]
      }]
    })
}

/// RIPE-style network: a range and no `cidr0_cidrs`, a country, remarks, a registrant without
/// vCard and a separate abuse entity.
fn ripe_network() -> Value {
    json!({
      "objectClassName": "ip network",
      "handle": "198.51.100.0 - 198.51.101.255",
      "startAddress": "198.51.100.0",
      "endAddress": "198.51.101.255",
      "ipVersion": "v4",
      "name": "EXAMPLE-TRANSFERRED",
      "type": "ASSIGNED PA",
      "country": "NL",
      "port43": "whois.ripe.net",
      "remarks": [{"description": ["Transferred from ARIN"]}],
      "entities": [
        {"objectClassName": "entity", "handle": "EX-MNT", "roles": ["registrant"]},
        {"objectClassName": "entity", "handle": "AR-EX", "roles": ["abuse"],
         "vcardArray": ["vcard", [["version", {}, "text", "4.0"],
                                  ["fn", {}, "text", "Abuse contact"],
                                  ["email", {}, "text", "abuse@transferred.test"]]]}
      ]
    })
}

fn ipv6_network() -> Value {
    json!({
      "objectClassName": "ip network",
      "handle": "2001:db8::/32",
      "startAddress": "2001:db8::",
      "endAddress": "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
      "ipVersion": "v6",
      "name": "EXAMPLE-V6",
      "type": "ALLOCATED-BY-RIR",
      "country": "DE",
      "port43": "whois.ripe.net",
      "cidr0_cidrs": [{"v6prefix": "2001:db8::", "length": 32}],
      "entities": [{"roles": ["registrant"], "vcardArray": ["vcard", [
        ["fn", {}, "text", "Example IPv6 GmbH"]]]}]
    })
}

/// The mocks: an IANA-like bootstrap directory and registries A (ARIN-like, under
/// `/registry/`) and B (RIPE-like, at the root). Each serves only its RDAP routes
/// (`GET {base}ip/{ip}`; the bootstrap `GET /rdap/ipv4.json` and `ipv6.json`, RFC 9224).
struct RdapMocks {
    bootstrap_url: String,
    bootstrap: Mock,
    a: Mock,
    b: Mock,
}

/// Bootstrap: `203.0.0.0/8` → B, but the longer `203.0.113.0/24` → A; `198.51.100.0/24` → A
/// (which redirects to B: a transferred range); IPv6 `2001::/16` → A but `2001:db8::/32` → B.
/// `bootstrap_status` lets a test make the bootstrap fail.
async fn rdap_mocks(bootstrap_status: u16) -> RdapMocks {
    let (a_bound, b_bound, boot_bound) =
        (Mock::bind().await, Mock::bind().await, Mock::bind().await);
    let (a_url, b_url, boot_url) = (
        a_bound.url.clone(),
        b_bound.url.clone(),
        boot_bound.url.clone(),
    );

    let to_b = b_url.clone();
    let a = a_bound.serve(&[Route::get("/registry/ip/{ip}")], move |seen| {
        match seen.path() {
            "/registry/ip/203.0.113.45" => rdap_answer(200, arin_network()),
            "/registry/ip/198.51.100.7" => redirect(301, format!("{to_b}/ip/198.51.100.7")),
            "/registry/ip/203.0.113.99" => redirect(302, format!("{to_b}/ip/203.0.113.99")),
            "/registry/ip/203.0.113.66" => html_answer(200),
            "/registry/ip/203.0.113.29" => Canned {
                headers: vec![("retry-after", "30")],
                ..rdap_answer(429, json!({"errorCode": 429, "title": "Too Many Requests"}))
            },
            "/registry/ip/203.0.113.50" => rdap_answer(503, json!({"errorCode": 503})),
            "/registry/ip/203.0.113.51" => rdap_answer(200, json!({"objectClassName": "autnum"})),
            "/registry/ip/203.0.113.52" => rdap_answer(302, json!({})),
            "/registry/ip/203.0.113.53" => Canned {
                content_type: "text/plain",
                body: "not found".to_owned(),
                ..rdap_not_found()
            },
            // The registry holds no other address.
            _ => rdap_not_found(),
        }
    });
    let to_a = a_url.clone();
    let b = b_bound.serve(&[Route::get("/ip/{ip}")], move |seen| match seen.path() {
        "/ip/198.51.100.7" => rdap_answer(200, ripe_network()),
        // Back to A: with A's redirect, a loop.
        "/ip/203.0.113.99" => redirect(307, format!("{to_a}/registry/ip/203.0.113.99")),
        "/ip/2001:db8::1" => rdap_answer(200, ipv6_network()),
        _ => rdap_not_found(),
    });
    let (a_base, b_base) = (format!("{a_url}/registry/"), format!("{b_url}/"));
    let bootstrap = boot_bound.serve(
        &[Route::get("/rdap/ipv4.json"), Route::get("/rdap/ipv6.json")],
        move |seen| {
            if bootstrap_status != 200 {
                return json_answer(bootstrap_status, json!({}));
            }
            if seen.path() == "/rdap/ipv4.json" {
                json_answer(
                    200,
                    json!({"description": "RDAP bootstrap file for IPv4 address allocations",
                    "publication": "2026-06-01T20:00:00Z", "version": "1.0",
                    "services": [
                      [["203.0.0.0/8"], [b_base]],
                      [["203.0.113.0/24", "198.51.100.0/24"], [a_base]]
                    ]}),
                )
            } else {
                json_answer(
                    200,
                    json!({"description": "RDAP bootstrap file for IPv6 address allocations",
                    "publication": "2026-06-01T20:00:00Z", "version": "1.0",
                    "services": [
                      [["2001::/16"], [a_base]],
                      [["2001:db8::/32"], [b_base]]
                    ]}),
                )
            }
        },
    );
    RdapMocks {
        bootstrap_url: format!("{boot_url}/rdap/"),
        bootstrap,
        a,
        b,
    }
}

fn rdap(mocks: &RdapMocks) -> Rdap {
    let provider = Rdap::new(&settings(&mocks.bootstrap_url, Duration::from_secs(5))).unwrap();
    assert_eq!(provider.name(), "rdap");
    provider
}

#[tokio::test]
async fn rdap_longest_prefix_picks_the_registry_and_the_vcards_give_owner_and_abuse() {
    let mocks = rdap_mocks(200).await;
    let provider = rdap(&mocks);
    let (facts, network) = found(provider.lookup(ip("203.0.113.45")).await);
    assert_eq!(
        facts,
        json!({
            "name": "EXAMPLE-NET",
            "handle": "NET-203-0-113-0-1",
            "type": "DIRECT ALLOCATION",
            "cidrs": ["203.0.113.0/24"],
            "owner": "Example Hosting Ltd",
            "abuse_email": "abuse@example-hosting.test",
            "rir": "arin",
            "rdap_server": facts["rdap_server"].clone(),
        })
    );
    assert!(facts["rdap_server"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert_eq!(
        network,
        Network {
            asn: None,
            as_org: Some("Example Hosting Ltd".into()),
            country: None,
            rir: Some("arin".into()),
            cidr: Some("203.0.113.0/24".into()),
        }
    );
    // The /24 beat the /8: only A was asked, with the RDAP media type.
    assert_eq!(paths(&mocks.a), vec!["/registry/ip/203.0.113.45"]);
    assert!(paths(&mocks.b).is_empty());
    assert_eq!(
        mock_api::header(&mocks.a.seen()[0], "accept"),
        Some("application/rdap+json")
    );
    assert_eq!(paths(&mocks.bootstrap), vec!["/rdap/ipv4.json"]);

    // The shorter prefix sends other 203/8 addresses to B, which has no registration.
    assert_eq!(
        provider.lookup(ip("203.0.114.1")).await,
        Ok(Lookup::NotFound)
    );
    assert_eq!(paths(&mocks.b), vec!["/ip/203.0.114.1"]);
    // The bootstrap is fetched once per family for the provider's life.
    assert_eq!(paths(&mocks.bootstrap), vec!["/rdap/ipv4.json"]);
}

#[tokio::test]
async fn rdap_follows_a_redirect_to_the_registry_holding_a_transferred_range() {
    let mocks = rdap_mocks(200).await;
    let provider = rdap(&mocks);
    let (facts, network) = found(provider.lookup(ip("198.51.100.7")).await);
    assert_eq!(paths(&mocks.a), vec!["/registry/ip/198.51.100.7"]);
    assert_eq!(paths(&mocks.b), vec!["/ip/198.51.100.7"]);
    // The registry that answered (from port43), not the one the bootstrap pointed at.
    assert_eq!(facts["rir"], "ripencc");
    assert_eq!(facts["country"], "NL");
    // No cidr0 extension: the range 198.51.100.0–198.51.101.255 is one /23.
    assert_eq!(facts["cidrs"], json!(["198.51.100.0/23"]));
    // The registrant has no vCard, so no owner; the abuse entity has an email.
    assert!(facts.get("owner").is_none(), "{facts}");
    assert_eq!(facts["abuse_email"], "abuse@transferred.test");
    assert_eq!(
        network,
        Network {
            asn: None,
            as_org: None,
            country: Some("NL".into()),
            rir: Some("ripencc".into()),
            cidr: Some("198.51.100.0/23".into()),
        }
    );
}

#[tokio::test]
async fn rdap_picks_the_registry_for_ipv6_with_literal_colons() {
    let mocks = rdap_mocks(200).await;
    let provider = rdap(&mocks);
    let (facts, network) = found(provider.lookup(ip("2001:db8::1")).await);
    assert_eq!(paths(&mocks.bootstrap), vec!["/rdap/ipv6.json"]);
    // The /32 beat the /16: B, not A.
    assert!(paths(&mocks.a).is_empty());
    assert_eq!(paths(&mocks.b), vec!["/ip/2001:db8::1"]);
    assert_eq!(facts["cidrs"], json!(["2001:db8::/32"]));
    assert_eq!(facts["owner"], "Example IPv6 GmbH");
    assert_eq!(network.country.as_deref(), Some("DE"));
    assert_eq!(network.rir.as_deref(), Some("ripencc"));
    assert_eq!(network.as_org.as_deref(), Some("Example IPv6 GmbH"));
    // The shorter IPv6 prefix goes to A.
    assert_eq!(
        provider.lookup(ip("2001:4860::8888")).await,
        Ok(Lookup::NotFound)
    );
    assert_eq!(paths(&mocks.a), vec!["/registry/ip/2001:4860::8888"]);
}

#[tokio::test]
async fn rdap_redirect_loop_is_unavailable_after_five_redirects() {
    let mocks = rdap_mocks(200).await;
    let provider = rdap(&mocks);
    let error = error_of(provider.lookup(ip("203.0.113.99")).await);
    assert_eq!(error.kind(), "unavailable", "{error}");
    assert!(error.to_string().contains("redirect loop"), "{error}");
    // The first request plus five redirects followed; the sixth redirect is refused.
    let hops = paths(&mocks.a).len() + paths(&mocks.b).len();
    assert_eq!(hops, 6);
    let entry = intel_entry(&Err(error));
    assert_eq!(entry.status, ProviderStatus::Unavailable);
    assert!(entry.facts.is_empty());
}

#[tokio::test]
async fn rdap_not_found_is_an_answer_and_unregistered_space_asks_no_registry() {
    let mocks = rdap_mocks(200).await;
    let provider = rdap(&mocks);
    let result = provider.lookup(ip("203.0.113.200")).await;
    assert_eq!(result, Ok(Lookup::NotFound));
    assert_eq!(intel_entry(&result).status, ProviderStatus::NotFound);
    // No bootstrap entry covers 192.0.2.1: no registry holds it.
    assert_eq!(provider.lookup(ip("192.0.2.1")).await, Ok(Lookup::NotFound));
    assert_eq!(paths(&mocks.a), vec!["/registry/ip/203.0.113.200"]);
    assert!(paths(&mocks.b).is_empty());
}

#[tokio::test]
async fn rdap_errors_html_throttling_5xx_and_wrong_objects() {
    let mocks = rdap_mocks(200).await;
    let provider = rdap(&mocks);
    let error = error_of(provider.lookup(ip("203.0.113.66")).await);
    assert_eq!(error.kind(), "invalid_response", "{error}");
    assert!(error.to_string().contains("HTML"), "{error}");

    let error = error_of(provider.lookup(ip("203.0.113.29")).await);
    assert_eq!(error.kind(), "rate_limited", "{error}");
    assert!(error.to_string().contains("retry after 30 s"), "{error}");

    let error = error_of(provider.lookup(ip("203.0.113.50")).await);
    assert_eq!(error.kind(), "unavailable", "{error}");

    let error = error_of(provider.lookup(ip("203.0.113.51")).await);
    assert_eq!(error.kind(), "invalid_response", "{error}");

    // A 3xx without a Location cannot be followed.
    let error = error_of(provider.lookup(ip("203.0.113.52")).await);
    assert_eq!(error.kind(), "invalid_response", "{error}");
    assert!(error.to_string().contains("Location"), "{error}");

    // RFC 7480 does not require a JSON error body: a plain-text 404 is still "not registered".
    assert_eq!(
        provider.lookup(ip("203.0.113.53")).await,
        Ok(Lookup::NotFound)
    );
}

#[tokio::test]
async fn rdap_bootstrap_failure_is_reported_and_not_cached() {
    let mocks = rdap_mocks(503).await;
    let provider = rdap(&mocks);
    for _ in 0..2 {
        let error = error_of(provider.lookup(ip("203.0.113.45")).await);
        assert_eq!(error.kind(), "unavailable", "{error}");
        assert!(error.to_string().contains("IANA bootstrap"), "{error}");
    }
    // Each lookup tried the bootstrap again; no registry was asked.
    assert_eq!(paths(&mocks.bootstrap).len(), 2);
    assert!(paths(&mocks.a).is_empty());
}

#[tokio::test]
async fn rdap_default_base_url_is_the_iana_directory() {
    // The shipped configuration points at IANA's bootstrap directory.
    let defaults = threatsift::Settings::from_toml_overrides("").unwrap();
    assert_eq!(
        defaults.providers.get("rdap").unwrap().base_url,
        "https://data.iana.org/rdap"
    );
    assert!(Rdap::new(defaults.providers.get("rdap").unwrap()).is_ok());
}

// ---------------------------------------------------------------------------------------------
// InternetDB

async fn internetdb(answer: Canned, address: &str) -> (Result<Lookup, ProviderError>, Vec<String>) {
    let mock = Mock::start(&INTERNETDB, answer).await;
    let provider =
        InternetDb::new(&settings(&format!("{}/", mock.url), Duration::from_secs(2))).unwrap();
    assert_eq!(provider.name(), "internetdb");
    // Every lookup ends: with an answer, or at the client's 2 s timeout. The deadline is only
    // there so a client without a timeout fails instead of hanging.
    let result = tokio::time::timeout(Duration::from_secs(60), provider.lookup(ip(address)))
        .await
        .expect("an InternetDB lookup did not end: timeout not applied");
    (result, paths(&mock))
}

#[tokio::test]
async fn internetdb_200_gives_ports_tags_vulns_hostnames_cpes() {
    let body = json!({"cpes": ["cpe:/a:openbsd:openssh:8.9p1", "cpe:/a:nginx:nginx:1.18.0"],
                      "hostnames": ["vps45.example-hosting.test"],
                      "ip": "203.0.113.45",
                      "ports": [22, 80, 443],
                      "tags": ["cloud", "self-signed"],
                      "vulns": ["CVE-2023-38408", "CVE-2021-23017"]});
    let (result, seen) = internetdb(json_answer(200, body), "203.0.113.45").await;
    assert_eq!(seen, vec!["/203.0.113.45"]);
    let (facts, network) = found(result);
    assert_eq!(
        facts,
        json!({"cpes": ["cpe:/a:openbsd:openssh:8.9p1", "cpe:/a:nginx:nginx:1.18.0"],
               "hostnames": ["vps45.example-hosting.test"],
               "ports": [22, 80, 443],
               "tags": ["cloud", "self-signed"],
               "vulns": ["CVE-2023-38408", "CVE-2021-23017"]})
    );
    assert_eq!(network, Network::default());
}

#[tokio::test]
async fn internetdb_caps_vulns_and_keeps_an_empty_answer() {
    let vulns: Vec<String> = (0..45).map(|n| format!("CVE-2024-{n:05}")).collect();
    let body = json!({"cpes": [], "hostnames": [], "ip": "2001:db8::45", "ports": [],
                      "tags": [], "vulns": vulns});
    let (result, seen) = internetdb(json_answer(200, body), "2001:db8::45").await;
    assert_eq!(seen, vec!["/2001:db8::45"]);
    let (facts, _) = found(result);
    assert_eq!(facts["vulns"].as_array().unwrap().len(), 20);
    assert_eq!(facts["vulns"][0], "CVE-2024-00000");
    assert_eq!(facts["vulns_total"], 45);
    assert_eq!(facts["ports"], json!([]));
}

#[tokio::test]
async fn internetdb_404_no_information_is_not_found() {
    let (result, _) = internetdb(
        json_answer(404, json!({"detail": "No information available"})),
        "198.51.100.7",
    )
    .await;
    assert_eq!(result, Ok(Lookup::NotFound));
    assert_eq!(intel_entry(&result).status, ProviderStatus::NotFound);
}

#[tokio::test]
async fn internetdb_errors_map_to_statuses() {
    let (result, _) = internetdb(
        json_answer(429, json!({"detail": "Rate limit exceeded"})),
        "203.0.113.45",
    )
    .await;
    assert_eq!(error_of(result).kind(), "rate_limited");

    // A Cloudflare page is not JSON, and never a credential problem.
    let (result, _) = internetdb(html_answer(403), "203.0.113.45").await;
    let error = error_of(result);
    assert_eq!(error.kind(), "invalid_response", "{error}");
    assert!(error.to_string().contains("HTML"), "{error}");

    let (result, _) = internetdb(html_answer(200), "203.0.113.45").await;
    assert_eq!(error_of(result).kind(), "invalid_response");

    // Cloudflare's rate-limit page (error 1015) is HTML: throttled all the same, and its
    // Retry-After is what the slot holds the provider for.
    let mut throttled = html_answer(429);
    throttled.headers.push(("retry-after", "3600"));
    let (result, _) = internetdb(throttled, "203.0.113.45").await;
    assert_eq!(
        result,
        Err(ProviderError::RateLimited(
            "HTTP 429 with an HTML page (rate limited by a proxy or CDN); retry after 3600 s"
                .to_owned(),
            Some(Duration::from_secs(3600))
        ))
    );

    let (result, _) = internetdb(html_answer(503), "203.0.113.45").await;
    assert_eq!(error_of(result).kind(), "unavailable");

    let (result, _) = internetdb(
        json_answer(422, json!({"detail": "Invalid IP"})),
        "203.0.113.45",
    )
    .await;
    let error = error_of(result);
    assert_eq!(error.kind(), "invalid_response", "{error}");
    assert!(error.to_string().contains("Invalid IP"), "{error}");

    // A mock that never answers: the lookup ends at the configured 2 s.
    let (result, _) = internetdb(no_answer(), "203.0.113.45").await;
    assert_eq!(
        error_of(result),
        ProviderError::Timeout(Duration::from_secs(2))
    );
}
