//! Suricata EVE JSON (alert, flow, http, dns, tls, fileinfo, anomaly, stats …), bare or behind
//! a syslog header (reference §4.7).
//!
//! * Detection: an `event_type` key with `src_ip`, `dest_ip` or `flow_id` (every flow-bound
//!   record), or `event_type: "stats"`.
//! * Roles: `src_ip`/`dest_ip` follow the *packet* that produced the record, so an alert on a
//!   server→client packet names the server as `src_ip`. Suricata 7 adds `flow.src_ip` /
//!   `flow.dest_ip`, the flow's initiator and responder: when present they are the source and
//!   destination and the packet addresses are not reported again under swapped roles. `xff`
//!   (X-Forwarded-For "extra-data" mode) → forwarded, first hop. In "overwrite" mode Suricata
//!   has already replaced `src_ip`/`dest_ip` by the XFF value; the record does not say so.
//!   `alert.source`/`alert.target` (rule-metadata roles) are not read.
//! * Context: vendor `OISF`, product `Suricata`; action = `alert.action`, rule =
//!   `alert.signature`, timestamp = `timestamp`; an `event_type: "alert"` record's threat is
//!   `alert.signature`.
//! * `stats` and other records without a flow carry no addresses; a record with a `flow_id`
//!   but no addresses is malformed.

use std::borrow::Cow;

use crate::model::{Event, Role};
use crate::stages::parse::json::JsonRef;
use crate::stages::parse::{JsonFormat, ParseError};

const NAME: &str = "suricata_eve";

/// Format `suricata_eve`.
pub(crate) struct SuricataEve;

/// The first hop of an X-Forwarded-For value.
fn first_hop(value: Cow<'_, str>) -> Cow<'_, str> {
    match value {
        Cow::Borrowed(text) => Cow::Borrowed(text.split(',').next().unwrap_or(text).trim()),
        Cow::Owned(text) => Cow::Owned(text.split(',').next().unwrap_or(&text).trim().to_owned()),
    }
}

impl JsonFormat for SuricataEve {
    fn name(&self) -> &'static str {
        NAME
    }

    fn detect(&self, doc: JsonRef<'_, '_>) -> bool {
        let Some(event_type) = doc.member("event_type") else {
            return false;
        };
        doc.member("src_ip").is_some()
            || doc.member("dest_ip").is_some()
            || doc.member("flow_id").is_some()
            || event_type.is_str("stats")
    }

    fn parse<'a>(&self, doc: JsonRef<'_, 'a>) -> Result<Event<'a>, ParseError> {
        if doc.member("event_type").is_none() {
            return Err(ParseError::malformed(NAME, "no event_type"));
        }
        let mut event = Event {
            format: NAME,
            vendor: Some(Cow::Borrowed("OISF")),
            product: Some(Cow::Borrowed("Suricata")),
            timestamp: doc.member("timestamp").and_then(|t| t.str()),
            ..Event::default()
        };
        if let Some(alert) = doc.member("alert") {
            event.action = alert.member("action").and_then(|a| a.str());
            event.rule = alert.member("signature").and_then(|s| s.str());
            // Only an alert record is a detection; http/flow/… records may embed rule metadata.
            if doc.member("event_type").is_some_and(|t| t.is_str("alert")) {
                event.threat = event.rule.clone();
            }
        }
        // Suricata 7: the flow's initiator/responder, whatever the packet's direction.
        let flow = doc.member("flow");
        let flow_source = flow.and_then(|f| f.member("src_ip")).and_then(|v| v.str());
        let flow_destination = flow.and_then(|f| f.member("dest_ip")).and_then(|v| v.str());
        let (source, destination) = if flow_source.is_some() || flow_destination.is_some() {
            (flow_source, flow_destination)
        } else {
            (
                doc.member("src_ip").and_then(|v| v.str()),
                doc.member("dest_ip").and_then(|v| v.str()),
            )
        };
        if let Some(source) = source {
            event.addresses.push((Role::Source, source));
        }
        if let Some(destination) = destination {
            event.addresses.push((Role::Destination, destination));
        }
        // d-siem: ports and transport of the record (`src_port`, `dest_port`, `proto`); the
        // flow's own ports when Suricata 7 gives them (as for the addresses above).
        let port = |name: &str| {
            flow.and_then(|f| f.member(name))
                .or_else(|| doc.member(name))
                .and_then(|v| v.text())
        };
        event.src_port = port("src_port");
        event.dst_port = port("dest_port");
        event.protocol = doc.member("proto").and_then(|p| p.text());
        if let Some(xff) = doc.member("xff").and_then(|x| x.str()) {
            event.addresses.push((Role::Forwarded, first_hop(xff)));
        }
        if event.addresses.is_empty() && doc.member("flow_id").is_some() {
            return Err(ParseError::malformed(
                NAME,
                "a flow record (flow_id) without src_ip/dest_ip",
            ));
        }
        Ok(event)
    }
}
