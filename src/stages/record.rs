//! Record: the one place a threat record's fields are set, for the first record of an address
//! and for every revision. Pure.
//!
//! * In: the address, the event it was first seen in, its sighting, what local intelligence
//!   said, and the score of the evidence.
//! * Out: a [`ThreatRecord`], and its [`Output`] for the output topic (key = the address).
//! * Refused with an [`EncodeError`], never an empty payload, if the record cannot be
//!   serialised.

use std::net::IpAddr;
use std::time::SystemTime;

use crate::model::{
    rfc3339, Event, IpObservation, Observed, Origin, Output, OutputKind, Role, ThreatRecord,
    THREAT_SCHEMA,
};
use crate::publish::Publication;
use crate::stages::dedup::Sighting;
use crate::stages::local::LocalAnswer;
use crate::stages::score::Scored;

/// A record or DLQ entry that could not be serialised (a bug: every field is plain data).
#[derive(Debug, thiserror::Error)]
#[error("cannot serialise the {what}: {source}")]
pub struct EncodeError {
    /// What was being serialised.
    pub what: &'static str,
    /// The serialiser's error.
    #[source]
    pub source: serde_json::Error,
}

impl EncodeError {
    /// Bounded label.
    pub fn kind(&self) -> &'static str {
        "encode"
    }
}

/// Where an address was first seen: the event, every address in it, and the message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SeenIn<'a> {
    /// The event.
    pub event: &'a Event<'a>,
    /// Every address the event holds, with its role.
    pub observations: &'a [IpObservation],
    /// The message the event came from.
    pub origin: &'a Origin,
}

/// What the first record of `ip` keeps of the event it was seen in: its roles (sorted, no
/// repeats) and the `observed` context. Built only for a first sighting (or a due retry), and
/// by the ingest half for each sighting it sends (`stages::sighting`).
pub(crate) fn first_context(ip: IpAddr, seen: SeenIn<'_>) -> (Vec<Role>, Observed) {
    let SeenIn {
        event,
        observations,
        origin,
    } = seen;
    let mut roles: Vec<Role> = observations
        .iter()
        .filter(|o| o.ip == ip)
        .map(|o| o.role)
        .collect();
    roles.sort();
    roles.dedup();
    let observed = Observed {
        format: event.format.to_owned(),
        vendor: event.vendor.as_deref().map(str::to_owned),
        product: event.product.as_deref().map(str::to_owned),
        action: event.action.as_deref().map(str::to_owned),
        peer_ip: peer_of(ip, &roles, observations).map(|p| p.to_string()),
        rule: event.rule.as_deref().map(str::to_owned),
        topic: origin.topic.to_string(),
        partition: origin.partition,
        offset: origin.offset,
        src_port: event.src_port.as_deref().and_then(port),
        dst_port: event.dst_port.as_deref().and_then(port),
        protocol: event.protocol.as_deref().and_then(protocol),
        direction: event.direction.as_deref().and_then(direction),
    };
    (roles, observed)
}

/// The first record of `ip`, with the roles and context of the event it was first seen in
/// (see [`first_context`]); revision 1 until it is published.
pub(crate) fn first_record(
    ip: IpAddr,
    (roles, observed): (Vec<Role>, Observed),
    sighting: &Sighting,
    local: LocalAnswer,
    scored: Scored,
    now: SystemTime,
) -> ThreatRecord {
    let mut record = ThreatRecord {
        schema: THREAT_SCHEMA.to_owned(),
        ip: ip.to_string(),
        ip_version: if ip.is_ipv4() { 4 } else { 6 },
        verdict: scored.assessment.verdict,
        severity: scored.assessment.severity,
        score: 0,
        reasons: Vec::new(),
        indicator: String::new(),
        first_seen: rfc3339(sighting.first_seen()),
        last_seen: String::new(),
        sightings: 0,
        observed,
        roles,
        network: local.network,
        intel: local.intel,
        revision: 1,
        generated_at: rfc3339(now),
        id: None,
        event_time: None,
        confidence: None,
        tlp: None,
        expires_at: None,
        revoked: false,
        revocation_reason: None,
    };
    assess(&mut record, scored, sighting);
    record
}

/// Sets the score, verdict, severity, indicator and reasons from `scored`, and the sightings
/// so far.
pub(crate) fn assess(record: &mut ThreatRecord, scored: Scored, sighting: &Sighting) {
    let assessment = scored.assessment;
    record.score = assessment.score;
    record.verdict = assessment.verdict;
    record.severity = assessment.severity;
    record.indicator = assessment.indicator;
    record.reasons = scored.reasons;
    record.sightings = sighting.count();
    record.last_seen = rfc3339(sighting.last_seen());
}

