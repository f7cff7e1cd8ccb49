//! Syslog headers (RFC 3164 and its real-world variants, RFC 5424), stripped before a vendor
//! parser sees the line, repeatedly when a relay prepended its own header.
//!
//! The HOSTNAME slot, and RFC 5424 `[origin ip="…"]`, name the reporting device: the observer,
//! never the traffic source. Tags (`filterlog[123]:`, `kernel:`, `RT_FLOW:`) are split off and
//! kept as `app` so detection can use them.

/// What a syslog header said about the event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SyslogHeader<'a> {
    /// HOSTNAME of the innermost header (an IP literal here is the reporting device).
    pub hostname: Option<&'a str>,
    /// RFC 3164 TAG without `[pid]`, or RFC 5424 APP-NAME.
    pub app: Option<&'a str>,
    /// RFC 5424 MSGID.
    pub msgid: Option<&'a str>,
    /// RFC 5424 STRUCTURED-DATA, all elements as written (`[id k="v"]…`).
    pub structured_data: Option<&'a str>,
    /// `origin ip` from RFC 5424 structured data.
    pub origin_ip: Option<&'a str>,
}

impl<'a> SyslogHeader<'a> {
    /// The reporting device's address or name: `origin ip`, else the hostname.
    pub(crate) fn observer(&self) -> Option<&'a str> {
        self.origin_ip.or(self.hostname)
    }
}

/// Strips every leading syslog header (at most 4); returns the innermost header and the message.
pub(crate) fn strip_headers(line: &str) -> (Option<SyslogHeader<'_>>, &str) {
    let mut header: Option<SyslogHeader<'_>> = None;
    let mut rest = line;
    for _ in 0..4 {
        match strip_one(rest) {
            Some((inner, body)) => {
                header = Some(match header {
                    // The inner header describes the device; the outer one only the relay.
                    Some(outer) => SyslogHeader {
                        hostname: inner.hostname.or(outer.hostname),
                        ..inner
                    },
                    None => inner,
                });
                rest = body;
            }
            None => break,
        }
    }
    if header.is_none() {
        // A collector that forwarded only `$MSGHDR$MSG` (syslog-ng) leaves the tag in front.
        if let Some((app, body)) = bare_tag(rest) {
            return (
                Some(SyslogHeader {
                    app: Some(app),
                    ..SyslogHeader::default()
                }),
                body,
            );
        }
    }
    (header, rest)
}

/// Programs whose tag is recognised without a `[pid]` on a line that has no header.
const BARE_TAGS: [&str; 10] = [
    "filterlog",
    "RT_FLOW",
    "RT_IDP",
    "RT_UTM",
    "RT_SCREEN",
    "RT_IDS",
    "CheckPoint",
    "mgd",
    "sshd",
    "rshd",
];

/// A leading `program[pid]: ` or `program: ` of one of [`BARE_TAGS`] on a line without a
/// syslog header. Only known programs: text like `srcip: 192.0.2.1` is no tag, and other
/// formats read their own program names out of the body.
fn bare_tag(text: &str) -> Option<(&str, &str)> {
    let (app, body) = split_tag(text);
    let app = app?;
    BARE_TAGS.contains(&app).then_some((app, body))
}

fn strip_one(line: &str) -> Option<(SyslogHeader<'_>, &str)> {
    let (has_pri, rest) = match strip_pri(line) {
        Some(rest) => (true, rest.trim_start_matches(' ')),
        None => (false, line),
    };
    if has_pri {
        if let Some(parsed) = rfc5424(rest) {
            return Some(parsed);
        }
    }
    let (had_time, rest) = match strip_timestamp(rest, has_pri) {
        Some(after) => (true, after),
        None => (false, rest),
    };
    if !has_pri && !had_time {
        return None;
    }
    let mut header = SyslogHeader::default();
    if !had_time {
        // `<189>date=…`, `<166>%ASA-…`: a PRI and nothing else.
        return Some((header, rest));
    }
    let mut rest = rest.trim_start_matches(' ');
    // A time zone after the time (`… 12:00:00 EDT: %FTD-…`).
    if let Some((token, after)) = split_token(rest) {
        let zone = token.strip_suffix(':').unwrap_or(token);
        if (2..=5).contains(&zone.len()) && zone.bytes().all(|b| b.is_ascii_uppercase()) {
            rest = after;
        }
    }
    // HOSTNAME, unless the next token is already the tag or the message.
    if let Some((token, after)) = split_token(rest) {
        let bare = token.strip_suffix(':').unwrap_or(token);
        let is_tag = token.ends_with(':') && crate::stages::extract::parse_ip_token(bare).is_none();
        if !is_tag && is_hostname(bare) {
            header.hostname = Some(bare);
            rest = after;
            // ASA writes `host : %ASA-…`.
            if let Some(after_colon) = rest.strip_prefix(": ") {
                rest = after_colon.trim_start_matches(' ');
            }
        }
    }
    let (app, body) = split_tag(rest);
    header.app = app;
    Some((header, body))
}

