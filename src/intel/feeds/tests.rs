//! Tests of the feeds: blocklist formats, longest-prefix match, loading and reloading.

use super::blocklist::SAMPLE_CHARS;
use super::prefix::AddrBits;
use super::*;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

fn ip(s: &str) -> IpAddr {
    IpAddr::from_str(s).unwrap_or_else(|e| panic!("bad test address {s}: {e}"))
}

fn net(s: &str) -> IpNet {
    IpNet::from_str(s).unwrap_or_else(|e| panic!("bad test cidr {s}: {e}"))
}

fn matched(list: &Blocklist, addr: &str) -> Option<IpNet> {
    list.longest_match(ip(addr))
}

#[test]
fn plain_lines_firehol_netset() {
    let text = "\
#
# firehol_level1
#
# ipv4 hash:net ipset
#
192.0.2.0/24
198.51.100.7
203.0.113.64/26
";
    let list = Blocklist::parse("firehol_level1", text);
    assert_eq!(list.name(), "firehol_level1");
    assert_eq!(list.len(), 3);
    assert!(!list.is_empty());
    assert_eq!(list.skipped_lines(), 0);
    assert!(list.first_skipped().is_empty());
    assert_eq!(matched(&list, "192.0.2.77"), Some(net("192.0.2.0/24")));
    assert_eq!(matched(&list, "198.51.100.7"), Some(net("198.51.100.7/32")));
    assert_eq!(matched(&list, "198.51.100.8"), None);
    assert_eq!(
        matched(&list, "203.0.113.127"),
        Some(net("203.0.113.64/26"))
    );
    assert_eq!(matched(&list, "203.0.113.128"), None);
}

#[test]
fn spamhaus_drop_text() {
    let text = "\
; Spamhaus DROP List 2024/01/01 - (c) 2024 The Spamhaus Project SLU
; Last-Modified: Mon, 01 Jan 2024 00:00:00 GMT
; Expires: Mon, 01 Jan 2024 01:00:00 GMT
192.0.2.0/24 ; SBL000001
198.51.100.0/25;SBL000002
203.0.113.0/24	; SBL000003
";
    let list = Blocklist::parse("spamhaus_drop", text);
    assert_eq!(list.len(), 3);
    assert_eq!(list.skipped_lines(), 0);
    assert_eq!(matched(&list, "198.51.100.1"), Some(net("198.51.100.0/25")));
    assert_eq!(matched(&list, "198.51.100.200"), None);
    assert_eq!(matched(&list, "203.0.113.9"), Some(net("203.0.113.0/24")));
}

#[test]
fn spamhaus_drop_ndjson() {
    let text = concat!(
        r#"{"cidr":"192.0.2.0/24","sblid":"SBL000001","rir":"apnic"}"#,
        "\n",
        r#"{ "sblid": "SBL000002", "cidr" : "198.51.100.0/24", "rir": "ripencc" }"#,
        "\n",
        r#"{"cidr":"2001:db8::/32","sblid":"SBL000003","rir":"arin"}"#,
        "\n",
        r#"{"note":"cidr","cidr":"203.0.113.0/25"}"#,
        "\n",
        r#"{"cidr":"not-an-address","sblid":"SBL000004"}"#,
        "\n",
        r#"{"cidr":12}"#,
        "\n",
        r#"{"type":"metadata","timestamp":1704067200,"size":4,"records":4}"#,
        "\n",
    );
    let list = Blocklist::parse("spamhaus_drop_json", text);
    assert_eq!(list.len(), 4);
    assert_eq!(matched(&list, "192.0.2.1"), Some(net("192.0.2.0/24")));
    assert_eq!(matched(&list, "198.51.100.1"), Some(net("198.51.100.0/24")));
    assert_eq!(matched(&list, "2001:db8:1::1"), Some(net("2001:db8::/32")));
    assert_eq!(matched(&list, "203.0.113.1"), Some(net("203.0.113.0/25")));
    assert_eq!(list.skipped_lines(), 2);
    assert_eq!(list.first_skipped()[0].0, 5);
    assert_eq!(list.first_skipped()[1].0, 6);
}

