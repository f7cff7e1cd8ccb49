//! Field splitters every text format shares. All borrow from the line; none allocates.

use std::sync::OnceLock;

use memchr::memmem::{FindIter, Finder};

/// A substring searcher built once. `memmem::find` builds one on every call, which cost more
/// than the search itself on short lines, and detection runs many tests on every line.
pub(crate) struct Needle {
    needle: &'static [u8],
    finder: OnceLock<Finder<'static>>,
}

impl Needle {
    /// A searcher for `needle`, for a `static`.
    pub(crate) const fn new(needle: &'static [u8]) -> Self {
        Needle {
            needle,
            finder: OnceLock::new(),
        }
    }

    fn finder(&self) -> &Finder<'static> {
        self.finder.get_or_init(|| Finder::new(self.needle))
    }

    /// Position of the first occurrence in `haystack`.
    pub(crate) fn find(&self, haystack: &[u8]) -> Option<usize> {
        self.finder().find(haystack)
    }

    /// Positions of every (non-overlapping) occurrence.
    pub(crate) fn find_iter<'h>(&'h self, haystack: &'h [u8]) -> FindIter<'h, 'h> {
        self.finder().find_iter(haystack)
    }
}

/// `key=value` pairs separated by spaces or tabs. A value is double- or single-quoted (quotes
/// removed, escapes left as written) or runs to the next space or tab. Keys are
/// `[A-Za-z0-9_.-]+` right before the `=`; text that is not a pair is skipped.
#[derive(Debug, Clone)]
pub(crate) struct KvPairs<'a> {
    rest: &'a str,
    /// Ends a bare value; `b' '` means a space or a tab.
    separator: u8,
}

impl<'a> KvPairs<'a> {
    /// Pairs in `text`, separated by spaces or tabs.
    pub(crate) fn new(text: &'a str) -> Self {
        KvPairs {
            rest: text,
            separator: b' ',
        }
    }

    /// Pairs separated by `separator` (FortiOS `set format csv` uses `,`).
    pub(crate) fn separated_by(text: &'a str, separator: u8) -> Self {
        KvPairs {
            rest: text,
            separator,
        }
    }
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

impl<'a> Iterator for KvPairs<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let eq = memchr::memchr(b'=', self.rest.as_bytes())?;
            let bytes = self.rest.as_bytes();
            let key_start = bytes[..eq]
                .iter()
                .rposition(|&b| !is_key_byte(b))
                .map_or(0, |i| i + 1);
            let key = &self.rest[key_start..eq];
            let after = &self.rest[eq + 1..];
            let (value, rest) = match after.as_bytes().first() {
                Some(&quote @ (b'"' | b'\'')) => {
                    let quoted = &after[1..];
                    let end = find_closing(quoted, quote).unwrap_or(quoted.len());
                    (&quoted[..end], quoted.get(end + 1..).unwrap_or(""))
                }
                _ => {
                    let end = if self.separator == b' ' {
                        memchr::memchr2(b' ', b'\t', after.as_bytes())
                    } else {
                        memchr::memchr(self.separator, after.as_bytes())
                    }
                    .unwrap_or(after.len());
                    (&after[..end], &after[end..])
                }
            };
            self.rest = rest;
            if !key.is_empty() {
                return Some((key, value));
            }
        }
    }
}

/// Index of the closing `quote` in `text`, skipping backslash escapes.
pub(crate) fn find_closing(text: &str, quote: u8) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\\' {
            i += 2;
        } else if b == quote {
            return Some(i);
        } else {
            i += 1;
        }
    }
    None
}

/// `key=value` items separated by one delimiter byte (LEEF, tab-separated feeds); the key runs
/// to the first `=` of each item, which has no quoting.
pub(crate) fn delimited_pairs(text: &str, delimiter: u8) -> impl Iterator<Item = (&str, &str)> {
    text.split(delimiter as char).filter_map(|item| {
        let (key, value) = item.split_once('=')?;
        let key = key.trim();
        (!key.is_empty()).then_some((key, value))
    })
}

/// Fields of a delimited record with RFC 4180 quoting: a field that starts with `"` runs to the
/// matching quote (`""` inside is an escaped quote, left doubled); the quotes are removed.
#[derive(Debug, Clone)]
pub(crate) struct CsvFields<'a> {
    rest: Option<&'a str>,
    delimiter: u8,
}

impl<'a> CsvFields<'a> {
    /// Fields of `text` split on `delimiter`.
    pub(crate) fn new(text: &'a str, delimiter: u8) -> Self {
        CsvFields {
            rest: Some(text),
            delimiter,
        }
    }
}