fn strip_pri(line: &str) -> Option<&str> {
    let rest = line.strip_prefix('<')?;
    let end = rest.find('>')?;
    if end == 0 || end > 3 || !rest[..end].bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(&rest[end + 1..])
}

fn split_token(text: &str) -> Option<(&str, &str)> {
    if text.is_empty() {
        return None;
    }
    Some(match text.find(' ') {
        Some(i) => (&text[..i], text[i + 1..].trim_start_matches(' ')),
        None => (text, ""),
    })
}

fn is_hostname(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 255
        && !token.contains(['=', '%', '<', '[', '"', ',', '{', '|'])
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
}

/// `TAG[pid]: ` or `TAG: `; returns (tag, message after it) or (None, text).
fn split_tag(text: &str) -> (Option<&str>, &str) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len()
        && i < 64
        && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b'-' | b'.' | b'/'))
    {
        i += 1;
    }
    if i == 0 {
        return (None, text);
    }
    let name = &text[..i];
    let mut j = i;
    if bytes.get(j) == Some(&b'[') {
        match text[j..].find(']') {
            Some(close) if close <= 24 => j += close + 1,
            _ => return (None, text),
        }
    }
    if bytes.get(j) == Some(&b':') && matches!(bytes.get(j + 1), None | Some(b' ')) {
        (Some(name), text[j + 1..].trim_start_matches(' '))
    } else {
        (None, text)
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Removes an RFC 3164-style timestamp: `Mmm dd hh:mm:ss`, `Mmm dd yyyy hh:mm:ss`, ISO 8601
/// (`YYYY-MM-DDThh:mm:ss…`), Sophos UTM's `YYYY:MM:DD-hh:mm:ss`, and, after a PRI only,
/// `YYYY-MM-DD hh:mm:ss`.
fn strip_timestamp(text: &str, has_pri: bool) -> Option<&str> {
    let b = text.as_bytes();
    if b.len() >= 15 && MONTHS.iter().any(|m| text.starts_with(m)) && b[3] == b' ' {
        let mut rest = text[4..].trim_start_matches(' ');
        let day_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        if !(1..=2).contains(&day_len) || rest.as_bytes().get(day_len) != Some(&b' ') {
            return None;
        }
        rest = &rest[day_len + 1..];
        // Optional year (Cisco).
        if rest.len() > 5
            && rest.as_bytes()[..4].iter().all(u8::is_ascii_digit)
            && rest.as_bytes()[4] == b' '
        {
            rest = &rest[5..];
        }
        let time_len = clock_len(rest.as_bytes())?;
        return Some(&rest[time_len..]);
    }
    if b.len() >= 19 && is_date(&b[..10], b'-') && (b[10] == b'T' || (has_pri && b[10] == b' ')) {
        let time_len = clock_len(&b[11..])?;
        let mut end = 11 + time_len;
        // Zone: `Z`, `+00:00`, `-0500`.
        while end < b.len() && matches!(b[end], b'Z' | b'+' | b'-' | b':' | b'0'..=b'9') {
            end += 1;
        }
        return Some(&text[end..]);
    }
    if b.len() >= 19 && is_date(&b[..10], b':') && b[10] == b'-' {
        let time_len = clock_len(&b[11..])?;
        return Some(&text[11 + time_len..]);
    }
    None
}

fn is_date(b: &[u8], sep: u8) -> bool {
    b.len() == 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == sep
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == sep
        && b[8..10].iter().all(u8::is_ascii_digit)
}

/// Length of `hh:mm:ss` plus an optional fraction.
fn clock_len(b: &[u8]) -> Option<usize> {
    if b.len() < 8
        || !(b[0].is_ascii_digit()
            && b[1].is_ascii_digit()
            && b[2] == b':'
            && b[3].is_ascii_digit()
            && b[4].is_ascii_digit()
            && b[5] == b':'
            && b[6].is_ascii_digit()
            && b[7].is_ascii_digit())
    {
        return None;
    }
    let mut len = 8;
    if b.get(8) == Some(&b'.') {
        len += 1 + b[9..].iter().take_while(|c| c.is_ascii_digit()).count();
    }
    Some(len)
}

/// `1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG` after the PRI.
fn rfc5424(text: &str) -> Option<(SyslogHeader<'_>, &str)> {
    let rest = text.strip_prefix("1 ")?;
    let (timestamp, mut rest) = split_token(rest)?;
    if timestamp != "-" && !timestamp.as_bytes().first()?.is_ascii_digit() {
        return None;
    }
    // Check Point's Log Exporter writes the date and the time apart (`2026-03-03 15:55:00`).
    if is_date(timestamp.as_bytes(), b'-') {
        if let Some(after) = split_token(rest).filter(|(t, _)| clock_len(t.as_bytes()).is_some()) {
            rest = after.1;
        }
    }
    let (hostname, rest) = split_token(rest)?;
    let (app, rest) = split_token(rest)?;
    let (_procid, rest) = split_token(rest)?;
    let (msgid, rest) = split_token(rest)?;
    let mut header = SyslogHeader {
        hostname: nil(hostname),
        app: nil(app),
        msgid: nil(msgid),
        ..SyslogHeader::default()
    };
    let message = if let Some(after) = rest.strip_prefix('-') {
        after
    } else if rest.starts_with('[') {
        let end = structured_data_len(rest);
        header.structured_data = Some(&rest[..end]);
        header.origin_ip = origin_ip(&rest[..end]);
        &rest[end..]
    } else {
        rest
    };
    let message = message
        .trim_start_matches(' ')
        .trim_start_matches('\u{feff}');
    Some((header, message))
}

/// Length of the SD elements at the start of `text`, honouring quoted values and `\]` escapes.
fn structured_data_len(text: &str) -> usize {
    let b = text.as_bytes();
    let mut i = 0;
    while b.get(i) == Some(&b'[') {
        let mut in_quotes = false;
        i += 1;
        while i < b.len() {
            match b[i] {
                b'\\' => i += 1,
                b'"' => in_quotes = !in_quotes,
                b']' if !in_quotes => break,
                _ => {}
            }
            i += 1;
        }
        i = (i + 1).min(b.len());
    }
    i
}

fn nil(s: &str) -> Option<&str> {
    (s != "-").then_some(s)
}

fn origin_ip(sd: &str) -> Option<&str> {
    let at = sd.find("[origin ")?;
    let element = &sd[at..];
    let value_at = element.find(" ip=\"")? + 5;
    let value = &element[value_at..];
    Some(&value[..value.find('"')?])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip(line: &str) -> (Option<&str>, Option<&str>, &str) {
        let (header, body) = strip_headers(line);
        let header = header.unwrap_or_default();
        (header.observer(), header.app, body)
    }

    #[test]
    fn rfc3164_variants() {
        assert_eq!(
            strip("<134>Mar  1 12:00:00 192.0.2.1 app[123]: denied from 203.0.113.7"),
            (Some("192.0.2.1"), Some("app"), "denied from 203.0.113.7")
        );
        assert_eq!(
            strip("<134>Mar  1 12:00:00 filterlog[51544]: 5,,,1000000103"),
            (None, Some("filterlog"), "5,,,1000000103")
        );
        assert_eq!(
            strip("<166>Mar 01 2024 12:00:00 asa01 : %ASA-6-302013: Built"),
            (Some("asa01"), None, "%ASA-6-302013: Built")
        );
        assert_eq!(
            strip("<166>Mar 01 2024 12:00:00 127.0.0.1: %FTD-6-302013: Built"),
            (Some("127.0.0.1"), None, "%FTD-6-302013: Built")
        );
        assert_eq!(
            strip("<166>Mar 01 2024 12:00:00 EDT: %FTD-6-302013: Built"),
            (None, None, "%FTD-6-302013: Built")
        );
        assert_eq!(
            strip("<166>%ASA-6-302013: x"),
            (None, None, "%ASA-6-302013: x")
        );
        assert_eq!(
            strip("<189>date=2024-03-01 time=1"),
            (None, None, "date=2024-03-01 time=1")
        );
        assert_eq!(
            strip("<14>Mar  1 12:00:00 PA-VM-01 1,2024/03/01 12:00:00,0123"),
            (Some("PA-VM-01"), None, "1,2024/03/01 12:00:00,0123")
        );
        assert_eq!(
            strip("2024:03:01-12:00:00 utm01 ulogd[4321]: id=\"2001\""),
            (Some("utm01"), Some("ulogd"), "id=\"2001\"")
        );
        assert_eq!(
            strip("<4>Mar  1 12:00:00 host01 kernel: [123456.789012] IN=eth0"),
            (Some("host01"), Some("kernel"), "[123456.789012] IN=eth0")
        );
    }

    #[test]
    fn nested_headers_keep_the_device() {
        assert_eq!(
            strip("<13>Mar  1 12:00:00 relay01 <134>Mar  1 12:00:00 fw01 app: msg"),
            (Some("fw01"), Some("app"), "msg")
        );
    }

    #[test]
    fn rfc5424_with_structured_data() {
        let line = r#"<134>1 2024-03-01T12:00:00.000Z fw01.example.com app 123 ID47 [origin ip="192.0.2.1"][x a="b\]c"] denied connection"#;
        let (header, body) = strip_headers(line);
        let header = header.unwrap();
        assert_eq!(header.hostname, Some("fw01.example.com"));
        assert_eq!(header.observer(), Some("192.0.2.1"));
        assert_eq!(header.app, Some("app"));
        assert_eq!(header.msgid, Some("ID47"));
        assert_eq!(
            header.structured_data,
            Some(r#"[origin ip="192.0.2.1"][x a="b\]c"]"#)
        );
        assert_eq!(body, "denied connection");
        let (header, body) = strip_headers("<14>1 - - - - - - \u{feff}hello");
        assert_eq!(header.unwrap().hostname, None);
        assert_eq!(body, "hello");
    }

    #[test]
    fn a_bare_tag_without_a_header_is_split_off() {
        assert_eq!(
            strip("filterlog[40712]: 5,,,1000000103,igb1"),
            (None, Some("filterlog"), "5,,,1000000103,igb1")
        );
        assert_eq!(
            strip("RT_FLOW: RT_FLOW_SESSION_DENY: session denied"),
            (
                None,
                Some("RT_FLOW"),
                "RT_FLOW_SESSION_DENY: session denied"
            )
        );
        // Not a tag: a key and a value, a program this reader does not know.
        for line in [
            "srcip: 192.0.2.1 dstip: 192.0.2.2",
            "app[123]: y",
            "Info: 1709294400.123",
        ] {
            assert_eq!(strip_headers(line), (None, line), "{line}");
        }
    }

    #[test]
    fn rfc5424_with_the_time_apart_from_the_date() {
        let line = r#"<134>1 2026-03-03 15:55:00 mgmt01 CheckPoint 12345 - [action:"Drop"]"#;
        let (header, body) = strip_headers(line);
        let header = header.unwrap();
        assert_eq!(
            (header.hostname, header.app),
            (Some("mgmt01"), Some("CheckPoint"))
        );
        assert_eq!(header.structured_data, Some(r#"[action:"Drop"]"#));
        assert_eq!(body, "");
    }

    #[test]
    fn lines_without_headers_are_untouched() {
        for line in [
            "2024-03-01 12:00:00 DROP TCP 203.0.113.7 192.0.2.10",
            "1709294400.123    150 192.0.2.10 TCP_MISS/200",
            "device=\"SFW\" date=2024-03-01",
            "{\"a\":1}",
            "<x>",
            "<1234>oops",
        ] {
            assert_eq!(strip_headers(line), (None, line));
        }
    }
}
