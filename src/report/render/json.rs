//! The report as JSON: `{"schema":"threatsift.report/1", ...the Report's fields...}`.
//!
//! Contract: pretty-printed (two-space indent), one trailing newline, fields in the order the
//! [`Report`] struct declares them, so the same report gives the same bytes. Values are not
//! capped or flattened: JSON is the lossless form, and serde_json's string escaping is the
//! escaper. On top of it `<`, `>`, `&`, U+2028 and U+2029 are written as `\u` escapes, so the
//! document stays inert when pasted into HTML or a `<script>` block; it parses to the same values.

use serde::Serialize;

use crate::report::model::Report;

/// Schema identifier of the JSON report.
pub(crate) const REPORT_SCHEMA: &str = "threatsift.report/1";

#[derive(Serialize)]
struct Tagged<'a> {
    schema: &'static str,
    #[serde(flatten)]
    report: &'a Report,
}

/// Renders the report as JSON.
pub(crate) fn json(report: &Report) -> String {
    let tagged = Tagged {
        schema: REPORT_SCHEMA,
        report,
    };
    // The report holds only strings, numbers, booleans, lists and structs: serialising it
    // cannot fail. Should that ever change, the error is still reported as valid JSON.
    let text = serde_json::to_string_pretty(&tagged).unwrap_or_else(|error| {
        let message = serde_json::Value::String(error.to_string());
        format!("{{\n  \"schema\": \"{REPORT_SCHEMA}\",\n  \"error\": {message}\n}}")
    });
    let mut out = escape_html_sensitive(&text);
    out.push('\n');
    out
}

/// `<`, `>` and `&` can only occur inside JSON strings, where `\u003c` means the same.
fn escape_html_sensitive(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            ch => out.push(ch),
        }
    }
    out
}
