//! One Kafka message through the processor: gzip, UTF-8, line and envelope splitting, every
//! format, extract, filter, dedup, score, record and the per-message DLQ budget.
//! The properties checked are in `threatsift::test_support::fuzz`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    threatsift::test_support::fuzz::whole_message(data);
});
