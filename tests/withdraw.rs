//! Withdrawals, feed-reload re-evaluation and the blocklist endpoint (issue 17 items 3 and 4;
//! README "Withdrawals" and "Blocklist endpoint"), each against the daemon binary and the real
//! broker; the blocklist is read with an HTTP client.
//!
//! Nothing waits on the clock: every wait is for a record, a metric or an HTTP answer, with a
//! generous deadline whose expiry fails the test naming what did not come. Every record read
//! from an output topic is validated against the record schema (tests/common `read_all`).
#![allow(clippy::disallowed_methods)] // plain test threads may sleep; no runtime is blocked

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

/// Generous: the machine is shared and slow; expiry means the awaited thing never came.
const DEADLINE: Duration = Duration::from_secs(120);

/// The token the blocklist tests configure.
const TOKEN: &str = "edl-token-7f3a";

/// Replaces the feed file at once (a rename: never read half written).
fn rewrite_feed(path: &Path, lines: &[&str]) {
    let staged = path.with_extension("next");
    std::fs::write(&staged, lines.join("\n")).unwrap();
    std::fs::rename(&staged, path).unwrap();
}

/// The records of `ip` in `messages`, in topic order (the output partition is chosen by key,
/// so one address's records are in one partition, in delivery order).
fn records_of(messages: &[ReadMessage], ip: &str) -> Vec<serde_json::Value> {
    let mut of: Vec<&ReadMessage> = messages
        .iter()
        .filter(|m| m.key.as_deref() == Some(ip))
        .collect();
    of.sort_by_key(|m| m.offset);
    of.into_iter().map(ReadMessage::json).collect()
}

/// True when `messages` hold a record of `ip` with revision `revision`.
fn holds_revision(messages: &[ReadMessage], ip: &str, revision: u64) -> bool {
    records_of(messages, ip)
        .iter()
        .any(|r| r["revision"] == revision)
}

/// A configuration with a 1 s feed reload, the blocklist endpoint on its own port, and `extra`.
fn config_with_blocklist(
    dir: &Path,
    topics: &Topics,
    feed: &Path,
    extra: &str,
) -> (std::path::PathBuf, u16, u16) {
    let blocklist_port = free_port();
    let extra = format!(
        "[intel]\nfeeds_reload_interval = \"1s\"\n[blocklist]\nlisten = \"127.0.0.1:{blocklist_port}\"\n\
         token = \"{TOKEN}\"\n{extra}"
    );
    let (config, port) = write_config(dir, topics, feed, &extra);
    (config, port, blocklist_port)
}

/// `GET` a blocklist path with an optional bearer token (a plain HTTP/1.1 client on a
/// socket): status, content type and body. Panics when the endpoint does not answer.
fn get_list(port: u16, path: &str, token: Option<&str>) -> (u16, String, String) {
    let auth = token.map_or(String::new(), |t| format!("Bearer {t}"));
    get_list_authorized(port, path, &auth)
}

/// The `Authorization` value of HTTP basic authentication.
fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// `GET` with `authorization` as the `Authorization` header (none when empty).
fn get_list_authorized(port: u16, path: &str, authorization: &str) -> (u16, String, String) {
    let headers: Vec<(&str, &str)> = if authorization.is_empty() {
        Vec::new()
    } else {
        vec![("Authorization", authorization)]
    };
    let (status, head, body) = request(port, "GET", path, &headers);
    (status, header_of(&head, "content-type"), body)
}

/// One HTTP/1.1 request on a fresh connection: status, response head and body. Panics when
/// the endpoint does not answer.
fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("connect to the blocklist endpoint: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{extra}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{method} {path}: no header end in {response:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: no status in {head:?}"));
    (status, head.to_owned(), body.to_owned())
}

