//! The mock HTTP APIs the provider tests share. Each mock serves only the routes it declares
//! (method and path template of the real API, e.g. `GET /api/v3/ip_addresses/{ip}`); every
//! request it serves is logged (method, path, query, headers, the address asked about). Any
//! other request is answered 404 (405 for a known path with another method), so the client
//! sees an error, and fails the test: when the mock's log is dropped at the end of the test,
//! or earlier at [`SeenLog::assert_only_expected`]. A provider sending a wrong URL therefore
//! cannot pass a test by accident.
#![allow(dead_code)]

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::Value;

use threatsift::Network;
use threatsift::{intel_entry, Lookup, Provider, ProviderError};
use threatsift::{Allowance, ProviderSettings, Secret};

/// One canned answer.
#[derive(Clone)]
pub struct Canned {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    pub headers: Vec<(&'static str, &'static str)>,
    /// How long the mock waits before answering; [`NEVER`] never answers.
    pub delay: Duration,
    /// t15-followup: when set, the mock answers only once the test has opened this gate.
    pub gate: Option<Gate>,
}

/// A `delay` that never ends: the mock holds the request open and never answers.
pub const NEVER: Duration = Duration::MAX;

pub fn json_answer(status: u16, body: Value) -> Canned {
    Canned {
        status,
        content_type: "application/json",
        body: body.to_string(),
        headers: Vec::new(),
        delay: Duration::ZERO,
        gate: None,
    }
}

pub fn html_answer(status: u16) -> Canned {
    Canned {
        status,
        content_type: "text/html; charset=UTF-8",
        body: "<!DOCTYPE html><html><head><title>Just a moment...</title></head>\
               <body>Checking your browser</body></html>"
            .to_owned(),
        headers: Vec::new(),
        delay: Duration::ZERO,
        gate: None,
    }
}

/// An answer that never comes (the connection stays open).
pub fn no_answer() -> Canned {
    Canned {
        delay: NEVER,
        ..json_answer(200, Value::Null)
    }
}

// ---- t15-followup: answers held until the test opens a gate, instead of delays that decide
// whether a test exercises anything.

/// A gate that held answers wait behind; once opened it stays open.
#[derive(Clone)]
pub struct Gate(Arc<tokio::sync::watch::Sender<bool>>);

impl Gate {
    pub fn new() -> Gate {
        Gate(Arc::new(tokio::sync::watch::channel(false).0))
    }

    /// Lets every held answer go, now and from now on.
    pub fn open(&self) {
        self.0.send_replace(true);
    }

    /// Resolves once the gate is open.
    async fn passed(&self) {
        let mut open = self.0.subscribe();
        let _ = open.wait_for(|open| *open).await;
    }
}

/// `canned`, answered only once the test opens `gate`.
pub fn held(canned: Canned, gate: &Gate) -> Canned {
    Canned {
        gate: Some(gate.clone()),
        ..canned
    }
}

// ---------------------------------------------------------------------------------------------
// Routes

/// A route a mock serves: a method and a path template whose segments are literals, `{ip}` (an
/// IP address in canonical text, RFC 5952, colons literal) or `{family}` (`IPv4` or `IPv6`,
/// the family of `{ip}`); with `query_ip`, the address is the named query parameter instead.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub query_ip: Option<&'static str>,
}

impl Route {
    pub const fn get(path: &'static str) -> Route {
        Route {
            method: "GET",
            path,
            query_ip: None,
        }
    }

    /// The address is the query parameter `name` (percent-decoded).
    pub const fn ip_in_query(self, name: &'static str) -> Route {
        Route {
            query_ip: Some(name),
            ..self
        }
    }

    /// The address the request asks about when its path (and query) fit this route; `Some(None)`
    /// for a route without an address.
    fn matches_path(&self, path: &str, query: Option<&str>) -> Option<Option<IpAddr>> {
        let wanted: Vec<&str> = self.path.split('/').collect();
        let got: Vec<&str> = path.split('/').collect();
        if wanted.len() != got.len() {
            return None;
        }
        let (mut address, mut family) = (None, None);
        for (want, segment) in wanted.iter().zip(&got) {
            match *want {
                "{ip}" => address = Some(canonical_ip(segment)?),
                "{family}" => family = Some(*segment),
                literal if literal == *segment => {}
                _ => return None,
            }
        }
        if let Some(name) = self.query_ip {
            let url = reqwest::Url::parse(&format!("http://mock/?{}", query?)).ok()?;
            let value = url.query_pairs().find(|(k, _)| k == name)?.1;
            address = Some(canonical_ip(&value)?);
        }
        if let Some(family) = family {
            let expected = match address? {
                IpAddr::V4(_) => "IPv4",
                IpAddr::V6(_) => "IPv6",
            };
            if family != expected {
                return None;
            }
        }
        Some(address)
    }
}

