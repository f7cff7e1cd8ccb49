//! ECS JSON and generic JSON: the JSON reader of last resort.
//!
//! * ECS address fields with their roles (`source.ip` source, `destination.ip` and `server.ip`
//!   destination, `client.ip` client, `*.nat.ip` nat, `network.forwarded_ip` forwarded,
//!   `related.ip` unknown, only for addresses without another role in the event); `host.ip` and `observer.ip` are the reporting device (observer).
//! * Then the configured `parse.json_ip_fields`. A document with ECS addresses is `ecs_json`;
//!   anything else is `json` (an event, possibly without addresses).

use crate::model::{Event, Role};
use crate::stages::extract::parse_ip_token;
use crate::stages::parse::json::JsonRef;

/// Name of documents with ECS address fields.
pub(crate) const ECS: &str = "ecs_json";
/// Name of other JSON documents.
pub(crate) const GENERIC: &str = "json";
/// Counted when a batch (`records`, `logEvents`) held no events.
pub(crate) const BATCH: &str = "json_batch";
/// Internal marker: the object was an envelope whose contents were already emitted.
pub(crate) const ENVELOPE: &str = "envelope";

/// ECS fields plus configured paths.
pub(crate) struct GenericJson {
    extra_fields: Vec<(String, Role)>,
}

impl GenericJson {
    /// Reads ECS fields and `extra_fields` (dotted paths).
    pub(crate) fn new(extra_fields: Vec<(String, Role)>) -> Self {
        GenericJson { extra_fields }
    }

    /// ECS fields, in one walk over the document: `ecs_json` if it has ECS addresses, else
    /// `json` with whatever context it had.
    pub(crate) fn parse_ecs<'a>(&self, doc: JsonRef<'_, 'a>) -> Event<'a> {
        let mut event = Event {
            format: GENERIC,
            ..Event::default()
        };
        doc.walk_leaves(&mut |path, value| {
            let role = match path {
                "source.ip" => Role::Source,
                "destination.ip" | "server.ip" => Role::Destination,
                "client.ip" => Role::Client,
                "source.nat.ip" | "destination.nat.ip" | "client.nat.ip" | "server.nat.ip" => {
                    Role::Nat
                }
                "network.forwarded_ip" => Role::Forwarded,
                "related.ip" => Role::Unknown,
                _ => {
                    let slot = match path {
                        "observer.vendor" => &mut event.vendor,
                        "observer.product" => &mut event.product,
                        "event.action" => &mut event.action,
                        "rule.name" => &mut event.rule,
                        "@timestamp" => &mut event.timestamp,
                        "source.port" | "client.port" => &mut event.src_port,
                        "destination.port" | "server.port" => &mut event.dst_port,
                        "network.transport" => &mut event.protocol,
                        "network.direction" => &mut event.direction,
                        // The device that reported the event, never an endpoint.
                        "observer.ip" | "host.ip" => &mut event.observer,
                        _ => return,
                    };
                    if slot.is_none() {
                        *slot = value
                            .text()
                            .or_else(|| value.items().next().and_then(|first| first.str()));
                    }
                    return;
                }
            };
            if let Some(text) = value.str() {
                event.addresses.push((role, text));
            } else {
                for item in value.items() {
                    if let Some(text) = item.str() {
                        event.addresses.push((role, text));
                    }
                }
            }
        });
        if !event.addresses.is_empty() {
            event.format = ECS;
            drop_known_related(&mut event);
        }
        event
    }

    /// Whether a top-level key starts an ECS address path (`source`, `destination`, `client`,
    /// `server`, `related`, `network`, nested or dotted): a document without one has no ECS
    /// address, and vendor JSON formats need not pay for the walk.
    pub(crate) fn may_have_addresses(doc: JsonRef<'_, '_>) -> bool {
        doc.members().any(|(key, _)| {
            let raw = key.raw();
            let head = raw.split('.').next().unwrap_or(raw);
            matches!(
                head,
                "source" | "destination" | "client" | "server" | "related" | "network"
            )
        })
    }

    /// Adds the configured paths' addresses.
    pub(crate) fn add_extra_fields<'a>(&self, doc: JsonRef<'_, 'a>, event: &mut Event<'a>) {
        for (path, role) in &self.extra_fields {
            doc.get_strings(path, |text| event.addresses.push((*role, text)));
        }
    }

    /// ECS fields and the configured paths; never fails.
    pub(crate) fn parse<'a>(&self, doc: JsonRef<'_, 'a>) -> Event<'a> {
        let mut event = self.parse_ecs(doc);
        self.add_extra_fields(doc, &mut event);
        event
    }
}

/// `related.ip` is the union of the event's addresses: an entry whose address already has a
/// role in the event says nothing more.
fn drop_known_related(event: &mut Event<'_>) {
    let known: Vec<std::net::IpAddr> = event
        .addresses
        .iter()
        .filter(|(role, _)| *role != Role::Unknown)
        .filter_map(|(_, text)| parse_ip_token(text))
        .collect();
    if known.is_empty() {
        return;
    }
    event.addresses.retain(|(role, text)| {
        *role != Role::Unknown || parse_ip_token(text).is_none_or(|ip| !known.contains(&ip))
    });
}
