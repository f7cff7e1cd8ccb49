//! A borrowed JSON document: one pass over the line into a flat arena of nodes whose strings
//! borrow from the input. Strings are unescaped only when read, and only if they hold an escape,
//! so a typical event costs one allocation (the arena), not one per field.
//!
//! Lookups by dotted path accept nested objects, dotted keys, or a mix of both, as ECS allows.

use std::borrow::Cow;

use super::ParseError;

/// Deepest nesting accepted; deeper documents are rejected rather than risking the stack.
const MAX_DEPTH: usize = 64;
const NONE: u32 = u32::MAX;

/// A JSON string as it appears in the input, between its quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JsonStr<'a> {
    raw: &'a str,
    escaped: bool,
}

impl<'a> JsonStr<'a> {
    /// The string's value, borrowed unless it held an escape.
    pub(crate) fn value(&self) -> Cow<'a, str> {
        if self.escaped {
            Cow::Owned(unescape(self.raw))
        } else {
            Cow::Borrowed(self.raw)
        }
    }

    /// The text between the quotes, escapes as written.
    pub(crate) fn raw(&self) -> &'a str {
        self.raw
    }

    /// Whether the value equals `text`, without allocating in the common case.
    pub(crate) fn eq_str(&self, text: &str) -> bool {
        if self.escaped {
            unescape(self.raw) == text
        } else {
            self.raw == text
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Value<'a> {
    Null,
    Bool(bool),
    Number(&'a str),
    String(JsonStr<'a>),
    /// First element's node index, or `NONE`.
    Array(u32),
    /// First member's node index, or `NONE`.
    Object(u32),
}

#[derive(Debug, Clone, Copy)]
struct Node<'a> {
    key: JsonStr<'a>,
    value: Value<'a>,
    next: u32,
}

/// A parsed JSON document borrowing from its text.
#[derive(Debug)]
pub(crate) struct JsonDoc<'a> {
    nodes: Vec<Node<'a>>,
    /// A 64-bit filter of the top-level object's keys (see [`key_bit`]): format detection
    /// asks for many keys a document does not have, and most are refused by one bit test.
    root_keys: u64,
}

/// The filter bit of a key: from its length and its first and last bytes.
fn key_bit(key: &[u8]) -> u64 {
    let (first, last) = (key.first().copied(), key.last().copied());
    let mix =
        key.len() as u32 * 31 + u32::from(first.unwrap_or(0)) * 7 + u32::from(last.unwrap_or(0));
    1 << (mix & 63)
}

/// A value inside a [`JsonDoc`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct JsonRef<'d, 'a> {
    doc: &'d JsonDoc<'a>,
    index: u32,
}

impl<'a> JsonDoc<'a> {
    /// Parses `text`, which must hold exactly one JSON value.
    pub(crate) fn parse(text: &'a str) -> Result<JsonDoc<'a>, ParseError> {
        let mut parser = Parser {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            // Enough for a typical event without growing.
            nodes: Vec::with_capacity(64),
            root_keys: 0,
        };
        parser.nodes.push(Node {
            key: JsonStr {
                raw: "",
                escaped: false,
            },
            value: Value::Null,
            next: NONE,
        });
        parser.skip_ws();
        let root = parser.value(0)?;
        parser.nodes[0].value = root;
        parser.skip_ws();
        if parser.pos != parser.bytes.len() {
            return Err(parser.error("trailing characters after the JSON value"));
        }
        Ok(JsonDoc {
            nodes: parser.nodes,
            root_keys: parser.root_keys,
        })
    }

    /// The top-level value.
    pub(crate) fn root(&self) -> JsonRef<'_, 'a> {
        JsonRef {
            doc: self,
            index: 0,
        }
    }
}

impl<'d, 'a> JsonRef<'d, 'a> {
    fn node(&self) -> &'d Node<'a> {
        &self.doc.nodes[self.index as usize]
    }

    fn at(&self, index: u32) -> JsonRef<'d, 'a> {
        JsonRef {
            doc: self.doc,
            index,
        }
    }

    /// Whether this is an object.
    pub(crate) fn is_object(&self) -> bool {
        matches!(self.node().value, Value::Object(_))
    }

