//! The parser entry points as the fuzz targets (`fuzz/fuzz_targets/`) call them, each with the
//! properties it must keep checked on every input: a violated property panics, which libFuzzer
//! reports as a crash just like a panic inside the parser. The stages are crate-private, so
//! the targets reach them through here.
//!
//! * [`whole_message`]: one Kafka message through the processor (gzip, UTF-8, line and
//!   envelope splitting, every format, extract, filter, dedup, score, record, DLQ budget).
//! * [`frame`]: decompression, the text check and line splitting.
//! * [`json_reader`]: the borrowed JSON document reader, against `serde_json`.
//! * [`field_readers`]: `key=value` pairs, delimited pairs, CSV fields and spaced fields.
//! * [`syslog_header`]: syslog header stripping.
//! * [`stream_lines`]: lines of one stream through one registry (header directives such as
//!   W3C `#Fields:` change how the lines after them are read).
//! * [`addresses`]: address tokens (`parse_ip_token`) and `enrich`'s argument parsing.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::Bytes;

use crate::intel::feeds::{FeedSpec, LocalFeeds};
use crate::model::{Origin, OutputKind, RawEvent};
use crate::settings::Settings;
use crate::stages::frame;
use crate::stages::parse::fields::{delimited_pairs, spaced_fields, CsvFields, KvPairs};
use crate::stages::parse::json::JsonDoc;
use crate::stages::parse::syslog::strip_headers;
use crate::stages::parse::{FormatRegistry, StreamId};
use crate::stages::process::Processor;
use crate::telemetry::Metrics;

/// Small limits, so short fuzz inputs reach them: at most 3 DLQ entries of a message's own,
/// lines of at most 512 bytes, gzip inflating to at most 64 KiB, 256 bytes of payload kept.
const MAX_ENTRIES: usize = 3;
const MAX_LINE: usize = 512;
const MAX_INFLATED: usize = 64 * 1024;
const MAX_KEPT: usize = 256;

/// Panics unless `part` lies inside `whole` (a reader returned a borrowed piece of its input).
fn assert_within(whole: &str, part: &str, what: &str) {
    let (start, end) = (
        whole.as_ptr() as usize,
        whole.as_ptr() as usize + whole.len(),
    );
    let (p, q) = (part.as_ptr() as usize, part.as_ptr() as usize + part.len());
    assert!(
        part.is_empty() || (start <= p && q <= end),
        "{what} {part:?} is not a piece of its input {whole:?}"
    );
}

fn processor() -> &'static Processor {
    static PROCESSOR: OnceLock<Processor> = OnceLock::new();
    PROCESSOR.get_or_init(|| {
        // Every address is listed, so every address that passes the filter makes a record.
        let feed =
            std::env::temp_dir().join(format!("threatsift-fuzz-feed-{}", std::process::id()));
        std::fs::write(&feed, "0.0.0.0/1\n128.0.0.0/1\n::/1\n8000::/1\n")
            .expect("write the fuzz feed");
        let settings = Settings::from_toml_overrides(&format!(
            "[parse]\nmax_line_bytes = {MAX_LINE}\nmax_decompressed_bytes = {MAX_INFLATED}\n\
             [dlq]\nmax_entries_per_message = {MAX_ENTRIES}\nmax_payload_bytes = {MAX_KEPT}\n"
        ))
        .expect("fuzz settings");
        let feeds = LocalFeeds::load(vec![FeedSpec {
            name: "everything".into(),
            path: feed,
        }])
        .expect("fuzz feed");
        let metrics = Arc::new(Metrics::new(&prometheus::Registry::new()).expect("metrics"));
        crate::topology::build_processor(&settings, Arc::new(feeds), metrics).expect("processor")
    })
}

