//! ECS: a threat record as an Elastic Common Schema threat-indicator document (ECS 8.x
//! `threat.*`, the shape Elastic Security's indicator-match rules read). Pure.
//!
//! Mapped: `@timestamp` (= `generated_at`), `event.{kind: enrichment, category: [threat],
//! type: [indicator], id, created, risk_score, severity, reason}`, `threat.indicator.{type
//! (ipv4-addr/ipv6-addr), ip, first_seen, last_seen, modified_at, sightings, confidence
//! (None/Low/Medium/High), marking.tlp, provider, description, reference, as, geo}`,
//! `threat.feed.name` (the feeds that listed the address, or `threatsift`), `network.{transport,
//! direction}`, `source.port`/`destination.port` of the first event, `observer.{vendor,
//! product}`, `rule.name`, `labels.{verdict, revision, expires_at, event_time}`. What ECS has no
//! field for (each provider's raw facts) stays under `threatsift.intel`; the whole record's
//! own `schema` is `threatsift.schema`.

use serde_json::{json, Map, Value};

use super::matched_feeds;
use crate::model::{Role, ThreatRecord, Tlp};

/// ECS version the documents follow.
pub(crate) const ECS_VERSION: &str = "8.11.0";

/// ECS `threat.indicator.confidence` of a 0–100 confidence (the STIX 2.1 "None/Low/Med/High"
/// scale: 0 None, 1–29 Low, 30–69 Medium, 70–100 High).
pub(crate) fn confidence_label(confidence: Option<u8>) -> &'static str {
    match confidence {
        None => "Not Specified",
        Some(0) => "None",
        Some(1..=29) => "Low",
        Some(30..=69) => "Medium",
        Some(_) => "High",
    }
}

/// ECS `threat.indicator.marking.tlp` (upper case, TLP 2.0 names).
pub(crate) fn tlp_label(tlp: Tlp) -> &'static str {
    match tlp {
        Tlp::Clear => "CLEAR",
        Tlp::Green => "GREEN",
        Tlp::Amber => "AMBER",
        Tlp::AmberStrict => "AMBER+STRICT",
        Tlp::Red => "RED",
    }
}

/// ECS `event.severity`: 0 info … 4 critical (the record's severity band).
fn severity_number(record: &ThreatRecord) -> u8 {
    record.severity as u8
}

/// The sources whose evidence is in the reasons, comma-separated (ECS `provider` is one
/// keyword); the feeds by their names.
fn providers(record: &ThreatRecord) -> String {
    let feeds = matched_feeds(&record.intel);
    let mut names: Vec<&str> = record
        .reasons
        .iter()
        .filter(|r| r.weight > 0)
        .flat_map(|r| {
            if r.source == "feeds" && !feeds.is_empty() {
                feeds.clone()
            } else {
                vec![r.source.as_str()]
            }
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        "threatsift".to_owned()
    } else {
        names.join(",")
    }
}

/// The ECS document of `record`.
pub(crate) fn document(record: &ThreatRecord) -> Value {
    let mut indicator = Map::new();
    indicator.insert(
        "type".into(),
        json!(if record.ip_version == 6 {
            "ipv6-addr"
        } else {
            "ipv4-addr"
        }),
    );
    indicator.insert("ip".into(), json!(record.ip));
    indicator.insert("first_seen".into(), json!(record.first_seen));
    indicator.insert("last_seen".into(), json!(record.last_seen));
    indicator.insert("modified_at".into(), json!(record.generated_at));
    indicator.insert("sightings".into(), json!(record.sightings));
    indicator.insert(
        "confidence".into(),
        json!(confidence_label(record.confidence)),
    );
    if let Some(tlp) = record.tlp {
        indicator.insert("marking".into(), json!({ "tlp": tlp_label(tlp) }));
    }
    indicator.insert("provider".into(), json!(providers(record)));
    indicator.insert(
        "description".into(),
        json!(record
            .reasons
            .iter()
            .map(|r| r.detail.as_str())
            .collect::<Vec<_>>()
            .join("; ")),
    );
    if let Some(asn) = record.network.asn {
        let mut autonomous = json!({ "number": asn });
        if let Some(org) = &record.network.as_org {
            autonomous["organization"] = json!({ "name": org });
        }
        indicator.insert("as".into(), autonomous);
    }
    if let Some(country) = &record.network.country {
        indicator.insert("geo".into(), json!({ "country_iso_code": country }));
    }
    // The indicator's own port only when the address was the destination (a server port).
    if record.roles.iter().all(|r| *r == Role::Destination) {
        if let Some(port) = record.observed.dst_port {
            indicator.insert("port".into(), json!(port));
        }
    }
    let feeds = matched_feeds(&record.intel);
    let feed_name = if feeds.is_empty() {
        "threatsift".to_owned()
    } else {
        feeds.join(",")
    };
    let mut doc = json!({
        "@timestamp": record.generated_at,
        "ecs": { "version": ECS_VERSION },
        "event": {
            "kind": "enrichment",
            "category": ["threat"],
            "type": ["indicator"],
            "created": record.generated_at,
            "risk_score": record.score,
            "severity": severity_number(record),
            "reason": record.indicator,
            "dataset": "threatsift.indicator",
        },
        "threat": {
            "indicator": Value::Object(indicator),
            "feed": { "name": feed_name },
        },
        "labels": {
            "verdict": record.verdict.label(),
            "revision": record.revision.to_string(),
        },
        "threatsift": {
            "schema": record.schema,
            "intel": record.intel,
            "roles": record.roles,
        },
    });
    if let Some(id) = &record.id {
        doc["event"]["id"] = json!(id);
    }
    if let Some(expires) = &record.expires_at {
        doc["labels"]["expires_at"] = json!(expires);
    }
    if let Some(time) = &record.event_time {
        doc["labels"]["event_time"] = json!(time);
    }
    let mut network = Map::new();
    if let Some(protocol) = &record.observed.protocol {
        network.insert("transport".into(), json!(protocol));
    }
    if let Some(direction) = &record.observed.direction {
        network.insert("direction".into(), json!(direction));
    }
    if !network.is_empty() {
        doc["network"] = Value::Object(network);
    }
    if let Some(port) = record.observed.src_port {
        doc["source"] = json!({ "port": port });
    }
    if let Some(port) = record.observed.dst_port {
        doc["destination"] = json!({ "port": port });
    }
    let mut observer = Map::new();
    if let Some(vendor) = &record.observed.vendor {
        observer.insert("vendor".into(), json!(vendor));
    }
    if let Some(product) = &record.observed.product {
        observer.insert("product".into(), json!(product));
    }
    if !observer.is_empty() {
        doc["observer"] = Value::Object(observer);
    }
    if let Some(rule) = &record.observed.rule {
        doc["rule"] = json!({ "name": rule });
    }
    doc
}
