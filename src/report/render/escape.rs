//! Escaping of outside text (anything from a log or a provider) for the report formats.
//!
//! Contract: two steps, always in this order.
//! 1. [`one_line`] / [`paragraphs`] make the text harmless as *text*: control characters become a
//!    space, runs of whitespace collapse to one space, invisible formatting characters
//!    (bidirectional overrides, zero-width characters) are dropped, and the text is capped at a
//!    number of characters, ending in `…`. No line break survives inside a value.
//! 2. [`markdown`] / [`html`] make it harmless for the format: a backslash goes before each
//!    character that Markdown would read as syntax where it stands (and only there, so a report
//!    still reads as prose in a terminal); `& < > " '` become HTML entities.
//!
//! The cap counts characters of the text, before step 2, so an escape is never cut in half.

/// Cap of one value (an address, an indicator, an evidence detail, an action's text, …).
pub(super) const VALUE_CAP: usize = 300;
/// Cap of the executive summary: a few sentences of our own wording around outside values.
pub(super) const PROSE_CAP: usize = 2_000;
/// Cap of the whole narrative (all its paragraphs together).
pub(super) const NARRATIVE_CAP: usize = 4_000;

/// What ends a capped text.
const ELLIPSIS: char = '…';

/// The text on one line: controls and whitespace runs become one space, invisible formatting
/// characters are dropped, the ends are trimmed, and at most `cap` characters are kept (the last
/// of them `…` when the text was longer).
pub(super) fn one_line(text: &str, cap: usize) -> String {
    let mut flat = String::with_capacity(text.len().min(cap.saturating_mul(4)));
    let mut pending_space = false;
    for ch in text.chars() {
        if ch.is_control() || ch.is_whitespace() {
            pending_space = true;
        } else if is_invisible_format(ch) {
            continue;
        } else {
            if pending_space && !flat.is_empty() {
                flat.push(' ');
            }
            pending_space = false;
            flat.push(ch);
        }
    }
    cap_chars(flat, cap)
}

/// The text as paragraphs (split at blank lines), each on one line as by [`one_line`]; empty
/// paragraphs are dropped and all of them together keep at most `cap` characters.
pub(super) fn paragraphs(text: &str, cap: usize) -> Vec<String> {
    let mut kept = Vec::new();
    let mut budget = cap;
    for raw in split_paragraphs(text) {
        if budget == 0 {
            break;
        }
        let paragraph = one_line(&raw, budget);
        if paragraph.is_empty() {
            continue;
        }
        budget = budget.saturating_sub(paragraph.chars().count());
        kept.push(paragraph);
    }
    kept
}

/// Where an escaped text stands on its line: block syntax (headings, list markers, quotes,
/// thematic breaks) is only read at the start of a line, so only text that starts a line needs
/// it escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MdPosition {
    /// The text starts its line (the executive summary, a narrative paragraph).
    LineStart,
    /// The text follows other text on its line (a table cell, a list item's value).
    Inline,
}

