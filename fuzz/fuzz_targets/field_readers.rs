//! The field readers: key=value pairs, delimited pairs, CSV fields, spaced fields.
//! The properties checked are in `threatsift::test_support::fuzz`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    threatsift::test_support::fuzz::field_readers(data);
});
