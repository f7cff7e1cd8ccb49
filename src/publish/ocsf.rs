//! OCSF: a threat record as an OCSF 1.4 Detection Finding (class 2004, category Findings) with
//! the OSINT profile. Pure.
//!
//! Why this class: a record says "this address, seen in our traffic, is judged malicious on
//! this evidence": a finding a detection engine made, updated as evidence arrives (activity
//! Create for revision 1, Update after), which is what Detection Finding describes. The
//! indicator itself rides in the OSINT profile's `osint` array (`type_id` 1 IP Address,
//! `value`, `confidence_id`, `tlp`, `expiration_time`), which OCSF applies to Detection Finding;
//! OSINT Inventory Info (5021) would fit a bare feed entry, but it drops the finding's severity,
//! status and first/last seen.
//!
//! Mapped: `time` (= `generated_at`, epoch ms as OCSF `timestamp_t`), `severity_id`,
//! `confidence_id`/`confidence_score`, `message`, `finding_info.{uid (the sighting's series
//! id), title, desc, first_seen_time, last_seen_time, modified_time, types, data_sources}`,
//! `metadata.{version, product, profiles, uid (the record id)}`, `osint[0]`, `observables`,
//! `evidences[0].{src_endpoint, dst_endpoint, connection_info}` of the first event. Provider
//! facts, network facts and the verdict have no OCSF attribute here: they are under `unmapped`.

use serde_json::{json, Map, Value};

use super::{ecs, matched_feeds, series_id};
use crate::model::{Role, Severity, ThreatRecord, Tlp, Verdict};

/// OCSF schema version the findings follow.
pub(crate) const OCSF_VERSION: &str = "1.4.0";
/// Detection Finding.
pub(crate) const CLASS_UID: u32 = 2004;
/// Findings.
pub(crate) const CATEGORY_UID: u32 = 2;

/// Epoch milliseconds of an RFC 3339 time (OCSF `timestamp_t`).
fn millis(time: &str) -> Option<u64> {
    let time = humantime::parse_rfc3339(time).ok()?;
    let since = time.duration_since(std::time::UNIX_EPOCH).ok()?;
    u64::try_from(since.as_millis()).ok()
}

/// OCSF `severity_id`: 1 Informational … 5 Critical.
fn severity_id(severity: Severity) -> (u8, &'static str) {
    match severity {
        Severity::Info => (1, "Informational"),
        Severity::Low => (2, "Low"),
        Severity::Medium => (3, "Medium"),
        Severity::High => (4, "High"),
        Severity::Critical => (5, "Critical"),
    }
}

/// OCSF `confidence_id`: 1 Low, 2 Medium, 3 High (the same bands as ECS); 0 Unknown when
/// there is none.
fn confidence_id(confidence: Option<u8>) -> (u8, &'static str) {
    match ecs::confidence_label(confidence) {
        "Low" => (1, "Low"),
        "Medium" => (2, "Medium"),
        "High" => (3, "High"),
        _ => (0, "Unknown"),
    }
}

/// OCSF `osint.tlp`: its enum writes TLP:AMBER+STRICT as `AMBER STRICT`.
pub(crate) fn tlp_label(tlp: Tlp) -> &'static str {
    match tlp {
        Tlp::AmberStrict => "AMBER STRICT",
        other => ecs::tlp_label(other),
    }
}