/// A header's value in a response head (empty when absent).
fn header_of(head: &str, name: &str) -> String {
    head.lines()
        .find_map(|l| {
            let (key, value) = l.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default()
}

/// The lines of a list body, each checked to be a bare address (no prefix, comment or blank).
fn bare_lines(body: &str) -> Vec<String> {
    assert!(
        body.is_empty() || body.ends_with('\n'),
        "the last line is not terminated: {body:?}"
    );
    body.lines()
        .map(|line| {
            assert!(
                line.parse::<std::net::IpAddr>().is_ok() && line.trim() == line,
                "not a bare address line: {line:?}"
            );
            line.to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_gaining_an_address_mid_window_flags_it_without_a_new_sighting() {
    let topics = create_topics(1).await;
    let dir = tempfile::tempdir().unwrap();
    let feed = write_blocklist(dir.path(), &["203.0.113.0/25"]);
    let (config, port, _) = config_with_blocklist(dir.path(), &topics, &feed, "");
    let mut daemon = Daemon::start(&config, port, dir.path());
    daemon.wait_ready(DEADLINE);

    // 198.51.100.20 is not listed: withheld. The listed address after it is the end marker:
    // once its record is out, the first message was processed too.
    produce(
        &topics.input,
        None,
        &[
            ecs_event("198.51.100.20", "10.0.0.1"),
            ecs_event("203.0.113.9", "10.0.0.1"),
        ],
    )
    .await;
    let before = read_until(&topics.output, DEADLINE, |m| holds_ips(m, &["203.0.113.9"]));
    assert!(
        records_of(&before, "198.51.100.20").is_empty(),
        "an unlisted address was published"
    );

    // The feed now lists it; it is never seen again, yet the reload flags it.
    rewrite_feed(&feed, &["203.0.113.0/25", "198.51.100.20"]);
    let after = read_until(&topics.output, DEADLINE, |m| {
        holds_ips(m, &["198.51.100.20"])
    });
    let flagged = records_of(&after, "198.51.100.20");
    assert_eq!(flagged.len(), 1, "{flagged:#?}");
    let record = &flagged[0];
    // weight 70 = scoring.malicious_at: the feed's verdict.
    assert_eq!(record["verdict"], "malicious", "{record}");
    assert_eq!(record["revision"], 1, "its first published revision");
    assert!(record.get("revoked").is_none(), "{record}");
    assert_eq!(
        record["intel"]["feeds"]["matches"][0]["cidr"],
        "198.51.100.20/32"
    );
    // The context the dedup window kept of the first event.
    assert_eq!(record["observed"]["topic"], topics.input.as_str());
    assert_eq!(record["observed"]["offset"], 0);
    assert_eq!(record["observed"]["format"], "ecs_json");
    assert_eq!(record["roles"], serde_json::json!(["source"]));
    assert_eq!(record["sightings"], 1);
    wait_metric(
        &daemon,
        "threatsift_reevaluations_total{outcome=\"flagged\"}",
        DEADLINE,
        |v| v >= 1.0,
    );
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(DEADLINE).code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_removed_from_the_feed_gets_a_withdrawal_revision() {
    let topics = create_topics(1).await;
    let dir = tempfile::tempdir().unwrap();
    let feed = write_blocklist(dir.path(), &["203.0.113.0/25", "198.51.100.30"]);
    let (config, port, blocklist_port) = config_with_blocklist(dir.path(), &topics, &feed, "");
    let mut daemon = Daemon::start(&config, port, dir.path());
    daemon.wait_ready(DEADLINE);

    produce(
        &topics.input,
        None,
        &[
            ecs_event("198.51.100.30", "10.0.0.1"),
            ecs_event("203.0.113.5", "10.0.0.1"),
            ecs_event("198.51.100.31", "10.0.0.1"),
        ],
    )
    .await;
    read_until(&topics.output, DEADLINE, |m| {
        holds_ips(m, &["198.51.100.30", "203.0.113.5"])
    });
    let listed = wait_for(&daemon, "198.51.100.30 on the blocklist", DEADLINE, || {
        let (_, _, body) = get_list(blocklist_port, "/blocklist/ipv4.txt", Some(TOKEN));
        body.lines().any(|l| l == "198.51.100.30").then_some(body)
    });
    assert!(listed.lines().any(|l| l == "203.0.113.5"), "{listed}");

    // Removed from the feed: scored again without it (0 points), below publish.min_verdict.
    rewrite_feed(&feed, &["203.0.113.0/25"]);
    let after = read_until(&topics.output, DEADLINE, |m| {
        holds_revision(m, "198.51.100.30", 2)
    });
    let revisions = records_of(&after, "198.51.100.30");
    assert_eq!(revisions.len(), 2, "{revisions:#?}");
    let withdrawal = &revisions[1];
    assert_eq!(withdrawal["revoked"], true, "{withdrawal}");
    assert_eq!(withdrawal["revocation_reason"], "feed_removed");
    assert_eq!(
        withdrawal["revision"], 2,
        "the next revision under the same key"
    );
    assert_eq!(withdrawal["score"], 0, "scored again without the feed");
    assert_eq!(
        withdrawal["intel"]["feeds"]["matches"],
        serde_json::json!([])
    );
    // It leaves the blocklist at once (the withdrawal removed it from the index).
    let (status, _, body) = get_list(blocklist_port, "/blocklist/ipv4.txt", Some(TOKEN));
    assert_eq!(status, 200);
    assert_eq!(bare_lines(&body), ["203.0.113.5"]);

    // End marker: a later reload lists the third address, which that pass flags. By then the
    // earlier pass is long over: the still-listed address had nothing withdrawn.
    rewrite_feed(&feed, &["203.0.113.0/25", "198.51.100.31"]);
    let end = read_until(&topics.output, DEADLINE, |m| {
        holds_ips(m, &["198.51.100.31"])
    });
    let kept = records_of(&end, "203.0.113.5");
    assert_eq!(
        kept.len(),
        1,
        "a still-listed address was revised: {kept:#?}"
    );
    assert_eq!(records_of(&end, "198.51.100.30").len(), 2);
    assert!(
        daemon
            .metric("threatsift_withdrawals_total{reason=\"feed_removed\"}")
            .unwrap_or(0.0)
            == 1.0
    );
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(DEADLINE).code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_verdict_is_withdrawn_and_leaves_the_blocklist() {
    let topics = create_topics(1).await;
    let dir = tempfile::tempdir().unwrap();
    let feed = write_blocklist(dir.path(), &["203.0.113.0/25"]);
    // A verdict holds dedup.ttl after it was published (the record has no expires_at here).
    // 20 s: long enough that the listing below is seen first on a loaded machine.
    let (config, port, blocklist_port) =
        config_with_blocklist(dir.path(), &topics, &feed, "[dedup]\nttl = \"20s\"\n");
    let mut daemon = Daemon::start(&config, port, dir.path());
    daemon.wait_ready(DEADLINE);

    produce(
        &topics.input,
        None,
        &[ecs_event("203.0.113.44", "10.0.0.1")],
    )
    .await;
    read_until(&topics.output, DEADLINE, |m| {
        holds_ips(m, &["203.0.113.44"])
    });
    wait_for(&daemon, "203.0.113.44 on the blocklist", DEADLINE, || {
        let (_, _, body) = get_list(blocklist_port, "/blocklist/ipv4.txt", Some(TOKEN));
        body.lines().any(|l| l == "203.0.113.44").then_some(())
    });

    let after = read_until(&topics.output, DEADLINE, |m| {
        holds_revision(m, "203.0.113.44", 2)
    });
    let revisions = records_of(&after, "203.0.113.44");
    assert_eq!(revisions.len(), 2, "{revisions:#?}");
    let withdrawal = &revisions[1];
    assert_eq!(withdrawal["revoked"], true, "{withdrawal}");
    assert_eq!(withdrawal["revocation_reason"], "expired");
    assert_eq!(withdrawal["revision"], 2);
    // The withdrawal carries what was withdrawn.
    assert_eq!(withdrawal["verdict"], revisions[0]["verdict"]);
    let (status, _, body) = get_list(blocklist_port, "/blocklist/ipv4.txt", Some(TOKEN));
    assert_eq!(status, 200);
    assert!(bare_lines(&body).is_empty(), "still listed: {body:?}");
    wait_metric(
        &daemon,
        "threatsift_withdrawals_total{reason=\"expired\"}",
        DEADLINE,
        |v| v == 1.0,
    );
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(DEADLINE).code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_blocklist_serves_bare_lines_per_family_newest_first_capped_behind_the_token() {
    let topics = create_topics(1).await;
    let dir = tempfile::tempdir().unwrap();
    let feed = write_blocklist(dir.path(), &["203.0.113.0/25", "2001:db8:bad::/48"]);
    let (config, port, blocklist_port) =
        config_with_blocklist(dir.path(), &topics, &feed, "max_entries = 3\n");
    let mut daemon = Daemon::start(&config, port, dir.path());
    daemon.wait_ready(DEADLINE);

    // One at a time, each after the one before is published: the publishing order is known.
    let order = [
        "203.0.113.1",
        "2001:db8:bad::1",
        "203.0.113.2",
        "203.0.113.3",
        "2001:db8:bad::2",
        "203.0.113.4",
        "203.0.113.5",
    ];
    for ip in order {
        produce(&topics.input, None, &[ecs_event(ip, "10.0.0.1")]).await;
        read_until(&topics.output, DEADLINE, |m| holds_ips(m, &[ip]));
    }
    // Not listed, so never on the blocklist (the feed leaves it unknown, withheld).
    produce(
        &topics.input,
        None,
        &[ecs_event("198.51.100.99", "10.0.0.1")],
    )
    .await;
    wait_metric(
        &daemon,
        "threatsift_records_withheld_total{verdict=\"unknown\"}",
        DEADLINE,
        |v| v >= 1.0,
    );

    let (status, content_type, body) = get_list(blocklist_port, "/blocklist/ipv4.txt", Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    // Newest first, capped at max_entries.
    assert_eq!(
        bare_lines(&body),
        ["203.0.113.5", "203.0.113.4", "203.0.113.3"]
    );
    let (status, content_type, body) = get_list(blocklist_port, "/blocklist/ipv6.txt", Some(TOKEN));
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    assert_eq!(bare_lines(&body), ["2001:db8:bad::2", "2001:db8:bad::1"]);

    // HTTP basic authentication with the token as the password, as the firewalls send it.
    let (status, _, body) =
        get_list_authorized(blocklist_port, "/blocklist/ipv4.txt", &basic("edl", TOKEN));
    assert_eq!(status, 200, "{body}");
    assert_eq!(bare_lines(&body).len(), 3);
    let (status, _, _) = get_list_authorized(
        blocklist_port,
        "/blocklist/ipv4.txt",
        &basic("edl", "edl-token-7f3b"),
    );
    assert_eq!(status, 401);
    // Without the token, or with another: 401 and no list.
    for token in [None, Some("edl-token-7f3b"), Some("")] {
        let (status, _, body) = get_list(blocklist_port, "/blocklist/ipv4.txt", token);
        assert_eq!(status, 401, "token {token:?}: {body}");
        assert!(!body.contains("203.0.113"), "{body}");
    }
    wait_metric(
        &daemon,
        "threatsift_blocklist_requests_total{list=\"ipv4\",status=\"401\"}",
        DEADLINE,
        |v| v == 4.0,
    );
    assert_eq!(
        daemon.metric("threatsift_blocklist_entries_served_total{list=\"ipv4\"}"),
        Some(6.0)
    );
    // A client holding the current list is told so (304, no body); HEAD gives the headers.
    let bearer = format!("Bearer {TOKEN}");
    let (status, head, body) = request(
        blocklist_port,
        "GET",
        "/blocklist/ipv4.txt",
        &[("Authorization", &bearer)],
    );
    assert_eq!(status, 200, "{body}");
    let etag = header_of(&head, "etag");
    assert!(etag.starts_with('"'), "no ETag: {head}");
    let (status, _, body) = request(
        blocklist_port,
        "GET",
        "/blocklist/ipv4.txt",
        &[("Authorization", &bearer), ("If-None-Match", &etag)],
    );
    assert_eq!((status, body.as_str()), (304, ""));
    let (status, head, body) = request(
        blocklist_port,
        "HEAD",
        "/blocklist/ipv4.txt",
        &[("Authorization", &bearer)],
    );
    assert_eq!((status, body.as_str()), (200, ""));
    assert_eq!(header_of(&head, "etag"), etag);
    // The token never reaches the log.
    assert!(!daemon.log_text().contains(TOKEN), "the token was logged");
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(DEADLINE).code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tombstones_a_withdrawal_is_followed_by_a_null_payload_under_its_key() {
    let topics = create_topics(1).await;
    let dir = tempfile::tempdir().unwrap();
    let feed = write_blocklist(dir.path(), &["203.0.113.0/25", "198.51.100.40"]);
    let (config, port, _) =
        config_with_blocklist(dir.path(), &topics, &feed, "[publish]\ntombstones = true\n");
    let mut daemon = Daemon::start(&config, port, dir.path());
    daemon.wait_ready(DEADLINE);
    produce(
        &topics.input,
        None,
        &[ecs_event("198.51.100.40", "10.0.0.1")],
    )
    .await;
    // Read without the output topic's record check: a tombstone is no record. Every message
    // with a payload is still validated below.
    let read = || read_all_on(&brokers(), &topics.output, DEADLINE);
    wait_for(&daemon, "the record of 198.51.100.40", DEADLINE, || {
        (!read().is_empty()).then_some(())
    });
    rewrite_feed(&feed, &["203.0.113.0/25"]);
    let messages = wait_for(
        &daemon,
        "a tombstone after the withdrawal",
        DEADLINE,
        || {
            let messages = read();
            messages
                .iter()
                .any(|m| m.payload.is_empty())
                .then_some(messages)
        },
    );
    let mut of_key: Vec<&ReadMessage> = messages
        .iter()
        .filter(|m| m.key.as_deref() == Some("198.51.100.40"))
        .collect();
    of_key.sort_by_key(|m| m.offset);
    assert_eq!(
        of_key.len(),
        3,
        "record, withdrawal, tombstone: {of_key:#?}"
    );
    let first = valid_record(of_key[0].json());
    let withdrawal = valid_record(of_key[1].json());
    assert!(first.get("revoked").is_none());
    assert_eq!(withdrawal["revoked"], true);
    assert_eq!(withdrawal["revision"], 2);
    assert!(of_key[2].payload.is_empty(), "the last is the tombstone");
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(DEADLINE).code(), Some(0));
}

/// Records leave as STIX indicators, yet the blocklist and the withdrawals read the published
/// index, which keeps the threatsift record: `publish.format` changes only what goes on the wire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_stix_output_the_blocklist_lists_and_a_feed_removal_revokes_the_indicator() {
    let topics = create_topics(1).await;
    register_output_format(&topics.output, "stix");
    let dir = tempfile::tempdir().unwrap();
    let feed = write_blocklist(dir.path(), &["203.0.113.0/25", "198.51.100.40"]);
    let (config, port, blocklist_port) =
        config_with_blocklist(dir.path(), &topics, &feed, "[publish]\nformat = \"stix\"\n");
    let mut daemon = Daemon::start(&config, port, dir.path());
    daemon.wait_ready(DEADLINE);
    produce(
        &topics.input,
        None,
        &[ecs_event("198.51.100.40", "10.0.0.1")],
    )
    .await;
    let pattern = "[ipv4-addr:value = '198.51.100.40']";
    read_until(&topics.output, DEADLINE, |m| {
        m.iter().any(|r| r.json()["pattern"] == pattern)
    });
    let listed = wait_for(&daemon, "198.51.100.40 on the blocklist", DEADLINE, || {
        let (_, _, body) = get_list(blocklist_port, "/blocklist/ipv4.txt", Some(TOKEN));
        (!body.is_empty()).then_some(body)
    });
    assert_eq!(bare_lines(&listed), ["198.51.100.40"]);

    rewrite_feed(&feed, &["203.0.113.0/25"]);
    let after = read_until(&topics.output, DEADLINE, |m| {
        m.iter().any(|r| r.json()["revoked"] == true)
    });
    let versions: Vec<serde_json::Value> = after
        .iter()
        .map(|r| r.json())
        .filter(|d| d["pattern"] == pattern)
        .collect();
    assert_eq!(versions.len(), 2, "{versions:#?}");
    assert_eq!(
        versions[0]["id"], versions[1]["id"],
        "one indicator, two versions"
    );
    assert_eq!(versions[1]["revoked"], true, "{:#}", versions[1]);
    let listed = wait_for(&daemon, "the blocklist emptied", DEADLINE, || {
        let (_, _, body) = get_list(blocklist_port, "/blocklist/ipv4.txt", Some(TOKEN));
        body.is_empty().then_some(body)
    });
    assert!(listed.is_empty());
}
