//! Escaping of outside text (anything from a log or a provider) for the report formats.
//!
//! Contract: two steps, always in this order.
//! 1. [`one_line`] / [`paragraphs`] make the text harmless as *text*: control characters become a
//!    space, runs of whitespace collapse to one space, invisible formatting characters
//!    (bidirectional overrides, zero-width characters) are dropped, and the text is capped at a
//!    number of characters, ending in `…`. No line break survives inside a value.
//! 2. [`markdown`] / [`html`] make it harmless for the format: every character that starts or
//!    changes Markdown syntax gets a backslash; `& < > " '` become HTML entities.
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

/// Characters that start or change Markdown syntax (CommonMark and GitHub's extensions),
/// all ASCII punctuation, so a backslash before each is a valid CommonMark escape.
/// `.`, `-` and `+` stop list markers and autolinked domains; `&` stops entity references;
/// `$` stops math spans. [`markdown`] also escapes the `:` of `://`.
const MARKDOWN_SPECIAL: &[char] = &[
    '\\', '`', '*', '_', '{', '}', '[', ']', '(', ')', '#', '+', '-', '.', '!', '|', '<', '>', '~',
    '&', '$',
];

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

/// Backslash before every Markdown-special character. Expects text from [`one_line`].
///
/// To keep addresses and numbers readable in the raw file, a `.` between two digits
/// (`203.0.113.7`, `1.5`) is left alone (digits never autolink), and `-`/`+` are escaped only
/// where they could start a list item (at the start or after a space); `!` needs no escape
/// because `[` always gets one.
pub(super) fn markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    let mut previous: Option<char> = None;
    let mut chars = text.char_indices().peekable();
    while let Some((index, ch)) = chars.next() {
        let next = chars.peek().map(|&(_, c)| c);
        let escape = match ch {
            // `scheme://` also gets one, so GitHub does not turn a bare URL into a link.
            ':' => text[index + 1..].starts_with("//"),
            '.' => {
                !(previous.is_some_and(|p| p.is_ascii_digit())
                    && next.is_some_and(|n| n.is_ascii_digit()))
            }
            '-' | '+' => previous.is_none_or(|p| p == ' '),
            '!' => false,
            _ => MARKDOWN_SPECIAL.contains(&ch),
        };
        if escape {
            out.push('\\');
        }
        out.push(ch);
        previous = Some(ch);
    }
    out
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
    markdown(&one_line(text, VALUE_CAP))
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

    #[test]
    fn markdown_escapes_every_special_character() {
        assert_eq!(markdown("[x](http://evil)"), r"\[x\]\(http\://evil\)");
        assert_eq!(
            markdown("2001:db8::1 10:00 a://"),
            r"2001:db8::1 10:00 a\://"
        );
        assert_eq!(markdown("<img>"), r"\<img\>");
        assert_eq!(
            markdown("# a|b `c` ~d~ *e* _f_"),
            r"\# a\|b \`c\` \~d\~ \*e\* \_f\_"
        );
        assert_eq!(markdown(r"1. +-!{}\&$"), r"1\. \+-!\{\}\\\&\$");
        assert_eq!(
            markdown("203.0.113.7 v1.5 sample-blocklist - www.evil.example -x"),
            r"203.0.113.7 v1.5 sample-blocklist \- www\.evil\.example \-x"
        );
        assert_eq!(markdown("plain words 42"), "plain words 42");
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
