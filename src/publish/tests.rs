//! Unit tests of the publication rules and of each format's mapping (one golden document per
//! format, from one fixed record).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::model::{ProviderIntel, ProviderStatus, ThreatRecord, Tlp};

/// A malicious IPv4 record: a feed and VirusTotal give evidence, AbuseIPDB answered without.
pub(crate) fn sample_record() -> ThreatRecord {
    serde_json::from_value(json!({
        "schema": "threatsift.threat/1", "ip": "203.0.113.7", "ip_version": 4,
        "verdict": "malicious", "severity": "high", "score": 85,
        "reasons": [
            {"source": "feeds", "detail": "listed by feed spamhaus-drop (exact 203.0.113.7/32)", "weight": 70},
            {"source": "virustotal", "detail": "7 of 95 engines flag malicious", "weight": 15}
        ],
        "indicator": "Malicious IP Detected",
        "first_seen": "2026-11-23T10:00:00Z", "last_seen": "2026-11-23T10:04:10Z",
        "sightings": 3, "roles": ["source"],
        "observed": {"format": "fortigate", "vendor": "Fortinet", "product": "FortiGate",
                     "action": "deny", "peer_ip": "192.0.2.10", "rule": "wan-in",
                     "topic": "firewall", "partition": 3, "offset": 81723,
                     "src_port": 51544, "dst_port": 22, "protocol": "tcp", "direction": "inbound"},
        "network": {"asn": 64500, "as_org": "EXAMPLE-AS", "country": "NL", "rir": "RIPE", "cidr": null},
        "intel": {
            "feeds": {"status": "ok", "matches": [{"feed": "spamhaus-drop", "cidr": "203.0.113.7/32", "match": "exact"}]},
            "virustotal": {"status": "ok", "reputation": -5},
            "abuseipdb": {"status": "ok", "abuse_confidence_score": 0},
            "otx": {"status": "rate_limited"}
        },
        "revision": 2, "generated_at": "2026-11-23T10:04:12Z",
        "event_time": "2026-11-23T09:59:58Z"
    }))
    .expect("a threat record")
}

pub(crate) fn sample_publication(format: Format) -> Publication {
    Publication {
        format,
        tlp: Tlp::Green,
        provider_tlp: BTreeMap::from([
            ("virustotal".to_owned(), Tlp::Amber),
            ("abuseipdb".to_owned(), Tlp::Red),
        ]),
        feed_tlp: BTreeMap::from([("spamhaus-drop".to_owned(), Tlp::Clear)]),
        dedup_ttl: Duration::from_secs(24 * 3600),
        provider_ttl: BTreeMap::from([("virustotal".to_owned(), Duration::from_secs(6 * 3600))]),
    }
}

fn annotated() -> ThreatRecord {
    let mut record = sample_record();
    sample_publication(Format::Threatsift).annotate(&mut record);
    record
}

/// Each format's document of [`annotated`], as reviewed against the format's reference
/// (`THREATSIFT_WRITE_GOLDEN=1` rewrites them after a deliberate change; review the diff).
#[test]
fn each_format_matches_its_golden_document() {
    let record = annotated();
    let golden = [
        (Format::Threatsift, include_str!("golden/threatsift.json")),
        (Format::Ecs, include_str!("golden/ecs.json")),
        (Format::Ocsf, include_str!("golden/ocsf.json")),
        (Format::Stix, include_str!("golden/stix.json")),
    ];
    for (format, text) in golden {
        let got = format.document(&record).unwrap();
        if std::env::var_os("THREATSIFT_WRITE_GOLDEN").is_some() {
            let path = format!(
                "{}/src/publish/golden/{}.json",
                env!("CARGO_MANIFEST_DIR"),
                format.label()
            );
            std::fs::write(path, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
            continue;
        }
        let want: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(
            got,
            want,
            "{} document differs from its golden copy",
            format.label()
        );
        // The bytes published are that document.
        let bytes = format.encode(&record).unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap(),
            want
        );
    }
}

#[test]
fn the_golden_documents_carry_what_each_consumer_keys_on() {
    let record = annotated();
    let ecs = Format::Ecs.document(&record).unwrap();
    assert_eq!(ecs["event"]["kind"], "enrichment");
    assert_eq!(ecs["event"]["category"], json!(["threat"]));
    assert_eq!(ecs["event"]["type"], json!(["indicator"]));
    assert_eq!(ecs["threat"]["indicator"]["type"], "ipv4-addr");
    assert_eq!(ecs["threat"]["indicator"]["ip"], "203.0.113.7");
    assert_eq!(ecs["threat"]["indicator"]["marking"]["tlp"], "AMBER");
    let ocsf = Format::Ocsf.document(&record).unwrap();
    assert_eq!(
        (ocsf["class_uid"].as_u64(), ocsf["type_uid"].as_u64()),
        (Some(2004), Some(200402))
    );
    assert_eq!(ocsf["osint"][0]["type_id"], 1);
    assert_eq!(ocsf["osint"][0]["value"], "203.0.113.7");
    let stix = Format::Stix.document(&record).unwrap();
    assert_eq!(stix["pattern"], "[ipv4-addr:value = '203.0.113.7']");
    assert_eq!(stix["valid_until"], json!(record.expires_at));
    assert_eq!(
        stix["object_marking_refs"],
        json!(["marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"])
    );
}