/// The finding of `record`.
pub(crate) fn document(record: &ThreatRecord) -> Value {
    let (activity_id, activity_name) = if record.revision <= 1 {
        (1u32, "Create")
    } else {
        (2, "Update")
    };
    let (severity_id, severity) = severity_id(record.severity);
    let (confidence_id, confidence) = confidence_id(record.confidence);
    let description = record
        .reasons
        .iter()
        .map(|r| r.detail.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    let mut sources: Vec<&str> = record.reasons.iter().map(|r| r.source.as_str()).collect();
    sources.sort_unstable();
    sources.dedup();
    let mut osint = json!({
        "type_id": 1,
        "type": "IP Address",
        "value": record.ip,
        "confidence_id": confidence_id,
        "confidence": confidence,
        "labels": [record.verdict.label()],
    });
    if let Some(tlp) = record.tlp {
        osint["tlp"] = json!(tlp_label(tlp));
    }
    if let Some(until) = record.expires_at.as_deref().and_then(millis) {
        osint["expiration_time"] = json!(until);
    }
    if let Some(at) = millis(&record.first_seen) {
        osint["created_time"] = json!(at);
    }
    if let Some(at) = millis(&record.generated_at) {
        osint["modified_time"] = json!(at);
    }
    if !description.is_empty() {
        osint["comment"] = json!(description);
    }
    let feeds = matched_feeds(&record.intel);
    if !feeds.is_empty() {
        osint["vendor_name"] = json!(feeds.join(","));
    }
    let mut finding_info = json!({
        "uid": series_id(record),
        "title": record.indicator,
        "types": [record.verdict.label()],
        "data_sources": sources,
    });
    if !description.is_empty() {
        finding_info["desc"] = json!(description);
    }
    for (key, time) in [
        ("first_seen_time", &record.first_seen),
        ("last_seen_time", &record.last_seen),
        ("modified_time", &record.generated_at),
    ] {
        if let Some(at) = millis(time) {
            finding_info[key] = json!(at);
        }
    }
    let mut metadata = json!({
        "version": OCSF_VERSION,
        "product": { "name": "threatsift", "vendor_name": "threatsift" },
        "profiles": ["osint"],
    });
    if let Some(id) = &record.id {
        metadata["uid"] = json!(id);
    }
    let mut doc = json!({
        "class_uid": CLASS_UID,
        "class_name": "Detection Finding",
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": CLASS_UID * 100 + activity_id,
        "type_name": format!("Detection Finding: {activity_name}"),
        "time": millis(&record.generated_at).unwrap_or(0),
        "severity_id": severity_id,
        "severity": severity,
        "confidence_id": confidence_id,
        "confidence": confidence,
        // An alertable signal: the verdict reached suspicious (the default publish floor).
        "is_alert": record.verdict >= Verdict::Suspicious,
        "status_id": 1,
        "status": "New",
        "message": record.indicator,
        "finding_info": finding_info,
        "metadata": metadata,
        "osint": [osint],
        "observables": [{ "name": "osint.value", "type_id": 2, "type": "IP Address", "value": record.ip }],
        "unmapped": {
            "threatsift_schema": record.schema,
            "verdict": record.verdict.label(),
            "score": record.score,
            "revision": record.revision,
            "roles": record.roles,
            "network": record.network,
            "intel": record.intel,
        },
    });
    if let Some(score) = record.confidence {
        doc["confidence_score"] = json!(score);
    }
    if let Some(evidence) = evidence(record) {
        doc["evidences"] = json!([evidence]);
    }
    doc
}

/// The first event's endpoints and connection, when it had any of them.
fn evidence(record: &ThreatRecord) -> Option<Value> {
    let observed = &record.observed;
    let is_destination = record.roles.contains(&Role::Destination)
        && !record
            .roles
            .iter()
            .any(|r| matches!(r, Role::Source | Role::Client));
    let (mut src, mut dst) = (Map::new(), Map::new());
    let (own, peer) = if is_destination {
        (&mut dst, &mut src)
    } else {
        (&mut src, &mut dst)
    };
    own.insert("ip".into(), json!(record.ip));
    if let Some(peer_ip) = &observed.peer_ip {
        peer.insert("ip".into(), json!(peer_ip));
    }
    if let Some(port) = observed.src_port {
        src.insert("port".into(), json!(port));
    }
    if let Some(port) = observed.dst_port {
        dst.insert("port".into(), json!(port));
    }
    let mut evidence = json!({ "src_endpoint": src, "dst_endpoint": dst });
    let mut connection = Map::new();
    if let Some(protocol) = &observed.protocol {
        connection.insert("protocol_name".into(), json!(protocol));
    }
    if let Some(direction) = &observed.direction {
        let id = match direction.as_str() {
            "inbound" => 1,
            "outbound" => 2,
            "internal" => 3,
            _ => 99,
        };
        connection.insert("direction_id".into(), json!(id));
        connection.insert("direction".into(), json!(direction));
    }
    if !connection.is_empty() {
        evidence["connection_info"] = Value::Object(connection);
    }
    Some(evidence)
}
