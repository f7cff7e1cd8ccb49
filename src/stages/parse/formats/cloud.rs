//! Cloud firewall JSON: GCP firewall-rules / VPC flow / Cloud NAT logs and Azure Firewall
//! diagnostics (reference §2.13). Each call sees ONE record: the registry has already split
//! Event Hub `{"records":[…]}` batches and unwrapped Pub/Sub envelopes.
//!
//! * GCP (`gcp_firewall`): a Cloud Logging LogEntry with `jsonPayload.connection`, or a
//!   `logName` ending in `%2Ffirewall` / `%2Fvpc_flows`. `connection.src_ip` source,
//!   `connection.dest_ip` destination (the packet's source, for INGRESS and EGRESS rules alike),
//!   Cloud NAT's `connection.nat_ip` nat. Action = `jsonPayload.disposition`, rule =
//!   `jsonPayload.rule_details.reference`, timestamp = `timestamp`.
//! * Azure (`azure_firewall`): `category` (or a Log Analytics row's `Type`) starting with
//!   `AzureFirewall` or `AZFW`. Resource-specific records: `properties.SourceIp` source,
//!   `properties.DestinationIp` destination, `properties.TranslatedIp` nat (a Log Analytics row
//!   has the same keys at the top). Legacy records: free text in `properties.msg`:
//!   `TCP request from IP:port to IP:port. Action: Allow. … Rule: r1` — the address after
//!   `from` is the source, after `to` the destination, after `was DNAT'ed to` nat; ICMP has no
//!   ports; an application rule's FQDN destination is not an address and is skipped; DNS proxy
//!   `DNS Request: IP:port - …` gives the client as source. Other messages carry no traffic.
//!   Action = `Action`, rule = `Rule` (else the threat/signature description), timestamp =
//!   `time`/`TimeGenerated`, observer = `resourceId` (the firewall).

use std::borrow::Cow;

use crate::model::{Event, Role};
use crate::stages::extract::parse_ip_token;
use crate::stages::parse::json::JsonRef;
use crate::stages::parse::{JsonFormat, ParseError};

const GCP: &str = "gcp_firewall";
const AZURE: &str = "azure_firewall";

/// Format `gcp_firewall`.
pub(crate) struct GcpFirewall;

/// Format `azure_firewall`.
pub(crate) struct AzureFirewall;

/// A string value that is not a "no address" placeholder.
fn address<'a>(value: Option<JsonRef<'_, 'a>>) -> Option<Cow<'a, str>> {
    value
        .and_then(|v| v.str())
        .filter(|s| !matches!(s.trim(), "" | "-" | "0.0.0.0" | "::"))
}

fn is_gcp_log_name(doc: JsonRef<'_, '_>) -> bool {
    doc.member("logName")
        .and_then(|l| l.str())
        .is_some_and(|l| l.ends_with("%2Ffirewall") || l.ends_with("%2Fvpc_flows"))
}