#[test]
fn ipsum_tab_separated_counts() {
    let text = "\
# IPsum Threat Intelligence Feed
# (https://github.com/stamparm/ipsum)
#
# IP	number of (black)lists
#
203.0.113.45\t7
198.51.100.3\t3
";
    let list = Blocklist::parse("ipsum", text);
    assert_eq!(list.len(), 2);
    assert_eq!(list.skipped_lines(), 0);
    assert_eq!(matched(&list, "203.0.113.45"), Some(net("203.0.113.45/32")));
    assert_eq!(matched(&list, "203.0.113.46"), None);
}

#[test]
fn bom_crlf_whitespace_and_trailing_comments() {
    let text = "\u{feff}192.0.2.1\r\n  198.51.100.0/24   # trailing\r\n\r\n\t203.0.113.9#x\r\n";
    let list = Blocklist::parse("crlf", text);
    assert_eq!(list.len(), 3);
    assert_eq!(list.skipped_lines(), 0);
    assert_eq!(matched(&list, "192.0.2.1"), Some(net("192.0.2.1/32")));
    assert_eq!(matched(&list, "203.0.113.9"), Some(net("203.0.113.9/32")));
}

#[test]
fn host_bits_cleared_duplicates_collapsed() {
    let list = Blocklist::parse("t", "192.0.2.77/24\n192.0.2.0/24\n192.0.2.1/24\n");
    assert_eq!(list.len(), 1);
    assert_eq!(matched(&list, "192.0.2.200"), Some(net("192.0.2.0/24")));
}

#[test]
fn ipv6_entries_and_mapped_addresses() {
    let text = "\
2001:db8::/32
2001:db8:1::/48
2001:db8:1:2::5
::ffff:192.0.2.0/120
::ffff:198.51.100.9
";
    let list = Blocklist::parse("v6", text);
    assert_eq!(list.len(), 5);
    assert_eq!(
        matched(&list, "2001:db8:ffff::1"),
        Some(net("2001:db8::/32"))
    );
    assert_eq!(
        matched(&list, "2001:db8:1:3::1"),
        Some(net("2001:db8:1::/48"))
    );
    assert_eq!(
        matched(&list, "2001:db8:1:2::5"),
        Some(net("2001:db8:1:2::5/128"))
    );
    assert_eq!(matched(&list, "2001:db9::1"), None);
    // Mapped entries became IPv4, and both forms of the address find them.
    assert_eq!(matched(&list, "192.0.2.33"), Some(net("192.0.2.0/24")));
    assert_eq!(
        matched(&list, "::ffff:192.0.2.33"),
        Some(net("192.0.2.0/24"))
    );
    assert_eq!(matched(&list, "198.51.100.9"), Some(net("198.51.100.9/32")));
    // IPv4 entries never match unrelated IPv6.
    assert_eq!(matched(&list, "::c000:221"), None);
}

#[test]
fn junk_lines_counted_with_line_numbers() {
    let text = "\
# header
192.0.2.0/24
not an address
192.0.2.0/33

300.1.2.3
0.0.0.0/0
::/0
198.51.100.0/24
192.0.2.1-192.0.2.9
fe80::1%eth0
";
    let list = Blocklist::parse("junk", text);
    assert_eq!(list.len(), 2);
    assert_eq!(list.skipped_lines(), 7);
    let lines: Vec<usize> = list.first_skipped().iter().map(|(n, _)| *n).collect();
    assert_eq!(lines, vec![3, 4, 6, 7, 8]);
    assert_eq!(list.first_skipped()[0].1, "not an address");
    assert_eq!(list.first_skipped()[2].1, "300.1.2.3");
}

