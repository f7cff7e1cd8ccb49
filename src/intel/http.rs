//! Shared HTTP plumbing for the remote providers.
//!
//! * [`client`] builds one reqwest client per provider with the configured timeout. It follows
//!   no redirects: reqwest strips only standard auth headers on a cross-host redirect, so a
//!   custom key header (`x-apikey`, `Key`) would travel to wherever a `Location` points.
//! * [`path_segment`] / [`query_value`] put an address into a URL. IPv6 colons stay literal in a
//!   path segment (RFC 3986 `pchar` allows `:`; VirusTotal's own `links.self` shows them so) and
//!   become `%3A` in a query value (AbuseIPDB documents URL-encoding IPv6 in `ipAddress`).
//! * [`fetch_json`] sends one request and classifies what came back before any provider logic:
//!   timeout → `Timeout`; connection failure → `Unavailable`; 5xx → `Unavailable` whatever the
//!   body; an HTML 429 → `RateLimited` with its `Retry-After`; other HTML or anything else that
//!   is not a JSON object → `InvalidResponse` (a bot challenge or proxy page is never an auth
//!   problem). Everything else is handed back as a [`Reply`] for
//!   the provider to map by its own error codes.
//! * Error details are short, single-line, and [`redact`] removes the API key from them, so no
//!   error text, `Debug` output or `intel` detail can carry it.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;
use serde_json::Value;

use super::ProviderError;
use crate::settings::{Secret, SettingsError};

/// What time it is for the slot that makes a request.
pub(crate) type NowFn = std::sync::Arc<dyn Fn() -> SystemTime + Send + Sync>;

tokio::task_local! {
    /// The clock of the slot whose lookup is running (see [`with_clock`]).
    static SLOT_NOW: NowFn;
}

/// Runs `lookup` with `now` as the time against which a provider's reset time
/// (`X-RateLimit-Reset`) becomes a wait: the slot that holds the wait reads the same clock,
/// so the hold ends at the provider's reset on that clock.
pub(crate) async fn with_clock<F: std::future::Future>(now: NowFn, lookup: F) -> F::Output {
    SLOT_NOW.scope(now, lookup).await
}

/// The requesting slot's time; the system's outside a slot (a provider called directly).
fn now() -> SystemTime {
    SLOT_NOW
        .try_with(|now| now())
        .unwrap_or_else(|_| SystemTime::now())
}

/// Largest body read from a provider; anything bigger is not an IP report.
pub(crate) const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// Longest detail text taken from a provider's own message.
const MAX_MESSAGE_CHARS: usize = 120;

/// Connect timeout ceiling: a provider that cannot be reached in this long is unavailable.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A reqwest client for one provider: total timeout as configured, connect timeout at most 5 s,
/// no redirects followed (a 3xx is an invalid response).
pub(crate) fn client(provider: &str, timeout: Duration) -> Result<reqwest::Client, SettingsError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout.min(MAX_CONNECT_TIMEOUT))
        .user_agent(concat!("threatsift/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| SettingsError::Invalid {
            key: format!("providers.{provider}"),
            problem: format!("cannot build the HTTP client: {}", e.without_url()),
        })
}