    /// Whether this is an array.
    pub(crate) fn is_array(&self) -> bool {
        matches!(self.node().value, Value::Array(_))
    }

    /// The string value, if this is a string.
    pub(crate) fn str(&self) -> Option<Cow<'a, str>> {
        match self.node().value {
            Value::String(s) => Some(s.value()),
            _ => None,
        }
    }

    /// A string, or a number/boolean as written: the value as text.
    pub(crate) fn text(&self) -> Option<Cow<'a, str>> {
        match self.node().value {
            Value::String(s) => Some(s.value()),
            Value::Number(n) => Some(Cow::Borrowed(n)),
            Value::Bool(true) => Some(Cow::Borrowed("true")),
            Value::Bool(false) => Some(Cow::Borrowed("false")),
            _ => None,
        }
    }

    /// Whether the value is the string `text`.
    pub(crate) fn is_str(&self, text: &str) -> bool {
        matches!(self.node().value, Value::String(s) if s.eq_str(text))
    }

    /// The value's length written compactly (strings as escaped in the input, no whitespace):
    /// the size of one batch item, to hold it to `parse.max_line_bytes` like a line.
    pub(crate) fn compact_len(&self) -> usize {
        match self.node().value {
            Value::Null => 4,
            Value::Bool(b) => 4 + usize::from(!b),
            Value::Number(n) => n.len(),
            Value::String(s) => s.raw().len() + 2,
            Value::Array(_) => {
                let (count, len) = self
                    .items()
                    .fold((0, 0), |(c, l), item| (c + 1, l + item.compact_len()));
                2 + len + count.max(1) - 1
            }
            Value::Object(_) => {
                let (count, len) = self.members().fold((0, 0), |(c, l), (key, value)| {
                    (c + 1, l + key.raw().len() + 3 + value.compact_len())
                });
                2 + len + count.max(1) - 1
            }
        }
    }

    /// Members of an object as (key, value); empty for anything else.
    pub(crate) fn members(&self) -> impl Iterator<Item = (JsonStr<'a>, JsonRef<'d, 'a>)> + 'd {
        let first = match self.node().value {
            Value::Object(first) => first,
            _ => NONE,
        };
        let this = *self;
        Siblings {
            at: this,
            next: first,
        }
        .map(move |r| (r.node().key, r))
    }

    /// Elements of an array; empty for anything else.
    pub(crate) fn items(&self) -> impl Iterator<Item = JsonRef<'d, 'a>> + 'd {
        let first = match self.node().value {
            Value::Array(first) => first,
            _ => NONE,
        };
        Siblings {
            at: *self,
            next: first,
        }
    }

    /// The member whose key is exactly `key` (no dotted-path handling).
    pub(crate) fn member(&self, key: &str) -> Option<JsonRef<'d, 'a>> {
        if self.index == 0 && self.doc.root_keys & key_bit(key.as_bytes()) == 0 {
            return None;
        }
        self.members().find(|(k, _)| k.eq_str(key)).map(|(_, v)| v)
    }

    /// Finds a dotted path, accepting nested objects, dotted keys, or a mix of both.
    pub(crate) fn get(&self, path: &str) -> Option<JsonRef<'d, 'a>> {
        if !self.is_object() {
            return None;
        }
        if let Some(found) = self.member(path) {
            return Some(found);
        }
        let mut from = 0;
        while let Some(dot) = path[from..].find('.') {
            let split = from + dot;
            if let Some(inner) = self.member(&path[..split]) {
                if let Some(found) = inner.get(&path[split + 1..]) {
                    return Some(found);
                }
            }
            from = split + 1;
        }
        None
    }

    /// Visits every non-object value under this object with its dotted path (`a.b.c`), in
    /// document order, without allocating: nested objects and dotted keys give the same path.
    /// Paths longer than 96 bytes or deeper than 6 levels are not visited.
    pub(crate) fn walk_leaves(&self, visit: &mut impl FnMut(&str, JsonRef<'d, 'a>)) {
        let mut path = PathBuf {
            text: String::with_capacity(PATH_MAX),
        };
        self.walk_into(&mut path, 0, visit);
    }

    fn walk_into(
        &self,
        path: &mut PathBuf,
        depth: usize,
        visit: &mut impl FnMut(&str, JsonRef<'d, 'a>),
    ) {
        for (key, value) in self.members() {
            let saved = path.text.len();
            if !path.push(key.raw()) {
                continue;
            }
            if value.is_object() {
                if depth < 6 {
                    value.walk_into(path, depth + 1, visit);
                }
            } else {
                visit(path.as_str(), value);
            }
            path.text.truncate(saved);
        }
    }

    /// Text at a dotted path (string, or number as written).
    #[cfg(test)]
    pub(crate) fn get_text(&self, path: &str) -> Option<Cow<'a, str>> {
        self.get(path).and_then(|v| v.text())
    }

    /// The strings at a dotted path: one for a string, each string element for an array.
    pub(crate) fn get_strings(&self, path: &str, mut each: impl FnMut(Cow<'a, str>)) {
        let Some(found) = self.get(path) else { return };
        if let Some(text) = found.str() {
            each(text);
        } else {
            for item in found.items() {
                if let Some(text) = item.str() {
                    each(text);
                }
            }
        }
    }
}

