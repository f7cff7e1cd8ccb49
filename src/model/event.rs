//! Types that cross stage boundaries: the raw Kafka message taken out of rdkafka at the border,
//! the parsed event, and the IP observations extracted from it.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Where a message came from; carried through the pipeline so the sink can acknowledge it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// Input topic.
    pub topic: Arc<str>,
    /// Partition within the topic.
    pub partition: i32,
    /// Offset of the message.
    pub offset: i64,
}

/// One Kafka message, owned, with nothing of rdkafka left in it.
#[derive(Debug, Clone)]
pub struct RawEvent {
    /// Message value (empty when the message had none).
    pub payload: Bytes,
    /// Message key, if any.
    pub key: Option<Bytes>,
    /// Topic, partition and offset.
    pub origin: Origin,
    /// Message timestamp in milliseconds since the epoch, when the broker gave one.
    pub timestamp_ms: Option<i64>,
}

/// The part an address played in the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Initiator of the connection, before NAT.
    Source,
    /// Target of the connection, before NAT.
    Destination,
    /// Client of a proxied request (the connection peer of a proxy).
    Client,
    /// A translated (NAT) address.
    Nat,
    /// An X-Forwarded-For style original client.
    Forwarded,
    /// Found in the event, role not known (e.g. ECS `related.ip`).
    Unknown,
}

impl Role {
    /// Every role, for pre-registering metric children.
    pub const ALL: [Role; 6] = [
        Role::Source,
        Role::Destination,
        Role::Client,
        Role::Nat,
        Role::Forwarded,
        Role::Unknown,
    ];

    /// Bounded label for metrics and records.
    pub fn label(self) -> &'static str {
        match self {
            Role::Source => "source",
            Role::Destination => "destination",
            Role::Client => "client",
            Role::Nat => "nat",
            Role::Forwarded => "forwarded",
            Role::Unknown => "unknown",
        }
    }

    /// Parses a label as used in configuration.
    pub fn from_label(label: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.label() == label)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A parsed log event. Text borrows from the input line where it can.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event<'a> {
    /// Name of the format that parsed it (`ecs_json`, `json`, `kv`, …).
    pub format: &'static str,
    /// Device vendor, where the format carries it.
    pub vendor: Option<Cow<'a, str>>,
    /// Device product.
    pub product: Option<Cow<'a, str>>,
    /// What the device did (`allow`, `deny`, …).
    pub action: Option<Cow<'a, str>>,
    /// Rule, policy or threat name.
    pub rule: Option<Cow<'a, str>>,
    /// The vendor's threat or signature name when the event is a threat or IPS detection
    /// (Suricata alert, PAN-OS THREAT, SRX RT_IDP, …), not plain traffic. It is evidence.
    pub threat: Option<Cow<'a, str>>,
    /// Event time as the device wrote it.
    pub timestamp: Option<Cow<'a, str>>,
    /// The reporting device (syslog HOSTNAME, `origin`, `dvc`, `fw=`): never a traffic endpoint,
    /// so it is not among `addresses` and never enriched.
    pub observer: Option<Cow<'a, str>>,
    /// Address tokens as written, with their role; `extract` validates and canonicalises them.
    pub addresses: Vec<(Role, Cow<'a, str>)>,
    /// Source port as written (`spt`, `srcport`, `source.port`, …); read into a number only
    /// when a record is built.
    pub src_port: Option<Cow<'a, str>>,
    /// Destination port as written.
    pub dst_port: Option<Cow<'a, str>>,
    /// Transport protocol as written (`tcp`, `6`, `TCP`, …).
    pub protocol: Option<Cow<'a, str>>,
    /// Direction as written (`inbound`, `outgoing`, CEF `deviceDirection` `0`/`1`, …).
    pub direction: Option<Cow<'a, str>>,
}

/// One address seen in an event, valid and canonical.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpObservation {
    /// The address (IPv4-mapped IPv6 already turned into IPv4).
    pub ip: IpAddr,
    /// What it did in the event.
    pub role: Role,
}

/// Words in a device's action that mean the traffic was stopped (`deny`, `drop`, `reset-both`,
/// `RT_FLOW_SESSION_DENY`, `blocked`, …), matched case-insensitively anywhere in the action.
const DENIED: [&str; 6] = ["deny", "denied", "drop", "block", "reject", "reset"];

/// Whether the device's action stopped the traffic.
pub(crate) fn action_denied(action: &str) -> bool {
    let action = action.to_ascii_lowercase();
    DENIED.iter().any(|word| action.contains(word)) || action == "discard"
}
