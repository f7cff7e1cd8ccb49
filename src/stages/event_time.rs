//! Event time: the source event's own time (`Event::timestamp`, as the device wrote it) in
//! RFC 3339 UTC, for the record's `event_time`. Pure.
//!
//! * In: the text as written.
//! * Out: RFC 3339 UTC (`…Z`, whole seconds, or milliseconds when the text had a fraction), or
//!   `None` when the text does not say the instant unambiguously. Nothing is guessed: a time
//!   without a zone (PAN-OS `2024/01/15 10:00:00`, FortiGate `date=`/`time=`) or without a year
//!   (BSD syslog `Jan 15 10:00:00`) is not read.
//! * Read: RFC 3339 / ISO 8601 date-times with a zone (`Z`, `+01:00`, `+0100`, `+01`; `T` or a
//!   space between date and time; a fraction of any length), Apache/CLF
//!   `15/Jan/2024:10:00:00 +0100`, and epoch numbers by their digit count: 9–10 digits seconds
//!   (Check Point `time`, AWS `start`, Zeek `ts` with a fraction), 12–13 milliseconds (CEF `rt`,
//!   OCSF `time`), 15–16 microseconds, 18–19 nanoseconds (FortiGate `eventtime`).

use std::time::{Duration, UNIX_EPOCH};

/// The event time of `text`, RFC 3339 UTC, or `None` when it is not unambiguous.
pub(crate) fn normalise(text: &str) -> Option<String> {
    let text = text.trim().trim_matches('"');
    let (secs, nanos, fraction) = if text.bytes().next()?.is_ascii_digit()
        && text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    {
        epoch(text)?
    } else if let Some(parsed) = iso8601(text) {
        parsed
    } else {
        clf(text)?
    };
    // 1970 ..= 9999: RFC 3339 has four year digits.
    if !(0..=253_402_300_799).contains(&secs) {
        return None;
    }
    let time = UNIX_EPOCH + Duration::new(u64::try_from(secs).ok()?, nanos);
    Some(if fraction {
        humantime::format_rfc3339_millis(time).to_string()
    } else {
        humantime::format_rfc3339_seconds(time).to_string()
    })
}

/// Seconds, nanoseconds and whether there was a fraction, from an epoch number whose unit its
/// digit count gives.
fn epoch(text: &str) -> Option<(i64, u32, bool)> {
    let (whole, frac) = match text.split_once('.') {
        Some((whole, frac)) if !frac.is_empty() && !frac.contains('.') => (whole, Some(frac)),
        Some(_) => return None,
        None => (text, None),
    };
    let value: u64 = whole.parse().ok()?;
    let (secs, nanos) = match whole.len() {
        9 | 10 => (value, frac.map_or(Some(0), fraction_nanos)?),
        // A fraction of milliseconds or finer is not a documented layout: not guessed.
        12 | 13 if frac.is_none() => (value / 1_000, (value % 1_000) as u32 * 1_000_000),
        15 | 16 if frac.is_none() => (value / 1_000_000, (value % 1_000_000) as u32 * 1_000),
        18 | 19 if frac.is_none() => (value / 1_000_000_000, (value % 1_000_000_000) as u32),
        _ => return None,
    };
    Some((
        i64::try_from(secs).ok()?,
        nanos,
        frac.is_some() || whole.len() > 10,
    ))
}

/// Nanoseconds of the digits after a decimal point (any length; past 9 digits cut).
fn fraction_nanos(frac: &str) -> Option<u32> {
    if frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = &frac[..frac.len().min(9)];
    let value: u32 = digits.parse().ok()?;
    Some(value * 10u32.pow(9 - digits.len() as u32))
}

/// `YYYY-MM-DD(T| )HH:MM:SS[.frac](Z|±HH[:MM]|±HHMM)`.
fn iso8601(text: &str) -> Option<(i64, u32, bool)> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let year = number(&text[0..4])?;
    let month = number(&text[5..7])?;
    let day = number(&text[8..10])?;
    let (clock, rest) = clock(&text[11..])?;
    let (nanos, fraction, zone) = match rest.strip_prefix('.').or(rest.strip_prefix(',')) {
        Some(after) => {
            let end = after
                .bytes()
                .position(|b| !b.is_ascii_digit())
                .unwrap_or(after.len());
            (fraction_nanos(&after[..end])?, true, &after[end..])
        }
        None => (0, false, rest),
    };
    let offset = zone_offset(zone)?;
    let secs = civil_seconds(year, month, day, clock)? - offset;
    Some((secs, nanos, fraction))
}

