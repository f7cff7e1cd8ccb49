//! Sighting: what the ingest half knows of one public address in one message, as it crosses
//! the internal topic `<output_topic>.sightings` to the daemon that owns the address (design
//! §10, `[scale] mode = "scaled"`). Pure.
//!
//! * In (encode): the address, the roles it had in the event, when it was seen (the message
//!   time, first and latest when repeats were folded), how many sightings it stands for, and
//!   the context its first record needs (`observed`, threat, reporter, allowed/denied).
//! * Out: one JSON message, schema `threatsift.sighting/1`, key = the address text
//!   (`ip.to_string()`), so every sighting of an address lands on one partition (the producer
//!   uses `partitioner=murmur2_random`, see `kafka::partition`).
//! * Refused (decode): anything that is not a JSON object of this schema with a valid address
//!   and a count of at least 1: a [`SightingError`] naming what is wrong; the caller
//!   dead-letters the message and the stream goes on.
//! * Folding: repeats of one address in one batch and one input partition may be carried by
//!   the first message's sighting (`count` > 1, `last_seen_ms` the latest); the owner counts
//!   them all in its dedup window, and builds the first record as if it had seen them one by
//!   one (so both modes give the same records).

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::model::{Observed, Role};

/// The schema of a sighting message.
pub(crate) const SIGHTING_SCHEMA: &str = "threatsift.sighting/1";

/// One public address seen in one input message (or several folded into it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IpSighting {
    /// Always [`SIGHTING_SCHEMA`].
    pub schema: String,
    /// The address.
    pub ip: IpAddr,
    /// Its roles in the (first) event, sorted, without repeats.
    pub roles: Vec<Role>,
    /// When it was first seen (the message time), ms since the epoch.
    pub seen_at_ms: u64,
    /// The latest sighting folded into this one, ms since the epoch.
    pub last_seen_ms: u64,
    /// Sightings this message stands for (≥ 1).
    pub count: u64,
    /// The first event's context, as its record shows it.
    pub observed: Observed,
    /// The first event's own time, normalised (the record's `event_time`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time: Option<String>,
    /// The vendor's threat name, when the event was a detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threat: Option<String>,
    /// Product or vendor that reported the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporter: Option<String>,
    /// The device let the traffic through (its action was not a deny).
    pub allowed: bool,
}

/// Why a sightings message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SightingError {
    /// Not JSON of the sighting's shape.
    #[error("not a {SIGHTING_SCHEMA} message: {0}")]
    Shape(String),
    /// JSON of another schema.
    #[error("schema `{0}` is not {SIGHTING_SCHEMA}")]
    Schema(String),
    /// A count of 0 stands for nothing.
    #[error("count must be at least 1")]
    ZeroCount,
}

fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl IpSighting {
    /// One sighting of `ip` at `seen_at`.
    pub(crate) fn new(
        ip: IpAddr,
        roles: Vec<Role>,
        seen_at: SystemTime,
        observed: Observed,
        threat: Option<String>,
        reporter: Option<String>,
        allowed: bool,
    ) -> Self {
        IpSighting {
            schema: SIGHTING_SCHEMA.to_owned(),
            ip,
            roles,
            seen_at_ms: millis(seen_at),
            last_seen_ms: millis(seen_at),
            count: 1,
            observed,
            event_time: None,
            threat,
            reporter,
            allowed,
        }
    }

    /// Folds a later sighting of the same address at `at` into this one.
    pub(crate) fn fold(&mut self, at: SystemTime) {
        self.count += 1;
        self.last_seen_ms = self.last_seen_ms.max(millis(at));
    }

    /// When it was first seen.
    pub(crate) fn seen_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.seen_at_ms)
    }

    /// The latest sighting it stands for.
    pub(crate) fn last_seen(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.last_seen_ms.max(self.seen_at_ms))
    }

    /// The message value.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// The message key: the address text, as the state topic and the records use it.
    pub(crate) fn key(&self) -> Vec<u8> {
        self.ip.to_string().into_bytes()
    }

    /// Reads a sightings message.
    pub(crate) fn decode(bytes: &[u8]) -> Result<IpSighting, SightingError> {
        #[derive(Deserialize)]
        struct Head<'a> {
            #[serde(borrow)]
            schema: std::borrow::Cow<'a, str>,
        }
        let head: Head<'_> =
            serde_json::from_slice(bytes).map_err(|e| SightingError::Shape(e.to_string()))?;
        if head.schema != SIGHTING_SCHEMA {
            return Err(SightingError::Schema(head.schema.into_owned()));
        }
        let sighting: IpSighting =
            serde_json::from_slice(bytes).map_err(|e| SightingError::Shape(e.to_string()))?;
        if sighting.count == 0 {
            return Err(SightingError::ZeroCount);
        }
        Ok(sighting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sighting() -> IpSighting {
        let mut s = IpSighting::new(
            "2001:db8::7".parse().unwrap(),
            vec![Role::Source],
            UNIX_EPOCH + Duration::from_millis(1_795_428_000_123),
            Observed {
                format: "ecs_json".into(),
                vendor: Some("Palo Alto Networks".into()),
                product: Some("PAN-OS".into()),
                action: Some("deny".into()),
                peer_ip: Some("198.51.100.9".into()),
                rule: Some("block-all".into()),
                topic: "fw".into(),
                partition: 3,
                offset: 42,
                src_port: Some(51_514),
                dst_port: Some(443),
                protocol: Some("tcp".into()),
                direction: Some("inbound".into()),
            },
            Some("ET SCAN".into()),
            Some("PAN-OS".into()),
            false,
        );
        s.fold(UNIX_EPOCH + Duration::from_millis(1_795_428_009_000));
        s
    }

    #[test]
    fn a_sighting_survives_the_round_trip_with_its_key_the_address_text() {
        let s = sighting();
        let bytes = s.encode().unwrap();
        let back = IpSighting::decode(&bytes).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.count, 2);
        assert_eq!(
            back.last_seen(),
            UNIX_EPOCH + Duration::from_secs(1_795_428_009)
        );
        assert_eq!(s.key(), b"2001:db8::7");
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["schema"], SIGHTING_SCHEMA);
        assert_eq!(json["roles"], serde_json::json!(["source"]));
    }

    #[test]
    fn malformed_sightings_are_refused_naming_what_is_wrong() {
        let good = serde_json::to_value(sighting()).unwrap();
        let with = |field: &str, value: serde_json::Value| {
            let mut v = good.clone();
            v[field] = value;
            serde_json::to_vec(&v).unwrap()
        };
        assert!(matches!(
            IpSighting::decode(b"not json"),
            Err(SightingError::Shape(_))
        ));
        assert!(matches!(
            IpSighting::decode(b"[1,2]"),
            Err(SightingError::Shape(_))
        ));
        assert_eq!(
            IpSighting::decode(&with("schema", "threatsift.threat/1".into())),
            Err(SightingError::Schema("threatsift.threat/1".into()))
        );
        let bad_ip = IpSighting::decode(&with("ip", "10.0.0.300".into())).unwrap_err();
        assert!(
            bad_ip.to_string().contains("invalid IP address"),
            "{bad_ip}"
        );
        assert_eq!(
            IpSighting::decode(&with("count", 0.into())),
            Err(SightingError::ZeroCount)
        );
        let mut missing = good.clone();
        missing.as_object_mut().unwrap().remove("observed");
        let missing = IpSighting::decode(&serde_json::to_vec(&missing).unwrap()).unwrap_err();
        assert!(missing.to_string().contains("observed"), "{missing}");
    }
}
