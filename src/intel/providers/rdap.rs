//! RDAP IP network lookup (RFC 7480/7482/9083, bootstrap RFC 9224; reference §4a–4c). No key.
//!
//! * Bootstrap: `{base_url}/ipv4.json` or `{base_url}/ipv6.json` (IANA by default), fetched on
//!   the first lookup of each family and kept for the provider's life. A failed fetch is not
//!   kept, so the next lookup tries again. The registry whose CIDR covers the address with the
//!   longest prefix is chosen; its https base URL is preferred. No covering entry → `NotFound`
//!   (no registry holds the address).
//! * Query: `GET {registry}ip/{ip}` with `Accept: application/rdap+json`. Registries redirect
//!   (301/302/303/307) to the registry that holds a transferred range, so this client follows
//!   up to [`MAX_REDIRECTS`]; RDAP sends no key, so nothing secret can travel. The keyed
//!   providers keep the no-redirect client of [`crate::intel::http`].
//! * More than [`MAX_REDIRECTS`] redirects (a loop between registries) → `Unavailable`: the
//!   registries answered, but with no result, and the loop is their data being out of step,
//!   which is fixed on their side and may be gone on a later try.
//! * 200 → `Found` with facts `name`, `handle`, `cidrs` (from `cidr0_cidrs`, else computed from
//!   `startAddress`/`endAddress`), `country`, `type`, `owner` (vCard `fn` of the first
//!   `registrant` entity that has one), `abuse_email` (vCard `email` of the first `abuse`
//!   entity that has one; nested entities are searched too, ARIN nests abuse in the registrant),
//!   `rir` and `rdap_server` (host that answered after redirects), each only when present.
//!   `rir` is read from `port43`, else from the answering host, else from the bootstrap host.
//!   Network: `rir`, `country`, `cidr` (the first), `as_org` (the owner).
//! * 404 → `NotFound` (also with a non-JSON body, which RFC 7480 allows); a 3xx that cannot
//!   be followed (no `Location`) → `invalid_response`; 429 → `rate_limited` with `Retry-After`; 5xx, timeouts and connection
//!   failures → `unavailable`/`timeout`; HTML, non-JSON, or JSON that is not an IP network →
//!   `invalid_response`; other statuses by [`crate::intel::http::by_status`].

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use ipnet::{IpNet, Ipv4Net, Ipv4Subnets, Ipv6Net, Ipv6Subnets};
use serde_json::{Map, Value};
use tokio::sync::OnceCell;

use crate::intel::http::{self, Reply};
use crate::intel::registry::{always_available, no_check, Build, KeyUse, ProviderSpec};
use crate::intel::{Lookup, Provider, ProviderError};
use crate::model::Network;
use crate::settings::{ProviderSettings, SettingsError};

/// Provider name: the `intel` key and metric label.
pub(crate) const NAME: &str = "rdap";

/// RDAP, described for the registry: context (registrant, RIR), not evidence.
pub(crate) const SPEC: ProviderSpec = ProviderSpec {
    name: NAME,
    display_name: "RDAP",
    key: KeyUse::None,
    build: Build::Remote(|s| Ok(std::sync::Arc::new(Rdap::new(s)?))),
    check: no_check,
    unavailable: always_available,
    weights: &[],
    score: None,
};

/// Most redirects followed for one query.
pub(crate) const MAX_REDIRECTS: usize = 5;

/// Most CIDRs kept in `cidrs` (a start/end range can split into many).
pub(crate) const MAX_CIDRS: usize = 8;

/// How deep nested entities are searched (ARIN nests abuse inside the registrant).
const MAX_ENTITY_DEPTH: usize = 4;

/// One IANA bootstrap file: covering prefixes with the registry base URL to ask.
#[derive(Debug, Default)]
struct Bootstrap {
    services: Vec<(IpNet, String)>,
}

impl Bootstrap {
    /// The registry base URL whose prefix covers `ip` most specifically.
    fn registry_for(&self, ip: IpAddr) -> Option<&str> {
        self.services
            .iter()
            .filter(|(net, _)| net.contains(&ip))
            .max_by_key(|(net, _)| net.prefix_len())
            .map(|(_, url)| url.as_str())
    }
}