impl JsonFormat for GcpFirewall {
    fn name(&self) -> &'static str {
        GCP
    }

    fn detect(&self, doc: JsonRef<'_, '_>) -> bool {
        doc.member("jsonPayload")
            .is_some_and(|p| p.member("connection").is_some())
            || is_gcp_log_name(doc)
    }

    fn parse<'a>(&self, doc: JsonRef<'_, 'a>) -> Result<Event<'a>, ParseError> {
        let payload = doc.member("jsonPayload");
        let log_name = doc.member("logName").and_then(|l| l.str());
        let product = match log_name.as_deref() {
            Some(name) if name.ends_with("%2Fvpc_flows") => "VPC Flow Logs",
            Some(name) if name.contains("%2Fnat") => "Cloud NAT",
            _ => "Cloud Firewall",
        };
        let mut event = Event {
            format: GCP,
            vendor: Some(Cow::Borrowed("Google Cloud")),
            product: Some(Cow::Borrowed(product)),
            action: payload
                .and_then(|p| p.member("disposition"))
                .and_then(|d| d.str()),
            rule: payload
                .and_then(|p| p.get("rule_details.reference"))
                .and_then(|r| r.str()),
            timestamp: doc.member("timestamp").and_then(|t| t.str()),
            ..Event::default()
        };
        let connection = payload.and_then(|p| p.member("connection"));
        let field = |key: &str| address(connection.and_then(|c| c.member(key)));
        let (source, destination) = (field("src_ip"), field("dest_ip"));
        if source.is_none() && destination.is_none() {
            return Err(ParseError::malformed(
                GCP,
                "no jsonPayload.connection.src_ip or dest_ip",
            ));
        }
        let nat = field("nat_ip");
        // d-siem: ports, IANA protocol number, and the rule's direction (INGRESS/EGRESS).
        let text = |key: &str| {
            connection
                .and_then(|c| c.member(key))
                .and_then(|v| v.text())
        };
        event.src_port = text("src_port");
        event.dst_port = text("dest_port");
        event.protocol = text("protocol");
        event.direction = payload
            .and_then(|p| p.get("rule_details.direction"))
            .and_then(|d| d.str());
        for (role, value) in [
            (Role::Source, source),
            (Role::Destination, destination),
            (Role::Nat, nat),
        ] {
            if let Some(value) = value {
                event.addresses.push((role, value));
            }
        }
        Ok(event)
    }
}

/// What a legacy `properties.msg` says, as slices of it.
#[derive(Debug, Default, PartialEq, Eq)]
struct Message<'s> {
    source: Option<&'s str>,
    destination: Option<&'s str>,
    nat: Option<&'s str>,
    action: Option<&'s str>,
    rule: Option<&'s str>,
}

/// The token at the start of `text`, up to a space, without a sentence-ending period.
fn token(text: &str) -> &str {
    let end = text.find(' ').unwrap_or(text.len());
    text[..end].trim_end_matches('.')
}

/// The text after `label` up to the next `. ` (or the end).
fn labelled<'s>(text: &'s str, label: &str) -> Option<&'s str> {
    let start = text.find(label)? + label.len();
    let rest = &text[start..];
    let end = rest.find(". ").unwrap_or(rest.len());
    Some(rest[..end].trim_end_matches('.')).filter(|v| !v.is_empty())
}

/// An address token (`IP`, `IP:port`); host names (application-rule FQDNs) are dropped.
fn ip_token(text: &str) -> Option<&str> {
    Some(text).filter(|t| parse_ip_token(t).is_some())
}

fn parse_message(msg: &str) -> Message<'_> {
    let mut parts = Message::default();
    if let Some(rest) = msg.strip_prefix("DNS Request: ") {
        parts.source = ip_token(token(rest));
        return parts;
    }
    let Some(at) = msg.find("request from ") else {
        return parts;
    };
    let rest = &msg[at + "request from ".len()..];
    let source = token(rest);
    parts.source = ip_token(source);
    if let Some(after) = rest[source.len()..].trim_start().strip_prefix("to ") {
        parts.destination = ip_token(token(after));
    }
    if let Some(at) = msg.find("was DNAT'ed to ") {
        parts.nat = ip_token(token(&msg[at + "was DNAT'ed to ".len()..]));
    }
    parts.action = labelled(msg, "Action: ");
    parts.rule = labelled(msg, " Rule: ").or_else(|| labelled(msg, "ThreatIntel: "));
    parts
}

