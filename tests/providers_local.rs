//! The local providers: Cisco Talos (a list file, or disabled) and MaxMind DB files.
//!
//! The `.mmdb` databases are generated here by a minimal MaxMind DB writer ([`mmdb_writer`]:
//! search tree with 24-bit records, data section, metadata), never downloaded. Talos is checked
//! to make no network request: a listening socket is configured as its `base_url` and must see
//! no connection.

use std::net::{IpAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use threatsift::Mmdb;
use threatsift::ProviderStatus;
use threatsift::Talos;
use threatsift::{intel_entry, ConfiguredProviders, LocalProvider, Lookup, ProviderError};
use threatsift::{ProviderSettings, Secret, Settings};

fn settings(path: &str, base_url: &str) -> ProviderSettings {
    ProviderSettings {
        enabled: false,
        base_url: base_url.to_owned(),
        api_key: Secret::new(""),
        api_key_file: String::new(),
        path: path.to_owned(),
        timeout: Duration::from_secs(1),
        per_minute: threatsift::Allowance::Unlimited,
        per_day: threatsift::Allowance::Unlimited,
        ttl: Duration::from_secs(86_400),
        not_found_ttl: Duration::from_secs(86_400),
        tlp: None,
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Replaces `path` by renaming a new file over it (a new inode, as `geoipupdate` does).
fn replace(path: &Path, bytes: &[u8]) {
    let staging = path.with_extension("tmp");
    write(&staging, bytes);
    std::fs::rename(&staging, path).expect("rename");
}

/// A local socket that must never be connected to; its URL.
fn silent_listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    (listener, url)
}

fn assert_no_connection(listener: &TcpListener) {
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Err(e) => panic!("accept: {e}"),
        Ok((_, peer)) => panic!("the provider connected from {peer}"),
    }
}

fn found(
    result: Result<Lookup, ProviderError>,
) -> (serde_json::Map<String, Value>, threatsift::Network) {
    match result {
        Ok(Lookup::Found { facts, network }) => (facts, network),
        other => panic!("expected Found, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Talos

/// The README's `detail` for Talos without a list file, word for word (not the crate's
/// constant, so a changed text is caught).
const README_TALOS_DISABLED_DETAIL: &str =
    "Cisco Talos has no public API; no Talos-format list configured";

#[tokio::test]
async fn talos_without_a_file_is_disabled_and_makes_no_request() {
    let (listener, url) = silent_listener();
    let provider = Talos::new(&settings("", &url)).expect("settings");
    assert_eq!(provider.name(), "talos");
    assert_eq!(
        provider.disabled_reason(),
        Some(README_TALOS_DISABLED_DETAIL)
    );
    // The entry the daemon writes for an unqueried Talos is the README's.
    let defaults = Settings::from_toml_overrides("").expect("defaults");
    let built = ConfiguredProviders::build(&defaults).expect("defaults build");
    assert_eq!(
        serde_json::to_value(&built.entries["talos"]).unwrap(),
        json!({"status": "disabled", "detail": README_TALOS_DISABLED_DETAIL})
    );
    assert!(built.local.iter().all(|p| p.name() != "talos"));

    // Called anyway: not evidence, not "not found", and nothing on the wire.
    let result = provider.lookup(ip("203.0.113.45"));
    assert_eq!(
        result,
        Err(ProviderError::Unavailable(
            README_TALOS_DISABLED_DETAIL.to_owned()
        ))
    );
    let entry = intel_entry(&result);
    assert!(entry.facts.is_empty());
    assert!(!entry.status.is_answer());
    assert_no_connection(&listener);
    assert!(!provider.reload_if_changed().expect("reload"));
}

#[tokio::test]
async fn talos_list_file_listed_and_unlisted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ip-filter.blf");
    write(
        &path,
        b"# Talos IP blocklist\r\n203.0.113.45\r\n198.51.100.0/24\r\n2001:db8:bad::/48\r\n\r\n",
    );
    let (listener, url) = silent_listener();
    let provider = Talos::new(&settings(path.to_str().unwrap(), &url)).expect("settings");
    assert_eq!(provider.disabled_reason(), None);

    let result = provider.lookup(ip("203.0.113.45"));
    let entry = intel_entry(&result);
    assert_eq!(entry.status, ProviderStatus::Ok);
    let (facts, network) = found(result);
    assert_eq!(
        Value::Object(facts),
        json!({
            "reputation": "Poor",
            "listed_in": "ip-filter.blf",
            "cidr": "203.0.113.45/32",
            "exact": true
        })
    );
    assert_eq!(network, threatsift::Network::default());

    let (facts, _) = found(provider.lookup(ip("198.51.100.7")));
    assert_eq!(facts["cidr"], "198.51.100.0/24");
    assert_eq!(facts["exact"], false);
    let (facts, _) = found(provider.lookup(ip("::ffff:198.51.100.7")));
    assert_eq!(facts["listed_in"], "ip-filter.blf");
    let (facts, _) = found(provider.lookup(ip("2001:db8:bad:1::9")));
    assert_eq!(facts["cidr"], "2001:db8:bad::/48");

    let result = provider.lookup(ip("203.0.113.46"));
    assert_eq!(result, Ok(Lookup::NotFound));
    assert_eq!(intel_entry(&result).status, ProviderStatus::NotFound);
    assert_eq!(provider.lookup(ip("2001:db8::1")), Ok(Lookup::NotFound));
    assert_no_connection(&listener);
}

#[tokio::test]
async fn talos_list_file_is_reloaded_when_it_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("talos.txt");
    write(&path, b"203.0.113.45\n");
    let provider = Talos::new(&settings(path.to_str().unwrap(), "")).expect("settings");
    assert!(!provider.reload_if_changed().expect("unchanged"));

    write(&path, b"198.51.100.7\n192.0.2.0/24\n");
    assert!(provider.reload_if_changed().expect("changed"));
    assert_eq!(provider.lookup(ip("203.0.113.45")), Ok(Lookup::NotFound));
    found(provider.lookup(ip("198.51.100.7")));
    assert!(!provider.reload_if_changed().expect("unchanged again"));

    // Same length, new inode.
    replace(&path, b"198.51.100.8\n192.0.2.0/24\n");
    assert!(provider.reload_if_changed().expect("replaced"));
    found(provider.lookup(ip("198.51.100.8")));

    // A broken rewrite keeps the old list.
    write(&path, b"# emptied\n");
    let error = provider.reload_if_changed().expect_err("empty list");
    assert_eq!(error.kind(), "empty_feed");
    found(provider.lookup(ip("198.51.100.8")));
}

#[test]
fn talos_missing_file_is_a_settings_error_naming_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("absent.txt");
    let error = Talos::new(&settings(path.to_str().unwrap(), "")).expect_err("missing");
    let text = error.to_string();
    assert!(text.contains("providers.talos.path"), "{text}");
    assert!(text.contains(path.to_str().unwrap()), "{text}");
}

// ---------------------------------------------------------------------------------------------
// MaxMind DB

/// An IPv6 ASN database (IPv4 under `::/96`, as GeoLite2 does).
fn asn_db(asn_for_203: u32) -> Vec<u8> {
    mmdb_writer::build(
        6,
        "GeoLite2-ASN",
        &[
            (
                "203.0.113.0/24",
                json!({
                    "autonomous_system_number": asn_for_203,
                    "autonomous_system_organization": "Example Hosting Ltd"
                }),
            ),
            (
                "2001:db8:100::/40",
                json!({
                    "autonomous_system_number": 64501,
                    "autonomous_system_organization": "Example IPv6 Net"
                }),
            ),
        ],
    )
}

/// An IPv4-only country database in the GeoLite2-Country shape.
fn country_db() -> Vec<u8> {
    mmdb_writer::build(
        4,
        "DBIP-Country-Lite",
        &[
            (
                "203.0.113.0/25",
                json!({
                    "continent": {"code": "EU", "geoname_id": 6255148, "names": {"en": "Europe"}},
                    "country": {
                        "geoname_id": 2750405,
                        "is_in_european_union": true,
                        "iso_code": "NL",
                        "names": {"en": "Netherlands", "de": "Niederlande"}
                    },
                    "registered_country": {"iso_code": "NL"}
                }),
            ),
            (
                "198.51.100.0/24",
                json!({"registered_country": {"iso_code": "DE", "names": {"en": "Germany"}}}),
            ),
            ("192.0.2.0/28", json!({"continent": {"code": "EU"}})),
        ],
    )
}

#[tokio::test]
async fn mmdb_asn_and_country_from_two_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let asn = dir.path().join("GeoLite2-ASN.mmdb");
    let country = dir.path().join("dbip-country-lite.mmdb");
    write(&asn, &asn_db(64500));
    write(&country, &country_db());
    let path = format!("{} , {}", asn.display(), country.display());
    let provider = Mmdb::new(&settings(&path, "")).expect("settings");
    assert_eq!(provider.name(), "mmdb");
    assert_eq!(provider.paths(), [asn.clone(), country.clone()]);

    let result = provider.lookup(ip("203.0.113.45"));
    assert_eq!(intel_entry(&result).status, ProviderStatus::Ok);
    let (facts, network) = found(result);
    assert_eq!(
        Value::Object(facts),
        json!({
            "asn": 64500,
            "as_org": "Example Hosting Ltd",
            "asn_network": "203.0.113.0/24",
            "country": "NL",
            "country_source": "country"
        })
    );
    assert_eq!(network.asn, Some(64500));
    assert_eq!(network.as_org.as_deref(), Some("Example Hosting Ltd"));
    assert_eq!(network.country.as_deref(), Some("NL"));

    // In the ASN file only (outside the country file's /25).
    let (facts, network) = found(provider.lookup(ip("203.0.113.200")));
    assert_eq!(facts.get("country"), None);
    assert_eq!(network.asn, Some(64500));
    // IPv4-mapped IPv6 is the IPv4 address.
    let (facts, _) = found(provider.lookup(ip("::ffff:203.0.113.45")));
    assert_eq!(facts["country"], "NL");

    // Country file only, registered country as the fallback.
    let (facts, network) = found(provider.lookup(ip("198.51.100.7")));
    assert_eq!(
        Value::Object(facts),
        json!({"country": "DE", "country_source": "registered_country"})
    );
    assert_eq!(
        (network.asn, network.country.as_deref()),
        (None, Some("DE"))
    );

    // IPv6: the IPv4-only country file does not hold it, the ASN file does.
    let (facts, _) = found(provider.lookup(ip("2001:db8:1ff::1")));
    assert_eq!(facts["asn"], 64501);
    assert_eq!(facts["asn_network"], "2001:db8:100::/40");

    // Not in any file, or only a record without our fields: an answer, "not found".
    for absent in ["192.0.2.200", "192.0.2.1", "2001:db8:200::1", "10.0.0.1"] {
        let result = provider.lookup(ip(absent));
        assert_eq!(result, Ok(Lookup::NotFound), "{absent}");
        assert_eq!(intel_entry(&result).status, ProviderStatus::NotFound);
    }
}

