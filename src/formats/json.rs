//! ECS JSON and generic JSON: the JSON reader of last resort.
//!
//! * ECS address fields with their roles (`source.ip` source, `destination.ip` and `server.ip`
//!   destination, `client.ip` client, `*.nat.ip` nat, `network.forwarded_ip` forwarded,
//!   `related.ip` unknown); `host.ip` and `observer.ip` are the reporting device (observer).
//! * Then the configured `parse.json_ip_fields`. A document with ECS addresses is `ecs_json`;
//!   anything else is `json` (an event, possibly without addresses).

use std::borrow::Cow;

use crate::model::{Event, Role};
use crate::pipeline::parse::json::JsonRef;

/// Name of documents with ECS address fields.
pub const ECS: &str = "ecs_json";
/// Name of other JSON documents.
pub const GENERIC: &str = "json";
/// Counted when a batch (`records`, `logEvents`) held no events.
pub const BATCH: &str = "json_batch";
/// Internal marker: the object was an envelope whose contents were already emitted.
pub const ENVELOPE: &str = "envelope";

/// ECS address fields and their roles.
const ECS_IP_FIELDS: [(&str, Role); 9] = [
    ("source.ip", Role::Source),
    ("destination.ip", Role::Destination),
    ("client.ip", Role::Client),
    ("server.ip", Role::Destination),
    ("source.nat.ip", Role::Nat),
    ("destination.nat.ip", Role::Nat),
    ("client.nat.ip", Role::Nat),
    ("network.forwarded_ip", Role::Forwarded),
    ("related.ip", Role::Unknown),
];

/// ECS fields plus configured paths.
pub struct GenericJson {
    extra_fields: Vec<(String, Role)>,
}

impl GenericJson {
    /// Reads ECS fields and `extra_fields` (dotted paths).
    pub fn new(extra_fields: Vec<(String, Role)>) -> Self {
        GenericJson { extra_fields }
    }

    /// Reads whatever addresses the document has; never fails.
    pub fn parse<'a>(&self, doc: JsonRef<'_, 'a>) -> Event<'a> {
        let mut event = Event {
            format: ECS,
            ..Event::default()
        };
        // Most documents are flat or nested under a few top-level keys: skip paths whose first
        // segment is absent without walking them.
        for (path, role) in ECS_IP_FIELDS {
            let head = path.split('.').next().unwrap_or(path);
            if doc.member(head).is_none() && doc.member(path).is_none() {
                continue;
            }
            doc.get_strings(path, |text| event.addresses.push((role, text)));
        }
        if event.addresses.is_empty() {
            event.format = GENERIC;
        }
        for (path, role) in &self.extra_fields {
            doc.get_strings(path, |text| event.addresses.push((*role, text)));
        }
        event.vendor = doc.get_text("observer.vendor");
        event.product = doc.get_text("observer.product");
        event.action = doc.get_text("event.action");
        event.rule = doc.get_text("rule.name");
        event.timestamp = doc.get_text("@timestamp");
        event.observer = first_string(doc, "observer.ip").or_else(|| first_string(doc, "host.ip"));
        event
    }
}

/// The first string at a path (a string, or the first string of an array).
pub fn first_string<'a>(doc: JsonRef<'_, 'a>, path: &str) -> Option<Cow<'a, str>> {
    let mut first = None;
    doc.get_strings(path, |text| {
        first.get_or_insert(text);
    });
    first
}