/// Backslashes only where Markdown (CommonMark with GitHub's extensions) would otherwise read
/// syntax in `position`, so a report reads as plain prose in a terminal. Expects text from
/// [`one_line`] (no line breaks). Escaped everywhere: `` ` `` (code), `*` and `~` (emphasis,
/// strikethrough), `[` and `]` (links, images), `|` (table cells), `$` (math), `_` unless inside
/// a word (`snake_case` never emphasises); `<` before a letter, `/`, `!` or `?` (HTML, autolinks);
/// `&` that would start an entity (`&lt;`, `&#60;`); `\` before punctuation or at the end; the
/// `:` of `://` and the `.` of a leading `www.` (GitHub's autolinks). At [`MdPosition::LineStart`]
/// also what would open a block: a leading `>`, `# `, `- `, `+ `, `---` or the `.`/`)` of a
/// leading `1. `. Parentheses, braces, `.`, `!`, `-`, `#`, `:` elsewhere are left alone.
pub(super) fn markdown(text: &str, position: MdPosition) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    let list_number_end = (position == MdPosition::LineStart)
        .then(|| leading_number_end(&chars))
        .flatten();
    for (index, &ch) in chars.iter().enumerate() {
        let previous = index.checked_sub(1).map(|i| chars[i]);
        let next = chars.get(index + 1).copied();
        let escape = match ch {
            '`' | '*' | '~' | '[' | ']' | '|' | '$' => true,
            '_' => {
                !(previous.is_some_and(char::is_alphanumeric)
                    && next.is_some_and(char::is_alphanumeric))
            }
            '<' => next.is_some_and(|n| n.is_ascii_alphabetic() || matches!(n, '/' | '!' | '?')),
            '&' => starts_entity(&chars[index + 1..]),
            '\\' => next.is_none_or(|n| n.is_ascii_punctuation()),
            ':' => next == Some('/') && chars.get(index + 2) == Some(&'/'),
            '.' => {
                Some(index) == list_number_end
                    || (index >= 3
                        && chars[index - 3..index]
                            .iter()
                            .collect::<String>()
                            .eq_ignore_ascii_case("www")
                        && (index == 3
                            || chars[index - 4].is_whitespace()
                            || matches!(chars[index - 4], '*' | '_' | '~' | '(')))
            }
            ')' => Some(index) == list_number_end,
            '#' | '>' | '-' | '+' => {
                index == 0 && position == MdPosition::LineStart && starts_block(&chars)
            }
            _ => false,
        };
        if escape {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// The index of the `.` or `)` that would make `chars` an ordered-list item (`1. `, `12)`).
fn leading_number_end(chars: &[char]) -> Option<usize> {
    let digits = chars.iter().take_while(|c| c.is_ascii_digit()).count();
    ((1..=9).contains(&digits)
        && matches!(chars.get(digits), Some('.' | ')'))
        && chars.get(digits + 1).is_none_or(|c| *c == ' '))
    .then_some(digits)
}

/// Whether a line starting with `chars` opens a block: `>` always (quote), `#` to `######`
/// before a space or the end (heading), `-`/`+` before a space or the end (list item), and a
/// line of only `-` and spaces (thematic break).
fn starts_block(chars: &[char]) -> bool {
    let after = |n: usize| chars.get(n).is_none_or(|c| *c == ' ');
    match chars.first() {
        Some('>') => true,
        Some('#') => {
            let run = chars.iter().take_while(|c| **c == '#').count();
            run <= 6 && after(run)
        }
        Some('-') => after(1) || chars.iter().all(|c| matches!(c, '-' | ' ')),
        Some('+') => after(1),
        _ => false,
    }
}

/// Whether the text after an `&` makes an entity or character reference: `name;`, `#123;`,
/// `#x1F;`.
fn starts_entity(rest: &[char]) -> bool {
    let (body, max): (&[char], usize) = match rest {
        ['#', 'x' | 'X', tail @ ..] => (tail, 6),
        ['#', tail @ ..] => (tail, 7),
        _ => (rest, 32),
    };
    let numeric = rest.first() == Some(&'#');
    let hex = numeric && matches!(rest.get(1), Some('x' | 'X'));
    let len = body
        .iter()
        .take_while(|c| {
            if hex {
                c.is_ascii_hexdigit()
            } else if numeric {
                c.is_ascii_digit()
            } else {
                c.is_ascii_alphanumeric()
            }
        })
        .count();
    (1..=max).contains(&len) && body.get(len) == Some(&';')
}

/// HTML entities for `& < > " '`, safe in element content and in quoted attributes. Control
/// characters are dropped as well, though text from [`one_line`] has none.
pub(super) fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            ch if ch.is_control() => {}
            ch => out.push(ch),
        }
    }
    out
}

/// A value for Markdown: one line, capped at [`VALUE_CAP`], escaped.
pub(super) fn md_value(text: &str) -> String {
    markdown(&one_line(text, VALUE_CAP), MdPosition::Inline)
}

/// A value for HTML: one line, capped at [`VALUE_CAP`], escaped.
pub(super) fn html_value(text: &str) -> String {
    html(&one_line(text, VALUE_CAP))
}

/// Keeps at most `cap` characters; a longer text keeps `cap - 1` and ends in `…`.
fn cap_chars(text: String, cap: usize) -> String {
    if cap == 0 {
        return String::new();
    }
    match text.char_indices().nth(cap) {
        None => text,
        Some(_) => {
            let cut = text
                .char_indices()
                .nth(cap - 1)
                .map_or(text.len(), |(index, _)| index);
            let mut capped = text[..cut].trim_end().to_owned();
            capped.push(ELLIPSIS);
            capped
        }
    }
}