#[test]
fn an_ipv6_first_record_is_typed_ipv6_and_created_in_ocsf() {
    let mut record = sample_record();
    record.ip = "2001:db8::7".into();
    record.ip_version = 6;
    record.revision = 1;
    sample_publication(Format::Threatsift).annotate(&mut record);
    let stix = Format::Stix.document(&record).unwrap();
    assert_eq!(stix["pattern"], "[ipv6-addr:value = '2001:db8::7']");
    let ecs = Format::Ecs.document(&record).unwrap();
    assert_eq!(ecs["threat"]["indicator"]["type"], "ipv6-addr");
    let ocsf = Format::Ocsf.document(&record).unwrap();
    assert_eq!(
        (ocsf["activity_id"].as_u64(), ocsf["type_uid"].as_u64()),
        (Some(1), Some(200401))
    );
}

#[test]
fn the_record_id_is_stable_per_revision_and_the_stix_id_per_sighting() {
    let first = annotated();
    let again = annotated();
    assert_eq!(
        first.id, again.id,
        "the same revision re-published keeps its id"
    );
    let mut next = sample_record();
    next.revision += 1;
    next.generated_at = "2026-11-23T11:00:00Z".into();
    sample_publication(Format::Threatsift).annotate(&mut next);
    assert_ne!(first.id, next.id, "the next revision has its own id");
    let stix = |r: &ThreatRecord| Format::Stix.document(r).unwrap()["id"].clone();
    assert_eq!(
        stix(&first),
        stix(&next),
        "revisions are versions of one STIX object"
    );
    let mut other = sample_record();
    other.first_seen = "2026-11-24T10:00:00Z".into();
    sample_publication(Format::Threatsift).annotate(&mut other);
    assert_ne!(
        stix(&first),
        stix(&other),
        "a later sighting window is another object"
    );
    let id = first.id.unwrap();
    assert_eq!((id.len(), &id[14..15]), (36, "5"), "a version-5 UUID: {id}");
}

fn reason(source: &str, weight: i32) -> crate::model::Reason {
    crate::model::Reason {
        source: source.into(),
        detail: format!("{source} says so"),
        weight,
    }
}

fn answered(entries: &[(&str, ProviderStatus)]) -> BTreeMap<String, ProviderIntel> {
    entries
        .iter()
        .map(|(name, status)| ((*name).to_owned(), ProviderIntel::status(*status, "x")))
        .collect()
}

#[test]
fn confidence_grows_with_agreeing_sources_and_falls_with_dissent() {
    let none = BTreeMap::new();
    assert_eq!(
        confidence(&[], &none),
        CONFIDENCE_FLOOR,
        "no evidence is low, not zero"
    );
    assert_eq!(
        confidence(&[reason("sightings", 20)], &none),
        CONFIDENCE_FLOOR,
        "repeat sightings are not a source"
    );
    assert_eq!(confidence(&[reason("feeds", 70)], &none), 40);
    assert_eq!(
        confidence(&[reason("feeds", 70), reason("feeds", 10)], &none),
        40
    );
    assert_eq!(
        confidence(&[reason("feeds", 70), reason("vendor", 40)], &none),
        70
    );
    let four = [
        reason("feeds", 70),
        reason("vendor", 40),
        reason("virustotal", 30),
        reason("abuseipdb", 10),
    ];
    assert_eq!(confidence(&four, &none), CONFIDENCE_CEILING);
    // AbuseIPDB and OTX answered without evidence; GreyNoise's failure is no answer at all.
    let intel = answered(&[
        ("abuseipdb", ProviderStatus::Ok),
        ("otx", ProviderStatus::NotFound),
        ("greynoise", ProviderStatus::Timeout),
    ]);
    assert_eq!(
        confidence(&[reason("feeds", 70), reason("vendor", 40)], &intel),
        40
    );
    assert_eq!(confidence(&[reason("feeds", 70)], &intel), CONFIDENCE_FLOOR);
}

