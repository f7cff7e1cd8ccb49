//! Frame: gzip decompression with its limit, the text check and line splitting.
//! The properties checked are in `threatsift::test_support::fuzz`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    threatsift::test_support::fuzz::frame(data);
});