#[test]
fn long_junk_sample_is_truncated() {
    let long = "x".repeat(1000);
    let list = Blocklist::parse("long", &format!("192.0.2.1\n{long}\n"));
    assert_eq!(list.first_skipped()[0].1.len(), SAMPLE_CHARS);
}

#[test]
fn longest_prefix_beats_covering_prefix() {
    let text = "\
198.51.100.0/24
198.51.100.128/25
198.51.100.192/26
198.51.100.200
";
    let list = Blocklist::parse("nested", text);
    assert_eq!(matched(&list, "198.51.100.5"), Some(net("198.51.100.0/24")));
    assert_eq!(
        matched(&list, "198.51.100.130"),
        Some(net("198.51.100.128/25"))
    );
    assert_eq!(
        matched(&list, "198.51.100.199"),
        Some(net("198.51.100.192/26"))
    );
    assert_eq!(
        matched(&list, "198.51.100.200"),
        Some(net("198.51.100.200/32"))
    );
    assert_eq!(
        matched(&list, "198.51.100.201"),
        Some(net("198.51.100.192/26"))
    );
    assert_eq!(matched(&list, "198.51.101.0"), None);
}

#[test]
fn longest_match_agrees_with_linear_scan() {
    let text = "\
192.0.2.0/24
192.0.2.0/25
192.0.2.64/26
192.0.2.65/32
192.0.2.128/28
198.51.100.0/23
2001:db8::/32
2001:db8:8000::/33
2001:db8:8000::1/128
";
    let list = Blocklist::parse("scan", text);
    let nets: Vec<IpNet> = text.lines().map(net).map(|n| n.trunc()).collect();
    let mut probes: Vec<IpAddr> = (0..=255u8)
        .map(|d| IpAddr::V4(Ipv4Addr::new(192, 0, 2, d)))
        .collect();
    probes.extend((0..=255u8).map(|c| IpAddr::V4(Ipv4Addr::new(198, 51, c, 1))));
    for top in [0u16, 1, 0x7fff, 0x8000, 0x8001, 0xffff] {
        probes.push(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, top, 0, 0, 0, 0, 1)));
        probes.push(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb9, top, 0, 0, 0, 0, 1)));
    }
    for addr in probes {
        let expected = nets
            .iter()
            .filter(|n| n.contains(&addr))
            .max_by_key(|n| n.prefix_len())
            .copied();
        assert_eq!(list.longest_match(addr), expected, "{addr}");
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn spec(name: &str, path: &Path) -> FeedSpec {
    FeedSpec {
        name: name.to_owned(),
        path: path.to_path_buf(),
    }
}

#[test]
fn feed_set_lookup_in_configured_order_with_exact_flag() -> Result<(), FeedError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("a.txt");
    let b = dir.path().join("b.json");
    write(&a, "192.0.2.0/24\n192.0.2.10\n");
    write(
        &b,
        "{\"cidr\":\"192.0.2.0/28\",\"sblid\":\"SBL1\"}\n{\"type\":\"metadata\"}\n",
    );
    let set = FeedSet::load(&[spec("zeta", &a), spec("alpha", &b)])?;
    assert_eq!(set.total_entries(), 3);
    let names: Vec<&str> = set.feeds().map(Blocklist::name).collect();
    assert_eq!(names, vec!["zeta", "alpha"]);

    let hits = set.lookup(ip("192.0.2.10"));
    assert_eq!(
        hits,
        vec![
            FeedMatch {
                feed: Arc::from("zeta"),
                cidr: net("192.0.2.10/32"),
                exact: true,
            },
            FeedMatch {
                feed: Arc::from("alpha"),
                cidr: net("192.0.2.0/28"),
                exact: false,
            },
        ]
    );
    let hits = set.lookup(ip("::ffff:192.0.2.100"));
    assert_eq!(hits.len(), 1);
    assert_eq!(&*hits[0].feed, "zeta");
    assert!(!hits[0].exact);

    let miss = set.lookup(ip("198.51.100.1"));
    assert!(miss.is_empty());
    assert_eq!(miss.capacity(), 0, "no allocation on a miss");
    Ok(())
}

