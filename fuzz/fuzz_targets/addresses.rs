//! Address tokens as vendors write them, and `enrich`'s argument parsing.
//! The properties checked are in `threatsift::test_support::fuzz`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    threatsift::test_support::fuzz::addresses(data);
});