/// The configured base URL without a trailing slash, checked to be an http(s) URL.
pub(crate) fn base_url(provider: &str, configured: &str) -> Result<String, SettingsError> {
    let invalid = |problem: &str| SettingsError::Invalid {
        key: format!("providers.{provider}.base_url"),
        problem: problem.to_owned(),
    };
    let url = reqwest::Url::parse(configured).map_err(|_| invalid("not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("must be an http or https URL"));
    }
    Ok(configured.trim_end_matches('/').to_owned())
}

/// The provider's API key: `api_key`, else the contents of `api_key_file`. May be empty.
pub(crate) fn api_key(
    provider: &str,
    settings: &crate::settings::ProviderSettings,
) -> Result<Secret, SettingsError> {
    settings.api_key.resolve(
        &settings.api_key_file,
        &format!("providers.{provider}.api_key_file"),
    )
}

/// What a keyed provider holds: its client, checked base URL, resolved key and timeout.
/// `Debug` shows the key as `<redacted>`.
#[derive(Debug)]
pub(crate) struct Endpoint {
    /// The provider's client (no redirects).
    pub client: reqwest::Client,
    /// Base URL without a trailing slash.
    pub base_url: String,
    /// The API key; may be empty (then no key header is sent).
    pub key: Secret,
    /// Total request timeout.
    pub timeout: Duration,
}

impl Endpoint {
    /// From `[providers.<provider>]`: base URL checked, key resolved, client built.
    pub(crate) fn new(
        provider: &str,
        settings: &crate::settings::ProviderSettings,
    ) -> Result<Self, SettingsError> {
        Ok(Endpoint {
            client: client(provider, settings.timeout)?,
            base_url: base_url(provider, &settings.base_url)?,
            key: api_key(provider, settings)?,
            timeout: settings.timeout,
        })
    }
}

impl Endpoint {
    /// True when a key is configured (then 401/403 are about it).
    pub(crate) fn has_key(&self) -> bool {
        !self.key.is_empty()
    }

    /// GETs `url` asking for JSON, with the key in `key_header` when one is configured, and
    /// classifies the answer as [`fetch_json`] does.
    pub(crate) async fn get_json(
        &self,
        url: String,
        key_header: &str,
    ) -> Result<Reply, ProviderError> {
        let mut request = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json");
        if self.has_key() {
            request = request.header(key_header, self.key.expose());
        }
        fetch_json(request, self.timeout).await
    }
}

/// The address as one URL path segment: colons stay literal (allowed in a segment).
pub(crate) fn path_segment(ip: IpAddr) -> String {
    percent_encode(&ip.to_string(), b":")
}

/// The address as a query value: colons become `%3A`.
pub(crate) fn query_value(ip: IpAddr) -> String {
    percent_encode(&ip.to_string(), b"")
}

/// Percent-encodes everything but RFC 3986 unreserved characters and `keep`.
fn percent_encode(text: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) || keep.contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Rate-limit hints a provider sent, where present and numeric.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RateLimitHints {
    /// `Retry-After`, in seconds (the HTTP-date form is ignored).
    pub retry_after_secs: Option<u64>,
    /// `X-RateLimit-Limit`.
    pub limit: Option<u64>,
    /// `X-RateLimit-Remaining`.
    pub remaining: Option<u64>,
    /// `X-RateLimit-Reset`, Unix seconds.
    pub reset_epoch: Option<u64>,
}

impl RateLimitHints {
    /// Reads the hints from response headers; non-numeric values are ignored.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Self {
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        RateLimitHints {
            retry_after_secs: number("retry-after"),
            limit: number("x-ratelimit-limit"),
            remaining: number("x-ratelimit-remaining"),
            reset_epoch: number("x-ratelimit-reset"),
        }
    }

    /// `"; retry after 29241 s; 0 of 1000 left; resets 2018-12-28T05:00:00Z"`, or `""`.
    pub(crate) fn suffix(&self) -> String {
        let mut parts = Vec::new();
        if let Some(secs) = self.retry_after_secs {
            parts.push(format!("retry after {secs} s"));
        }
        match (self.remaining, self.limit) {
            (Some(left), Some(limit)) => parts.push(format!("{left} of {limit} left")),
            (Some(left), None) => parts.push(format!("{left} left")),
            _ => {}
        }
        if let Some(epoch) = self.reset_epoch {
            let at = UNIX_EPOCH + Duration::from_secs(epoch.min(253_402_300_799));
            parts.push(format!("resets {}", humantime::format_rfc3339_seconds(at)));
        }
        parts.iter().map(|p| format!("; {p}")).collect()
    }

    /// How long the provider asked us to wait: `Retry-After`, else until `X-RateLimit-Reset`,
    /// measured from the requesting slot's clock ([`with_clock`]).
    pub(crate) fn wait(&self) -> Option<Duration> {
        self.retry_after_secs
            .map(Duration::from_secs)
            .or_else(|| self.reset_in(now()))
    }

    /// Seconds from `now` until the reset, when a reset time was sent.
    pub(crate) fn reset_in(&self, now: SystemTime) -> Option<Duration> {
        let at = UNIX_EPOCH + Duration::from_secs(self.reset_epoch?);
        at.duration_since(now).ok()
    }
}

/// A response with a JSON object body and a status below 500.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Rate-limit headers.
    pub limits: RateLimitHints,
    /// The body.
    pub body: serde_json::Map<String, Value>,
}

/// Sends `request` and classifies transport failures, 5xx and unreadable bodies.
pub(crate) async fn fetch_json(
    request: reqwest::RequestBuilder,
    timeout: Duration,
) -> Result<Reply, ProviderError> {
    let response = request
        .send()
        .await
        .map_err(|e| transport_error(&e, timeout))?;
    read_json(response, timeout, &KEYED).await
}

