//! Zscaler ZIA NSS feeds: `key=value` text (`zscaler_kv`) and JSON (`zscaler`), reference §3.3.
//!
//! * In: web, firewall and DNS feeds. Text feeds are tab-separated `key=value` items whose
//!   values may hold spaces (`datetime=Fri Mar 01 12:00:00 2024<TAB>…`), or, without a tab,
//!   space-separated pairs with optional quotes. JSON is `{"sourcetype":"zscalernss-…",
//!   "event":{…}}` or the flat event object.
//! * Detect (text): one scan over the `ip=` occurrences whose key starts after a tab, a space
//!   or the line start: `cintip`, or `cip` with `sip`, or `csip` with `cdip`. (A bare search
//!   would match `srcip=`.) JSON: `sourcetype` starting `zscalernss-`, or those key sets at the
//!   top level or under `event`.
//! * Roles: web/DNS `cintip` source (the internal client), `cip` nat (the egress/public
//!   address the cloud saw; records without `cintip` thus have no pre-NAT source), `sip`
//!   destination. Firewall `csip` source, `cdip` destination, `ssip` nat (Zscaler's source
//!   NAT), `sdip` nat when it differs from `cdip` (a destination NAT) and nothing when equal,
//!   `tsip` nat (the tunnel source is the customer's egress address, a translated view of the
//!   client, not the device that logged). Placeholders `None`, `NA`, `N/A`, `0.0.0.0`, `::`,
//!   `-`, empty are skipped.
//! * Context: vendor Zscaler, product ZIA, action `action`, rule `rulelabel` (else
//!   `urlfilterrulelabel`, `ruletype`), timestamp `datetime` (else `time`, `epochtime`).
//! * A record without any of the address keys is malformed.

use std::borrow::Cow;

use crate::model::{Event, Role};
use crate::stages::parse::fields::Needle;
use crate::stages::parse::fields::{delimited_pairs, present, KvPairs};
use crate::stages::parse::json::JsonRef;
use crate::stages::parse::{JsonFormat, Line, LogFormat, ParseError};

static IP: Needle = Needle::new(b"ip=");

const KV: &str = "zscaler_kv";
const JSON: &str = "zscaler";
const NO_ADDRESS: [&str; 6] = ["None", "NA", "N/A", "0.0.0.0", "::", "-"];

/// Address keys seen by `detect`, as bits.
const CINTIP: u8 = 1;
const CIP: u8 = 2;
const SIP: u8 = 4;
const CSIP: u8 = 8;
const CDIP: u8 = 16;

fn key_bit(key: &str) -> u8 {
    match key {
        "cintip" => CINTIP,
        "cip" => CIP,
        "sip" => SIP,
        "csip" => CSIP,
        "cdip" => CDIP,
        _ => 0,
    }
}

fn is_zscaler_key_set(bits: u8) -> bool {
    bits & CINTIP != 0 || bits & (CIP | SIP) == CIP | SIP || bits & (CSIP | CDIP) == CSIP | CDIP
}