/// The RDAP client.
#[derive(Debug)]
pub struct Rdap {
    client: reqwest::Client,
    bootstrap_url: String,
    timeout: Duration,
    ipv4: OnceCell<Arc<Bootstrap>>,
    ipv6: OnceCell<Arc<Bootstrap>>,
}

impl Rdap {
    /// A client from the `[providers.rdap]` settings; `base_url` is the bootstrap directory.
    pub fn new(settings: &ProviderSettings) -> Result<Self, SettingsError> {
        Ok(Rdap {
            client: redirecting_client(
                settings.timeout,
                &http::base_url(NAME, &settings.base_url)?,
            )?,
            bootstrap_url: http::base_url(NAME, &settings.base_url)?,
            timeout: settings.timeout,
            ipv4: OnceCell::new(),
            ipv6: OnceCell::new(),
        })
    }

    async fn bootstrap(&self, ip: IpAddr) -> Result<Arc<Bootstrap>, ProviderError> {
        let (cell, file) = match ip {
            IpAddr::V4(_) => (&self.ipv4, "ipv4.json"),
            IpAddr::V6(_) => (&self.ipv6, "ipv6.json"),
        };
        cell.get_or_try_init(|| async {
            let url = format!("{}/{file}", self.bootstrap_url);
            let request = self
                .client
                .get(url)
                .header(reqwest::header::ACCEPT, "application/json");
            let (reply, _) = fetch(request, self.timeout)
                .await
                .map_err(|e| in_bootstrap(e, file))?;
            if reply.status != 200 {
                return Err(in_bootstrap(http::by_status("IANA", &reply, ""), file));
            }
            parse_bootstrap(&reply.body, ip).map(Arc::new)
        })
        .await
        .cloned()
    }

    async fn lookup_ip(&self, ip: IpAddr) -> Result<Lookup, ProviderError> {
        let bootstrap = self.bootstrap(ip).await?;
        let Some(registry) = bootstrap.registry_for(ip) else {
            return Ok(Lookup::NotFound);
        };
        let url = format!("{registry}ip/{}", http::path_segment(ip));
        let request = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/rdap+json");
        let (reply, final_url) = fetch(request, self.timeout).await?;
        match reply.status {
            200 => ip_network(&reply.body, &final_url, registry),
            404 => Ok(Lookup::NotFound),
            429 => Err(ProviderError::RateLimited(
                format!(
                    "the RDAP registry throttled the request{}",
                    reply.limits.suffix()
                ),
                reply.limits.wait(),
            )),
            _ => Err(http::by_status("the RDAP registry", &reply, "")),
        }
    }
}

impl Provider for Rdap {
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

/// RDAP's own client: like [`http::client`] but following up to [`MAX_REDIRECTS`] redirects
/// (safe here: no key or other credential is ever sent), and only where
/// [`redirect_allowed`] says.
fn redirecting_client(
    timeout: Duration,
    bootstrap_url: &str,
) -> Result<reqwest::Client, SettingsError> {
    let base = reqwest::Url::parse(bootstrap_url).map_err(|e| SettingsError::Invalid {
        key: format!("providers.{NAME}.base_url"),
        problem: e.to_string(),
    })?;
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(RedirectRefused::TooMany)
        } else if redirect_allowed(attempt.url(), &base) {
            attempt.follow()
        } else {
            let to = format!(
                "{}://{}",
                attempt.url().scheme(),
                attempt.url().host_str().unwrap_or("")
            );
            attempt.error(RedirectRefused::NotHttps(to))
        }
    });
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(policy)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .user_agent(concat!("threatsift/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| SettingsError::Invalid {
            key: format!("providers.{NAME}"),
            problem: format!("cannot build the HTTP client: {}", e.without_url()),
        })
}