const PATH_MAX: usize = 96;

/// The dotted path of the walk: one buffer for the whole walk, segments pushed and truncated.
struct PathBuf {
    text: String,
}

impl PathBuf {
    fn push(&mut self, segment: &str) -> bool {
        let dot = usize::from(!self.text.is_empty());
        if self.text.len() + dot + segment.len() > PATH_MAX {
            return false;
        }
        if dot == 1 {
            self.text.push('.');
        }
        self.text.push_str(segment);
        true
    }

    fn as_str(&self) -> &str {
        &self.text
    }
}

struct Siblings<'d, 'a> {
    at: JsonRef<'d, 'a>,
    next: u32,
}

impl<'d, 'a> Iterator for Siblings<'d, 'a> {
    type Item = JsonRef<'d, 'a>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next == NONE {
            return None;
        }
        let current = self.at.at(self.next);
        self.next = current.node().next;
        Some(current)
    }
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    nodes: Vec<Node<'a>>,
    root_keys: u64,
}

impl<'a> Parser<'a> {
    fn error(&self, what: &str) -> ParseError {
        ParseError::InvalidJson(format!("{what} at byte {}", self.pos))
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, ParseError> {
        match self.bytes.get(self.pos) {
            None => Err(self.error("unexpected end of input")),
            Some(b'{') => {
                if depth >= MAX_DEPTH {
                    return Err(self.error("nesting deeper than 64 levels"));
                }
                self.pos += 1;
                self.object(depth + 1)
            }
            Some(b'[') => {
                if depth >= MAX_DEPTH {
                    return Err(self.error("nesting deeper than 64 levels"));
                }
                self.pos += 1;
                self.array(depth + 1)
            }
            Some(b'"') => {
                self.pos += 1;
                Ok(Value::String(self.string()?))
            }
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => Ok(Value::Number(self.number()?)),
            Some(_) => Err(self.error("unexpected character")),
        }
    }

    fn literal(&mut self, word: &str, value: Value<'a>) -> Result<Value<'a>, ParseError> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.error("invalid literal"))
        }
    }

    fn number(&mut self) -> Result<&'a str, ParseError> {
        let start = self.pos;
        while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
        let text = &self.text[start..self.pos];
        if text == "-" || text.ends_with(['-', '+', '.', 'e', 'E']) {
            return Err(self.error("invalid number"));
        }
        Ok(text)
    }

    /// After the opening quote; leaves `pos` after the closing quote.
    fn string(&mut self) -> Result<JsonStr<'a>, ParseError> {
        let start = self.pos;
        let mut escaped = false;
        loop {
            let Some(offset) = find_quote_or_backslash(&self.bytes[self.pos..]) else {
                self.pos = self.bytes.len();
                return Err(self.error("unterminated string"));
            };
            self.pos += offset;
            if self.bytes[self.pos] == b'"' {
                let raw = &self.text[start..self.pos];
                self.pos += 1;
                return Ok(JsonStr { raw, escaped });
            }
            escaped = true;
            match self.bytes.get(self.pos + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.pos += 2,
                Some(b'u') => {
                    let hex = self.bytes.get(self.pos + 2..self.pos + 6);
                    if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                        return Err(self.error("invalid \\u escape"));
                    }
                    self.pos += 6;
                }
                _ => return Err(self.error("invalid escape")),
            }
        }
    }

    fn push(&mut self, key: JsonStr<'a>) -> u32 {
        self.nodes.push(Node {
            key,
            value: Value::Null,
            next: NONE,
        });
        (self.nodes.len() - 1) as u32
    }

    /// Appends node `index` to the sibling list running from `first` to `last`.
    fn link(&mut self, first: &mut u32, last: &mut u32, index: u32) {
        if *last == NONE {
            *first = index;
        } else {
            self.nodes[*last as usize].next = index;
        }
        *last = index;
    }

    fn object(&mut self, depth: usize) -> Result<Value<'a>, ParseError> {
        let mut first = NONE;
        let mut last = NONE;
        self.skip_ws();
        if self.bytes.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return Ok(Value::Object(NONE));
        }
        loop {
            self.skip_ws();
            if self.bytes.get(self.pos) != Some(&b'"') {
                return Err(self.error("expected a key"));
            }
            self.pos += 1;
            let key = self.string()?;
            if depth == 1 {
                // The top-level object's keys; an escaped key could match any name.
                self.root_keys |= if key.escaped {
                    u64::MAX
                } else {
                    key_bit(key.raw.as_bytes())
                };
            }
            self.skip_ws();
            if self.bytes.get(self.pos) != Some(&b':') {
                return Err(self.error("expected ':'"));
            }
            self.pos += 1;
            self.skip_ws();
            let index = self.push(key);
            let value = self.value(depth)?;
            self.nodes[index as usize].value = value;
            self.link(&mut first, &mut last, index);
            self.skip_ws();
            match self.bytes.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(first));
                }
                _ => return Err(self.error("expected ',' or '}'")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value<'a>, ParseError> {
        let mut first = NONE;
        let mut last = NONE;
        self.skip_ws();
        if self.bytes.get(self.pos) == Some(&b']') {
            self.pos += 1;
            return Ok(Value::Array(NONE));
        }
        loop {
            self.skip_ws();
            let index = self.push(JsonStr {
                raw: "",
                escaped: false,
            });
            let value = self.value(depth)?;
            self.nodes[index as usize].value = value;
            self.link(&mut first, &mut last, index);
            self.skip_ws();
            match self.bytes.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(first));
                }
                _ => return Err(self.error("expected ',' or ']'")),
            }
        }
    }
}