/// Splits at lines that are empty or whitespace only (any of `\n`, `\r\n`, `\r`).
fn split_paragraphs(text: &str) -> Vec<String> {
    let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = Vec::new();
    let mut current = String::new();
    for line in normalized.split('\n') {
        if line.trim().is_empty() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
        } else {
            current.push_str(line);
            current.push(' ');
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Zero-width and bidirectional formatting characters: invisible, and able to make text read
/// differently from what it is (`abc\u{202e}exe.pdf`).
fn is_invisible_format(ch: char) -> bool {
    matches!(
        ch,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_replaces_controls_and_collapses_whitespace() {
        assert_eq!(
            one_line("  a\r\nb\t\tc\u{0}d\u{1b}[31m  ", 300),
            "a b c d [31m"
        );
        assert_eq!(one_line("a\u{2028}b\u{85}c", 300), "a b c");
        assert_eq!(one_line("abc\u{202e}fdp.exe\u{200b}", 300), "abcfdp.exe");
        assert_eq!(one_line("\n\t ", 300), "");
    }

    #[test]
    fn one_line_caps_characters_and_ends_in_ellipsis() {
        assert_eq!(one_line("abcdef", 6), "abcdef");
        assert_eq!(one_line("abcdefg", 6), "abcde…");
        assert_eq!(one_line("ab  cdefg", 4), "ab…");
        // Characters, not bytes.
        assert_eq!(one_line(&"é".repeat(10), 5), "éééé…");
        let long = one_line(&"x".repeat(10_000), VALUE_CAP);
        assert_eq!(long.chars().count(), VALUE_CAP);
        assert!(long.ends_with('…'));
        assert_eq!(one_line("abc", 0), "");
    }

    fn inline(text: &str) -> String {
        markdown(text, MdPosition::Inline)
    }

    fn line_start(text: &str) -> String {
        markdown(text, MdPosition::LineStart)
    }

    #[test]
    fn markdown_escapes_links_html_code_emphasis_and_cells() {
        assert_eq!(inline("[x](http://evil)"), r"\[x\](http\://evil)");
        assert_eq!(inline("![x](y.png)"), r"!\[x\](y.png)");
        assert_eq!(inline("2001:db8::1 10:00 a://"), r"2001:db8::1 10:00 a\://");
        assert_eq!(inline("<img> </a> <!-- <?x"), r"\<img> \</a> \<!-- \<?x");
        assert_eq!(
            inline("# a|b `c` ~d~ *e* _f_ $x$"),
            r"# a\|b \`c\` \~d\~ \*e\* \_f\_ \$x\$"
        );
        assert_eq!(
            inline("&lt; &#60; &#x3C; &copy;"),
            r"\&lt; \&#60; \&#x3C; \&copy;"
        );
        assert_eq!(inline(r"\<x \< \a end\"), r"\\\<x \\< \a end\\");
        assert_eq!(inline("www.evil.example"), r"www\.evil.example");
    }

    #[test]
    fn markdown_leaves_what_cannot_be_syntax_in_its_position() {
        // The complaint that started this: prose full of backslashes in a terminal.
        assert_eq!(
            line_start("Malicious (score 70, high severity): listed by feed sample-blocklist."),
            "Malicious (score 70, high severity): listed by feed sample-blocklist."
        );
        assert_eq!(
            inline("203.0.113.7 v1.5 - {x} 1. + # > a = b! AT&T 3 < 4 & 5 > 2 snake_case_name"),
            "203.0.113.7 v1.5 - {x} 1. + # > a = b! AT&T 3 < 4 & 5 > 2 snake_case_name"
        );
        assert_eq!(inline("example.www.com awww.x"), "example.www.com awww.x");
        assert_eq!(inline("plain words 42"), "plain words 42");
    }

    #[test]
    fn markdown_escapes_block_syntax_only_at_a_line_start() {
        for (text, escaped) in [
            ("# heading", r"\# heading"),
            ("> quote", r"\> quote"),
            ("- item", r"\- item"),
            ("+ item", r"\+ item"),
            ("---", r"\---"),
            ("## two", r"\## two"),
            ("1. item", r"1\. item"),
            ("12) item", r"12\) item"),
            ("___", r"\_\_\_"),
        ] {
            assert_eq!(line_start(text), escaped, "{text}");
            assert_eq!(inline(text), text.replace('_', r"\_"), "{text} inline");
        }
        // Only the leading number is a list marker.
        assert_eq!(line_start("2026. was 1. then"), r"2026\. was 1. then");
        assert_eq!(
            line_start("1.5 times, -x, +1, #tag, ####### seven, --- x, === x"),
            "1.5 times, -x, +1, #tag, ####### seven, --- x, === x"
        );
    }

    #[test]
    fn html_escapes_the_five_characters_and_drops_controls() {
        assert_eq!(
            html(r#"<a href="x" title='y'>&</a>"#),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
        assert_eq!(html("a\u{0}b\u{7f}c"), "abc");
    }

    #[test]
    fn paragraphs_split_at_blank_lines_and_share_one_cap() {
        assert_eq!(
            paragraphs("one\ntwo\r\n\r\n  \n# three\n\n", 100),
            vec!["one two".to_owned(), "# three".to_owned()]
        );
        assert_eq!(
            paragraphs("abcd\n\nefgh\n\nijkl", 6),
            vec!["abcd".to_owned(), "e…".to_owned()]
        );
        assert!(paragraphs("\n\n\t\n", 100).is_empty());
    }
}