#[test]
fn tlp_is_the_strictest_source_with_evidence_never_below_publish_tlp() {
    let rules = sample_publication(Format::Threatsift);
    let mut record = sample_record();
    // AbuseIPDB (red) answered but gave no evidence: it does not mark the record.
    assert_eq!(rules.tlp_of(&record), Tlp::Amber);
    record.reasons.push(reason("abuseipdb", 10));
    assert_eq!(rules.tlp_of(&record), Tlp::Red);
    // The feed alone is clear, but publish.tlp (green) is the floor.
    record.reasons = vec![reason("feeds", 70)];
    assert_eq!(rules.tlp_of(&record), Tlp::Green);
    // A feed without its own tlp takes publish.tlp; a stricter one wins.
    let mut strict = rules.clone();
    strict
        .feed_tlp
        .insert("spamhaus-drop".into(), Tlp::AmberStrict);
    assert_eq!(strict.tlp_of(&record), Tlp::AmberStrict);
    // Each format writes that marking its own way.
    strict.annotate(&mut record);
    let ecs = Format::Ecs.document(&record).unwrap();
    assert_eq!(ecs["threat"]["indicator"]["marking"]["tlp"], "AMBER+STRICT");
    let ocsf = Format::Ocsf.document(&record).unwrap();
    assert_eq!(ocsf["osint"][0]["tlp"], "AMBER STRICT");
    let stix = Format::Stix.document(&record).unwrap();
    assert_eq!(
        stix["object_marking_refs"],
        json!(["marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003"])
    );
}

#[test]
fn expiry_is_the_dedup_window_unless_a_contributing_answer_ends_sooner() {
    let rules = sample_publication(Format::Threatsift);
    let mut record = sample_record();
    // VirusTotal's evidence (6 h from generated_at) ends before last_seen + 24 h.
    rules.annotate(&mut record);
    assert_eq!(record.expires_at.as_deref(), Some("2026-11-23T16:04:12Z"));
    // Without it, last_seen + dedup.ttl.
    record.reasons.retain(|r| r.source != "virustotal");
    rules.annotate(&mut record);
    assert_eq!(record.expires_at.as_deref(), Some("2026-11-24T10:04:10Z"));
}

/// The golden documents validate against the schemas in schema/ that the broker tests use.
#[test]
fn the_golden_documents_validate_against_their_schemas() {
    let record = annotated();
    for (format, file) in [
        (Format::Threatsift, "threat-record.schema.json"),
        (Format::Ecs, "ecs-threat-indicator.schema.json"),
        (Format::Ocsf, "ocsf-detection-finding.schema.json"),
        (Format::Stix, "stix-indicator.schema.json"),
    ] {
        let path = format!("{}/schema/{file}", env!("CARGO_MANIFEST_DIR"));
        let schema: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .unwrap();
        let document = format.document(&record).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&document)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", format.label());
    }
}

#[test]
fn settings_choose_the_format_and_the_markings() {
    let settings = Settings::from_toml_overrides(
        "[publish]\nformat = \"stix\"\ntlp = \"green\"\n\
         [[feeds]]\nname = \"f\"\npath = \"/dev/null\"\ntlp = \"red\"\n",
    );
    // `feeds` is a top-level key: it must come first in a file; overrides take it anywhere.
    let settings = match settings {
        Ok(settings) => settings,
        Err(error) => panic!("settings refused: {error}"),
    };
    let publication = Publication::from_settings(&settings);
    assert_eq!(publication.format, Format::Stix);
    assert_eq!(publication.tlp, Tlp::Green);
    assert_eq!(publication.feed_tlp.get("f"), Some(&Tlp::Red));
    // The providers' defaults (config/default.toml): their redistribution terms.
    assert_eq!(
        publication.provider_tlp.get("virustotal"),
        Some(&Tlp::Amber)
    );
    assert_eq!(publication.provider_tlp.get("otx"), Some(&Tlp::Green));
    assert_eq!(publication.dedup_ttl, settings.dedup.ttl);
}

#[test]
fn settings_refuse_unknown_formats_and_markings() {
    // Scheduled reports work with every format: records are mapped only as they go out.
    Settings::from_toml_overrides("[publish]\nformat = \"ecs\"\n[report]\ninterval = \"1h\"\n")
        .expect("ecs with scheduled reports");
    for (toml, key) in [
        ("[publish]\nformat = \"cef\"\n", "format"),
        ("[publish]\ntlp = \"white\"\n", "tlp"),
    ] {
        let error = Settings::from_toml_overrides(toml)
            .expect_err(toml)
            .to_string();
        assert!(error.contains(key), "{toml}: {error}");
    }
}

#[test]
fn record_ids_match_an_independent_uuid_v5() {
    assert_eq!(
        uuid::bytes_of(&uuid::v5(
            &uuid::URL_NAMESPACE,
            b"https://threatsift.invalid/ns/record"
        )),
        Some(RECORD_NAMESPACE)
    );
    // Python's uuid.uuid5(namespace, "203.0.113.7|2026-11-23T10:00:00Z|2") gives this id.
    assert_eq!(
        record_id(&sample_record()),
        "43bb4fff-a389-5ca3-b259-7e56d502265b"
    );
}
