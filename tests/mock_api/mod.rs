//! The mock HTTP API the provider tests share: one canned answer per mock, every request
//! logged (path, query, headers), and the checks that an API key never leaks.
#![allow(dead_code)]

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, Uri};
use serde_json::Value;

use threatsift::Network;
use threatsift::{intel_entry, Lookup, Provider, ProviderError};
use threatsift::{ProviderSettings, Secret};

/// One canned answer.
#[derive(Clone)]
pub struct Canned {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    pub headers: Vec<(&'static str, &'static str)>,
    pub delay: Duration,
}

pub fn json_answer(status: u16, body: Value) -> Canned {
    Canned {
        status,
        content_type: "application/json",
        body: body.to_string(),
        headers: Vec::new(),
        delay: Duration::ZERO,
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
    }
}

/// What the mock saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path_and_query: String,
    pub headers: HeaderMap,
}

pub type SeenLog = Arc<Mutex<Vec<Seen>>>;

/// A mock answering every request with `canned`; returns its root URL and what it saw.
pub async fn mock(canned: Canned) -> (String, SeenLog) {
    let mock = Mock::start(canned).await;
    (mock.url, mock.seen)
}

pub type Responder = Arc<dyn Fn(&str) -> Canned + Send + Sync>;

/// An HTTP mock whose answer can be changed while it runs and may depend on the path.
pub struct Mock {
    pub url: String,
    pub seen: SeenLog,
    responder: Arc<Mutex<Responder>>,
}

impl Mock {
    /// A mock answering every request with `canned`.
    pub async fn start(canned: Canned) -> Mock {
        Mock::by_path(move |_| canned.clone()).await
    }

    /// A mock whose answer depends on the request path.
    pub async fn by_path(respond: impl Fn(&str) -> Canned + Send + Sync + 'static) -> Mock {
        let seen: SeenLog = Arc::default();
        let responder: Arc<Mutex<Responder>> = Arc::new(Mutex::new(Arc::new(respond)));
        let (log, answer) = (seen.clone(), responder.clone());
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
            let (log, answer) = (log.clone(), answer.clone());
            async move {
                let path = uri
                    .path_and_query()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_default();
                let responder = answer.lock().unwrap().clone();
                let canned = responder(&path);
                log.lock().unwrap().push(Seen {
                    path_and_query: path,
                    headers,
                });
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Mock {
            url,
            seen,
            responder,
        }
    }

    /// From now on every request gets `canned`.
    pub fn answer(&self, canned: Canned) {
        *self.responder.lock().unwrap() = Arc::new(move |_| canned.clone());
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The address each request asked about (the last path segment), in arrival order.
    pub fn asked(&self) -> Vec<String> {
        self.seen()
            .iter()
            .map(|s| {
                let path = s.path_and_query.split('?').next().unwrap_or("");
                path.rsplit('/').next().unwrap_or("").to_owned()
            })
            .collect()
    }
}

/// Builds a provider with `new` on a mock answering `canned` below `path` (key `key`, 5 s
/// timeout), checks that it is called `name`, looks `address` up and checks that `hidden` (the
/// test's key) shows nowhere; returns the result and the requests the mock saw.
pub async fn lookup_once<P, E>(
    new: impl FnOnce(&ProviderSettings) -> Result<P, E>,
    path: &str,
    name: &str,
    hidden: &str,
    canned: Canned,
    key: &str,
    address: &str,
) -> (Result<Lookup, ProviderError>, Vec<Seen>)
where
    P: Provider + std::fmt::Debug,
    E: std::fmt::Debug,
{
    let (url, seen) = mock(canned).await;
    let provider = new(&settings(
        &format!("{url}{path}"),
        key,
        Duration::from_secs(5),
    ))
    .unwrap();
    assert_eq!(provider.name(), name);
    let result = provider.lookup(ip(address)).await;
    assert_key_hidden(&result, &provider, hidden);
    let seen = seen.lock().unwrap().clone();
    (result, seen)
}

pub fn settings(base_url: &str, key: &str, timeout: Duration) -> ProviderSettings {
    ProviderSettings {
        enabled: false,
        base_url: base_url.to_owned(),
        api_key: Secret::new(key),
        api_key_file: String::new(),
        path: String::new(),
        timeout,
        per_minute: 4,
        per_day: 0,
        ttl: Duration::from_secs(86_400),
        not_found_ttl: Duration::from_secs(3_600),
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