/// One Kafka message through the processor. The first byte chooses whether the rest is sent
/// as it is or gzip'd (so the inflating path sees valid streams, not only broken ones) and
/// whether it has a key. Checks: at most `MAX_ENTRIES` + 1 DLQ entries, every output is JSON,
/// a record is keyed by its `ip`, a DLQ entry's size is bounded by what it may keep.
pub fn whole_message(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let payload = if selector & 1 == 1 {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(rest).expect("gzip in memory");
        gz.finish().expect("gzip in memory")
    } else {
        rest.to_vec()
    };
    let raw = RawEvent {
        payload: Bytes::from(payload),
        key: (selector & 2 == 2).then(|| Bytes::copy_from_slice(&rest[..rest.len().min(8)])),
        origin: Origin {
            topic: "fuzz".into(),
            partition: i32::from(selector >> 4),
            offset: 7,
        },
        timestamp_ms: (selector & 4 == 4).then_some(i64::from(selector) << 36),
    };
    let processed = processor().process_message(&raw, Instant::now());
    let mut entries = 0;
    for output in &processed.outputs {
        let json: serde_json::Value = serde_json::from_slice(&output.payload)
            .unwrap_or_else(|e| panic!("an output is not JSON ({e}): {output:?}"));
        match output.kind {
            OutputKind::Record(_) | OutputKind::State => {
                let ip = json["ip"].as_str().expect("a record has an ip");
                assert_eq!(
                    output.key.as_deref(),
                    Some(ip.as_bytes()),
                    "keyed by its ip"
                );
            }
            OutputKind::Tombstone => panic!("the processor makes no tombstones: {output:?}"),
            OutputKind::Dlq(reason) => {
                entries += 1;
                assert_eq!(json["reason"], reason);
                // What an entry keeps is cut at MAX_KEPT bytes; JSON escaping a control
                // character takes 6 bytes, base64 4 per 3; the rest is a few fields.
                assert!(
                    output.payload.len() <= 6 * MAX_KEPT + 2048,
                    "a DLQ entry of {} bytes: {json}",
                    output.payload.len()
                );
            }
            // The in-process path makes no sightings (s1-scaled).
            OutputKind::Sighting => panic!("a sighting from the in-process path: {json}"),
        }
    }
    assert!(
        entries <= MAX_ENTRIES + 1,
        "{entries} DLQ entries from one message (limit {MAX_ENTRIES} and a summary)"
    );
}

/// Decompression, the text check and line splitting: the inflated size stays within the
/// limit, text is never blank, the lines rebuild the text (less the `\r` before each `\n`).
pub fn frame(data: &[u8]) {
    let Ok(payload) = frame::decompress(data, MAX_INFLATED) else {
        return;
    };
    // The limit is on inflation; a plain payload passes as it is, whatever its size (its
    // lines are held to parse.max_line_bytes later).
    if data.starts_with(&[0x1f, 0x8b]) {
        assert!(payload.len() <= MAX_INFLATED, "inflated past the limit");
    } else {
        assert_eq!(
            &payload[..],
            data,
            "a payload that is not gzip passes unchanged"
        );
    }
    let Ok(text) = frame::text(&payload) else {
        return;
    };
    assert!(!text.trim().is_empty(), "blank text accepted");
    let (several, lines) = frame::events(text);
    let lines: Vec<&str> = lines.collect();
    let trimmed = text.trim_end_matches(['\n', '\r']);
    if several {
        assert_eq!(lines.len(), trimmed.split('\n').count());
        for line in &lines {
            assert!(!line.contains('\n'), "a line holds a line break");
            assert_within(text, line, "line");
        }
    } else {
        assert_eq!(lines, [trimmed], "one event is the whole text");
    }
}

/// Nesting depth of a `serde_json` value (a scalar is 0).
fn depth(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        serde_json::Value::Object(members) => 1 + members.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// The borrowed JSON reader: whatever `serde_json` accepts (at most 64 levels deep, the
/// reader's own limit) it accepts too; on an object it read, every leaf's text and every
/// string's unescaped value can be taken.
pub fn json_reader(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = JsonDoc::parse(text);
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
        if depth(&value) <= 64 {
            assert!(
                parsed.is_ok(),
                "serde_json reads {text:?} but the reader says {:?}",
                parsed.err()
            );
        }
    }
    let Ok(doc) = parsed else {
        return;
    };
    let root = doc.root();
    let mut leaves = 0usize;
    root.walk_leaves(&mut |path, leaf| {
        leaves += 1;
        let _ = leaf.text();
        if let Some(value) = leaf.str() {
            let _ = value.len();
        }
        let _ = root.get(path);
    });
    for (key, value) in root.members() {
        let _ = key.value();
        assert!(root.member(key.raw()).is_some() || key.raw().contains('\\'));
        let _ = value.items().count();
    }
}

