//! Unit tests of `allowlist`: the line format, matching, expiry and what a reload adds.
use super::*;

/// 2026-11-23T10:00:00Z.
fn at(seconds_after_ten: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_428_000 + seconds_after_ten)
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

const FILE: &str = "\u{feff}# cidr | reason | owner | expires\r\n\
    203.0.113.0/28 | corporate VPN egress | netops@example.com |\r\n\
    \n\
    198.51.100.7 | pentest PT-2291 | secops | 2026-11-23\n\
    2001:db8:feed::/48 | partner SFTP | it-partners | 2026-11-23T10:00:30Z\n\
    ::ffff:192.0.2.0/120 | lab range | lab\n";

#[test]
fn entries_carry_network_reason_owner_expiry_and_line() {
    let list = Allowlist::parse(FILE);
    assert_eq!(list.skipped_count(), 0, "{:?}", list.skipped());
    let entries = list.entries();
    assert_eq!(entries.len(), 4);
    assert_eq!(entries[0].net, "203.0.113.0/28".parse::<IpNet>().unwrap());
    assert_eq!(entries[0].reason, "corporate VPN egress");
    assert_eq!(entries[0].owner, "netops@example.com");
    assert_eq!(entries[0].expires, None, "an empty expiry field: never");
    assert_eq!(entries[0].line, 2);
    assert_eq!(entries[1].line, 4);
    // A date holds through that whole day (UTC).
    assert_eq!(
        entries[1].expires,
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_478_400))
    );
    assert_eq!(entries[2].expires, Some(at(30)));
    // An IPv4-mapped CIDR is the IPv4 one.
    assert_eq!(entries[3].net, "192.0.2.0/24".parse::<IpNet>().unwrap());
}

#[test]
fn addresses_inside_an_unexpired_entry_match_and_expired_entries_do_not() {
    let list = Allowlist::parse(FILE);
    let matched = |text: &str, now| list.matching(ip(text), now).map(|e| e.line);
    assert_eq!(matched("203.0.113.15", at(0)), Some(2));
    assert_eq!(matched("203.0.113.16", at(0)), None, "outside the /28");
    assert_eq!(matched("::ffff:203.0.113.1", at(0)), Some(2), "IPv4-mapped");
    assert_eq!(matched("192.0.2.200", at(0)), Some(6));
    assert_eq!(matched("2001:db8:feed:1::9", at(29)), Some(5));
    assert_eq!(
        matched("2001:db8:feed:1::9", at(30)),
        None,
        "expired at its time"
    );
    // The dated entry holds until the next 00:00 UTC (14 h after 10:00).
    assert_eq!(matched("198.51.100.7", at(14 * 3600 - 1)), Some(4));
    assert_eq!(matched("198.51.100.7", at(14 * 3600)), None);
    assert_eq!(list.active_count(at(0)), 4);
    assert_eq!(list.active_count(at(14 * 3600)), 2);
}

#[test]
fn a_later_entry_still_clears_an_address_whose_first_entry_expired() {
    let list = Allowlist::parse(
        "203.0.113.0/24 | old exception | a | 2020-01-01\n\
         203.0.113.9 | renewed | b | 2030-01-01\n",
    );
    assert_eq!(
        list.matching(ip("203.0.113.9"), at(0)).map(|e| e.line),
        Some(2)
    );
    assert_eq!(list.matching(ip("203.0.113.8"), at(0)), None);
}

#[test]
fn bad_lines_are_skipped_and_reported_with_their_number_and_why() {
    let list = Allowlist::parse(
        "203.0.113.1 | ok | me\n\
         not-an-ip | why | who\n\
         203.0.113.2 | no owner |\n\
         203.0.113.3 |  | someone\n\
         203.0.113.4\n\
         0.0.0.0/0 | everything | me\n\
         203.0.113.5 | r | o | next tuesday\n\
         203.0.113.6 | r | o | 2027-01-01 | extra\n",
    );
    assert_eq!(list.entries().len(), 1);
    assert_eq!(list.skipped_count(), 7);
    let lines: Vec<usize> = list.skipped().iter().map(|s| s.line).collect();
    assert_eq!(lines, [2, 3, 4, 5, 6, 7, 8]);
    let why: Vec<&str> = list.skipped().iter().map(|s| s.why).collect();
    assert!(why[0].contains("not an IP"), "{why:?}");
    assert!(why[1].contains("owner"), "{why:?}");
    assert!(why[2].contains("reason"), "{why:?}");
    assert!(why[3].contains("expected"), "{why:?}");
    assert!(why[4].contains("/0"), "{why:?}");
    assert!(why[5].contains("expires"), "{why:?}");
    assert_eq!(list.skipped()[0].text, "not-an-ip | why | who");
}

#[test]
fn newly_active_is_what_the_new_list_clears_that_the_old_did_not() {
    let old = Allowlist::parse(
        "203.0.113.1 | kept | a\n\
         203.0.113.2 | expired before | a | 2020-01-01\n\
         203.0.113.3 | removed | a\n",
    );
    let new = Allowlist::parse(
        "203.0.113.1 | kept, reworded | b\n\
         203.0.113.2 | renewed | a | 2030-01-01\n\
         203.0.113.4 | new | c\n\
         203.0.113.5 | new but already expired | c | 2020-01-01\n",
    );
    let added: Vec<String> = new
        .newly_active(&old, at(0))
        .iter()
        .map(|e| e.net.to_string())
        .collect();
    assert_eq!(added, ["203.0.113.2/32", "203.0.113.4/32"]);
}

#[test]
fn a_reload_swaps_in_a_changed_file_and_keeps_the_old_list_when_it_is_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("allowlist.txt");
    std::fs::write(&path, "203.0.113.1 | first | a\n").unwrap();
    let file = AllowlistFile::load(&path).unwrap();
    assert!(
        file.reload_if_changed(at(0)).unwrap().is_none(),
        "unchanged"
    );
    // A new file (another inode): noticed whatever its size and time.
    let next = dir.path().join("next.txt");
    std::fs::write(&next, "203.0.113.1 | first | a\n203.0.113.2 | second | b\n").unwrap();
    std::fs::rename(&next, &path).unwrap();
    let reloaded = file.reload_if_changed(at(0)).unwrap().expect("changed");
    assert_eq!(reloaded.added.len(), 1);
    assert_eq!(reloaded.added[0].reason, "second");
    assert!(file.current().matching(ip("203.0.113.2"), at(0)).is_some());
    std::fs::remove_file(&path).unwrap();
    let err = file.reload_if_changed(at(0)).unwrap_err();
    assert!(err.to_string().contains("allowlist.txt"), "{err}");
    assert!(
        file.current().matching(ip("203.0.113.2"), at(0)).is_some(),
        "the old list stays in use"
    );
    assert!(
        AllowlistFile::load(&path).is_err(),
        "a missing file does not load"
    );
}