/// Sends `request` on RDAP's redirect-following client; returns the reply and the URL that
/// finally answered. Body rules are the shared ones, except that a 3xx reaching us had no
/// usable `Location`, and a plain-text 404 is "no such registration" (RFC 7480).
async fn fetch(
    request: reqwest::RequestBuilder,
    timeout: Duration,
) -> Result<(Reply, reqwest::Url), ProviderError> {
    const RULES: http::ReadRules = http::ReadRules {
        redirect_detail: "redirect without a usable Location",
        plain_404_is_empty: true,
    };
    let response = request.send().await.map_err(|e| {
        let refused =
            std::error::Error::source(&e).and_then(|s| s.downcast_ref::<RedirectRefused>());
        if let Some(RedirectRefused::NotHttps(to)) = refused {
            ProviderError::InvalidResponse(format!(
                "redirect to {to} not followed (RDAP redirects are followed only to https)"
            ))
        } else if e.is_redirect() {
            ProviderError::Unavailable(format!(
                "the RDAP registries redirected more than {MAX_REDIRECTS} times (a redirect loop)"
            ))
        } else {
            http::transport_error(&e, timeout)
        }
    })?;
    let final_url = response.url().clone();
    let reply = http::read_json(response, timeout, &RULES).await?;
    Ok((reply, final_url))
}

/// Why a redirect was not followed.
#[derive(Debug, thiserror::Error)]
enum RedirectRefused {
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooMany,
    #[error("redirect to {0}, not https")]
    NotHttps(String),
}

/// Registries redirect only to https registries; plain http is followed only to the host of
/// the configured bootstrap URL, with its scheme (a local mirror, or the tests' mocks).
fn redirect_allowed(target: &reqwest::Url, base: &reqwest::Url) -> bool {
    target.scheme() == "https"
        || (target.scheme() == base.scheme() && target.host_str() == base.host_str())
}

/// Says the error came from the bootstrap file, not from a registry.
fn in_bootstrap(error: ProviderError, file: &str) -> ProviderError {
    error.map_text(|text| format!("IANA bootstrap {file}: {text}"))
}

/// The `services` of a bootstrap file for `ip`'s family. Entries that do not parse are skipped
/// (a bare `"41"` is read as `41.0.0.0/8`); a file with no usable entry is invalid.
fn parse_bootstrap(body: &Map<String, Value>, ip: IpAddr) -> Result<Bootstrap, ProviderError> {
    let mut bootstrap = Bootstrap::default();
    let services = body
        .get("services")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for service in services {
        let (Some(entries), Some(urls)) = (
            service.get(0).and_then(Value::as_array),
            service.get(1).and_then(Value::as_array),
        ) else {
            continue;
        };
        let Some(url) = preferred_url(urls) else {
            continue;
        };
        for entry in entries.iter().filter_map(Value::as_str) {
            if let Some(net) = bootstrap_prefix(entry, ip) {
                bootstrap.services.push((net, url.clone()));
            }
        }
    }
    if bootstrap.services.is_empty() {
        return Err(ProviderError::InvalidResponse(
            "IANA bootstrap without any usable service entry".to_owned(),
        ));
    }
    Ok(bootstrap)
}

/// The first https base URL, else the first http one; always ending with `/`.
fn preferred_url(urls: &[Value]) -> Option<String> {
    let urls: Vec<&str> = urls
        .iter()
        .filter_map(Value::as_str)
        .filter(|u| reqwest::Url::parse(u).is_ok())
        .collect();
    let chosen = urls
        .iter()
        .find(|u| u.starts_with("https://"))
        .or_else(|| urls.iter().find(|u| u.starts_with("http://")))?;
    Some(if chosen.ends_with('/') {
        (*chosen).to_owned()
    } else {
        format!("{chosen}/")
    })
}

/// A bootstrap entry of `ip`'s family as a network.
fn bootstrap_prefix(entry: &str, ip: IpAddr) -> Option<IpNet> {
    let entry = entry.trim();
    let net = match entry.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => {
            let octet: u8 = entry.parse().ok()?;
            IpNet::V4(Ipv4Net::new(std::net::Ipv4Addr::new(octet, 0, 0, 0), 8).ok()?)
        }
    };
    (net.addr().is_ipv4() == ip.is_ipv4()).then_some(net.trunc())
}