/// The field readers on one line; the first byte picks the delimiter (any ASCII byte). Every
/// piece they return is a piece of the line; without quotes, CSV fields are a plain split.
pub fn field_readers(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let delimiter = selector & 0x7f;
    for (key, value) in KvPairs::new(text).chain(KvPairs::separated_by(text, delimiter)) {
        assert!(!key.is_empty(), "an empty key");
        assert_within(text, key, "key");
        assert_within(text, value, "value");
    }
    for (key, value) in delimited_pairs(text, delimiter) {
        assert_within(text, key, "key");
        assert_within(text, value, "value");
    }
    let fields: Vec<&str> = CsvFields::new(text, delimiter).collect();
    for field in &fields {
        assert_within(text, field, "CSV field");
    }
    if !text.contains('"') {
        let plain: Vec<&str> = text.split(char::from(delimiter)).collect();
        assert_eq!(fields, plain, "CSV without quotes is a plain split");
    }
    for field in spaced_fields(text) {
        assert_within(text, field, "spaced field");
    }
}

/// Syslog header stripping: the message and every header field are pieces of the line, and
/// the message is its end.
pub fn syslog_header(data: &[u8]) {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let (header, body) = strip_headers(line);
    assert_within(line, body, "message");
    assert!(line.ends_with(body), "the message is the end of the line");
    if let Some(h) = header {
        for part in [h.hostname, h.app, h.msgid, h.structured_data, h.origin_ip]
            .into_iter()
            .flatten()
        {
            assert_within(line, part, "header field");
        }
        let _ = h.observer();
    }
}

/// The lines of one stream through one registry, in order (header directives change how the
/// lines after them are read); every event's addresses go through extraction.
pub fn stream_lines(registry: &FormatRegistry, data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let stream = StreamId {
        topic: "fuzz",
        partition: 0,
        key: None,
    };
    let mut observations = Vec::new();
    for line in text.split('\n') {
        if let Ok(parsed) = registry.parse_line(line, stream) {
            for event in &parsed.events {
                observations.clear();
                crate::stages::extract::extract_ip_observations(event, &mut observations);
            }
        }
    }
}

/// Address tokens: any token may be refused but never panics; a token the standard parser
/// reads as an address reads as that address (the fast dotted-quad path agrees with it), and
/// an address written plainly reads back as itself (IPv4-mapped IPv6 as its IPv4).
pub fn addresses(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for token in text.split([' ', ',', '\n']) {
        let read = crate::stages::extract::parse_ip_token(token);
        let core = token.trim().trim_matches('"');
        if let Ok(ip) = core.parse::<std::net::IpAddr>() {
            if core.len() <= 64 {
                assert_eq!(read, Some(ip.to_canonical()), "{token:?}");
            }
        }
    }
    let args: Vec<String> = text.split('\n').map(str::to_owned).collect();
    let _ = crate::cli::enrich::parse_addresses(&args);
    let ip: std::net::IpAddr = match data.len() {
        n if n >= 16 => <[u8; 16]>::try_from(&data[..16]).unwrap().into(),
        n if n >= 4 => <[u8; 4]>::try_from(&data[..4]).unwrap().into(),
        _ => return,
    };
    let read = crate::stages::extract::parse_ip_token(&ip.to_string());
    assert_eq!(read, Some(ip.to_canonical()), "{ip} read back as {read:?}");
}

#[cfg(test)]
mod tests {
    //! The fuzz properties on every fixture line, so they run (and stay true) in the test
    //! suite too, not only under `scripts/fuzz.sh`; and each input a fuzz run ever found a
    //! crash with, kept as a regression case.
    use super::*;
    use crate::test_support::fixtures::{fixtures_dir, load_cases};

    #[test]
    fn every_fuzz_property_holds_on_every_fixture_line() {
        let cases = load_cases(&fixtures_dir(), None);
        assert!(cases.len() > 100, "the fixture lines were found");
        let registry = FormatRegistry::builtin(Default::default());
        for case in &cases {
            let line = case.line.as_bytes();
            for selector in [0u8, 1, 2, 7] {
                whole_message(&[&[selector][..], line].concat());
            }
            frame(line);
            json_reader(line);
            field_readers(&[&b","[..], line].concat());
            syslog_header(line);
            stream_lines(&registry, line);
            addresses(line);
        }
        let all: Vec<&str> = cases.iter().map(|c| c.line.as_str()).collect();
        stream_lines(&registry, all.join("\n").as_bytes());
        frame(all.join("\n").as_bytes());
    }

    #[test]
    fn a_message_of_many_bad_lines_keeps_to_its_dlq_budget() {
        // The property fails on a message with more bad lines than the budget if the budget
        // is not applied: 50 lines, 3 entries allowed.
        whole_message(&[&[0u8][..], "not an event\n".repeat(50).as_bytes()].concat());
        whole_message(&[&[1u8][..], "not an event\n".repeat(50).as_bytes()].concat());
    }
}
