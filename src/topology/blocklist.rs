//! The blocklist endpoint (ef-withdraw): `GET /blocklist/ipv4.txt` and `/blocklist/ipv6.txt`
//! on `blocklist.listen`, for a PAN-OS External Dynamic List or a FortiGate external threat
//! feed.
//!
//! * Body: `text/plain`, one bare address per line (no prefix, comment or blank line), newest
//!   published first, at most `blocklist.max_entries`; only addresses of the published index
//!   that are unexpired, not withdrawn (a withdrawal removes them from the index), at or above
//!   `blocklist.min_verdict`, and not excluded by the allow-list hook.
//! * With `blocklist.token` set, a request without `Authorization: Bearer <token>` or HTTP
//!   basic authentication with the token as the password (or with another token) gets 401 and
//!   no list; the token is compared in constant time and never logged.
//! * `ETag` is a hash of the body; `If-None-Match` with it gets 304. `HEAD` answers the
//!   headers only (axum serves `HEAD` for `GET` routes).
//! * Counted: `blocklist_requests_total{list,status}`, `blocklist_entries_served_total{list}`.
//! * Like the metrics server: at most 64 connections at once, 10 s to send a request.

use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::model::Verdict;
use crate::settings::Secret;
use crate::stages::published::PublishedIndex;
use crate::telemetry::events::{BlocklistServed, WithdrawMetrics};

/// Decides whether an address is left out of the lists (the allow-list).
pub(crate) type Exclusion = Arc<dyn Fn(IpAddr) -> bool + Send + Sync>;

/// What the endpoint serves from.
#[derive(Clone)]
pub(crate) struct BlocklistState {
    pub(crate) index: PublishedIndex,
    pub(crate) token: Option<Secret>,
    pub(crate) min_verdict: Verdict,
    pub(crate) max_entries: usize,
    pub(crate) metrics: WithdrawMetrics,
    /// The allow-list's lookup: listed addresses are left out (a withdrawal also removes a
    /// newly allow-listed one from the index, once it is delivered).
    pub(crate) excluded: Option<Exclusion>,
}

/// The router of the endpoint.
pub(crate) fn router(state: BlocklistState) -> Router {
    Router::new()
        .route("/blocklist/ipv4.txt", get(ipv4))
        .route("/blocklist/ipv6.txt", get(ipv6))
        .with_state(Arc::new(state))
}

/// Serves the endpoint on `listener` until `stop` is cancelled.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    state: BlocklistState,
    stop: CancellationToken,
) -> std::io::Result<()> {
    // The metrics server's limits: 64 connections at once, 10 s to send a request.
    let listener = super::server::GuardedListener::new(
        listener,
        super::server::MAX_CONNECTIONS,
        super::server::REQUEST_READ_TIMEOUT,
    );
    axum::serve(listener, router(state))
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
}

async fn ipv4(State(state): State<Arc<BlocklistState>>, headers: HeaderMap) -> Response {
    list(&state, &headers, false)
}

async fn ipv6(State(state): State<Arc<BlocklistState>>, headers: HeaderMap) -> Response {
    list(&state, &headers, true)
}

/// True when `headers` carry `token`: as a bearer token, or as the password of HTTP basic
/// authentication (any user name), which is what PAN-OS EDLs and FortiGate external
/// connectors send. Compared in constant time.
fn authorized(token: &Secret, headers: &HeaderMap) -> bool {
    use base64::Engine;
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let given: Vec<u8> = if let Some(bearer) = value.strip_prefix("Bearer ") {
        bearer.trim().as_bytes().to_vec()
    } else if let Some(basic) = value.strip_prefix("Basic ") {
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(basic.trim()) else {
            return false;
        };
        match decoded.iter().position(|b| *b == b':') {
            Some(colon) => decoded[colon + 1..].to_vec(),
            None => return false,
        }
    } else {
        return false;
    };
    let expected = token.expose().as_bytes();
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The body of one list: bare addresses, one per line, newest first.
pub(crate) fn body(addresses: &[IpAddr]) -> String {
    let mut text = String::with_capacity(addresses.len() * 16);
    for ip in addresses {
        text.push_str(&ip.to_string());
        text.push('\n');
    }
    text
}

fn list(state: &BlocklistState, headers: &HeaderMap, v6: bool) -> Response {
    let name = if v6 { "ipv6" } else { "ipv4" };
    if let Some(token) = &state.token {
        if !authorized(token, headers) {
            BlocklistServed {
                list: name,
                status: 401,
                entries: 0,
            }
            .emit(&state.metrics);
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "unauthorized\n",
            )
                .into_response();
        }
    }
    let none = |_: IpAddr| false;
    let excluded: &dyn Fn(IpAddr) -> bool = match &state.excluded {
        Some(hook) => hook.as_ref(),
        None => &none,
    };
    let addresses = state.index.blocklist(
        v6,
        state.min_verdict,
        SystemTime::now(),
        state.max_entries,
        excluded,
    );
    let text = body(&addresses);
    let etag = {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        text.hash(&mut hasher);
        format!("\"{:016x}\"", hasher.finish())
    };
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    let (status, entries) = if unchanged {
        (StatusCode::NOT_MODIFIED, 0)
    } else {
        (StatusCode::OK, addresses.len())
    };
    BlocklistServed {
        list: name,
        status: status.as_u16(),
        entries,
    }
    .emit(&state.metrics);
    let mut response = if unchanged {
        status.into_response()
    } else {
        text.into_response()
    };
    let response_headers = response.headers_mut();
    response_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response_headers.insert(header::ETAG, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_bare_addresses_one_per_line() {
        let ips: Vec<IpAddr> = vec![
            "198.51.100.1".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
        ];
        assert_eq!(body(&ips), "198.51.100.1\n2001:db8::1\n");
        assert_eq!(body(&[]), "");
    }

    #[test]
    fn only_the_exact_bearer_token_is_authorized() {
        let token = Secret::new("s3cret-token");
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            headers
        };
        assert!(authorized(&token, &with("Bearer s3cret-token")));
        assert!(!authorized(&token, &with("Bearer s3cret-toke")));
        assert!(!authorized(&token, &with("Bearer s3cret-tokeN")));
        assert!(!authorized(&token, &with("Basic s3cret-token")));
        assert!(!authorized(&token, &HeaderMap::new()));
        // Basic: any user, the token as the password (base64 of "edl:s3cret-token").
        assert!(authorized(&token, &with("Basic ZWRsOnMzY3JldC10b2tlbg==")));
        // "edl:s3cret-toke"
        assert!(!authorized(&token, &with("Basic ZWRsOnMzY3JldC10b2tl")));
    }
}