/// The facts and network of a 200 IP network object.
fn ip_network(
    body: &Map<String, Value>,
    final_url: &reqwest::Url,
    registry: &str,
) -> Result<Lookup, ProviderError> {
    let class = body.get("objectClassName").and_then(Value::as_str);
    let looks_like_network = match class {
        Some(class) => class.eq_ignore_ascii_case("ip network"),
        None => body.contains_key("startAddress"),
    };
    if !looks_like_network {
        return Err(ProviderError::InvalidResponse(
            "RDAP 200 that is not an IP network object".to_owned(),
        ));
    }
    let text = |key: &str| {
        body.get(key)
            .and_then(Value::as_str)
            .map(http::short_message)
            .filter(|s| !s.is_empty())
    };
    let mut facts = Map::new();
    for key in ["name", "handle", "country", "type"] {
        if let Some(value) = text(key) {
            facts.insert(key.into(), value.into());
        }
    }
    let cidrs = network_cidrs(body);
    if !cidrs.is_empty() {
        facts.insert("cidrs".into(), cidrs.clone().into());
    }
    let entities = body.get("entities").and_then(Value::as_array);
    let owner = entities.and_then(|e| role_vcard_text(e, "registrant", "fn", 0));
    if let Some(owner) = &owner {
        facts.insert("owner".into(), owner.clone().into());
    }
    let abuse_email = entities.and_then(|e| role_vcard_text(e, "abuse", "email", 0));
    if let Some(email) = abuse_email {
        facts.insert("abuse_email".into(), email.into());
    }
    let rir = text("port43")
        .and_then(|whois| rir_of_host(&whois))
        .or_else(|| final_url.host_str().and_then(rir_of_host))
        .or_else(|| {
            reqwest::Url::parse(registry)
                .ok()
                .and_then(|u| u.host_str().and_then(rir_of_host))
        });
    if let Some(rir) = rir {
        facts.insert("rir".into(), rir.into());
    }
    if let Some(host) = final_url.host_str() {
        let server = match final_url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        facts.insert("rdap_server".into(), server.into());
    }
    let network = Network {
        rir: rir.map(str::to_owned),
        country: text("country"),
        cidr: cidrs.first().cloned(),
        as_org: owner,
        ..Network::default()
    };
    Ok(Lookup::Found { facts, network })
}

/// The registry's short name (the lowercase form Team Cymru and Spamhaus use) from a host
/// such as `rdap.db.ripe.net` or `whois.arin.net`.
fn rir_of_host(host: &str) -> Option<&'static str> {
    let host = host.to_ascii_lowercase();
    let host = host.trim_end_matches('.');
    [
        ("arin.net", "arin"),
        ("ripe.net", "ripencc"),
        ("apnic.net", "apnic"),
        ("lacnic.net", "lacnic"),
        ("afrinic.net", "afrinic"),
    ]
    .into_iter()
    .find(|(domain, _)| host == *domain || host.ends_with(&format!(".{domain}")))
    .map(|(_, rir)| rir)
}

/// `cidr0_cidrs` as `prefix/length`, else the CIDRs that exactly cover
/// `startAddress`..`endAddress`; at most [`MAX_CIDRS`].
fn network_cidrs(body: &Map<String, Value>) -> Vec<String> {
    let from_extension: Vec<String> = body
        .get("cidr0_cidrs")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|c| {
            let prefix = c
                .get("v4prefix")
                .or_else(|| c.get("v6prefix"))
                .and_then(Value::as_str)?;
            let length = u8::try_from(c.get("length")?.as_u64()?).ok()?;
            let net = IpNet::new(prefix.parse().ok()?, length).ok()?;
            Some(net.to_string())
        })
        .take(MAX_CIDRS)
        .collect();
    if !from_extension.is_empty() {
        return from_extension;
    }
    let address = |key: &str| {
        body.get(key)
            .and_then(Value::as_str)
            .and_then(|s| s.trim().parse::<IpAddr>().ok())
    };
    match (address("startAddress"), address("endAddress")) {
        (Some(IpAddr::V4(start)), Some(IpAddr::V4(end))) if start <= end => {
            Ipv4Subnets::new(start, end, 0)
                .take(MAX_CIDRS)
                .map(|n: Ipv4Net| n.to_string())
                .collect()
        }
        (Some(IpAddr::V6(start)), Some(IpAddr::V6(end))) if start <= end => {
            Ipv6Subnets::new(start, end, 0)
                .take(MAX_CIDRS)
                .map(|n: Ipv6Net| n.to_string())
                .collect()
        }
        _ => Vec::new(),
    }
}

