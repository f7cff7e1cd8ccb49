//! The binary's commands that need no broker: `demo` (on the in-process mock cluster),
//! `check-config`, `parse` and `enrich` (against mock provider APIs on 127.0.0.1).

mod common;
mod mmdb_writer;
mod mock_api;

use std::collections::BTreeSet;

use common::threatsift;

#[test]
fn demo_prints_a_schema_valid_record_for_every_blocklisted_ip() {
    let out = threatsift(&["demo"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: serde_json::Value =
        serde_json::from_str(include_str!("../demo/EXPECTED.json")).unwrap();
    let expected: BTreeSet<&str> = expected["blocklisted_ips"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    let validator = common::record_validator();
    let mut ips = BTreeSet::new();
    for line in stdout.lines().filter(|l| l.starts_with('{')) {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        common::assert_valid_record(&validator, &record);
        ips.insert(record["ip"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        ips.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        expected
    );
    assert!(stdout.contains("== threatsift demo summary =="), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "Summary: Found {} suspicious IP addresses.",
            expected.len()
        )),
        "the demo prints the report: {stdout}"
    );
    assert!(
        stdout.contains("Actionable Intelligence Report"),
        "{stdout}"
    );
    assert!(
        stdout.contains("dead-letter queue: 3 unparseable lines"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("threat records: {} published", expected.len())),
        "{stdout}"
    );
}

#[test]
fn check_config_redacts_secrets_and_names_bad_keys() {
    let out = threatsift(
        &["check-config"],
        &[
            ("THREATSIFT__KAFKA__SASL_PASSWORD", "p4ssw0rd-do-not-print"),
            (
                "THREATSIFT__PROVIDERS__VIRUSTOTAL__API_KEY",
                "vt-key-do-not-print",
            ),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("do-not-print"), "a secret leaked:\n{all}");
    assert!(all.contains("sasl_password = \"<redacted>\""), "{all}");
    assert!(all.contains("brokers = \"127.0.0.1:9092\""), "{all}");

    let out = threatsift(
        &["check-config"],
        &[("THREATSIFT__DEDUP__MAX_ENTRIES", "0")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("dedup.max_entries"));

    let out = threatsift(
        &["check-config"],
        &[("THREATSIFT__KAFKA__NO_SUCH_KEY", "1")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no_such_key"));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[filter]\nignore_cidrs = [\"10.0.0.0/33\"]\n").unwrap();
    let out = threatsift(&["check-config", "--config", file.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("filter.ignore_cidrs[0]"));

    let out = threatsift(
        &["check-config", "--config", "/nonexistent/threatsift.toml"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_feed_that_cannot_be_read_fails_start_up_naming_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        "[[feeds]]\nname = \"gone\"\npath = \"/nonexistent/feed.txt\"\nweight = 50\n",
    )
    .unwrap();
    let out = threatsift(&["run", "--config", file.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/feed.txt"));
}

#[test]
fn parse_reads_every_line_and_never_stops() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in.log");
    std::fs::write(
        &file,
        b"{\"source\":{\"ip\":\"203.0.113.7\"},\"destination\":{\"ip\":\"10.0.0.1\"}}\n\
          not a log line\n\
          srcip=2001:0db8::1 dstip=198.51.100.2\n\
          \xff\xfe\n",
    )
    .unwrap();
    let out = threatsift(&["parse", file.to_str().unwrap()], &[]);
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["source_ip"], "203.0.113.7");
    assert_eq!(lines[0]["format"], "ecs_json");
    assert!(lines[1]["error"].is_string());
    assert_eq!(lines[2]["source_ip"], "2001:db8::1");
    assert_eq!(lines[2]["destination_ip"], "198.51.100.2");
    assert!(lines[3]["error"].as_str().unwrap().contains("UTF-8"));
    assert_eq!(lines[3]["reason"], "invalid_utf8");
    assert_eq!(lines[3]["line"], 4);
}

#[test]
fn parse_format_forces_a_format_and_header_directives_carry_over() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in.log");
    std::fs::write(
        &file,
        "#Software: Microsoft Windows Firewall\n\
         #Fields: date time action protocol src-ip dst-ip src-port dst-port size tcpflags tcpsyn tcpack tcpwin icmptype icmpcode info path\n\
         2024-03-01 12:00:00 DROP TCP 203.0.113.7 192.0.2.10 51544 3389 52 S 1234567890 0 64240 - - - RECEIVE\n\
         {\"records\":[{\"source.ip\":\"203.0.113.1\"},{\"source.ip\":\"203.0.113.2\"}]}\n",
    )
    .unwrap();
    let out = threatsift(&["parse", file.to_str().unwrap()], &[]);
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["format"], "directive");
    assert_eq!(lines[2]["format"], "windows_firewall");
    assert_eq!(lines[2]["source_ip"], "203.0.113.7");
    assert_eq!(lines[2]["destination_ip"], "192.0.2.10");
    assert_eq!(lines[3]["events"], 2);
    assert_eq!(lines[3]["ips"].as_array().unwrap().len(), 2);

    // Forced: the Windows Firewall line is read as ip_scan although its header names the
    // fields; the same from FILE and from stdin.
    let from_file = threatsift(
        &["parse", "--format", "ip_scan", file.to_str().unwrap()],
        &[],
    );
    let from_stdin = std::process::Command::new(env!("CARGO_BIN_EXE_threatsift"))
        .args(["parse", "--format", "ip_scan"])
        .env_remove("THREATSIFT_CONFIG")
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    for (input, out) in [("FILE", &from_file), ("stdin", &from_stdin)] {
        assert_eq!(
            out.status.code(),
            Some(0),
            "forced parse from {input}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4, "{input}: {lines:?}");
        assert_eq!(
            lines[2],
            serde_json::json!({"line": 3, "format": "ip_scan", "source_ip": null,
                "destination_ip": null, "ips": [{"ip": "203.0.113.7", "role": "unknown"},
                {"ip": "192.0.2.10", "role": "unknown"}]}),
            "{input}"
        );
    }
    assert_eq!(from_file.stdout, from_stdin.stdout);

    let unknown = threatsift(&["parse", "--format", "no_such_format"], &[]);
    assert_eq!(unknown.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("no_such_format") && stderr.contains("cisco_asa"),
        "{stderr}"
    );
}

// i12-fallback: a line its format rejects but that holds addresses.
#[test]
fn parse_reads_a_rejected_line_holding_addresses_with_the_scanner_and_names_the_rejection() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in.log");
    // A PAN-OS TRAFFIC record cut short after its addresses, then before them.
    std::fs::write(
        &file,
        "1,2024/03/01 12:00:12,012345678901,TRAFFIC,end,2816,2024/03/01 12:00:12,192.0.2.10,198.51.100.20\n\
         1,2024/03/01 12:00:13,012345678901,TRAFFIC,end,2816,2024/03/01 12:00:13\n",
    )
    .unwrap();
    let detected = threatsift(&["parse", file.to_str().unwrap()], &[]);
    let forced = threatsift(
        &["parse", "--format", "paloalto", file.to_str().unwrap()],
        &[],
    );
    for (how, out) in [("detected", &detected), ("forced", &forced)] {
        assert!(out.status.success(), "{how}");
        let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{how}: {lines:?}");
        assert_eq!(
            lines[0],
            serde_json::json!({"line": 1, "format": "ip_scan", "source_ip": null,
                "destination_ip": null, "ips": [{"ip": "192.0.2.10", "role": "unknown"},
                {"ip": "198.51.100.20", "role": "unknown"}],
                "fallback_from": "paloalto",
                "fallback_error": "malformed paloalto event: TRAFFIC log with 9 fields; NAT destination is field 10, rule 11"}),
            "{how}"
        );
        assert_eq!(lines[1]["reason"], "malformed", "{how}");
        assert!(
            lines[1]["error"].as_str().unwrap().contains("paloalto"),
            "{how}: {}",
            lines[1]
        );
        assert!(lines[1].get("fallback_from").is_none(), "{how}");
    }
}

#[test]
fn enrich_prints_one_record_per_address_with_every_provider_status() {
    const KEY: &str = "k3y-enrich-SECRET-31337";
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let vt_body = serde_json::json!({"data": {"id": "203.0.113.9", "type": "ip_address", "attributes": {
        "as_owner": "Example Hosting Ltd", "asn": 64500, "country": "NL",
        "network": "203.0.113.0/24", "regional_internet_registry": "RIPE NCC", "reputation": -11,
        "last_analysis_stats": {"harmless": 58, "malicious": 4, "suspicious": 1, "undetected": 31, "timeout": 0},
        "last_analysis_results": {}
    }}});
    let (vt_url, vt_seen) = runtime.block_on(mock_api::mock(
        &mock_api::VIRUSTOTAL,
        mock_api::json_answer(200, vt_body),
    ));
    let (abuse_url, abuse_seen) = runtime.block_on(mock_api::mock(
        &mock_api::ABUSEIPDB,
        mock_api::json_answer(
            401,
            serde_json::json!({"errors": [{"detail": "Authentication failed. Your API key is \
                either missing, incorrect, or revoked. Note: The APIv2 key differs from the \
                APIv1 key.", "status": 401}]}),
        ),
    ));
    let dir = tempfile::tempdir().unwrap();
    let asn = dir.path().join("GeoLite2-ASN.mmdb");
    std::fs::write(
        &asn,
        mmdb_writer::build(
            6,
            "GeoLite2-ASN",
            &[(
                "203.0.113.0/24",
                serde_json::json!({"autonomous_system_number": 64511,
                    "autonomous_system_organization": "Local DB Org"}),
            )],
        ),
    )
    .unwrap();
    let talos = dir.path().join("talos.txt");
    std::fs::write(&talos, "203.0.113.9\n").unwrap();
    let config = dir.path().join("enrich.toml");
    std::fs::write(
        &config,
        format!(
            "feeds = []\n[filter]\nallow_documentation_ranges = true\n\
             [providers.virustotal]\nenabled = true\nbase_url = \"{vt_url}/api/v3\"\n\
             api_key = \"{KEY}\"\n\
             [providers.abuseipdb]\nenabled = true\nbase_url = \"{abuse_url}/api/v2\"\n\
             api_key_file = \"{key_file}\"\n\
             [providers.mmdb]\nenabled = true\npath = \"{asn}\"\n\
             [providers.talos]\nenabled = true\npath = \"{talos}\"\n",
            key_file = {
                let path = dir.path().join("abuse.key");
                std::fs::write(&path, format!("{KEY}\n")).unwrap();
                path.display().to_string()
            },
            asn = asn.display(),
            talos = talos.display(),
        ),
    )
    .unwrap();
    let out = threatsift(
        &[
            "enrich",
            "--config",
            config.to_str().unwrap(),
            "203.0.113.9",
            "10.1.2.3",
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Each record validated; an address it could not enrich is an {input, error} line.
    let lines = common::output_records(&stdout);
    assert_eq!(lines.len(), 2, "{stdout}");
    let record = &lines[0];
    common::assert_valid_record(&common::record_validator(), record);
    assert_eq!(record["ip"], "203.0.113.9");
    // VirusTotal's 32 points and the Talos listing's 50; the AbuseIPDB 401 and mmdb add none.
    assert_eq!(record["score"], 82, "{record:#}");
    assert_eq!(record["verdict"], "malicious");
    let sources: Vec<&str> = record["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["virustotal", "virustotal", "talos"], "{record:#}");
    assert_eq!(record["intel"]["virustotal"]["status"], "ok");
    assert_eq!(record["intel"]["abuseipdb"]["status"], "unauthorized");
    assert_eq!(record["intel"]["mmdb"]["status"], "ok");
    assert_eq!(record["intel"]["talos"]["status"], "ok");
    assert_eq!(record["intel"]["talos"]["reputation"], "Poor");
    assert_eq!(record["intel"]["rdap"]["status"], "disabled");
    // The local database answered first; VirusTotal's network facts fill only the gaps.
    assert_eq!(record["network"]["asn"], 64511);
    assert_eq!(record["network"]["cidr"], "203.0.113.0/24");
    assert_eq!(record["observed"]["topic"], "enrich");
    assert_eq!(
        lines[1],
        serde_json::json!({"input": "10.1.2.3", "error": "not enriched: private"})
    );
    assert_eq!(vt_seen.lock().unwrap().len(), 1);
    assert_eq!(abuse_seen.lock().unwrap().len(), 1);
    assert_eq!(
        mock_api::header(&abuse_seen.lock().unwrap()[0], "key"),
        Some(KEY),
        "the key from api_key_file was sent"
    );
    assert!(
        !stdout.contains(KEY) && !stderr.contains(KEY),
        "the key leaked"
    );

    let bad = threatsift(&["enrich", "203.0.113.9", "not-an-ip"], &[]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr)
        .contains("\"not-an-ip\" is not an IPv4 or IPv6 address"));
}

// t15-lifecycle: `enrich` with a repeated address, and a disabled Talos list left unread.

/// An `enrich` configuration with only local intelligence: a Talos list listing 203.0.113.9.
fn local_enrich_config(dir: &std::path::Path) -> std::path::PathBuf {
    let talos = dir.join("talos.txt");
    std::fs::write(&talos, "# Talos-format list\n203.0.113.9\n").unwrap();
    let config = dir.join("enrich-local.toml");
    std::fs::write(
        &config,
        format!(
            "feeds = []\n[filter]\nallow_documentation_ranges = true\n\
             [providers.talos]\nenabled = true\npath = \"{}\"\n",
            talos.display()
        ),
    )
    .unwrap();
    config
}

#[test]
fn enrich_gives_one_record_per_distinct_address_and_an_error_for_a_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let config = local_enrich_config(dir.path());
    let out = threatsift(
        &[
            "enrich",
            "--config",
            config.to_str().unwrap(),
            "203.0.113.9",
            "198.51.100.4",
            "203.0.113.9",
            // The same address in another spelling is a repeat too.
            "2001:0db8:0::1",
            "2001:db8::1",
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Each record validated; an address it could not enrich is an {input, error} line.
    let lines = common::output_records(&stdout);
    assert_eq!(lines.len(), 5, "one line per argument, in order:\n{stdout}");
    let validator = common::record_validator();
    for (line, ip) in [(0, "203.0.113.9"), (1, "198.51.100.4"), (3, "2001:db8::1")] {
        common::assert_valid_record(&validator, &lines[line]);
        assert_eq!(lines[line]["ip"], ip, "{stdout}");
    }
    assert_eq!(lines[0]["intel"]["talos"]["status"], "ok");
    assert_eq!(lines[1]["intel"]["talos"]["status"], "not_found");
    for (line, ip) in [(2, "203.0.113.9"), (4, "2001:db8::1")] {
        assert_eq!(
            lines[line],
            serde_json::json!({"input": ip, "error": "not enriched: already enriched above"}),
            "{stdout}"
        );
    }
}

#[test]
fn a_disabled_talos_list_is_never_read() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("talos-off.toml");
    // Read, this path would stop start-up naming it (as the enabled case below shows).
    let missing = dir.path().join("no-such-talos-list.txt");
    let write = |enabled: bool| {
        std::fs::write(
            &config,
            format!(
                "feeds = []\n[filter]\nallow_documentation_ranges = true\n\
                 [providers.talos]\nenabled = {enabled}\npath = \"{}\"\n",
                missing.display()
            ),
        )
        .unwrap();
    };
    write(false);
    let out = threatsift(
        &[
            "enrich",
            "--config",
            config.to_str().unwrap(),
            "203.0.113.9",
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("no-such-talos-list"), "{stderr}");
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    common::assert_valid_record(&common::record_validator(), &record);
    assert_eq!(
        record["intel"]["talos"],
        serde_json::json!({"status": "disabled", "detail": "not enabled in the configuration"})
    );

    write(true);
    let out = threatsift(
        &[
            "enrich",
            "--config",
            config.to_str().unwrap(),
            "203.0.113.9",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no-such-talos-list.txt"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// d-siem: `enrich` prints threatsift records whatever `publish.format` says, annotated.

#[test]
fn enrich_prints_annotated_threatsift_records_whatever_the_publish_format() {
    let dir = tempfile::tempdir().unwrap();
    let config = local_enrich_config(dir.path());
    let out = threatsift(
        &[
            "enrich",
            "--config",
            config.to_str().unwrap(),
            "203.0.113.9",
        ],
        &[("THREATSIFT__PUBLISH__FORMAT", "stix")],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = common::output_records(&stdout);
    assert_eq!(lines.len(), 1, "{stdout}");
    let record = &lines[0];
    assert_eq!(record["schema"], "threatsift.threat/1", "{record}");
    // The Talos list (amber by default) is the one source with evidence: 10 + 30.
    assert_eq!(record["confidence"], 40, "{record}");
    assert_eq!(record["tlp"], "amber", "{record}");
    assert!(
        record["id"].is_string() && record["expires_at"].is_string(),
        "{record}"
    );
}