/// The record as a message for the output topic: annotated (`id`, `confidence`, `tlp`,
/// `expires_at`) and shaped by `publication` (`publish.format`); the key is the address in
/// every format.
pub(crate) fn encode(
    record: &mut ThreatRecord,
    publication: &Publication,
) -> Result<Output, EncodeError> {
    let payload = publication.encode(record).map_err(|source| EncodeError {
        what: "threat record",
        source,
    })?;
    Ok(Output {
        kind: OutputKind::Record(record.verdict),
        key: Some(record.ip.clone().into_bytes()),
        payload,
    })
}

/// A port number as written (`443`); `None` for 0, `-` or anything that is not one.
pub(crate) fn port(text: &str) -> Option<u16> {
    text.trim().parse::<u16>().ok().filter(|p| *p != 0)
}

/// A transport protocol as written, lower case, before any `/` (`tcp/https`); the IANA
/// numbers of the common ones named. Anything but letters, digits and `-` (at most 16) is no
/// protocol name: `None`.
pub(crate) fn protocol(text: &str) -> Option<String> {
    let text = text.split('/').next().unwrap_or(text).trim();
    if text.len() > 16 || !text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return None;
    }
    let named = match text {
        "1" => "icmp",
        "6" => "tcp",
        "17" => "udp",
        "47" => "gre",
        "50" => "esp",
        "58" => "ipv6-icmp",
        "132" => "sctp",
        "" | "-" => return None,
        _ if text.bytes().all(|b| b.is_ascii_digit()) => return Some(text.to_owned()),
        _ => return Some(text.to_ascii_lowercase()),
    };
    Some(named.to_owned())
}

/// A traffic direction as written, as ECS names it (`inbound`, `outbound`, `internal`,
/// `external`); CEF `deviceDirection` is 0 inbound and 1 outbound. Anything else: `None`.
pub(crate) fn direction(text: &str) -> Option<String> {
    let named = match text.trim().to_ascii_lowercase().as_str() {
        "inbound" | "in" | "incoming" | "ingress" | "0" => "inbound",
        "outbound" | "out" | "outgoing" | "egress" | "1" => "outbound",
        "internal" | "lan" => "internal",
        "external" => "external",
        _ => return None,
    };
    Some(named.to_owned())
}

/// The other end of the connection: a destination for a source, a source for a destination.
pub(crate) fn peer_of(
    ip: IpAddr,
    roles: &[Role],
    observations: &[IpObservation],
) -> Option<IpAddr> {
    let wanted: &[Role] = if roles
        .iter()
        .any(|r| matches!(r, Role::Source | Role::Client))
    {
        &[Role::Destination]
    } else if roles.contains(&Role::Destination) {
        &[Role::Source, Role::Client]
    } else {
        &[]
    };
    observations
        .iter()
        .find(|o| o.ip != ip && wanted.contains(&o.role))
        .map(|o| o.ip)
}

#[cfg(test)]
mod connection_tests {
    use super::{direction, port, protocol};

    #[test]
    fn ports_are_numbers_from_1() {
        assert_eq!(port("443"), Some(443));
        assert_eq!(port(" 51544 "), Some(51544));
        for text in ["0", "-", "", "65536", "https", "-1"] {
            assert_eq!(port(text), None, "{text:?}");
        }
    }

    #[test]
    fn protocols_are_lower_case_and_common_numbers_named() {
        assert_eq!(protocol("TCP").as_deref(), Some("tcp"));
        assert_eq!(protocol("6").as_deref(), Some("tcp"));
        assert_eq!(protocol("17").as_deref(), Some("udp"));
        assert_eq!(protocol("58").as_deref(), Some("ipv6-icmp"));
        assert_eq!(protocol("89").as_deref(), Some("89"));
        assert_eq!(protocol("-"), None);
        assert_eq!(protocol("tcp/https").as_deref(), Some("tcp"));
        // What the record schema could not hold is left out.
        assert_eq!(protocol("TCP over IP"), None);
        assert_eq!(protocol("ipv6_icmp"), None);
    }

    #[test]
    fn directions_take_ecs_names_or_none() {
        assert_eq!(direction("Incoming").as_deref(), Some("inbound"));
        assert_eq!(direction("egress").as_deref(), Some("outbound"));
        // CEF deviceDirection: 0 inbound, 1 outbound.
        assert_eq!(direction("0").as_deref(), Some("inbound"));
        assert_eq!(direction("1").as_deref(), Some("outbound"));
        assert_eq!(direction("Internal").as_deref(), Some("internal"));
        assert_eq!(direction("client-to-server"), None);
    }
}