/// `text` as an address when it is one in canonical form.
fn canonical_ip(text: &str) -> Option<IpAddr> {
    let ip: IpAddr = text.parse().ok()?;
    (ip.to_string() == text).then_some(ip)
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)?;
        if let Some(name) = self.query_ip {
            write!(f, "?{name}={{ip}}")?;
        }
        Ok(())
    }
}

/// A provider's API as its real service serves it (providers.md): the route the client must
/// use, and the base path of the shipped `base_url` that the route lies under.
#[derive(Debug, Clone, Copy)]
pub struct Api {
    /// The provider's name (`Provider::name`).
    pub name: &'static str,
    /// The path of the default `base_url` (`config/default.toml`).
    pub base_path: &'static str,
    pub route: Route,
}

/// VirusTotal v3: `GET /api/v3/ip_addresses/{ip}`.
pub const VIRUSTOTAL: Api = Api {
    name: "virustotal",
    base_path: "/api/v3",
    route: Route::get("/api/v3/ip_addresses/{ip}"),
};
/// AbuseIPDB v2: `GET /api/v2/check?ipAddress={ip}&…`.
pub const ABUSEIPDB: Api = Api {
    name: "abuseipdb",
    base_path: "/api/v2",
    route: Route::get("/api/v2/check").ip_in_query("ipAddress"),
};
/// GreyNoise Community: `GET /v3/community/{ip}`.
pub const GREYNOISE: Api = Api {
    name: "greynoise",
    base_path: "/v3/community",
    route: Route::get("/v3/community/{ip}"),
};
/// AlienVault OTX: `GET /api/v1/indicators/{IPv4|IPv6}/{ip}/general`.
pub const OTX: Api = Api {
    name: "otx",
    base_path: "/api/v1",
    route: Route::get("/api/v1/indicators/{family}/{ip}/general"),
};
/// Shodan InternetDB: `GET /{ip}`.
pub const INTERNETDB: Api = Api {
    name: "internetdb",
    base_path: "",
    route: Route::get("/{ip}"),
};

// ---------------------------------------------------------------------------------------------
// The log

/// What the mock saw of one request it serves.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// The path and query as sent (percent-encoding kept).
    pub path_and_query: String,
    pub headers: HeaderMap,
    /// The address the route captured (`{ip}` or the query parameter).
    pub ip: Option<IpAddr>,
}

impl Seen {
    /// The path without the query.
    pub fn path(&self) -> &str {
        self.path_and_query.split('?').next().unwrap_or("")
    }
}

#[derive(Default)]
struct Log {
    seen: Mutex<Vec<Seen>>,
    /// Requests outside the routes, as `METHOD path?query`.
    unexpected: Mutex<Vec<String>>,
}

/// The requests a mock served (it derefs to the locked list), and the check that it got no
/// other: dropping the log (at the end of the test) panics when a request fell outside the
/// mock's routes, unless the test is already failing.
pub struct SeenLog {
    log: Arc<Log>,
    url: String,
    routes: Vec<Route>,
}

impl std::ops::Deref for SeenLog {
    type Target = Mutex<Vec<Seen>>;
    fn deref(&self) -> &Self::Target {
        &self.log.seen
    }
}

impl SeenLog {
    /// Requests that fell outside the routes (`METHOD path?query`), in arrival order.
    pub fn unexpected(&self) -> Vec<String> {
        self.log.unexpected.lock().unwrap().clone()
    }

    /// Like [`unexpected`](Self::unexpected), and forgets them: for a test that sends them on
    /// purpose.
    pub fn take_unexpected(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.unexpected.lock().unwrap())
    }

    /// Panics naming every request outside the mock's routes.
    pub fn assert_only_expected(&self) {
        let unexpected = self.unexpected();
        let routes: Vec<String> = self.routes.iter().map(Route::to_string).collect();
        assert!(
            unexpected.is_empty(),
            "the mock at {} serves only {routes:?} but was sent {unexpected:?}",
            self.url
        );
    }
}