/// Collects one record's fields into an event; `finish` applies the cross-field rules.
#[derive(Default)]
struct Record<'a> {
    event: Event<'a>,
    cdip: Option<Cow<'a, str>>,
    sdip: Option<Cow<'a, str>>,
    rule: [Option<Cow<'a, str>>; 3],
    time: [Option<Cow<'a, str>>; 3],
    has_address_key: bool,
}

impl<'a> Record<'a> {
    fn new(format: &'static str) -> Self {
        let mut record = Record::default();
        record.event.format = format;
        record.event.vendor = Some(Cow::Borrowed("Zscaler"));
        record.event.product = Some(Cow::Borrowed("ZIA"));
        record
    }

    fn field(&mut self, key: &str, value: Cow<'a, str>) {
        let slot = match key {
            "cintip" | "csip" => return self.address(Role::Source, value),
            "sip" | "cdip" => {
                if key == "cdip" {
                    self.cdip = Some(value.clone());
                }
                return self.address(Role::Destination, value);
            }
            "cip" | "ssip" | "tsip" => return self.address(Role::Nat, value),
            "sdip" => {
                // Compared with `cdip` once the whole record is read.
                self.has_address_key = true;
                &mut self.sdip
            }
            "action" => &mut self.event.action,
            "rulelabel" => &mut self.rule[0],
            "urlfilterrulelabel" => &mut self.rule[1],
            "ruletype" => &mut self.rule[2],
            "datetime" => &mut self.time[0],
            "time" => &mut self.time[1],
            "epochtime" => &mut self.time[2],
            _ => return,
        };
        if !value.trim().is_empty() {
            *slot = Some(value);
        }
    }

    fn address(&mut self, role: Role, value: Cow<'a, str>) {
        self.has_address_key = true;
        if present(&value, &NO_ADDRESS).is_some() {
            self.event.addresses.push((role, value));
        }
    }

    fn finish(mut self, format: &'static str) -> Result<Event<'a>, ParseError> {
        if !self.has_address_key {
            return Err(ParseError::malformed(
                format,
                "no cintip/cip/sip or csip/cdip/sdip address key",
            ));
        }
        if let Some(sdip) = self.sdip.take() {
            let differs = self.cdip.as_deref().map(str::trim) != Some(sdip.trim());
            if differs && present(&sdip, &NO_ADDRESS).is_some() {
                self.event.addresses.push((Role::Nat, sdip));
            }
        }
        let [a, b, c] = self.rule;
        self.event.rule = a.or(b).or(c);
        let [a, b, c] = self.time;
        self.event.timestamp = a.or(b).or(c);
        Ok(self.event)
    }
}

/// Format `zscaler_kv`.
pub(crate) struct ZscalerKv;

impl LogFormat for ZscalerKv {
    fn name(&self) -> &'static str {
        KV
    }

    fn detect(&self, line: &Line<'_>) -> bool {
        let body = line.body;
        let bytes = body.as_bytes();
        let mut bits = 0;
        for at in IP.find_iter(bytes) {
            // Our keys are at most 6 bytes long: look back no further (linear, not quadratic,
            // on a line of `ip=ip=ip=…`).
            let from = at.saturating_sub(8);
            let start = match bytes[from..at]
                .iter()
                .rposition(|&b| b == b'\t' || b == b' ')
            {
                Some(i) => from + i + 1,
                None if from == 0 => 0,
                None => continue,
            };
            bits |= key_bit(&body[start..at + 2]);
            if is_zscaler_key_set(bits) {
                return true;
            }
        }
        false
    }

    fn parse<'a>(&self, line: &Line<'a>) -> Result<Event<'a>, ParseError> {
        let mut record = Record::new(KV);
        let body = line.body;
        if memchr::memchr(b'\t', body.as_bytes()).is_some() {
            for (key, value) in delimited_pairs(body, b'\t') {
                record.field(key, Cow::Borrowed(value.trim()));
            }
        } else {
            for (key, value) in KvPairs::new(body) {
                record.field(key, Cow::Borrowed(value));
            }
        }
        record.finish(KV)
    }
}

/// Format `zscaler`.
pub(crate) struct ZscalerJson;

/// The event object: `event` under a `sourcetype` wrapper, or the document itself.
fn event_object<'d, 'a>(doc: JsonRef<'d, 'a>) -> JsonRef<'d, 'a> {
    doc.member("event").filter(|e| e.is_object()).unwrap_or(doc)
}

fn has_zscaler_keys(object: JsonRef<'_, '_>) -> bool {
    let mut bits = 0;
    for (key, _) in object.members() {
        for name in ["cintip", "cip", "sip", "csip", "cdip"] {
            if key.eq_str(name) {
                bits |= key_bit(name);
            }
        }
    }
    is_zscaler_key_set(bits)
}

impl JsonFormat for ZscalerJson {
    fn name(&self) -> &'static str {
        JSON
    }

    fn detect(&self, doc: JsonRef<'_, '_>) -> bool {
        if let Some(sourcetype) = doc.member("sourcetype").and_then(|s| s.str()) {
            if sourcetype.starts_with("zscalernss-") {
                return true;
            }
        }
        has_zscaler_keys(event_object(doc))
    }

    fn parse<'a>(&self, doc: JsonRef<'_, 'a>) -> Result<Event<'a>, ParseError> {
        let mut record = Record::new(JSON);
        for (key, value) in event_object(doc).members() {
            let Some(text) = value.text() else { continue };
            // Keys are plain ASCII names; an escaped key cannot be one of ours.
            let key = key.value();
            record.field(&key, text);
        }
        record.finish(JSON)
    }
}