#[tokio::test]
async fn mmdb_single_file_and_reload_after_a_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("GeoLite2-ASN.mmdb");
    write(&path, &asn_db(64500));
    let provider = Mmdb::new(&settings(path.to_str().unwrap(), "")).expect("settings");
    let (facts, _) = found(provider.lookup(ip("203.0.113.45")));
    assert_eq!(facts["asn"], 64500);
    assert!(!provider.reload_if_changed().expect("unchanged"));

    // A new release (same size here: only the new inode tells).
    replace(&path, &asn_db(64502));
    assert!(provider.reload_if_changed().expect("changed"));
    let (facts, _) = found(provider.lookup(ip("203.0.113.45")));
    assert_eq!(facts["asn"], 64502);
    assert!(!provider.reload_if_changed().expect("unchanged again"));

    // A broken download: error naming the file, the old database stays in use.
    write(&path, b"<html>not a database</html>");
    let error = provider.reload_if_changed().expect_err("not an mmdb");
    assert!(
        error.to_string().contains(path.to_str().unwrap()),
        "{error}"
    );
    let (facts, _) = found(provider.lookup(ip("203.0.113.45")));
    assert_eq!(facts["asn"], 64502);
    // Deleted: still an error, still serving.
    std::fs::remove_file(&path).expect("remove");
    assert!(provider.reload_if_changed().is_err());
    found(provider.lookup(ip("203.0.113.45")));
    // Restored.
    write(&path, &asn_db(64503));
    assert!(provider.reload_if_changed().expect("restored"));
    let (facts, _) = found(provider.lookup(ip("203.0.113.45")));
    assert_eq!(facts["asn"], 64503);
}