/// Apache/NCSA common log time: `DD/Mon/YYYY:HH:MM:SS ±HHMM`.
fn clf(text: &str) -> Option<(i64, u32, bool)> {
    let text = text.trim_start_matches('[').trim_end_matches(']');
    let b = text.as_bytes();
    if b.len() != 26 || b[2] != b'/' || b[6] != b'/' || b[11] != b':' || b[20] != b' ' {
        return None;
    }
    let day = number(&text[0..2])?;
    let month = MONTHS.iter().position(|m| *m == &text[3..6])? as i64 + 1;
    let year = number(&text[7..11])?;
    let (clock, rest) = clock(&text[12..])?;
    if rest.len() != 6 {
        return None;
    }
    let offset = zone_offset(&rest[1..])?;
    Some((civil_seconds(year, month, day, clock)? - offset, 0, false))
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `HH:MM:SS` at the start of `text` as seconds of the day, and what follows.
fn clock(text: &str) -> Option<(i64, &str)> {
    let b = text.as_bytes();
    if b.len() < 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    let (h, m, s) = (
        number(&text[0..2])?,
        number(&text[3..5])?,
        number(&text[6..8])?,
    );
    // 60: a leap second, read as the next second's start would be wrong; refused.
    if h > 23 || m > 59 || s > 59 {
        return None;
    }
    Some((h * 3600 + m * 60 + s, &text[8..]))
}

/// Seconds east of UTC of `Z`, `±HH:MM`, `±HHMM` or `±HH`; `None` for anything else
/// (including no zone at all).
fn zone_offset(zone: &str) -> Option<i64> {
    if zone == "Z" || zone == "z" {
        return Some(0);
    }
    let sign = match zone.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits = &zone[1..];
    let (h, m) = match digits.len() {
        2 => (number(digits)?, 0),
        4 => (number(&digits[..2])?, number(&digits[2..])?),
        5 if digits.as_bytes()[2] == b':' => (number(&digits[..2])?, number(&digits[3..])?),
        _ => return None,
    };
    if h > 23 || m > 59 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60))
}

/// All-digit text as a number.
fn number(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Seconds since the epoch of a valid proleptic Gregorian date and a time of day (days from
/// civil, H. Hinnant).
fn civil_seconds(year: i64, month: i64, day: i64, clock: i64) -> Option<i64> {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day < 1 || day > days_in_month {
        return None;
    }
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + clock)
}

#[cfg(test)]
mod tests {
    use super::normalise;

    #[test]
    fn rfc3339_and_iso8601_with_a_zone_are_read_in_utc() {
        let cases = [
            ("2024-01-15T10:00:00Z", "2024-01-15T10:00:00Z"),
            ("2024-01-15T11:30:00+01:30", "2024-01-15T10:00:00Z"),
            ("2024-01-15 05:00:00-0500", "2024-01-15T10:00:00Z"),
            ("2024-01-15T12:00:00+02", "2024-01-15T10:00:00Z"),
            // Suricata: microseconds and a colon-less zone.
            (
                "2024-01-15T10:00:00.123456+0000",
                "2024-01-15T10:00:00.123Z",
            ),
            ("2024-02-29T23:59:59.5Z", "2024-02-29T23:59:59.500Z"),
            // Crossing midnight and the year backwards.
            ("2024-01-01T00:30:00+01:00", "2023-12-31T23:30:00Z"),
        ];
        for (text, want) in cases {
            assert_eq!(normalise(text).as_deref(), Some(want), "{text}");
        }
    }

    #[test]
    fn epoch_numbers_are_read_by_their_digit_count() {
        let cases = [
            ("1705312800", "2024-01-15T10:00:00Z"),
            ("1705312800.25", "2024-01-15T10:00:00.250Z"),
            ("1705312800123", "2024-01-15T10:00:00.123Z"),
            ("1705312800123456", "2024-01-15T10:00:00.123Z"),
            ("1705312800123456789", "2024-01-15T10:00:00.123Z"),
        ];
        for (text, want) in cases {
            assert_eq!(normalise(text).as_deref(), Some(want), "{text}");
        }
    }

    #[test]
    fn common_log_time_is_read_with_its_offset() {
        assert_eq!(
            normalise("[10/Oct/2000:13:55:36 -0700]").as_deref(),
            Some("2000-10-10T20:55:36Z")
        );
    }

    #[test]
    fn times_without_zone_or_year_or_unit_are_not_guessed() {
        for text in [
            "2024/01/15 10:00:00",  // PAN-OS: device local time, no zone
            "2024-01-15T10:00:00",  // ISO 8601 without a zone
            "2024-01-15 10:00:00",  // FortiGate date + time
            "Jan 15 10:00:00",      // BSD syslog: no year
            "Sep 19 2024 08:26:10", // CEF rt in words: no zone
            "12345",                // too few digits for any unit
            "17053128001",          // 11 digits: no unit
            "1705312800123.5",      // fraction of milliseconds: not a layout
            "2024-02-30T10:00:00Z", // no such day
            "2024-01-15T24:00:00Z", // no such hour
            "2024-01-15T10:00:00+2500",
            "",
            "-",
        ] {
            assert_eq!(normalise(text), None, "{text:?}");
        }
    }
}
