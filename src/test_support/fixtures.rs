//! The format fixture files in `tests/fixtures/formats/`: one case per `line:`, read by the
//! table tests (`tests/formats.rs`) and the format benches (`benches/formats.rs`).
//!
//! Case syntax (a case starts at `line:`; `//` starts a comment; `<TAB>` is a tab):
//! ```text
//! line: <166>Mar 01 2024 12:00:00 asa01 : %ASA-4-106023: Deny tcp src outside:203.0.113.7/51544 …
//! expect: source=203.0.113.7 destination=192.0.2.10      (or `none`, or `directive`)
//! observer: asa01        vendor: …   product: …   action: …   rule: …   (each optional)
//! src_port: 51544   dst_port: 443   protocol: tcp   direction: inbound   (each optional, as written)
//! format: cisco_asa      (optional; defaults to the file name)
//! error: malformed       (instead of expect: the error kind)
//! fallback: paloalto     (the format rejected the line and `ip_scan` read it; `format: ip_scan`)
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One fixture case: a line and what parsing it must give.
#[derive(Debug, Default, Clone)]
pub struct FixtureCase {
    /// The file's name without `.txt`; its lines share one stream.
    pub file: String,
    /// Line number of `line:` in the file (from 1).
    pub at: usize,
    /// The input line, `<TAB>` replaced by a tab.
    pub line: String,
    /// The expected format (`format:`, else the file name).
    pub format: String,
    /// One `expect:` per event (`role=ip …`, `none` or `directive`).
    pub expect: Vec<String>,
    /// The expected error kind (`error:`).
    pub error: Option<String>,
    /// `observer`, `vendor`, `product`, `action` and `rule` expectations (and `src_port`,
    /// `dst_port`, `protocol`, `direction`).
    pub context: BTreeMap<String, String>,
    /// i12-fallback: the format that claimed the line and rejected it (`fallback:`).
    pub fallback: Option<String>,
}

impl FixtureCase {
    /// An event line: neither an expected error nor a header directive.
    pub fn is_event(&self) -> bool {
        self.error.is_none() && !self.expect.iter().any(|e| e == "directive")
    }
}

/// `tests/fixtures/formats` of this package.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/formats")
}

/// Every case of the `*.txt` files in `dir`, file by file in name order; with `only`, just the
/// files whose name contains it. Panics, naming file and line, on a line it cannot read.
pub fn load_cases(dir: &Path, only: Option<&str>) -> Vec<FixtureCase> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("fixtures directory")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for path in files {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        if only.is_some_and(|f| !stem.contains(f)) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut current: Option<FixtureCase> = None;
        for (n, raw) in text.lines().enumerate() {
            if raw.trim().is_empty() || raw.starts_with("//") {
                continue;
            }
            let (key, value) = raw
                .split_once(": ")
                .or_else(|| raw.strip_suffix(':').map(|k| (k, "")))
                .unwrap_or_else(|| panic!("{}:{}: expected `key: value`", path.display(), n + 1));
            if key == "line" {
                cases.extend(current.take());
                current = Some(FixtureCase {
                    file: stem.clone(),
                    at: n + 1,
                    line: value.replace("<TAB>", "\t"),
                    format: stem.clone(),
                    ..FixtureCase::default()
                });
                continue;
            }
            let case = current.as_mut().unwrap_or_else(|| {
                panic!("{}:{}: `{key}` before any `line:`", path.display(), n + 1)
            });
            match key {
                "expect" => case.expect.push(value.to_owned()),
                "error" => case.error = Some(value.to_owned()),
                "format" => case.format = value.to_owned(),
                "fallback" => case.fallback = Some(value.to_owned()),
                "observer" | "vendor" | "product" | "action" | "rule" => {
                    case.context.insert(key.to_owned(), value.to_owned());
                }
                // d-siem: the first event's connection fields, as written.
                "src_port" | "dst_port" | "protocol" | "direction" => {
                    case.context.insert(key.to_owned(), value.to_owned());
                }
                other => panic!("{}:{}: unknown key {other:?}", path.display(), n + 1),
            }
        }
        cases.extend(current);
    }
    cases
}