/// How [`read_json`] judges what differs between providers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadRules {
    /// The detail of a 3xx answer (keyed providers follow none; RDAP gets one only without a
    /// usable `Location`).
    pub redirect_detail: &'static str,
    /// Whether a 404 whose body is not JSON is an empty answer (RFC 7480 allows it for RDAP).
    pub plain_404_is_empty: bool,
}

/// The rules of providers that send an API key.
pub(crate) const KEYED: ReadRules = ReadRules {
    redirect_detail: "redirect, not followed (the API key is never sent elsewhere)",
    plain_404_is_empty: false,
};

/// Reads a response body (at most [`MAX_BODY_BYTES`]) into a [`Reply`]: 3xx and HTML pages are
/// invalid responses, 5xx is unavailable, and the body must be a JSON object.
pub(crate) async fn read_json(
    mut response: reqwest::Response,
    timeout: Duration,
    rules: &ReadRules,
) -> Result<Reply, ProviderError> {
    let status = response.status().as_u16();
    let limits = RateLimitHints::from_headers(response.headers());
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(&e, timeout))?
    {
        if bytes.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ProviderError::InvalidResponse(format!(
                "HTTP {status}: body larger than {MAX_BODY_BYTES} bytes"
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    if (300..400).contains(&status) {
        return Err(ProviderError::InvalidResponse(format!(
            "HTTP {status} {}",
            rules.redirect_detail
        )));
    }
    let html = content_type.contains("html") || looks_like_html(&bytes);
    if status >= 500 {
        let what = if html { " (HTML page)" } else { "" };
        return Err(ProviderError::Unavailable(format!(
            "HTTP {status}{what}{}",
            limits.suffix()
        )));
    }
    if html && status == 429 {
        // A CDN's or proxy's rate-limit page: throttled all the same, and its Retry-After holds.
        return Err(ProviderError::RateLimited(
            format!(
                "HTTP 429 with an HTML page (rate limited by a proxy or CDN){}",
                limits.suffix()
            ),
            limits.wait(),
        ));
    }
    if html {
        return Err(ProviderError::InvalidResponse(format!(
            "HTTP {status} with an HTML page where JSON was expected (bot challenge or proxy page)"
        )));
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(body)) => Ok(Reply {
            status,
            limits,
            body,
        }),
        Ok(_) => Err(ProviderError::InvalidResponse(format!(
            "HTTP {status} with JSON that is not an object"
        ))),
        Err(_) if status == 404 && rules.plain_404_is_empty => Ok(Reply {
            status,
            limits,
            body: serde_json::Map::new(),
        }),
        Err(_) => Err(ProviderError::InvalidResponse(format!(
            "HTTP {status} with a body that is not JSON"
        ))),
    }
}

fn looks_like_html(bytes: &[u8]) -> bool {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    bytes[start..].first() == Some(&b'<')
}

/// Timeout → `Timeout(configured)`; anything else on the wire → `Unavailable`. The URL is left
/// out of the text: it is configuration, and a query could carry an identifier.
pub(crate) fn transport_error(error: &reqwest::Error, timeout: Duration) -> ProviderError {
    if error.is_timeout() {
        ProviderError::Timeout(timeout)
    } else if error.is_connect() {
        ProviderError::Unavailable("connection failed".to_owned())
    } else if error.is_body() || error.is_decode() {
        ProviderError::Unavailable("connection broke while reading the answer".to_owned())
    } else {
        ProviderError::Unavailable("request failed".to_owned())
    }
}

/// A provider's own message, made safe for a detail: one line, at most 120 characters.
pub(crate) fn short_message(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let cleaned = cleaned.trim();
    if cleaned.chars().count() > MAX_MESSAGE_CHARS {
        // The ellipsis counts: the whole line stays within the limit.
        let cut: String = cleaned.chars().take(MAX_MESSAGE_CHARS - 1).collect();
        format!("{cut}…")
    } else {
        cleaned.to_owned()
    }
}

/// A provider's own message for a detail: the key removed first, then one short line (so a cut
/// can never leave part of the key behind).
pub(crate) fn provider_text(text: &str, key: &Secret) -> String {
    let key = key.expose();
    if key.is_empty() {
        short_message(text)
    } else {
        short_message(&text.replace(key, "<redacted>"))
    }
}

/// The fallback by HTTP status, for answers no provider-specific rule recognised.
pub(crate) fn by_status(provider: &str, reply: &Reply, what: &str) -> ProviderError {
    let status = reply.status;
    let limits = reply.limits.suffix();
    match status {
        401 => ProviderError::Unauthorized(format!("{provider} answered HTTP 401{what}")),
        403 => ProviderError::Forbidden(format!("{provider} answered HTTP 403{what}")),
        429 => ProviderError::RateLimited(
            format!("{provider} answered HTTP 429{what}{limits}"),
            reply.limits.wait(),
        ),
        _ => ProviderError::InvalidResponse(format!("{provider} answered HTTP {status}{what}")),
    }
}

/// Removes every occurrence of the API key from the error's text (belt and braces: no detail
/// is built from the key, but provider messages are echoed in part).
pub(crate) fn redact(error: ProviderError, key: &Secret) -> ProviderError {
    let key = key.expose();
    if key.is_empty() {
        return error;
    }
    error.map_text(|text| text.replace(key, "<redacted>"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_colons_are_literal_in_a_path_and_encoded_in_a_query() {
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(path_segment(v6), "2001:db8::1");
        assert_eq!(query_value(v6), "2001%3Adb8%3A%3A1");
        let mapped: IpAddr = "::ffff:203.0.113.7".parse().unwrap();
        assert_eq!(query_value(mapped), "%3A%3Affff%3A203.0.113.7");
        let v4: IpAddr = "203.0.113.7".parse().unwrap();
        assert_eq!(
            (path_segment(v4), query_value(v4)),
            ("203.0.113.7".into(), "203.0.113.7".into())
        );
    }

    #[test]
    fn rate_limit_hints_read_numbers_and_ignore_the_rest() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "29241".parse().unwrap());
        headers.insert("x-ratelimit-limit", "1000".parse().unwrap());
        headers.insert("x-ratelimit-remaining", "0".parse().unwrap());
        headers.insert("x-ratelimit-reset", "1545973200".parse().unwrap());
        let hints = RateLimitHints::from_headers(&headers);
        assert_eq!(
            hints.suffix(),
            "; retry after 29241 s; 0 of 1000 left; resets 2018-12-28T05:00:00Z"
        );
        headers.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        headers.remove("x-ratelimit-limit");
        let hints = RateLimitHints::from_headers(&headers);
        assert_eq!(hints.retry_after_secs, None);
        assert_eq!(hints.suffix(), "; 0 left; resets 2018-12-28T05:00:00Z");
        assert_eq!(RateLimitHints::default().suffix(), "");
    }

    #[test]
    fn provider_messages_are_one_short_line() {
        assert_eq!(short_message(" Wrong\nAPI key\r "), "Wrong API key");
        // README: "cut to one line of at most 120 characters", the ellipsis included.
        let long = "x".repeat(500);
        assert_eq!(short_message(&long), format!("{}…", "x".repeat(119)));
        assert_eq!(short_message(&long).chars().count(), 120);
        let exactly = "y".repeat(120);
        assert_eq!(short_message(&exactly), exactly, "120 characters fit uncut");
        let one_more = "z".repeat(121);
        assert_eq!(short_message(&one_more), format!("{}…", "z".repeat(119)));
    }

    #[test]
    fn redaction_removes_the_key_from_every_variant() {
        let key = Secret::new("k3y-0123456789abcdef");
        let text = format!("echo {} here", key.expose());
        let errors = [
            ProviderError::Unauthorized(text.clone()),
            ProviderError::Forbidden(text.clone()),
            ProviderError::RateLimited(text.clone(), None),
            ProviderError::QuotaExhausted(text.clone(), Some(Duration::from_secs(5))),
            ProviderError::Timeout(Duration::from_secs(1)),
            ProviderError::Unavailable(text.clone()),
            ProviderError::InvalidResponse(text.clone()),
        ];
        for error in errors {
            let clean = redact(error, &key);
            assert!(!clean.to_string().contains(key.expose()), "{clean}");
            assert!(!format!("{clean:?}").contains(key.expose()), "{clean:?}");
        }
    }

    #[test]
    fn base_url_must_be_http() {
        assert_eq!(
            base_url("virustotal", "http://127.0.0.1:1/api/").unwrap(),
            "http://127.0.0.1:1/api"
        );
        for bad in ["", "ftp://example.test", "not a url"] {
            let error = base_url("virustotal", bad).unwrap_err();
            assert!(
                error.to_string().contains("providers.virustotal.base_url"),
                "{error}"
            );
        }
    }
}