/// The vCard property `property` of the first entity with `role` that has it: entities at
/// one level first, then the nested ones (ARIN puts abuse inside the registrant). An entity
/// with the role but no vCard (common at RIPE) is passed over.
fn role_vcard_text(entities: &[Value], role: &str, property: &str, depth: usize) -> Option<String> {
    if depth > MAX_ENTITY_DEPTH {
        return None;
    }
    let has_role = |entity: &Value| {
        entity
            .get("roles")
            .and_then(Value::as_array)
            .is_some_and(|roles| {
                roles
                    .iter()
                    .filter_map(Value::as_str)
                    .any(|r| r.eq_ignore_ascii_case(role))
            })
    };
    entities
        .iter()
        .filter(|e| has_role(e))
        .find_map(|e| vcard_text(e, property))
        .or_else(|| {
            entities.iter().find_map(|entity| {
                let nested = entity.get("entities").and_then(Value::as_array)?;
                role_vcard_text(nested, role, property, depth + 1)
            })
        })
}

/// The text value of the first vCard property `name` (jCard, RFC 7095:
/// `["vcard", [[name, params, type, value], ...]]`), made short; none when empty.
fn vcard_text(entity: &Value, name: &str) -> Option<String> {
    let properties = entity.get("vcardArray")?.get(1)?.as_array()?;
    properties
        .iter()
        .filter_map(Value::as_array)
        .filter(|p| {
            p.first()
                .and_then(Value::as_str)
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
        .filter_map(|p| p.get(3).and_then(Value::as_str))
        .map(http::short_message)
        .find(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn redirects_go_to_https_or_to_the_bootstrap_host_only() {
        let url = |u: &str| reqwest::Url::parse(u).unwrap();
        let iana = url("https://data.iana.org/rdap/");
        assert!(redirect_allowed(
            &url("https://rdap.db.ripe.net/ip/1.2.3.4"),
            &iana
        ));
        assert!(!redirect_allowed(
            &url("http://rdap.db.ripe.net/ip/1.2.3.4"),
            &iana
        ));
        assert!(!redirect_allowed(
            &url("ftp://rdap.db.ripe.net/ip/1.2.3.4"),
            &iana
        ));
        // A local (test) bootstrap over http: that host only.
        let local = url("http://127.0.0.1:8080/rdap/");
        assert!(redirect_allowed(
            &url("http://127.0.0.1:9090/ip/1.2.3.4"),
            &local
        ));
        assert!(!redirect_allowed(
            &url("http://169.254.169.254/latest/meta-data/"),
            &local
        ));
        assert!(!redirect_allowed(
            &url("http://localhost:9090/ip/1.2.3.4"),
            &local
        ));
    }

    #[test]
    fn longest_prefix_wins_and_https_is_preferred() {
        let body = object(json!({"services": [
            [["203.0.0.0/8"], ["http://wide.test/", "https://wide.test/"]],
            [["203.0.113.0/24", "2001:db8::/32"], ["http://narrow.test"]],
            [["41"], ["https://bare.test/"]],
            [["not a cidr"], ["https://broken.test/"]]
        ]}));
        let v4: IpAddr = "203.0.113.7".parse().unwrap();
        let bootstrap = parse_bootstrap(&body, v4).unwrap();
        assert_eq!(bootstrap.registry_for(v4), Some("http://narrow.test/"));
        let wide: IpAddr = "203.0.114.7".parse().unwrap();
        assert_eq!(bootstrap.registry_for(wide), Some("https://wide.test/"));
        let bare: IpAddr = "41.1.2.3".parse().unwrap();
        assert_eq!(bootstrap.registry_for(bare), Some("https://bare.test/"));
        assert_eq!(bootstrap.registry_for("8.8.8.8".parse().unwrap()), None);
        // The IPv6 entry belongs to the other family's file.
        assert_eq!(bootstrap.services.len(), 3);
        let empty = object(json!({"services": []}));
        assert_eq!(
            parse_bootstrap(&empty, v4).unwrap_err().kind(),
            "invalid_response"
        );
    }

    #[test]
    fn cidrs_come_from_the_extension_else_from_the_range() {
        let body = object(
            json!({"cidr0_cidrs": [{"v4prefix": "203.0.113.0", "length": 24},
                                                 {"v6prefix": "2001:db8::", "length": 33}]}),
        );
        assert_eq!(
            network_cidrs(&body),
            vec!["203.0.113.0/24", "2001:db8::/33"]
        );
        let body = object(json!({"startAddress": "193.0.0.0", "endAddress": "193.0.11.255"}));
        assert_eq!(network_cidrs(&body), vec!["193.0.0.0/21", "193.0.8.0/22"]);
        let body = object(json!({"startAddress": "193.0.0.9", "endAddress": "193.0.0.1"}));
        assert!(network_cidrs(&body).is_empty());
    }

    #[test]
    fn the_registry_name_comes_from_whois_or_host() {
        assert_eq!(rir_of_host("whois.arin.net"), Some("arin"));
        assert_eq!(rir_of_host("rdap.db.ripe.net"), Some("ripencc"));
        assert_eq!(rir_of_host("RDAP.APNIC.NET."), Some("apnic"));
        assert_eq!(rir_of_host("notarin.net"), None);
        assert_eq!(rir_of_host("127.0.0.1"), None);
    }

    #[test]
    fn vcards_give_owner_and_nested_abuse_email() {
        let entities = json!([
            {"handle": "RIPE-NCC-HM-MNT", "roles": ["registrant"]},
            {"handle": "EXH-1", "roles": ["administrative"],
             "vcardArray": ["vcard", [["version", {}, "text", "4.0"],
                                      ["FN", {}, "text", "  Example Hosting Ltd "]]],
             "entities": [{"roles": ["abuse"], "vcardArray": ["vcard", [
                 ["adr", {"label": "x"}, "text", ["", ""]],
                 ["email", {}, "text", "abuse@example-hosting.test"]]]}]},
            {"handle": "ORG-EX", "roles": ["technical", "Registrant"],
             "vcardArray": ["vcard", [["fn", {}, "text", "Example Org"]]]}
        ]);
        let entities = entities.as_array().unwrap();
        // The first registrant has no vCard; the next one with a name is the owner.
        assert_eq!(
            role_vcard_text(entities, "registrant", "fn", 0).as_deref(),
            Some("Example Org")
        );
        assert_eq!(
            role_vcard_text(entities, "administrative", "fn", 0).as_deref(),
            Some("Example Hosting Ltd")
        );
        assert_eq!(
            role_vcard_text(entities, "abuse", "email", 0).as_deref(),
            Some("abuse@example-hosting.test")
        );
        // A structured value (adr) is not text.
        assert_eq!(role_vcard_text(entities, "abuse", "adr", 0), None);
        assert_eq!(role_vcard_text(entities, "noc", "fn", 0), None);
        // Nesting deeper than the limit is not searched.
        let mut deep = json!([{"roles": ["abuse"],
                               "vcardArray": ["vcard", [["email", {}, "text", "deep@x.test"]]]}]);
        for _ in 0..=MAX_ENTITY_DEPTH {
            deep = json!([{"roles": ["registrant"], "entities": deep}]);
        }
        assert_eq!(
            role_vcard_text(deep.as_array().unwrap(), "abuse", "email", 0),
            None
        );
    }

    #[test]
    fn a_200_that_is_not_a_network_is_invalid() {
        let url = reqwest::Url::parse("https://rdap.arin.net/registry/ip/203.0.113.7").unwrap();
        let body = object(json!({"objectClassName": "autnum", "handle": "AS64500"}));
        let error = ip_network(&body, &url, "https://rdap.arin.net/registry/").unwrap_err();
        assert_eq!(error.kind(), "invalid_response");
        let body = object(json!({"startAddress": "203.0.113.0", "endAddress": "203.0.113.255"}));
        let Ok(Lookup::Found { facts, network }) =
            ip_network(&body, &url, "https://rdap.arin.net/registry/")
        else {
            panic!("expected Found");
        };
        assert_eq!(
            Value::Object(facts),
            json!({"cidrs": ["203.0.113.0/24"], "rir": "arin", "rdap_server": "rdap.arin.net"})
        );
        assert_eq!(network.rir.as_deref(), Some("arin"));
    }
}
