//! OCSF events (Network Activity 4001, HTTP Activity 4002, DNS Activity 4003, and any other
//! class with endpoints), reference §4.5.
//!
//! * Detection: a top-level `class_uid` with `metadata`, `src_endpoint` or `dst_endpoint`.
//! * Roles: `src_endpoint.ip` source, `dst_endpoint.ip` destination. The first of
//!   `src_endpoint.intermediate_ips` (the X-Forwarded-For chain) and of
//!   `http_request.x_forwarded_for` → forwarded.
//! * Observer: `device.ip`, the reporting device. `proxy_endpoint.ip` (older schemas: `proxy.ip`)
//!   is the proxy that carried the connection — infrastructure between the endpoints, most often
//!   the very product that wrote the event — so it is the observer when there is no `device.ip`,
//!   and never an address to enrich. (Schema versions name these fields differently; both are
//!   read.)
//! * Context: vendor/product from `metadata.product.vendor_name`/`name`; action = `action`
//!   (else `disposition`); rule = `firewall_rule.name` (else `policy.name`); timestamp = `time`.
//! * Classes without endpoints (file, process …) give an event with no addresses; a Network
//!   Activity-category event (`class_uid` 4xxx) without either endpoint address is malformed.

use std::borrow::Cow;

use crate::model::{Event, Role};
use crate::stages::parse::json::JsonRef;
use crate::stages::parse::{JsonFormat, ParseError};

const NAME: &str = "ocsf";

/// Format `ocsf`.
pub(crate) struct Ocsf;

fn string_at<'a>(doc: JsonRef<'_, 'a>, object: &str, key: &str) -> Option<Cow<'a, str>> {
    doc.member(object)
        .and_then(|o| o.member(key))
        .and_then(|v| v.str())
}

/// The first string of an array (or the string itself).
fn first_item<'a>(value: Option<JsonRef<'_, 'a>>) -> Option<Cow<'a, str>> {
    let value = value?;
    value
        .str()
        .or_else(|| value.items().find_map(|item| item.str()))
}

impl JsonFormat for Ocsf {
    fn name(&self) -> &'static str {
        NAME
    }

    fn detect(&self, doc: JsonRef<'_, '_>) -> bool {
        doc.member("class_uid").is_some()
            && (doc.member("metadata").is_some()
                || doc.member("src_endpoint").is_some()
                || doc.member("dst_endpoint").is_some())
    }

    fn parse<'a>(&self, doc: JsonRef<'_, 'a>) -> Result<Event<'a>, ParseError> {
        let class = doc
            .member("class_uid")
            .and_then(|c| c.text())
            .ok_or_else(|| ParseError::malformed(NAME, "no class_uid"))?;
        let product = doc.member("metadata").and_then(|m| m.member("product"));
        let mut event = Event {
            format: NAME,
            vendor: product
                .and_then(|p| p.member("vendor_name"))
                .and_then(|v| v.str()),
            product: product.and_then(|p| p.member("name")).and_then(|v| v.str()),
            action: doc
                .member("action")
                .or_else(|| doc.member("disposition"))
                .and_then(|a| a.str()),
            rule: string_at(doc, "firewall_rule", "name")
                .or_else(|| string_at(doc, "policy", "name")),
            timestamp: doc.member("time").and_then(|t| t.text()),
            observer: string_at(doc, "device", "ip")
                .or_else(|| string_at(doc, "proxy_endpoint", "ip"))
                .or_else(|| string_at(doc, "proxy", "ip")),
            ..Event::default()
        };
        let source_endpoint = doc.member("src_endpoint");
        if let Some(source) = source_endpoint
            .and_then(|e| e.member("ip"))
            .and_then(|v| v.str())
        {
            event.addresses.push((Role::Source, source));
        }
        if let Some(destination) = string_at(doc, "dst_endpoint", "ip") {
            event.addresses.push((Role::Destination, destination));
        }
        let has_endpoint = !event.addresses.is_empty();
        // d-siem: the endpoints' ports and the connection's protocol and direction.
        event.src_port = source_endpoint
            .and_then(|e| e.member("port"))
            .and_then(|v| v.text());
        event.dst_port = doc
            .member("dst_endpoint")
            .and_then(|e| e.member("port"))
            .and_then(|v| v.text());
        let connection = doc.member("connection_info");
        event.protocol = connection
            .and_then(|c| {
                c.member("protocol_name")
                    .or_else(|| c.member("protocol_num"))
            })
            .and_then(|v| v.text());
        // OCSF direction_id: 1 Inbound, 2 Outbound, 3 Lateral (inside the network).
        event.direction = connection
            .and_then(|c| c.member("direction_id"))
            .and_then(|v| v.text())
            .and_then(|id| match &*id {
                "1" => Some(Cow::Borrowed("inbound")),
                "2" => Some(Cow::Borrowed("outbound")),
                "3" => Some(Cow::Borrowed("internal")),
                _ => None,
            });
        let forwarded = first_item(source_endpoint.and_then(|e| e.member("intermediate_ips")))
            .or_else(|| {
                first_item(
                    doc.member("http_request")
                        .and_then(|r| r.member("x_forwarded_for")),
                )
            });
        if let Some(forwarded) = forwarded {
            event.addresses.push((Role::Forwarded, forwarded));
        }
        // Network Activity category (4): these classes describe a connection.
        if !has_endpoint && class.len() == 4 && class.starts_with('4') {
            return Err(ParseError::malformed(
                NAME,
                format!("class_uid {class} without src_endpoint.ip or dst_endpoint.ip"),
            ));
        }
        Ok(event)
    }
}
