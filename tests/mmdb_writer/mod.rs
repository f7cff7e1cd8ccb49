//! A minimal MaxMind DB writer for test fixtures (format: MaxMind DB File Format
//! Specification 2.0): a binary search tree with 24-bit records, 16 zero bytes, the data
//! section, then `\xAB\xCD\xEFMaxMind.com` and the metadata map. Networks must not overlap.
#![allow(dead_code)]

use ipnet::IpNet;
use serde_json::Value;

#[derive(Clone, Copy)]
enum Child {
    Empty,
    Node(usize),
    Data(usize),
}

/// A database of `ip_version` 4 or 6 holding `records` (CIDR → JSON value).
pub fn build(ip_version: u16, database_type: &str, records: &[(&str, Value)]) -> Vec<u8> {
    let mut nodes = vec![[Child::Empty; 2]];
    let mut data = Vec::new();
    for (cidr, record) in records {
        let net: IpNet = cidr.parse().expect("cidr");
        let bits = key_bits(net, ip_version);
        let offset = data.len();
        encode(record, &mut data);
        insert(&mut nodes, &bits, offset);
    }
    let node_count = nodes.len();
    let mut out = Vec::new();
    for node in &nodes {
        for child in node {
            let value = match *child {
                Child::Empty => node_count,
                Child::Node(index) => index,
                Child::Data(offset) => node_count + 16 + offset,
            };
            let value = u32::try_from(value).expect("fits");
            assert!(value < 1 << 24, "24-bit record overflow");
            out.extend_from_slice(&value.to_be_bytes()[1..]);
        }
    }
    out.extend_from_slice(&[0; 16]);
    out.extend_from_slice(&data);
    out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
    metadata(&mut out, ip_version, database_type, node_count);
    out
}

/// The network's bits, most significant first; IPv4 goes under `::/96` in an IPv6 tree.
fn key_bits(net: IpNet, ip_version: u16) -> Vec<bool> {
    let (value, width, len) = match net {
        IpNet::V4(v4) => (u128::from(u32::from(v4.network())), 32, v4.prefix_len()),
        IpNet::V6(v6) => {
            assert_eq!(ip_version, 6, "IPv6 network in an IPv4 database");
            (u128::from(v6.network()), 128, v6.prefix_len())
        }
    };
    let mut bits: Vec<bool> = (0..len)
        .map(|i| (value >> (width - 1 - u32::from(i))) & 1 == 1)
        .collect();
    if ip_version == 6 && width == 32 {
        let mut prefixed = vec![false; 96];
        prefixed.append(&mut bits);
        bits = prefixed;
    }
    assert!(!bits.is_empty(), "a /0 record is not supported");
    bits
}

fn insert(nodes: &mut Vec<[Child; 2]>, bits: &[bool], offset: usize) {
    let mut node = 0;
    let (last, path) = bits.split_last().expect("bits");
    for &bit in path {
        node = match nodes[node][usize::from(bit)] {
            Child::Node(next) => next,
            Child::Empty => {
                nodes.push([Child::Empty; 2]);
                let next = nodes.len() - 1;
                nodes[node][usize::from(bit)] = Child::Node(next);
                next
            }
            Child::Data(_) => panic!("overlapping networks"),
        };
    }
    nodes[node][usize::from(*last)] = Child::Data(offset);
}

const UTF8_STRING: u8 = 2;
const DOUBLE: u8 = 3;
const UINT16: u8 = 5;
const UINT32: u8 = 6;
const MAP: u8 = 7;
const UINT64: u8 = 9;
const ARRAY: u8 = 11;
const BOOLEAN: u8 = 14;

/// Control byte (plus extended type byte and size bytes).
fn control(out: &mut Vec<u8>, kind: u8, size: usize) {
    let type_bits = if kind <= 7 { kind << 5 } else { 0 };
    let (size_bits, extra): (u8, Vec<u8>) = if size < 29 {
        (u8::try_from(size).expect("small"), Vec::new())
    } else if size < 29 + 256 {
        (29, vec![u8::try_from(size - 29).expect("byte")])
    } else {
        let rest = u16::try_from(size - 285).expect("size");
        (30, rest.to_be_bytes().to_vec())
    };
    out.push(type_bits | size_bits);
    if kind > 7 {
        out.push(kind - 7);
    }
    out.extend_from_slice(&extra);
}

fn string(out: &mut Vec<u8>, text: &str) {
    control(out, UTF8_STRING, text.len());
    out.extend_from_slice(text.as_bytes());
}

fn unsigned(out: &mut Vec<u8>, kind: u8, value: u64) {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    control(out, kind, 8 - skip);
    out.extend_from_slice(&bytes[skip..]);
}

fn encode(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::String(text) => string(out, text),
        Value::Bool(flag) => control(out, BOOLEAN, usize::from(*flag)),
        Value::Number(number) => match (number.as_u64(), number.as_f64()) {
            (Some(n), _) if n <= u64::from(u32::MAX) => unsigned(out, UINT32, n),
            (Some(n), _) => unsigned(out, UINT64, n),
            (None, Some(f)) => {
                control(out, DOUBLE, 8);
                out.extend_from_slice(&f.to_be_bytes());
            }
            (None, None) => panic!("unsupported number {number}"),
        },
        Value::Array(items) => {
            control(out, ARRAY, items.len());
            for item in items {
                encode(item, out);
            }
        }
        Value::Object(map) => {
            control(out, MAP, map.len());
            for (key, item) in map {
                string(out, key);
                encode(item, out);
            }
        }
        Value::Null => panic!("MaxMind DB has no null"),
    }
}

fn metadata(out: &mut Vec<u8>, ip_version: u16, database_type: &str, node_count: usize) {
    control(out, MAP, 9);
    string(out, "binary_format_major_version");
    unsigned(out, UINT16, 2);
    string(out, "binary_format_minor_version");
    unsigned(out, UINT16, 0);
    string(out, "build_epoch");
    unsigned(out, UINT64, 1_767_225_600);
    string(out, "database_type");
    string(out, database_type);
    string(out, "description");
    control(out, MAP, 1);
    string(out, "en");
    string(out, "threatsift test fixture");
    string(out, "ip_version");
    unsigned(out, UINT16, u64::from(ip_version));
    string(out, "languages");
    control(out, ARRAY, 1);
    string(out, "en");
    string(out, "node_count");
    unsigned(out, UINT32, node_count as u64);
    string(out, "record_size");
    unsigned(out, UINT16, 24);
}