impl Drop for SeenLog {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.assert_only_expected();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Mocks

pub type Responder = Arc<dyn Fn(&Seen) -> Canned + Send + Sync>;

/// A listener bound on 127.0.0.1 and its root URL, so that mocks can know each other's URLs
/// (redirects) before they serve.
pub struct Bound {
    pub url: String,
    listener: tokio::net::TcpListener,
}

/// An HTTP mock serving declared routes; its answer can be changed while it runs.
pub struct Mock {
    pub url: String,
    pub seen: SeenLog,
    responder: Arc<Mutex<Responder>>,
}

/// A mock of `api` answering every request on its route with `canned`; returns its root URL
/// and its log.
pub async fn mock(api: &Api, canned: Canned) -> (String, SeenLog) {
    let mock = Mock::start(api, canned).await;
    (mock.url, mock.seen)
}

/// A mock of `api` answering each address with `answer(address)`; returns its root URL and
/// its log.
pub async fn mock_by_address(
    api: &Api,
    answer: impl Fn(IpAddr) -> Canned + Send + Sync + 'static,
) -> (String, SeenLog) {
    let mock = Mock::by_address(api, answer).await;
    (mock.url, mock.seen)
}

impl Mock {
    /// A mock of `api` answering every request on its route with `canned`.
    pub async fn start(api: &Api, canned: Canned) -> Mock {
        Mock::serve(&[api.route], move |_| canned.clone()).await
    }

    /// A mock of `api` answering each address with `answer(address)`.
    pub async fn by_address(
        api: &Api,
        answer: impl Fn(IpAddr) -> Canned + Send + Sync + 'static,
    ) -> Mock {
        Mock::serve(&[api.route], move |seen| {
            answer(seen.ip.expect("the route captures an address"))
        })
        .await
    }

    /// A mock serving `routes`, answering with `respond(request)`.
    pub async fn serve(
        routes: &[Route],
        respond: impl Fn(&Seen) -> Canned + Send + Sync + 'static,
    ) -> Mock {
        Mock::bind().await.serve(routes, respond)
    }

    /// A listener for a mock that is started later with [`Bound::serve`].
    pub async fn bind() -> Bound {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        Bound { url, listener }
    }

    /// The URL of the mock's `api` base path, as the shipped `base_url` has it.
    pub fn base_url(&self, api: &Api) -> String {
        format!("{}{}", self.url, api.base_path)
    }

    /// From now on every request on the routes gets `canned`.
    pub fn answer(&self, canned: Canned) {
        *self.responder.lock().unwrap() = Arc::new(move |_| canned.clone());
    }