/// The first `"` or `\\`. Most keys and values are a few bytes long, where a plain loop beats
/// `memchr2`'s set-up; long strings go to `memchr2`.
fn find_quote_or_backslash(bytes: &[u8]) -> Option<usize> {
    let short = bytes.len().min(24);
    if let Some(i) = bytes[..short].iter().position(|&b| b == b'"' || b == b'\\') {
        return Some(i);
    }
    memchr::memchr2(b'"', b'\\', &bytes[short..]).map(|i| i + short)
}

/// Decodes JSON string escapes; invalid surrogates become U+FFFD.
pub(crate) fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let unit = hex4(&mut chars);
                let c = match unit {
                    Some(high @ 0xD800..=0xDBFF) => {
                        let rest = chars.as_str();
                        match rest.strip_prefix("\\u").and_then(|r| {
                            u32::from_str_radix(r.get(..4)?, 16)
                                .ok()
                                .filter(|low| (0xDC00..=0xDFFF).contains(low))
                        }) {
                            Some(low) => {
                                chars = rest[6..].chars();
                                char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
                            }
                            None => None,
                        }
                    }
                    Some(unit) => char::from_u32(unit),
                    None => None,
                };
                out.push(c.unwrap_or('\u{fffd}'));
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

fn hex4(chars: &mut std::str::Chars<'_>) -> Option<u32> {
    let text = chars.as_str().get(..4)?;
    let value = u32::from_str_radix(text, 16).ok()?;
    *chars = chars.as_str()[4..].chars();
    Some(value)
}

#[cfg(test)]
mod tests;
