//! Syslog header stripping (RFC 3164 variants, RFC 5424, relayed headers).
//! The properties checked are in `threatsift::test_support::fuzz`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    threatsift::test_support::fuzz::syslog_header(data);
});
