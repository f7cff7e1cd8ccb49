//! STIX: a threat record as a STIX 2.1 indicator object (the shape Microsoft Sentinel's
//! upload API, OpenCTI and MISP import). Pure.
//!
//! Mapped: `id` = `indicator--` + the v5 UUID of `ip|first_seen` (one STIX object per
//! sighting, its revisions being versions of it: same `id` and `created`, `modified` =
//! `generated_at`, as STIX 2.1 §3.6 versions objects), `pattern` `[ipv4-addr:value = '…']` or
//! `[ipv6-addr:value = '…']` (`pattern_type` `stix`), `valid_from` = `first_seen`,
//! `valid_until` = `expires_at`, `confidence`, `name` = `indicator`, `description` = the
//! reasons, `indicator_types` (`malicious-activity` for a malicious verdict, else
//! `anomalous-activity`), `labels` (verdict, severity), `revoked` (the record's `revoked` when
//! it has one), the TLP 2.0 marking-definition id in `object_marking_refs`, and the record
//! `id` as an `external_references` entry. Provider facts, network facts and the first event
//! have no place in an indicator (they would be observed-data and sightings objects).

use serde_json::{json, Value};

use super::series_id;
use crate::model::{ThreatRecord, Tlp, Verdict};

/// The TLP 2.0 marking-definition object id of `tlp` (OASIS cti-stix-common-objects, TLP 2.0
/// extension).
pub(crate) fn tlp_marking(tlp: Tlp) -> &'static str {
    match tlp {
        Tlp::Clear => "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
        Tlp::Green => "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
        Tlp::Amber => "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
        Tlp::AmberStrict => "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
        Tlp::Red => "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
    }
}

/// Whether the record says it is withdrawn: its `revoked` field (a withdrawal revision's), read
/// from its serialised form so that a record type without the field reads `false`.
fn revoked(record: &ThreatRecord) -> (bool, Option<String>) {
    serde_json::to_value(record).map_or((false, None), |value| revoked_in(&value))
}

/// `revoked` and `revocation_reason` of a serialised record (ef-withdraw's withdrawal fields).
pub(crate) fn revoked_in(value: &Value) -> (bool, Option<String>) {
    let revoked = value
        .get("revoked")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let reason = value
        .get("revocation_reason")
        .and_then(Value::as_str)
        .map(str::to_owned);
    (revoked, reason)
}

/// The STIX indicator of `record`.
pub(crate) fn document(record: &ThreatRecord) -> Value {
    let object = if record.ip_version == 6 {
        "ipv6-addr"
    } else {
        "ipv4-addr"
    };
    // The address is canonical text (digits, dots, colons, hex): nothing to escape.
    let pattern = format!("[{object}:value = '{}']", record.ip);
    // `modified` may not precede `created` (a clock step back would otherwise break it).
    let created = &record.first_seen;
    let modified = std::cmp::max(&record.generated_at, created);
    let (revoked, revocation_reason) = revoked(record);
    let mut description = record
        .reasons
        .iter()
        .map(|r| r.detail.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    if let Some(reason) = revocation_reason {
        description = format!("withdrawn: {reason}");
    }
    let mut doc = json!({
        "type": "indicator",
        "spec_version": "2.1",
        "id": format!("indicator--{}", series_id(record)),
        "created": created,
        "modified": modified,
        "name": record.indicator,
        "indicator_types": [if record.verdict == Verdict::Malicious {
            "malicious-activity"
        } else {
            "anomalous-activity"
        }],
        "pattern": pattern,
        "pattern_type": "stix",
        "pattern_version": "2.1",
        "valid_from": record.first_seen,
        "labels": [record.verdict.label(), severity_label(record)],
        "revoked": revoked,
    });
    if !description.is_empty() {
        doc["description"] = json!(description);
    }
    if let Some(until) = &record.expires_at {
        // STIX: valid_until must be later than valid_from.
        if until > &record.first_seen {
            doc["valid_until"] = json!(until);
        }
    }
    if let Some(confidence) = record.confidence {
        doc["confidence"] = json!(confidence);
    }
    if let Some(tlp) = record.tlp {
        doc["object_marking_refs"] = json!([tlp_marking(tlp)]);
    }
    if let Some(id) = &record.id {
        doc["external_references"] = json!([{
            "source_name": "threatsift",
            "external_id": id,
            "description": format!("revision {} of the threatsift record", record.revision),
        }]);
    }
    doc
}

fn severity_label(record: &ThreatRecord) -> String {
    format!(
        "severity-{}",
        serde_json::to_value(record.severity)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::revoked_in;

    #[test]
    fn a_withdrawal_revision_reads_as_revoked_with_its_reason() {
        let withdrawn = serde_json::json!({"ip": "203.0.113.7", "revoked": true,
            "revocation_reason": "removed from feed spamhaus-drop"});
        assert_eq!(
            revoked_in(&withdrawn),
            (true, Some("removed from feed spamhaus-drop".to_owned()))
        );
        // Records without the fields (every record before the withdrawal work) are not revoked.
        assert_eq!(
            revoked_in(&serde_json::json!({"ip": "203.0.113.7"})),
            (false, None)
        );
    }
}
