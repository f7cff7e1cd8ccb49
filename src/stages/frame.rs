//! Frame: one Kafka message's payload → the event lines in it. Pure.
//!
//! * In: the payload bytes and the producer's timestamp.
//! * Out: the lines to parse (one event per line, unless the whole payload is one JSON
//!   document spread over several lines), and the time the events were seen.
//! * Refused with a [`ParseError`] naming the problem, for the caller to dead-letter whole: a
//!   gzip payload that does not decompress or decompresses past `parse.max_decompressed_bytes`,
//!   a payload that is not UTF-8, and an empty one.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::stages::parse::ParseError;

/// How far in the future a message timestamp may be before processing time is used instead.
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(24 * 3600);

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The payload, decompressed when it is gzip (CloudWatch Logs subscriptions and some shippers
/// deliver gzip'd batches), refusing to produce more than `limit` bytes.
pub(crate) fn decompress(payload: &[u8], limit: usize) -> Result<Cow<'_, [u8]>, ParseError> {
    if !payload.starts_with(&GZIP_MAGIC) {
        return Ok(Cow::Borrowed(payload));
    }
    use std::io::Read;
    let mut out = Vec::with_capacity(payload.len().saturating_mul(4).min(limit));
    let mut decoder = flate2::read::MultiGzDecoder::new(payload).take(limit as u64 + 1);
    decoder
        .read_to_end(&mut out)
        .map_err(|e| ParseError::InvalidGzip(e.to_string()))?;
    if out.len() > limit {
        return Err(ParseError::InvalidGzip(format!(
            "decompresses to more than parse.max_decompressed_bytes ({limit} bytes)"
        )));
    }
    Ok(Cow::Owned(out))
}

/// The payload as text: UTF-8 and not blank.
pub(crate) fn text(payload: &[u8]) -> Result<&str, ParseError> {
    let text = std::str::from_utf8(payload).map_err(|e| ParseError::InvalidUtf8 {
        at: e.valid_up_to(),
    })?;
    if text.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    Ok(text)
}

/// When the events were seen: the producer's timestamp, unless it is absent or implausibly far
/// in the future.
pub(crate) fn seen_at(timestamp_ms: Option<i64>, now: SystemTime) -> SystemTime {
    timestamp_ms
        .and_then(|ms| u64::try_from(ms).ok())
        .map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
        .filter(|t| *t <= now + MAX_CLOCK_SKEW)
        .unwrap_or(now)
}

/// The events of a payload, one at a time (a payload may hold millions of lines): one per line,
/// unless the whole payload is one JSON document spread over several lines. The flag says
/// whether there are several (lines are then numbered in DLQ entries).
pub(crate) fn events(text: &str) -> (bool, impl Iterator<Item = &str>) {
    let trimmed = text.trim_end_matches(['\n', '\r']);
    let several = trimmed.contains('\n') && !is_one_json_document(trimmed);
    let whole = (!several).then_some(trimmed);
    let lines = several
        .then(|| trimmed.split('\n').map(|l| l.trim_end_matches('\r')))
        .into_iter()
        .flatten();
    (several, whole.into_iter().chain(lines))
}

fn is_one_json_document(trimmed: &str) -> bool {
    trimmed.trim_start().starts_with('{')
        && serde_json::from_str::<serde::de::IgnoredAny>(trimmed).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_events(text: &str) -> Vec<&str> {
        events(text).1.collect()
    }

    #[test]
    fn several_means_more_than_one_event() {
        for (text, several) in [
            ("a=1\n", false),
            ("a=1\r\nb=2\n", true),
            ("{\n \"a\": 1\n}\n", false),
            ("{\"a\":1}\n{\"b\":2}", true),
            ("\n\n", false),
        ] {
            assert_eq!(events(text).0, several, "{text:?}");
        }
    }

    #[test]
    fn splitting_keeps_one_json_document_whole() {
        assert_eq!(split_events("a=1\n"), vec!["a=1"]);
        assert_eq!(split_events("a=1\r\nb=2\n"), vec!["a=1", "b=2"]);
        assert_eq!(split_events("{\n \"a\": 1\n}\n").len(), 1);
        assert_eq!(split_events("{\"a\":1}\n{\"b\":2}").len(), 2);
    }
}