#[test]
fn mmdb_settings_errors_name_the_path() {
    let error = Mmdb::new(&settings(" , ", "")).expect_err("no file");
    assert!(error.to_string().contains("providers.mmdb.path"), "{error}");

    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("asn.mmdb");
    write(&good, &asn_db(64500));
    let missing = dir.path().join("country.mmdb");
    let path = format!("{},{}", good.display(), missing.display());
    let error = Mmdb::new(&settings(&path, "")).expect_err("missing second file");
    assert!(
        error.to_string().contains(missing.to_str().unwrap()),
        "{error}"
    );

    let text = dir.path().join("feed.txt");
    write(&text, b"203.0.113.0/24\n");
    let error = Mmdb::open(vec![text.clone()]).expect_err("not an mmdb");
    assert_eq!(error.path, text);
    assert_eq!(threatsift::split_mmdb_paths("a.mmdb,b.mmdb").len(), 2);
}

#[tokio::test]
async fn mmdb_undecodable_record_is_invalid_response_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("odd.mmdb");
    write(
        &path,
        &mmdb_writer::build(4, "Odd", &[("203.0.113.0/24", json!("not a map"))]),
    );
    let provider = Mmdb::open(vec![path]).expect("readable");
    let result = provider.lookup(ip("203.0.113.45"));
    let error = result.clone().expect_err("undecodable");
    assert_eq!(error.kind(), "invalid_response");
    assert!(error.to_string().contains("odd.mmdb"), "{error}");
    assert!(intel_entry(&result).facts.is_empty());
    // Elsewhere in the same file: nothing held, an answer.
    assert_eq!(provider.lookup(ip("198.51.100.1")), Ok(Lookup::NotFound));
}

#[test]
fn generated_databases_pass_the_crate_verifier() {
    for db in [asn_db(64500), country_db()] {
        let reader = maxminddb::Reader::from_source(db).expect("readable");
        reader.verify().expect("valid MaxMind DB");
    }
}

mod mmdb_writer;
