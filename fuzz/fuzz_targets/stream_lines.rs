//! The lines of one stream through one registry, in order: header directives (W3C `#Fields:`,
//! Zeek `#fields`, VPC flow headers) change how the lines after them are read.
//! The properties checked are in `threatsift::test_support::fuzz`.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use threatsift::FormatRegistry;

fuzz_target!(|data: &[u8]| {
    static REGISTRY: OnceLock<FormatRegistry> = OnceLock::new();
    let registry = REGISTRY.get_or_init(|| FormatRegistry::builtin(Default::default()));
    threatsift::test_support::fuzz::stream_lines(registry, data);
});