#[test]
fn ipv6_host_route_is_exact() -> Result<(), FeedError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("v6.txt");
    write(&a, "2001:db8::1\n2001:db8::/64\n");
    let set = FeedSet::load(&[spec("v6", &a)])?;
    let hits = set.lookup(ip("2001:db8::1"));
    assert_eq!(hits.len(), 1);
    assert!(hits[0].exact);
    assert_eq!(hits[0].cidr, net("2001:db8::1/128"));
    let hits = set.lookup(ip("2001:db8::2"));
    assert!(!hits[0].exact);
    Ok(())
}

#[test]
fn unreadable_path_error_names_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("does-not-exist.txt");
    let err = match FeedSet::load(&[spec("missing", &missing)]) {
        Err(err) => err,
        Ok(_) => panic!("loading a missing file succeeded"),
    };
    assert_eq!(err.kind(), "read_failed");
    assert_eq!(err.path(), missing);
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );

    // A directory is not a feed either.
    let err = match FeedSet::load(&[spec("dir", dir.path())]) {
        Err(err) => err,
        Ok(_) => panic!("loading a directory succeeded"),
    };
    assert_eq!(err.kind(), "read_failed");
    assert!(
        err.to_string().contains(&dir.path().display().to_string()),
        "{err}"
    );
}

#[test]
fn empty_feed_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wrong.html");
    write(&path, "# only a comment\n<html>\n<body>Not Found</body>\n");
    let err = match FeedSet::load(&[spec("wrong", &path)]) {
        Err(err) => err,
        Ok(_) => panic!("loading an empty feed succeeded"),
    };
    assert_eq!(err.kind(), "empty_feed");
    assert!(
        matches!(
            err,
            FeedError::EmptyFeed {
                skipped_lines: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn invalid_utf8_is_not_fatal() -> Result<(), FeedError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("latin1.txt");
    std::fs::write(
        &path,
        b"# caf\xe9\n192.0.2.0/24 ; \xff\xfe\n\xef\xbb\xbf198.51.100.1\n",
    )
    .expect("write");
    let set = FeedSet::load(&[spec("latin1", &path)])?;
    assert_eq!(set.total_entries(), 2);
    Ok(())
}

#[test]
fn reload_on_change() -> Result<(), FeedError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("feed.txt");
    write(&path, "192.0.2.0/24\n");
    let feeds = LocalFeeds::load(vec![spec("local", &path)])?;
    assert_eq!(feeds.current().lookup(ip("192.0.2.1")).len(), 1);

    // Unchanged.
    assert!(!feeds.reload_if_changed()?);
    assert!(!feeds.reload_if_changed()?);

    // Different content and length.
    let before = Arc::clone(&feeds.current());
    write(&path, "198.51.100.0/24\n203.0.113.7\n");
    assert!(feeds.reload_if_changed()?);
    let now = feeds.current();
    assert!(now.lookup(ip("192.0.2.1")).is_empty());
    assert_eq!(now.lookup(ip("203.0.113.7"))[0].cidr, net("203.0.113.7/32"));
    assert!(now.lookup(ip("203.0.113.7"))[0].exact);
    assert_eq!(now.total_entries(), 2);
    // A reader holding the old set keeps a consistent view.
    assert_eq!(before.lookup(ip("192.0.2.1")).len(), 1);
    drop(now);
    assert!(!feeds.reload_if_changed()?);

    // Deleted: error naming the path, old set still served.
    std::fs::remove_file(&path).expect("remove");
    let err = match feeds.reload_if_changed() {
        Err(err) => err,
        Ok(changed) => panic!("reload of a deleted file returned Ok({changed})"),
    };
    assert_eq!(err.kind(), "read_failed");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert_eq!(feeds.current().lookup(ip("203.0.113.7")).len(), 1);
    // Still failing on the next tick, still serving.
    assert!(feeds.reload_if_changed().is_err());
    assert_eq!(feeds.current().total_entries(), 2);

    // Rewritten as an empty feed: error, old set kept.
    write(&path, "# nothing here\n");
    let err = match feeds.reload_if_changed() {
        Err(err) => err,
        Ok(changed) => panic!("reload of an empty feed returned Ok({changed})"),
    };
    assert_eq!(err.kind(), "empty_feed");
    assert_eq!(feeds.current().total_entries(), 2);

    // Restored: picked up again.
    write(&path, "2001:db8::/32\n");
    assert!(feeds.reload_if_changed()?);
    assert_eq!(feeds.current().lookup(ip("2001:db8::1")).len(), 1);
    assert!(feeds.current().lookup(ip("203.0.113.7")).is_empty());
    Ok(())
}

#[cfg(unix)]
#[test]
fn reload_notices_atomic_replace_with_same_length() -> Result<(), FeedError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("feed.txt");
    let staging = dir.path().join("feed.txt.tmp");
    write(&path, "192.0.2.1\n");
    let feeds = LocalFeeds::load(vec![spec("local", &path)])?;
    // Same length; the new inode is what changes (mtime may share the same tick).
    write(&staging, "192.0.2.2\n");
    std::fs::rename(&staging, &path).expect("rename");
    assert!(feeds.reload_if_changed()?);
    assert!(feeds.current().lookup(ip("192.0.2.1")).is_empty());
    assert_eq!(feeds.current().lookup(ip("192.0.2.2")).len(), 1);
    Ok(())
}