    /// Requests served so far.
    pub fn requests(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The address each request asked about, in arrival order.
    pub fn asked(&self) -> Vec<String> {
        self.seen()
            .iter()
            .map(|s| s.ip.map(|ip| ip.to_string()).unwrap_or_default())
            .collect()
    }
}

impl Bound {
    /// Serves `routes` on this listener, answering with `respond(request)`.
    pub fn serve(
        self,
        routes: &[Route],
        respond: impl Fn(&Seen) -> Canned + Send + Sync + 'static,
    ) -> Mock {
        let log: Arc<Log> = Arc::default();
        let responder: Arc<Mutex<Responder>> = Arc::new(Mutex::new(Arc::new(respond)));
        let (served, answer, served_routes) = (log.clone(), responder.clone(), routes.to_vec());
        let app =
            axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap| {
                let (log, answer) = (served.clone(), answer.clone());
                let routes = served_routes.clone();
                async move {
                    let path_and_query = uri
                        .path_and_query()
                        .map(|p| p.as_str().to_owned())
                        .unwrap_or_default();
                    let fits: Vec<(&Route, Option<IpAddr>)> = routes
                        .iter()
                        .filter_map(|r| Some((r, r.matches_path(uri.path(), uri.query())?)))
                        .collect();
                    let Some((_, ip)) = fits.iter().find(|(r, _)| r.method == method.as_str())
                    else {
                        // Outside the routes: the client sees an error and the test fails.
                        log.unexpected
                            .lock()
                            .unwrap()
                            .push(format!("{method} {path_and_query}"));
                        let status = if fits.is_empty() {
                            StatusCode::NOT_FOUND
                        } else {
                            StatusCode::METHOD_NOT_ALLOWED
                        };
                        let body = serde_json::json!({
                            "mock": format!("no route for {method} {path_and_query}")
                        });
                        return axum::http::Response::builder()
                            .status(status)
                            .header("content-type", "application/json")
                            .body(axum::body::Body::from(body.to_string()))
                            .unwrap();
                    };
                    let seen = Seen {
                        method: method.to_string(),
                        path_and_query,
                        headers,
                        ip: *ip,
                    };
                    let responder = answer.lock().unwrap().clone();
                    let canned = responder(&seen);
                    log.seen.lock().unwrap().push(seen);
                    if let Some(gate) = &canned.gate {
                        gate.passed().await;
                    }
                    if canned.delay == NEVER {
                        std::future::pending::<()>().await;
                    }
                    tokio::time::sleep(canned.delay).await;
                    let mut builder = axum::http::Response::builder()
                        .status(StatusCode::from_u16(canned.status).unwrap())
                        .header("content-type", canned.content_type);
                    for (name, value) in &canned.headers {
                        builder = builder.header(*name, *value);
                    }
                    builder.body(axum::body::Body::from(canned.body)).unwrap()
                }
            });
        let listener = self.listener;
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Mock {
            seen: SeenLog {
                log,
                url: self.url.clone(),
                routes: routes.to_vec(),
            },
            url: self.url,
            responder,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One lookup against a mock

/// Builds a provider with `new` on a mock of `api` answering `canned` (the mock's URL plus
/// the API's base path as `base_url`, key `key`, 5 s timeout), checks that it is called
/// `api.name`, looks `address` up and checks that `hidden` (the test's key) shows nowhere;
/// returns the result and the requests the mock saw. A request off the API's route fails.
pub async fn lookup_once<P, E>(
    new: impl FnOnce(&ProviderSettings) -> Result<P, E>,
    api: &Api,
    hidden: &str,
    canned: Canned,
    key: &str,
    address: &str,
) -> (Result<Lookup, ProviderError>, Vec<Seen>)
where
    P: Provider + std::fmt::Debug,
    E: std::fmt::Debug,
{
    let mock = Mock::start(api, canned).await;
    let provider = new(&settings(&mock.base_url(api), key, Duration::from_secs(5))).unwrap();
    assert_eq!(provider.name(), api.name);
    let result = provider.lookup(ip(address)).await;
    assert_key_hidden(&result, &provider, hidden);
    mock.seen.assert_only_expected();
    (result, mock.seen())
}

pub fn settings(base_url: &str, key: &str, timeout: Duration) -> ProviderSettings {
    ProviderSettings {
        enabled: false,
        base_url: base_url.to_owned(),
        api_key: Secret::new(key),
        api_key_file: String::new(),
        path: String::new(),
        timeout,
        per_minute: Allowance::Requests(4),
        per_day: Allowance::Unlimited,
        ttl: Duration::from_secs(86_400),
        not_found_ttl: Duration::from_secs(3_600),
        tlp: None,
    }
}

pub fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// The key is in no error text, no `Debug` of the result or provider, no `intel` detail.
pub fn assert_key_hidden(
    result: &Result<Lookup, ProviderError>,
    provider: &dyn std::fmt::Debug,
    key: &str,
) {
    let mut texts = vec![format!("{result:?}"), format!("{provider:?}")];
    if let Err(error) = result {
        texts.push(error.to_string());
        texts.push(format!("{error:?}"));
    }
    let entry = intel_entry(result);
    texts.push(entry.detail.clone().unwrap_or_default());
    texts.push(serde_json::to_string(&entry).unwrap());
    for text in texts {
        assert!(!text.contains(key), "key leaked in: {text}");
    }
}

pub fn header<'a>(seen: &'a Seen, name: &str) -> Option<&'a str> {
    seen.headers.get(name).and_then(|v| v.to_str().ok())
}

pub fn error_of(result: Result<Lookup, ProviderError>) -> ProviderError {
    match result {
        Err(error) => error,
        Ok(answer) => panic!("expected an error, got {answer:?}"),
    }
}

pub fn facts_of(result: Result<Lookup, ProviderError>) -> (Value, Network) {
    match result {
        Ok(Lookup::Found { facts, network }) => (Value::Object(facts), network),
        other => panic!("expected Found, got {other:?}"),
    }
}

// t16: scale-out
// A mock that counts: for each request on the provider's route, the address asked about, the
// key it came with (so a test running several daemons, each with a key of its own, knows which
// daemon asked) and the instant it arrived (the mock's own observation, for counts over 60 s
// windows). Requests with one key can be held behind a gate: the daemon sending them then has
// exactly those lookups in flight.

/// One request a [`CountingMock`] served.
#[derive(Debug, Clone)]
pub struct Asked {
    pub ip: IpAddr,
    /// The API key header's value (`x-apikey` for VirusTotal, `Key` for AbuseIPDB).
    pub key: String,
    /// When the request arrived.
    pub at: std::time::Instant,
    /// Whether it was held behind the gate of [`CountingMock::hold_key`].
    pub held: bool,
}

/// The header a provider's key travels in (providers.md).
pub fn key_header(api: &Api) -> &'static str {
    match api.name {
        "virustotal" => "x-apikey",
        "abuseipdb" => "key",
        "greynoise" => "key",
        "otx" => "x-otx-api-key",
        other => panic!("{other} takes no key"),
    }
}

/// A mock of `api` answering each address with `answer(address)` and counting every request.
pub struct CountingMock {
    pub mock: Mock,
    api: Api,
    asked: Arc<Mutex<Vec<Asked>>>,
    hold: Arc<Mutex<Option<(String, Gate)>>>,
}

impl CountingMock {
    pub async fn start(
        api: &Api,
        answer: impl Fn(IpAddr) -> Canned + Send + Sync + 'static,
    ) -> CountingMock {
        let asked: Arc<Mutex<Vec<Asked>>> = Arc::default();
        let hold: Arc<Mutex<Option<(String, Gate)>>> = Arc::default();
        let (log, held_key, header_name) = (asked.clone(), hold.clone(), key_header(api));
        let mock = Mock::serve(&[api.route], move |seen| {
            let at = std::time::Instant::now();
            let ip = seen.ip.expect("the route captures an address");
            let key = header(seen, header_name).unwrap_or_default().to_owned();
            let gate = held_key
                .lock()
                .unwrap()
                .as_ref()
                .filter(|(k, _)| *k == key)
                .map(|(_, gate)| gate.clone());
            log.lock().unwrap().push(Asked {
                ip,
                key,
                at,
                held: gate.is_some(),
            });
            match gate {
                Some(gate) => held(answer(ip), &gate),
                None => answer(ip),
            }
        })
        .await;
        CountingMock {
            mock,
            api: *api,
            asked,
            hold,
        }
    }