/// Pushes what a legacy message says, borrowing from the line when the JSON string was.
fn fill_from_message<'a, 's>(
    event: &mut Event<'a>,
    parts: Message<'s>,
    lift: impl Fn(&'s str) -> Cow<'a, str>,
) {
    for (role, value) in [
        (Role::Source, parts.source),
        (Role::Destination, parts.destination),
        (Role::Nat, parts.nat),
    ] {
        if let Some(value) = value {
            event.addresses.push((role, lift(value)));
        }
    }
    event.action = parts.action.map(&lift);
    event.rule = parts.rule.map(&lift);
}

impl JsonFormat for AzureFirewall {
    fn name(&self) -> &'static str {
        AZURE
    }

    fn detect(&self, doc: JsonRef<'_, '_>) -> bool {
        doc.member("category")
            .or_else(|| doc.member("Type"))
            .and_then(|c| c.str())
            .is_some_and(|c| c.starts_with("AzureFirewall") || c.starts_with("AZFW"))
    }

    fn parse<'a>(&self, doc: JsonRef<'_, 'a>) -> Result<Event<'a>, ParseError> {
        // Diagnostic settings nest the fields under `properties`; Log Analytics rows do not.
        let properties = doc
            .member("properties")
            .filter(|p| p.is_object())
            .unwrap_or(doc);
        let mut event = Event {
            format: AZURE,
            vendor: Some(Cow::Borrowed("Microsoft")),
            product: Some(Cow::Borrowed("Azure Firewall")),
            timestamp: doc
                .member("time")
                .or_else(|| doc.member("TimeGenerated"))
                .and_then(|t| t.str()),
            observer: doc
                .member("resourceId")
                .or_else(|| doc.member("_ResourceId"))
                .and_then(|r| r.str()),
            ..Event::default()
        };
        if let Some(msg) = properties.member("msg").and_then(|m| m.str()) {
            match msg {
                Cow::Borrowed(text) => {
                    fill_from_message(&mut event, parse_message(text), Cow::Borrowed)
                }
                Cow::Owned(text) => fill_from_message(&mut event, parse_message(&text), |s| {
                    Cow::Owned(s.to_owned())
                }),
            }
            return Ok(event);
        }
        if doc.member("records").is_some_and(|r| r.is_array()) {
            return Err(ParseError::malformed(
                AZURE,
                "a {\"records\":[…]} batch: the registry splits batches before formats",
            ));
        }
        // d-siem: structured rows' ports and transport.
        let text = |key: &str| properties.member(key).and_then(|v| v.text());
        event.src_port = text("SourcePort");
        event.dst_port = text("DestinationPort");
        event.protocol = text("Protocol");
        let source = address(properties.member("SourceIp"));
        if source.is_none() && properties.member("SourceIp").is_none() {
            return Err(ParseError::malformed(
                AZURE,
                "neither properties.msg nor properties.SourceIp",
            ));
        }
        for (role, key) in [
            (Role::Destination, "DestinationIp"),
            (Role::Nat, "TranslatedIp"),
        ] {
            if let Some(value) = address(properties.member(key)) {
                event.addresses.push((role, value));
            }
        }
        if let Some(source) = source {
            event.addresses.insert(0, (Role::Source, source));
        }
        let text = |key: &str| properties.member(key).and_then(|v| v.text());
        event.action = text("Action");
        event.rule = text("Rule")
            .filter(|r| !r.is_empty())
            .or_else(|| text("ThreatDescription"))
            .or_else(|| text("Description"));
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_messages() {
        let parts = parse_message(
            "TCP request from 192.0.2.10:51544 to 198.51.100.20:443. Action: Allow. Rule Collection: rc1. Rule: r1",
        );
        assert_eq!(
            parts,
            Message {
                source: Some("192.0.2.10:51544"),
                destination: Some("198.51.100.20:443"),
                nat: None,
                action: Some("Allow"),
                rule: Some("r1"),
            }
        );
        let parts = parse_message(
            "TCP request from 203.0.113.7:51544 to 198.51.100.1:3389 was DNAT'ed to 192.0.2.10:3389",
        );
        assert_eq!(parts.nat, Some("192.0.2.10:3389"));
        let parts =
            parse_message("ICMP Type=8 request from 192.0.2.10 to 198.51.100.20. Action: Deny.");
        assert_eq!(parts.destination, Some("198.51.100.20"));
        assert_eq!(parts.action, Some("Deny"));
        let parts = parse_message(
            "HTTPS request from 192.0.2.10:51544 to www.example.com:443. Action: Allow.",
        );
        assert_eq!(parts.destination, None);
        assert_eq!(parse_message("request from "), Message::default());
    }
}