#[test]
fn load_fails_when_any_feed_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.txt");
    write(&good, "192.0.2.0/24\n");
    let bad = dir.path().join("bad.txt");
    match LocalFeeds::load(vec![spec("good", &good), spec("bad", &bad)]) {
        Err(err) => assert_eq!(err.path(), bad),
        Ok(_) => panic!("load with a missing feed succeeded"),
    }
}

#[test]
fn no_feeds_is_an_empty_set() -> Result<(), FeedError> {
    let feeds = LocalFeeds::load(Vec::new())?;
    assert_eq!(feeds.current().total_entries(), 0);
    assert!(feeds.current().lookup(ip("192.0.2.1")).is_empty());
    assert!(!feeds.reload_if_changed()?);
    Ok(())
}

#[test]
fn masks() {
    assert_eq!(0xffff_ffffu32.masked(0), 0);
    assert_eq!(0xffff_ffffu32.masked(1), 0x8000_0000);
    assert_eq!(0xffff_ffffu32.masked(32), 0xffff_ffff);
    assert_eq!(u128::MAX.masked(0), 0);
    assert_eq!(u128::MAX.masked(128), u128::MAX);
    assert_eq!(u128::MAX.masked(64), u128::MAX << 64);
}

#[test]
fn large_feed_of_host_routes() {
    // 65 536 host routes across 192.0.2.0/24 and 198.51.100.0/24 as IPv6 and IPv4 mixes
    // exercise the hasher with keys that share low bits.
    let mut text = String::new();
    for hi in 0..=255u32 {
        for lo in 0..=255u32 {
            text.push_str(&format!("2001:db8:{hi:x}::{lo:x}\n"));
        }
    }
    text.push_str("192.0.2.0/24\n");
    let list = Blocklist::parse("big", &text);
    assert_eq!(list.len(), 65_537);
    assert_eq!(
        list.longest_match(ip("2001:db8:ff::ff")),
        Some(net("2001:db8:ff::ff/128"))
    );
    assert_eq!(list.longest_match(ip("2001:db8:ff::100")), None);
    assert_eq!(
        list.longest_match(ip("192.0.2.5")),
        Some(net("192.0.2.0/24"))
    );
}