    /// The `base_url` a daemon is configured with.
    pub fn base_url(&self) -> String {
        self.mock.base_url(&self.api)
    }

    /// From now on, requests carrying `key` are answered only once `gate` opens.
    pub fn hold_key(&self, key: &str, gate: &Gate) {
        *self.hold.lock().unwrap() = Some((key.to_owned(), gate.clone()));
    }

    /// Every request so far, in arrival order.
    pub fn asked(&self) -> Vec<Asked> {
        self.asked.lock().unwrap().clone()
    }

    /// Requests per address.
    pub fn counts(&self) -> std::collections::BTreeMap<IpAddr, usize> {
        let mut counts = std::collections::BTreeMap::new();
        for asked in self.asked.lock().unwrap().iter() {
            *counts.entry(asked.ip).or_insert(0) += 1;
        }
        counts
    }

    /// The most requests that arrived within any `window` (half-open, starting at a request).
    pub fn max_in_window(&self, window: Duration) -> usize {
        let mut times: Vec<std::time::Instant> =
            self.asked.lock().unwrap().iter().map(|a| a.at).collect();
        times.sort_unstable();
        max_in_window(&times, window)
    }
}

/// The most of the sorted `times` within any half-open `window` that starts at one of them.
pub fn max_in_window(times: &[std::time::Instant], window: Duration) -> usize {
    let mut end = 0;
    let mut most = 0;
    for (start, t) in times.iter().enumerate() {
        while end < times.len() && times[end] < *t + window {
            end += 1;
        }
        most = most.max(end - start);
    }
    most
}