impl<'a> Iterator for CsvFields<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let text = self.rest?;
        let bytes = text.as_bytes();
        if bytes.first() == Some(&b'"') {
            let mut i = 1;
            loop {
                match memchr::memchr(b'"', &bytes[i..]) {
                    Some(offset) if bytes.get(i + offset + 1) == Some(&b'"') => i += offset + 2,
                    Some(offset) => {
                        let close = i + offset;
                        let field = &text[1..close];
                        // Anything between the closing quote and the delimiter is dropped.
                        self.rest = memchr::memchr(self.delimiter, &bytes[close..])
                            .map(|d| &text[close + d + 1..]);
                        return Some(field);
                    }
                    None => {
                        self.rest = None;
                        return Some(&text[1..]);
                    }
                }
            }
        }
        match memchr::memchr(self.delimiter, bytes) {
            Some(d) => {
                self.rest = Some(&text[d + 1..]);
                Some(&text[..d])
            }
            None => {
                self.rest = None;
                Some(text)
            }
        }
    }
}

/// Splits on runs of spaces, keeping a double-quoted token (W3C, ELFF) as one field without
/// its quotes.
pub(crate) fn spaced_fields(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text.trim_start_matches(' ');
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let field;
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            field = &quoted[..end];
            rest = quoted.get(end + 1..).unwrap_or("");
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            field = &rest[..end];
            rest = &rest[end..];
        }
        rest = rest.trim_start_matches(' ');
        Some(field)
    })
}

/// A `&str` that is one of `placeholders` (case-insensitive) or empty reads as absent.
pub(crate) fn present<'a>(value: &'a str, placeholders: &[&str]) -> Option<&'a str> {
    let value = value.trim();
    (!value.is_empty() && !placeholders.iter().any(|p| p.eq_ignore_ascii_case(value)))
        .then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_quotes_and_junk() {
        let pairs: Vec<_> =
            KvPairs::new("a=1 b=\"two words\" c='x y'\td= e=\"esc \\\" q\" junk =z f=").collect();
        assert_eq!(
            pairs,
            [
                ("a", "1"),
                ("b", "two words"),
                ("c", "x y"),
                ("d", ""),
                ("e", "esc \\\" q"),
                ("f", "")
            ]
        );
        // Odd lines: a pair needs an ASCII key right before the `=`; an unterminated quote
        // runs to the end; text after a closed quote that is not a pair is skipped.
        let odd: [(&str, &[(&str, &str)]); 8] = [
            ("=", &[]),
            ("a=", &[("a", "")]),
            ("=b", &[]),
            ("a=\"unterminated", &[("a", "unterminated")]),
            ("é=ü", &[]),
            ("k=\"\"\"", &[("k", "")]),
            ("x==y", &[("x", "=y")]),
            ("a='", &[("a", "")]),
        ];
        for (line, expected) in odd {
            let pairs: Vec<_> = KvPairs::new(line).collect();
            assert_eq!(pairs, expected, "{line:?}");
        }
    }

    #[test]
    fn kv_with_another_separator() {
        let pairs: Vec<_> = KvPairs::separated_by("a=1,b=\"x, y\",c=2 3", b',').collect();
        assert_eq!(pairs, [("a", "1"), ("b", "x, y"), ("c", "2 3")]);
    }

    #[test]
    fn csv_quotes() {
        let fields: Vec<_> =
            CsvFields::new(r#"1,"a,b","say ""hi""",,"unterminated"#, b',').collect();
        assert_eq!(fields, ["1", "a,b", r#"say ""hi"""#, "", "unterminated"]);
        let fields: Vec<_> = CsvFields::new(r#""x"junk,y"#, b',').collect();
        assert_eq!(fields, ["x", "y"]);
        assert_eq!(CsvFields::new("", b',').collect::<Vec<_>>(), [""]);
    }

    #[test]
    fn spaced_and_delimited() {
        let fields: Vec<_> = spaced_fields("  a  \"b c\" -  d ").collect();
        assert_eq!(fields, ["a", "b c", "-", "d"]);
        let pairs: Vec<_> = delimited_pairs("src=1^dst=a=b^bad^=x", b'^').collect();
        assert_eq!(pairs, [("src", "1"), ("dst", "a=b")]);
        assert_eq!(present(" - ", &["-"]), None);
        assert_eq!(present("x", &["-"]), Some("x"));
    }
}
